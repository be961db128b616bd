//! The gateway `eval` runs: the filter's JSON configuration, or one tenant built from a policy file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use intentgate_core::config::{
    Gateway, GatewayConfig, KeyConfig, PolicySource, TenantConfig, TenantSettings,
};
use intentgate_core::intent::IntentRule;
use intentgate_core::token;

use crate::common::{read_input, read_json, read_text};

/// Tenant used by the `--policy` shortcut when neither `--tenant` nor a readable token names one.
const FALLBACK_TENANT: &str = "default";

/// Where the gateway configuration comes from.
pub struct Source<'a> {
    pub config: Option<&'a Path>,
    pub policy: Option<&'a Path>,
    pub public_keys: &'a [String],
    pub tenant_settings: Option<&'a Path>,
    pub intent_rules: Option<&'a Path>,
    pub tenant: Option<&'a str>,
}

pub fn gateway(source: &Source<'_>, token: Option<&str>) -> anyhow::Result<Gateway> {
    if let Some(path) = source.config {
        let bytes = read_input(path)?;
        return Gateway::from_json(&bytes)
            .map_err(|e| anyhow!("gateway configuration {}: {e}", path.display()));
    }
    let Some(policy) = source.policy else {
        bail!("give --config, or --policy with --public-key");
    };
    let tenant = match source.tenant {
        Some(tenant) => tenant.to_owned(),
        None => token
            .and_then(|t| token::read_unverified(t).ok())
            .map_or_else(|| FALLBACK_TENANT.to_owned(), |t| t.authority.tenant),
    };
    let settings: TenantSettings = match source.tenant_settings {
        Some(path) => read_json(path)?,
        None => TenantSettings::default(),
    };
    let intent_rules: Vec<IntentRule> = match source.intent_rules {
        Some(path) => read_json(path)?,
        None => Vec::new(),
    };
    let tenant_config = TenantConfig {
        policy: Some(PolicySource::Rego(read_text(policy)?)),
        settings,
        intent_rules,
    };
    let config = GatewayConfig {
        keys: source
            .public_keys
            .iter()
            .map(|key| KeyConfig {
                kid: None,
                public_key: key.clone(),
            })
            .collect(),
        tenants: BTreeMap::from([(tenant, tenant_config)]),
        revocations: Vec::new(),
        serve_tenants: None,
    };
    Gateway::compile(config).with_context(|| describe(policy, source))
}

fn describe(policy: &Path, source: &Source<'_>) -> String {
    let mut files: Vec<PathBuf> = vec![policy.to_owned()];
    files.extend(source.tenant_settings.map(Path::to_owned));
    files.extend(source.intent_rules.map(Path::to_owned));
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    format!("invalid configuration from {}", names.join(", "))
}
