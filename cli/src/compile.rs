//! `intentgate compile`: a Rego policy compiled to the RVM bytecode the Envoy filter loads, for a
//! standalone plugin configuration (`"policy": {"bytecode": "<base64>"}`). The filter does not
//! compile Rego itself; the control plane compiles what it pushes.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use intentgate_core::policy::Policy;
use serde_json::json;

use crate::common::{print_json, read_text};
use crate::error::CliError;

#[derive(clap::Args)]
pub struct Args {
    /// The Rego policy (`package intentgate.policy`, defining `decision`; `-` for standard input)
    #[arg(value_name = "PATH")]
    policy: PathBuf,
}

pub fn run(args: &Args) -> Result<ExitCode, CliError> {
    let source = read_text(&args.policy)?;
    let policy = Policy::compile(&source)
        .map_err(|e| CliError::Usage(anyhow::anyhow!("{}: {e}", args.policy.display())))?;
    let bytecode = policy
        .bytecode()
        .map_err(|e| CliError::Usage(anyhow::anyhow!(e)))?;
    print_json(&json!({
        "policy": {"bytecode": STANDARD.encode(bytecode)},
        "sha256": policy.sha256(),
    }))?;
    Ok(ExitCode::SUCCESS)
}
