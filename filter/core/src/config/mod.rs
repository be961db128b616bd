//! Configuration: parsed from JSON into `raw` types, then compiled once into a [`Gateway`] that the
//! hot path uses. Invalid configuration fails the load, never a request.

mod raw;
pub mod strict;

pub use raw::{
    ApprovalMode, GatewayConfig, KeyConfig, PolicySource, RateLimits, RevocationConfig,
    TenantConfig, TenantSettings,
};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::intent::IntentRules;
use crate::policy::Policy;
use crate::token::{PublicKeys, Revoked};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration is not valid JSON: {0}")]
    Json(String),
    #[error("key {index}: {message}")]
    Key { index: usize, message: String },
    #[error("tenant {tenant}: policy: {message}")]
    Policy { tenant: String, message: String },
    #[error("tenant {tenant}: {message}")]
    Tenant { tenant: String, message: String },
}

/// One tenant, ready to serve. Cloning shares the compiled policy.
#[derive(Debug, Clone)]
pub struct TenantState {
    pub policy: Option<Arc<Policy>>,
    pub settings: TenantSettings,
    pub intent_rules: IntentRules,
}

/// The compiled state every check reads.
#[derive(Debug, Default, Clone)]
pub struct Gateway {
    pub keys: PublicKeys,
    pub revoked: Revoked,
    pub serve_tenants: Option<HashSet<String>>,
    pub tenants: HashMap<String, TenantState>,
}

impl Gateway {
    pub fn from_json(text: &[u8]) -> Result<Self, ConfigError> {
        let config: GatewayConfig =
            serde_json::from_slice(text).map_err(|e| ConfigError::Json(e.to_string()))?;
        Self::compile(config)
    }

    pub fn compile(config: GatewayConfig) -> Result<Self, ConfigError> {
        let mut keys = PublicKeys::new();
        for (index, key) in config.keys.iter().enumerate() {
            keys.insert_base64(key.kid.as_deref(), &key.public_key)
                .map_err(|e| ConfigError::Key {
                    index,
                    message: e.to_string(),
                })?;
        }
        let mut tenants = HashMap::with_capacity(config.tenants.len());
        for (name, tenant) in config.tenants {
            tenants.insert(name.clone(), compile_tenant(&name, tenant)?);
        }
        let mut revoked = Revoked::default();
        for revocation in &config.revocations {
            match revocation {
                RevocationConfig::Everywhere(jti) => revoked.insert_everywhere(jti),
                RevocationConfig::InTenant { tenant, jti } => revoked.insert(tenant, jti),
            }
        }
        Ok(Gateway {
            keys,
            revoked,
            serve_tenants: config.serve_tenants.map(|t| t.into_iter().collect()),
            tenants,
        })
    }

    /// Whether tokens of `tenant` are served here.
    pub fn serves(&self, tenant: &str) -> bool {
        self.serve_tenants
            .as_ref()
            .is_none_or(|served| served.contains(tenant))
    }

    pub fn tenant(&self, name: &str) -> Option<&TenantState> {
        self.tenants.get(name)
    }
}

pub fn compile_tenant(name: &str, tenant: TenantConfig) -> Result<TenantState, ConfigError> {
    let policy = match tenant.policy {
        None => None,
        Some(source) => Some(Arc::new(compile_policy(&source).map_err(|message| {
            ConfigError::Policy {
                tenant: name.to_owned(),
                message,
            }
        })?)),
    };
    let intent_rules =
        IntentRules::compile(tenant.intent_rules).map_err(|e| ConfigError::Tenant {
            tenant: name.to_owned(),
            message: e.to_string(),
        })?;
    Ok(TenantState {
        policy,
        settings: tenant.settings,
        intent_rules,
    })
}

pub fn compile_policy(source: &PolicySource) -> Result<Policy, String> {
    match source {
        #[cfg(feature = "compiler")]
        PolicySource::Rego(text) => Policy::compile(text).map_err(|e| e.to_string()),
        #[cfg(not(feature = "compiler"))]
        PolicySource::Rego(_) => Err(
            "this filter takes policies as bytecode ({\"bytecode\": ...}): compile the Rego with `intentgate compile`"
                .to_owned(),
        ),
        PolicySource::Bytecode(b64) => {
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| "bytecode is not valid base64".to_owned())?;
            Policy::from_bytecode(&bytes).map_err(|e| e.to_string())
        }
    }
}
