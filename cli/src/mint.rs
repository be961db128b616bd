//! `intentgate mint`: a root capability token signed with the issuer key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use intentgate_core::memory::derive_memory_key;
use intentgate_core::time::rfc3339_secs;
use intentgate_core::token::{self, Grant, IssuerKey};
use serde_json::{Map, Value};

use crate::common::{
    expiry, new_ulid, now_secs, print_json, random, read_text, secs_to_millis, tool_list,
};
use crate::error::CliError;

/// The environment variable the control plane reads its signing key from, too.
pub const MASTER_KEY_ENV: &str = "INTENTGATE_MASTER_KEY";

#[derive(clap::Args)]
pub struct Args {
    /// Issuer key: base64 of a 32-byte seed [default: $INTENTGATE_MASTER_KEY]
    #[arg(long, conflicts_with = "key_file")]
    key: Option<String>,
    /// File holding the issuer key: a base64 seed, or the JSON `intentgate keygen` prints
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// The agent the token is for (`sub`)
    #[arg(long)]
    subject: String,
    /// The tenant the token belongs to
    #[arg(long)]
    tenant: String,
    #[arg(long, default_value = "intentgate")]
    issuer: String,
    /// Tool allow-list: exact names and `*` patterns, comma-separated or repeated [default: any tool]
    #[arg(long, value_delimiter = ',', value_name = "TOOLS")]
    tools: Option<Vec<String>>,
    /// Lifetime in seconds
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    ttl: u64,
    /// At most this many tools/call
    #[arg(long, value_name = "N")]
    max_calls: Option<u64>,
    /// Bind the token to this resource (RFC 8707 URL, e.g. the gateway's `/v1/mcp` URL): a gateway
    /// that knows its own resource URL refuses it elsewhere [default: any resource of the tenant]
    #[arg(long, value_name = "URL")]
    audience: Option<String>,
    /// Stamp a fresh second factor (`step_up_at` = now) that policies can require
    #[arg(long)]
    step_up: bool,
    /// Also derive the token's memory signing key and print its private half
    #[arg(long)]
    with_memory_signing_key: bool,
    /// Issue as of this unix time (seconds) instead of now
    #[arg(long, value_name = "UNIX_SECS", allow_negative_numbers = true)]
    now: Option<i64>,
}

pub fn run(args: &Args) -> Result<ExitCode, CliError> {
    let key = issuer_key(args.key.as_deref(), args.key_file.as_deref())?;
    let now = now_secs(args.now)?;
    let jti = new_ulid(secs_to_millis(now)?)?;
    let tools = args.tools.as_deref().map(tool_list).transpose()?;
    let memory = args
        .with_memory_signing_key
        .then(|| derive_memory_key(key.seed(), &jti));
    let grant = Grant {
        jti: jti.clone(),
        issuer: args.issuer.clone(),
        subject: args.subject.clone(),
        tenant: args.tenant.clone(),
        issued_at: now,
        not_before: now,
        expires_at: expiry(now, args.ttl)?,
        tools,
        max_calls: args.max_calls,
        step_up_at: args.step_up.then_some(now),
        memory_key: memory.as_ref().map(|m| m.verifying_key()),
    };
    let token = token::mint_for_audience(&key, &grant, args.audience.as_deref(), &random()?)
        .context("cannot mint the token")?;
    let mut out = Map::new();
    out.insert("token".into(), Value::from(token));
    out.insert("jti".into(), Value::from(jti));
    out.insert("kid".into(), Value::from(key.kid()));
    out.insert(
        "expires_at".into(),
        Value::from(rfc3339_secs(grant.expires_at)),
    );
    if let Some(memory) = memory {
        out.insert(
            "memory_signing_key".into(),
            Value::from(STANDARD.encode(memory.to_bytes())),
        );
    }
    print_json(&Value::Object(out))?;
    Ok(ExitCode::SUCCESS)
}

/// The issuer key from `--key`, `--key-file` or `INTENTGATE_MASTER_KEY`, in that order.
fn issuer_key(key: Option<&str>, key_file: Option<&Path>) -> anyhow::Result<IssuerKey> {
    let (text, source) = match (key, key_file) {
        (Some(text), _) => (text.to_owned(), "--key".to_owned()),
        (None, Some(path)) => (seed_from_file(path)?, path.display().to_string()),
        (None, None) => match std::env::var(MASTER_KEY_ENV) {
            Ok(text) if !text.trim().is_empty() => (text, MASTER_KEY_ENV.to_owned()),
            _ => bail!("no issuer key: give --key, --key-file or set {MASTER_KEY_ENV}"),
        },
    };
    IssuerKey::from_base64_seed(&text).map_err(|e| anyhow!("issuer key from {source}: {e}"))
}

/// A key file holds the seed itself, or `keygen`'s JSON with a `seed` field.
fn seed_from_file(path: &Path) -> anyhow::Result<String> {
    let text = read_text(path)?;
    if !text.trim_start().starts_with('{') {
        return Ok(text.trim().to_owned());
    }
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    value
        .get("seed")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{} has no \"seed\" string", path.display()))
}
