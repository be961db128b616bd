//! `intentgate keygen`: a fresh issuer key.

use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use intentgate_core::token::IssuerKey;
use serde_json::json;

use crate::common::{print_json, random};
use crate::error::CliError;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> Result<ExitCode, CliError> {
    let seed: [u8; 32] = random()?;
    let key = IssuerKey::from_seed(&seed);
    print_json(&json!({
        "seed": STANDARD.encode(seed),
        "public_key": key.public_base64(),
        "kid": key.kid(),
    }))?;
    Ok(ExitCode::SUCCESS)
}
