//! `intentgate`: keys, capability tokens, policy compilation and offline evaluation, on the same
//! `intentgate-core` code the Envoy filter and the control plane run.
//!
//! Every command prints JSON on stdout. Exit codes: 0 done (for `eval`, whatever the decisions),
//! 1 refused (a widening attenuation, a token that does not verify), 2 usage or configuration error.

mod attenuate;
mod audit;
mod common;
mod compile;
mod error;
mod eval;
mod inspect;
mod keygen;
mod mint;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "intentgate",
    version,
    about = "IntentGate keys, capability tokens and offline policy evaluation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an issuer key: a base64 seed (the format of INTENTGATE_MASTER_KEY), its public key and key id.
    Keygen(keygen::Args),
    /// Mint a capability token with the issuer key.
    Mint(mint::Args),
    /// Derive a narrower token offline (fewer tools, fewer calls, earlier expiry).
    Attenuate(attenuate::Args),
    /// Decode a token's blocks; with --public-key, also verify it.
    Inspect(inspect::Args),
    /// Compile a Rego policy to the bytecode a standalone filter configuration carries.
    Compile(compile::Args),
    /// Run the gateway's pipeline on a JSON-RPC body, a token and a policy, and print each decision.
    Eval(eval::Args),
    /// Verifiable audit log: check signed tree heads and Merkle proofs offline.
    Audit(audit::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(args) => keygen::run(&args),
        Command::Mint(args) => mint::run(&args),
        Command::Attenuate(args) => attenuate::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Compile(args) => compile::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Audit(args) => audit::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
