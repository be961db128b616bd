//! Discovery configuration from `INTENTGATE_*` variables, read once at start.

use std::sync::Arc;

use super::catalog::Catalog;
use crate::auth::{HashedToken, MIN_TOKEN_CHARS};

#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `INTENTGATE_DISCOVERY_SYNC_TOKEN`; unset, `/api/discovery/sync` answers 503.
    pub sync_token: Option<HashedToken>,
    /// `INTENTGATE_REPORTS_API_TOKEN`; unset, `/api/reports/*` answers 503.
    pub reports_token: Option<HashedToken>,
    pub catalog: Arc<Catalog>,
}

fn list(text: Option<String>) -> Vec<String> {
    text.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

fn token(name: &str, value: Option<String>) -> Result<Option<HashedToken>, String> {
    value
        .map(|v| {
            let v = v.trim();
            if v.chars().count() < MIN_TOKEN_CHARS {
                Err(format!(
                    "{name} must be at least {MIN_TOKEN_CHARS} characters"
                ))
            } else {
                Ok(HashedToken::new(v))
            }
        })
        .transpose()
}

impl Settings {
    /// Reads the variables through `get` (which treats empty values as unset); errors name the
    /// variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let ai = list(get("INTENTGATE_DISCOVERY_AI_DOMAINS"));
        let mcp = list(get("INTENTGATE_DISCOVERY_MCP_ENDPOINTS"));
        // Checked one list at a time so that the error names the variable at fault.
        Catalog::new(&ai, &[]).map_err(|e| format!("INTENTGATE_DISCOVERY_AI_DOMAINS: {e}"))?;
        let catalog = Catalog::new(&ai, &mcp)
            .map_err(|e| format!("INTENTGATE_DISCOVERY_MCP_ENDPOINTS: {e}"))?;
        Ok(Settings {
            sync_token: token(
                "INTENTGATE_DISCOVERY_SYNC_TOKEN",
                get("INTENTGATE_DISCOVERY_SYNC_TOKEN"),
            )?,
            reports_token: token(
                "INTENTGATE_REPORTS_API_TOKEN",
                get("INTENTGATE_REPORTS_API_TOKEN"),
            )?,
            catalog: Arc::new(catalog),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_configure_tokens_and_catalog_and_bad_ones_are_named() {
        let settings = Settings::from_lookup(|name| match name {
            "INTENTGATE_REPORTS_API_TOKEN" => Some("reports-token-0123456789".into()),
            "INTENTGATE_DISCOVERY_AI_DOMAINS" => Some("llm.corp.example=Corp LLM, ".into()),
            _ => None,
        })
        .unwrap();
        assert!(settings.sync_token.is_none());
        assert!(settings.reports_token.is_some());
        let err = Settings::from_lookup(|name| {
            (name == "INTENTGATE_DISCOVERY_SYNC_TOKEN").then(|| "short".into())
        })
        .unwrap_err();
        assert!(err.contains("INTENTGATE_DISCOVERY_SYNC_TOKEN"));
        let err = Settings::from_lookup(|name| {
            (name == "INTENTGATE_DISCOVERY_MCP_ENDPOINTS").then(|| "not a host/x".into())
        })
        .unwrap_err();
        assert!(err.contains("MCP_ENDPOINTS"));
    }
}
