//! `intentgate attenuate`: a narrower token derived offline, without the issuer key.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::ArgGroup;
use intentgate_core::token::{self, Narrowing, TokenError};
use serde_json::json;

use crate::common::{
    expiry, new_ulid, now_secs, parse_time, print_json, random, secs_to_millis, token_text,
    tool_list,
};
use crate::error::CliError;

#[derive(clap::Args)]
#[command(group(
    ArgGroup::new("narrowing")
        .required(true)
        .multiple(true)
        .args(["tools", "max_calls", "ttl", "expires_at", "audience"]),
))]
pub struct Args {
    /// The token to narrow [default: read from standard input]
    #[arg(long)]
    token: Option<String>,
    /// Keep only these tools: names or `*` patterns within the token's, comma-separated or repeated
    #[arg(long, value_delimiter = ',', value_name = "TOOLS")]
    tools: Option<Vec<String>>,
    /// At most this many tools/call (no more than the token's)
    #[arg(long, value_name = "N")]
    max_calls: Option<u64>,
    /// Expire this many seconds from now (no later than the token)
    #[arg(long, conflicts_with = "expires_at", value_parser = clap::value_parser!(u64).range(1..))]
    ttl: Option<u64>,
    /// Expire at this time: unix seconds or RFC 3339 (no later than the token)
    #[arg(long, value_name = "TIME")]
    expires_at: Option<String>,
    /// Bind the token to this resource (RFC 8707 URL); a token bound to another keeps its own
    #[arg(long, value_name = "URL")]
    audience: Option<String>,
    /// Attenuate as of this unix time (seconds) instead of now
    #[arg(long, value_name = "UNIX_SECS", allow_negative_numbers = true)]
    now: Option<i64>,
}

pub fn run(args: &Args) -> Result<ExitCode, CliError> {
    let text = token_text(args.token.as_deref())?;
    let now = now_secs(args.now)?;
    let expires_at = match (&args.expires_at, args.ttl) {
        (Some(at), _) => Some(parse_time(at)?),
        (None, Some(ttl)) => Some(expiry(now, ttl)?),
        (None, None) => None,
    };
    let jti = new_ulid(secs_to_millis(now)?)?;
    let narrowing = Narrowing {
        jti: jti.clone(),
        issued_at: now,
        tools: args.tools.as_deref().map(tool_list).transpose()?,
        max_calls: args.max_calls,
        expires_at,
        audience: args.audience.clone(),
    };
    let derived = token::attenuate(&text, &narrowing, &random()?).map_err(|e| match e {
        TokenError::Widening(_) => CliError::Refused(anyhow!("refused: {e}")),
        other => CliError::Usage(anyhow!("cannot attenuate the token: {other}")),
    })?;
    print_json(&json!({ "token": derived, "jti": jti }))?;
    Ok(ExitCode::SUCCESS)
}
