//! `intentgate eval`: the gateway's pipeline run natively on one request, exactly as the filter runs
//! it — envelope, capability, intent, policy, budget — printing each entry's decision, the JSON-RPC
//! error the agent would get, and the audit event; then under `http` what the filter does with the
//! request as a whole (forward, forward a reduced batch, or answer locally).

mod config;
mod entry;
mod http;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::ArgGroup;
use intentgate_core::budget::MemoryBudget;
use intentgate_core::intent::IntentSource;
use intentgate_core::pipeline::{RequestContext, policy_headers};
use intentgate_core::token::TokenCache;
use serde_json::{Map, Value, json};

use crate::common::{now_millis, print_json, read_input, secs_to_millis};
use crate::error::CliError;

#[derive(clap::Args)]
#[command(group(ArgGroup::new("source").required(true).args(["config", "policy"])))]
pub struct Args {
    /// The JSON-RPC body: one message or a batch (`-` for standard input)
    #[arg(long, value_name = "PATH")]
    request: PathBuf,
    /// Capability token, sent as `Authorization: Bearer` [default: none]
    #[arg(long)]
    token: Option<String>,
    /// Gateway configuration: the JSON the Envoy filter embeds (keys, tenants, policies, revocations)
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with_all = ["policy", "public_keys", "tenant_settings", "intent_rules", "tenant"]
    )]
    config: Option<PathBuf>,
    /// Instead of --config: the Rego policy of one tenant (the token's, unless --tenant)
    #[arg(long, value_name = "PATH", requires = "public_keys")]
    policy: Option<PathBuf>,
    /// With --policy: a trusted issuer public key (base64); repeat for several
    #[arg(long = "public-key", value_name = "BASE64")]
    public_keys: Vec<String>,
    /// With --policy: the tenant's settings (JSON: require_intent, rate_limits, approval_mode, ...)
    #[arg(long, value_name = "PATH", requires = "policy")]
    tenant_settings: Option<PathBuf>,
    /// With --policy: the tenant's intent rules (a JSON array of {id, keywords, allow, forbid, summary})
    #[arg(long, value_name = "PATH", requires = "policy")]
    intent_rules: Option<PathBuf>,
    /// With --policy: the tenant the policy belongs to [default: the token's tenant]
    #[arg(long, requires = "policy")]
    tenant: Option<String>,
    /// The user's prompt, as sent in X-Intent-Prompt
    #[arg(long)]
    prompt: Option<String>,
    /// The signed memory chain, as sent in X-Intent-Memory-Provenance
    #[arg(long, value_name = "HEADER")]
    memory_provenance: Option<String>,
    /// A request header (repeatable); policies see them lower-cased, credentials removed.
    /// Authorization, X-Intent-Prompt, X-Intent-Memory-Provenance and X-IntentGate-Tenant are read
    /// as the filter reads them
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Evaluate at this unix time (seconds) instead of now
    #[arg(long, value_name = "UNIX_SECS", allow_negative_numbers = true)]
    now: Option<i64>,
    /// The request's HTTP method, as policies see it
    #[arg(long, default_value = "POST")]
    http_method: String,
    /// The request's path, as policies see it
    #[arg(long, default_value = "/v1/mcp")]
    path: String,
    /// The client's address, as policies and the audit see it
    #[arg(long, default_value = "127.0.0.1")]
    remote_ip: String,
}

/// Names the tenant a request is for; when sent, it must be the token's (as the filter checks it).
const TENANT_HEADER: &str = "x-intentgate-tenant";

fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

pub fn run(args: &Args) -> Result<ExitCode, CliError> {
    let body = read_input(&args.request)?;
    let source = config::Source {
        config: args.config.as_deref(),
        policy: args.policy.as_deref(),
        public_keys: &args.public_keys,
        tenant_settings: args.tenant_settings.as_deref(),
        intent_rules: args.intent_rules.as_deref(),
        tenant: args.tenant.as_deref(),
    };
    let gateway = config::gateway(&source, args.token.as_deref())?;
    let now_ms = match args.now {
        Some(secs) => secs_to_millis(secs)?,
        None => now_millis()?,
    };
    let header = |name: &str| {
        args.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let ctx = RequestContext {
        http_method: args.http_method.clone(),
        path: args.path.clone(),
        remote_ip: args.remote_ip.clone(),
        session_id: header("mcp-session-id").unwrap_or_default(),
        headers: policy_headers(args.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        memory_provenance: args
            .memory_provenance
            .clone()
            .or_else(|| header("x-intent-memory-provenance")),
        now_ms,
    };
    let authorization = match &args.token {
        Some(token) => Some(format!("Bearer {token}")),
        None => header("authorization"),
    };
    let tenant_header = header(TENANT_HEADER);
    let auth = gateway.authenticate(
        &mut TokenCache::new(1),
        authorization.as_deref(),
        tenant_header.as_deref(),
        ctx.now_secs(),
    );
    let prompt = args.prompt.clone().or_else(|| header("x-intent-prompt"));
    let intent = match &auth {
        Ok(token) => gateway.builtin_intent(&token.tenant, prompt.as_deref()),
        Err(_) => IntentSource::NotDeclared,
    };
    let budget = MemoryBudget::new();
    let run = entry::Run {
        gateway: &gateway,
        ctx: &ctx,
        auth: &auth,
        intent: &intent,
        budget: &budget,
    };
    let results = run.body(&body)?;

    let mut out = Map::new();
    let capability = match &auth {
        Ok(token) => json!({
            "valid": true,
            "capability_token_id": token.jti,
            "root_capability_token_id": token.root_jti,
            "subject": token.subject,
            "tenant": token.tenant,
            "caveat_count": token.caveat_count(),
        }),
        Err(denial) => json!({ "valid": false, "reason": denial.reason }),
    };
    out.insert("capability".into(), capability);
    let intent_json = match &intent {
        IntentSource::Extracted(intent) => {
            serde_json::to_value(intent).context("cannot show the intent")?
        }
        _ => Value::Null,
    };
    out.insert("intent".into(), intent_json);
    out.insert("results".into(), Value::Array(results));
    out.insert(
        "http".into(),
        http::decide(&gateway, &ctx, &auth, &intent, &body),
    );
    print_json(&Value::Object(out))?;
    Ok(ExitCode::SUCCESS)
}
