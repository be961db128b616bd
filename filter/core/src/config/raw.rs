//! Configuration as written (plugin JSON, or pushed by the control plane). Parsed strictly:
//! an unknown field is an error, not a silently ignored typo.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::intent::IntentRule;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Public keys that may sign root tokens.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    /// Revoked token ids (root or derived blocks): `"<jti>"` in every tenant, or
    /// `{"tenant", "jti"}` in one.
    #[serde(default)]
    pub revocations: Vec<RevocationConfig>,
    /// When set, tokens of any other tenant fail the capability check.
    #[serde(default)]
    pub serve_tenants: Option<Vec<String>>,
}

/// One revocation of a configuration: a bare jti is revoked in every tenant this Envoy serves (its
/// configuration is its operator's, who answers for all of them); an object names its tenant, as the
/// control plane's revocations do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
pub enum RevocationConfig {
    Everywhere(String),
    InTenant { tenant: String, jti: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InTenant {
    tenant: String,
    jti: String,
}

impl TryFrom<serde_json::Value> for RevocationConfig {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, String> {
        let shape = "a revocation is a jti, or {\"tenant\": ..., \"jti\": ...}";
        let revocation = match value {
            serde_json::Value::String(jti) => RevocationConfig::Everywhere(jti),
            object @ serde_json::Value::Object(_) => {
                let InTenant { tenant, jti } =
                    serde_json::from_value(object).map_err(|e| format!("{shape}: {e}"))?;
                if tenant.is_empty() {
                    return Err(format!("{shape}: its tenant is empty"));
                }
                RevocationConfig::InTenant { tenant, jti }
            }
            _ => return Err(shape.to_owned()),
        };
        match &revocation {
            RevocationConfig::Everywhere(jti) | RevocationConfig::InTenant { jti, .. }
                if jti.is_empty() =>
            {
                Err(format!("{shape}: its jti is empty"))
            }
            _ => Ok(revocation),
        }
    }
}

impl From<RevocationConfig> for serde_json::Value {
    fn from(revocation: RevocationConfig) -> Self {
        match revocation {
            RevocationConfig::Everywhere(jti) => serde_json::Value::String(jti),
            RevocationConfig::InTenant { tenant, jti } => {
                serde_json::json!({"tenant": tenant, "jti": jti})
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Optional; checked against the id derived from the key when given.
    #[serde(default)]
    pub kid: Option<String>,
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// No policy: every `tools/call` of the tenant is denied (fail closed).
    #[serde(default)]
    pub policy: Option<PolicySource>,
    #[serde(default, deserialize_with = "super::strict::object")]
    pub settings: TenantSettings,
    #[serde(default, deserialize_with = "super::strict::objects")]
    pub intent_rules: Vec<IntentRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicySource {
    /// Rego source, compiled at load.
    Rego(String),
    /// Base64 of RVM bytecode compiled by the control plane.
    Bytecode(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// The filter holds the request until a human decides or the timeout passes.
    #[default]
    Sync,
    /// The filter answers -32019 at once; the agent retries with the approval id.
    Async,
}

/// Per-tenant behaviour an operator sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// A `tools/call` without `X-Intent-Prompt` fails the intent check.
    #[serde(default)]
    pub require_intent: bool,
    /// A `tools/call` without a valid `X-Intent-Memory-Provenance` fails the intent check.
    #[serde(default)]
    pub require_memory_provenance: bool,
    #[serde(default)]
    pub approval_mode: ApprovalMode,
    /// How long a held call waits for a human.
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_secs: u64,
    /// How long an approval answered -32019 (parked) can be decided and then used; past it, it
    /// expires. The control plane reads it; filters carry it along.
    #[serde(default = "default_approval_lifetime")]
    pub approval_lifetime_secs: u64,
    #[serde(default, deserialize_with = "super::strict::object")]
    pub rate_limits: RateLimits,
}

fn default_approval_timeout() -> u64 {
    300
}

fn default_approval_lifetime() -> u64 {
    86_400
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            require_intent: false,
            require_memory_provenance: false,
            approval_mode: ApprovalMode::Sync,
            approval_timeout_secs: default_approval_timeout(),
            approval_lifetime_secs: default_approval_lifetime(),
            rate_limits: RateLimits::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default)]
    pub per_agent_per_minute: Option<u64>,
    #[serde(default)]
    pub per_tenant_per_minute: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocations(json: &str) -> Result<Vec<RevocationConfig>, String> {
        serde_json::from_str::<GatewayConfig>(&format!(r#"{{"revocations": {json}}}"#))
            .map(|c| c.revocations)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_revocation_is_a_jti_everywhere_or_a_jti_in_one_tenant() {
        assert_eq!(
            revocations(r#"["01JA", {"tenant": "acme", "jti": "01JB"}]"#).unwrap(),
            vec![
                RevocationConfig::Everywhere("01JA".into()),
                RevocationConfig::InTenant {
                    tenant: "acme".into(),
                    jti: "01JB".into()
                },
            ]
        );
        for bad in [
            r#"[7]"#,
            r#"[""]"#,
            r#"[{"jti": "01JB"}]"#,
            r#"[{"tenant": "", "jti": "01JB"}]"#,
            r#"[{"tenant": "acme", "jti": "01JB", "why": "x"}]"#,
        ] {
            let err = revocations(bad).unwrap_err();
            assert!(err.contains("a revocation is a jti"), "{bad}: {err}");
        }
        let written = serde_json::to_value(GatewayConfig {
            revocations: revocations(r#"["01JA", {"tenant": "acme", "jti": "01JB"}]"#).unwrap(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            written["revocations"],
            serde_json::json!(["01JA", {"tenant": "acme", "jti": "01JB"}])
        );
    }
}
