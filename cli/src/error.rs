//! How a command fails, and the exit code each failure gets.

use std::io::Write as _;
use std::process::ExitCode;

#[derive(Debug)]
pub enum CliError {
    /// Bad arguments, unreadable files, invalid keys, tokens or configuration: exit 2.
    Usage(anyhow::Error),
    /// The operation was refused: an attenuation that would widen the token: exit 1.
    Refused(anyhow::Error),
}

impl From<anyhow::Error> for CliError {
    fn from(err: anyhow::Error) -> Self {
        CliError::Usage(err)
    }
}

impl CliError {
    /// Writes the message to stderr and returns the exit code.
    pub fn report(self) -> ExitCode {
        let (code, err) = match self {
            CliError::Usage(err) => (2, err),
            CliError::Refused(err) => (1, err),
        };
        // Nothing more can be done if stderr itself is gone.
        let _ = writeln!(std::io::stderr().lock(), "intentgate: {err:#}");
        ExitCode::from(code)
    }
}
