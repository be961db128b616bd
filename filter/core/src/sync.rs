//! Applying the control plane's updates (intentgate.v1 `SyncUpdate`) to a [`Gateway`]: a snapshot
//! replaces everything, a delta changes what it names and only applies on top of the version it was
//! made from. Policies arrive as RVM bytecode and are loaded, never compiled from Rego, here.

use std::collections::HashMap;
use std::sync::Arc;

use intentgate_proto::v1::{self, sync_update};

use crate::config::{Gateway, TenantSettings, TenantState};
use crate::intent::{IntentRule, IntentRules};
use crate::policy::Policy;
use crate::token::{PublicKeys, Revoked};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("delta from version {base} does not apply to version {held}")]
    VersionGap { base: u64, held: u64 },
    #[error("update version {got} is not newer than the held version {held}")]
    Stale { got: u64, held: u64 },
    #[error("update carries nothing")]
    Empty,
    #[error("key {kid}: {message}")]
    Key { kid: String, message: String },
    #[error("tenant {tenant}: {message}")]
    Tenant { tenant: String, message: String },
}

/// The state a filter holds: the gateway it enforces and the version it came from (0: bootstrap).
#[derive(Debug, Clone, Default)]
pub struct Synced {
    pub version: u64,
    pub gateway: Arc<Gateway>,
}

impl Synced {
    pub fn bootstrap(gateway: Gateway) -> Self {
        Synced {
            version: 0,
            gateway: Arc::new(gateway),
        }
    }

    /// The state after `update`, or why it does not apply (the current state stays in force).
    /// `serve_tenants` of the bootstrap configuration is kept: it is this Envoy's own scope.
    pub fn apply(&self, update: &v1::SyncUpdate) -> Result<Synced, SyncError> {
        let gateway = match &update.kind {
            // An older snapshot would roll back revocations and policies: a control plane whose
            // versions went backwards is not followed.
            Some(sync_update::Kind::Snapshot(_)) if update.version < self.version => {
                return Err(SyncError::Stale {
                    got: update.version,
                    held: self.version,
                });
            }
            Some(sync_update::Kind::Snapshot(snapshot)) => self.snapshot(snapshot)?,
            Some(sync_update::Kind::Delta(delta)) => {
                if delta.base_version != self.version {
                    return Err(SyncError::VersionGap {
                        base: delta.base_version,
                        held: self.version,
                    });
                }
                if update.version <= self.version {
                    return Err(SyncError::Stale {
                        got: update.version,
                        held: self.version,
                    });
                }
                self.delta(delta)?
            }
            None => return Err(SyncError::Empty),
        };
        Ok(Synced {
            version: update.version,
            gateway: Arc::new(gateway),
        })
    }

    fn snapshot(&self, snapshot: &v1::Snapshot) -> Result<Gateway, SyncError> {
        let mut tenants = HashMap::with_capacity(snapshot.tenants.len());
        for tenant in &snapshot.tenants {
            tenants.insert(tenant.tenant.clone(), tenant_state(tenant)?);
        }
        Ok(Gateway {
            keys: keys(&snapshot.keys)?,
            revoked: revoked(Revoked::default(), &snapshot.revocations),
            serve_tenants: self.gateway.serve_tenants.clone(),
            tenants,
        })
    }

    fn delta(&self, delta: &v1::Delta) -> Result<Gateway, SyncError> {
        let mut gateway = (*self.gateway).clone();
        if delta.keys_changed {
            gateway.keys = keys(&delta.keys)?;
        }
        for tenant in &delta.tenants {
            gateway
                .tenants
                .insert(tenant.tenant.clone(), tenant_state(tenant)?);
        }
        gateway.revoked = revoked(std::mem::take(&mut gateway.revoked), &delta.revocations);
        Ok(gateway)
    }
}

/// `held` with `added` revoked, each in its tenant; one without a tenant in every tenant (fail
/// closed: the control plane always names one).
fn revoked(mut held: Revoked, added: &[v1::Revocation]) -> Revoked {
    for revocation in added {
        if revocation.tenant.is_empty() {
            held.insert_everywhere(&revocation.jti);
        } else {
            held.insert(&revocation.tenant, &revocation.jti);
        }
    }
    held
}

fn keys(keys: &[v1::SigningKey]) -> Result<PublicKeys, SyncError> {
    use base64::Engine as _;
    let mut set = PublicKeys::new();
    for key in keys {
        let text = base64::engine::general_purpose::STANDARD.encode(&key.public_key);
        set.insert_base64(Some(&key.kid), &text)
            .map_err(|e| SyncError::Key {
                kid: key.kid.clone(),
                message: e.to_string(),
            })?;
    }
    Ok(set)
}

fn tenant_state(tenant: &v1::TenantState) -> Result<TenantState, SyncError> {
    let fail = |message: String| SyncError::Tenant {
        tenant: tenant.tenant.clone(),
        message,
    };
    let policy = if tenant.policy_bytecode.is_empty() {
        None
    } else {
        Some(Arc::new(
            Policy::from_bytecode(&tenant.policy_bytecode).map_err(|e| fail(e.to_string()))?,
        ))
    };
    let settings: TenantSettings = if tenant.settings_json.is_empty() {
        TenantSettings::default()
    } else {
        serde_json::from_str(&tenant.settings_json).map_err(|e| fail(format!("settings: {e}")))?
    };
    let rules: Vec<IntentRule> = if tenant.intent_rules_json.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&tenant.intent_rules_json)
            .map_err(|e| fail(format!("intent rules: {e}")))?
    };
    let intent_rules = IntentRules::compile(rules).map_err(|e| fail(e.to_string()))?;
    Ok(TenantState {
        policy,
        settings,
        intent_rules,
    })
}

#[cfg(test)]
mod tests;
