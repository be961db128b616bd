//! `intentgate audit …`: offline checks of the control plane's verifiable audit log.

mod fetch;
mod verify_proof;

use std::process::ExitCode;

use clap::Subcommand;

use crate::error::CliError;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a signed tree head, an inclusion proof and a consistency proof with only the public key.
    VerifyProof(verify_proof::Args),
}

pub fn run(args: &Args) -> Result<ExitCode, CliError> {
    match &args.command {
        Command::VerifyProof(args) => verify_proof::run(args),
    }
}
