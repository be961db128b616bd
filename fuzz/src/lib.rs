//! Fixtures the fuzz targets and the seed generator share: one issuer key, the tokens it signs, and
//! a gateway with a small policy. Everything is deterministic so seeds stay valid for the targets.

use std::collections::BTreeMap;

use ed25519_dalek::{SigningKey, VerifyingKey};
use intentgate_core::config::{Gateway, GatewayConfig, KeyConfig, PolicySource, TenantConfig};
use intentgate_core::intent::IntentRule;
use intentgate_core::memory::derive_memory_key;
use intentgate_core::token::{self, Grant, IssuerKey, Narrowing, PublicKeys};

pub const MASTER_SEED: [u8; 32] = [42u8; 32];
pub const NOW: i64 = 1_781_444_520;
pub const ROOT_JTI: &str = "01JROOT0000000000000000000";
pub const TENANT: &str = "acme-corp";

/// Reads arguments, globs the tool, counts: enough to exercise the policy input on any arguments.
pub const POLICY: &str = r#"
package intentgate.policy
import rego.v1

default decision := {"allow": false, "reason": "not on the list", "rule": "default"}

decision := {"allow": true, "rule": "reads"} if {
    glob.match("read_*", [], input.tool)
    count(input.args) < 8
}

decision := {"allow": false, "escalate": true, "reason": "large transfer", "rule": "big"} if {
    input.tool == "transfer_funds"
    input.args.amount > 1000
}

decision := {"allow": true, "rule": "small"} if {
    input.tool == "transfer_funds"
    input.args.amount <= 1000
}
"#;

pub fn issuer() -> IssuerKey {
    IssuerKey::from_seed(&MASTER_SEED)
}

pub fn public_keys() -> PublicKeys {
    let mut keys = PublicKeys::new();
    keys.insert(issuer().public());
    keys
}

pub fn memory_signing_key() -> SigningKey {
    derive_memory_key(&MASTER_SEED, ROOT_JTI)
}

pub fn memory_public_key() -> VerifyingKey {
    memory_signing_key().verifying_key()
}

pub fn grant() -> Grant {
    Grant {
        jti: ROOT_JTI.into(),
        issuer: "intentgate".into(),
        subject: "agent-7".into(),
        tenant: TENANT.into(),
        issued_at: NOW,
        not_before: NOW,
        expires_at: NOW + 3600,
        tools: Some(vec!["read_*".into(), "transfer_funds".into()]),
        max_calls: Some(100),
        step_up_at: Some(NOW),
        memory_key: Some(memory_public_key()),
    }
}

/// The root token every target trusts.
pub fn root_token() -> String {
    token::mint(&issuer(), &grant(), &[7u8; 32]).unwrap_or_default()
}

/// The root token narrowed once.
pub fn attenuated_token() -> String {
    let narrowing = Narrowing {
        jti: "01JCHILD000000000000000000".into(),
        issued_at: NOW + 1,
        tools: Some(vec!["read_invoice".into()]),
        max_calls: Some(10),
        expires_at: Some(NOW + 600),
        audience: Some("https://gw.example.com/v1/mcp".into()),
    };
    token::attenuate(&root_token(), &narrowing, &[8u8; 32]).unwrap_or_default()
}

/// A gateway that trusts [`issuer`] and serves [`TENANT`] with [`POLICY`].
pub fn gateway() -> Option<Gateway> {
    let tenant = TenantConfig {
        policy: Some(PolicySource::Rego(POLICY.into())),
        intent_rules: vec![IntentRule {
            id: "invoices".into(),
            keywords: vec!["invoice".into()],
            allow: vec!["read_*".into()],
            forbid: vec!["transfer_*".into()],
            summary: None,
        }],
        ..TenantConfig::default()
    };
    Gateway::compile(GatewayConfig {
        keys: vec![KeyConfig {
            kid: None,
            public_key: issuer().public_base64(),
        }],
        tenants: BTreeMap::from([(TENANT.to_owned(), tenant)]),
        revocations: Vec::new(),
        serve_tenants: None,
    })
    .ok()
}
