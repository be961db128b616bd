//! `intentgate inspect`: a token's blocks as JSON, and with `--public-key` its verification.

use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use intentgate_core::time::rfc3339_secs;
use intentgate_core::token::{self, Revoked, Unverified, VerifiedToken};
use serde_json::{Map, Value, json};

use crate::common::{now_secs, print_json, public_keys, token_text};
use crate::error::CliError;

#[derive(clap::Args)]
pub struct Args {
    /// The token to inspect [default: read from standard input]
    #[arg(long)]
    token: Option<String>,
    /// A trusted issuer public key (base64); repeat for several. Verifies the token.
    #[arg(long = "public-key", value_name = "BASE64")]
    public_keys: Vec<String>,
    /// Check expiry and not-before at this unix time (seconds) instead of now
    #[arg(long, value_name = "UNIX_SECS", allow_negative_numbers = true)]
    now: Option<i64>,
}

pub fn run(args: &Args) -> Result<ExitCode, CliError> {
    let text = token_text(args.token.as_deref())?;
    let keys = public_keys(&args.public_keys)?;
    let now = now_secs(args.now)?;
    let mut out = Map::new();
    let mut ok = match token::read_unverified(&text) {
        Ok(decoded) => {
            out.insert("kid".into(), Value::from(decoded.kid.as_str()));
            out.insert("blocks".into(), blocks(&decoded)?);
            true
        }
        Err(err) => {
            out.insert("error".into(), Value::from(err.to_string()));
            false
        }
    };
    if !keys.is_empty() {
        let verification = match token::verify(&text, &keys) {
            Ok(verified) => {
                let live = verified.check_live(now, &Revoked::default());
                ok &= live.is_ok();
                verified_json(&verified, live.err().map(|e| e.to_string()))
            }
            Err(err) => {
                ok = false;
                json!({ "valid": false, "error": err.to_string() })
            }
        };
        out.insert("verification".into(), verification);
    }
    print_json(&Value::Object(out))?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Block 0 (the issuer's claims) then each attenuation, as signed.
fn blocks(decoded: &Unverified) -> anyhow::Result<Value> {
    let mut blocks = vec![json!({
        "block": 0,
        "type": "authority",
        "claims": serde_json::to_value(&decoded.authority).context("cannot show the claims")?,
    })];
    for (index, claims) in decoded.attenuations.iter().enumerate() {
        blocks.push(json!({
            "block": index + 1,
            "type": "attenuation",
            "claims": serde_json::to_value(claims).context("cannot show the claims")?,
        }));
    }
    Ok(Value::Array(blocks))
}

/// What a verifier concludes; `live_error` says why the token is unusable now, if it is.
fn verified_json(token: &VerifiedToken, live_error: Option<String>) -> Value {
    let budgets: Vec<Value> = token
        .budgets
        .iter()
        .map(|b| json!({ "counter": b.counter, "max_calls": b.max_calls }))
        .collect();
    let mut out = json!({
        "valid": live_error.is_none(),
        "signature_valid": true,
        "kid": token.kid,
        "capability_token_id": token.jti,
        "root_capability_token_id": token.root_jti,
        "block_jtis": token.block_jtis,
        "issuer": token.issuer,
        "subject": token.subject,
        "tenant": token.tenant,
        "issued_at": rfc3339_secs(token.issued_at),
        "not_before": rfc3339_secs(token.not_before),
        "expires_at": rfc3339_secs(token.expires_at),
        "tools": token.tool_lists,
        "max_calls": token.max_calls(),
        "budgets": budgets,
        "step_up_at": token.step_up_at.map(rfc3339_secs),
        "memory_key": token.memory_key.map(|k| STANDARD.encode(k.as_bytes())),
        "audience": token.audience,
        "caveat_count": token.caveat_count(),
    });
    if let (Some(error), Some(map)) = (live_error, out.as_object_mut()) {
        map.insert("error".into(), Value::from(error));
    }
    out
}
