use intentgate_proto::v1::{Delta, Revocation, SigningKey, Snapshot, SyncUpdate, TenantState};

use super::*;
use crate::token::IssuerKey;

const POLICY: &str = "package intentgate.policy\nimport rego.v1\ndecision := {\"allow\": true}";

fn key(seed: u8) -> SigningKey {
    let issuer = IssuerKey::from_seed(&[seed; 32]);
    SigningKey {
        kid: issuer.kid().into(),
        public_key: issuer.public().as_bytes().to_vec(),
    }
}

fn tenant(name: &str, with_policy: bool) -> TenantState {
    TenantState {
        tenant: name.into(),
        policy_bytecode: if with_policy {
            Policy::compile(POLICY).unwrap().bytecode().unwrap()
        } else {
            vec![]
        },
        policy_sha256: String::new(),
        settings_json: r#"{"require_intent": true}"#.into(),
        intent_rules_json: r#"[{"id":"r","keywords":["x"],"allow":["a"]}]"#.into(),
    }
}

fn snapshot(version: u64) -> SyncUpdate {
    SyncUpdate {
        version,
        kind: Some(sync_update::Kind::Snapshot(Snapshot {
            keys: vec![key(1)],
            tenants: vec![tenant("acme", true), tenant("globex", false)],
            revocations: vec![Revocation {
                tenant: "acme".into(),
                jti: "01JR".into(),
            }],
        })),
    }
}

fn delta(base: u64, version: u64, delta: Delta) -> SyncUpdate {
    SyncUpdate {
        version,
        kind: Some(sync_update::Kind::Delta(Delta {
            base_version: base,
            ..delta
        })),
    }
}

#[test]
fn snapshot_replaces_the_bootstrap_but_keeps_the_served_tenants() {
    let bootstrap = Gateway {
        serve_tenants: Some(["acme".to_string()].into()),
        ..Default::default()
    };
    let synced = Synced::bootstrap(bootstrap).apply(&snapshot(7)).unwrap();
    assert_eq!(synced.version, 7);
    let g = &synced.gateway;
    assert_eq!(g.keys.len(), 1);
    assert!(g.revoked.contains("acme", "01JR") && !g.revoked.contains("globex", "01JR"));
    assert!(g.tenant("acme").unwrap().policy.is_some());
    assert!(
        g.tenant("globex").unwrap().policy.is_none(),
        "no bytecode: the tenant fails closed"
    );
    assert!(g.tenant("acme").unwrap().settings.require_intent);
    assert!(!g.tenant("acme").unwrap().intent_rules.is_empty());
    assert!(g.serves("acme") && !g.serves("globex"));
}

#[test]
fn delta_applies_only_on_its_base_version() {
    let synced = Synced::default().apply(&snapshot(7)).unwrap();
    let change = Delta {
        revocations: vec![Revocation {
            tenant: "acme".into(),
            jti: "01JNEW".into(),
        }],
        tenants: vec![tenant("acme", false)],
        ..Default::default()
    };
    assert_eq!(
        synced.apply(&delta(6, 8, change.clone())).unwrap_err(),
        SyncError::VersionGap { base: 6, held: 7 }
    );
    let next = synced.apply(&delta(7, 8, change)).unwrap();
    assert_eq!(next.version, 8);
    assert!(
        next.gateway.revoked.contains("acme", "01JR")
            && next.gateway.revoked.contains("acme", "01JNEW")
    );
    assert!(
        next.gateway.tenant("acme").unwrap().policy.is_none(),
        "cleared policy"
    );
    assert!(
        next.gateway.tenant("globex").is_some(),
        "untouched tenants stay"
    );
    assert_eq!(
        next.gateway.keys.len(),
        1,
        "keys unchanged unless keys_changed"
    );
    // The held state was not modified.
    assert!(!synced.gateway.revoked.contains("acme", "01JNEW"));
}

#[test]
fn key_rotation_replaces_the_trusted_set() {
    let synced = Synced::default().apply(&snapshot(1)).unwrap();
    let rotated = synced
        .apply(&delta(
            1,
            2,
            Delta {
                keys_changed: true,
                keys: vec![key(1), key(2)],
                ..Default::default()
            },
        ))
        .unwrap();
    assert_eq!(rotated.gateway.keys.len(), 2);
    let retired = rotated
        .apply(&delta(
            2,
            3,
            Delta {
                keys_changed: true,
                keys: vec![key(2)],
                ..Default::default()
            },
        ))
        .unwrap();
    assert!(
        !retired
            .gateway
            .keys
            .contains(IssuerKey::from_seed(&[1; 32]).kid())
    );
}

#[test]
fn bad_updates_leave_the_state_in_force() {
    let synced = Synced::default().apply(&snapshot(1)).unwrap();
    let mut bad = tenant("acme", true);
    bad.policy_bytecode = b"not bytecode".to_vec();
    let err = synced
        .apply(&delta(
            1,
            2,
            Delta {
                tenants: vec![bad],
                ..Default::default()
            },
        ))
        .unwrap_err();
    assert!(matches!(err, SyncError::Tenant { .. }));
    let mut wrong_kid = key(1);
    wrong_kid.kid = "ig-0000000000000000".into();
    assert!(matches!(
        synced.apply(&delta(
            1,
            2,
            Delta {
                keys_changed: true,
                keys: vec![wrong_kid],
                ..Default::default()
            }
        )),
        Err(SyncError::Key { .. })
    ));
    assert_eq!(
        synced
            .apply(&SyncUpdate {
                version: 2,
                kind: None
            })
            .unwrap_err(),
        SyncError::Empty
    );
    assert!(matches!(
        synced.apply(&delta(1, 1, Delta::default())),
        Err(SyncError::Stale { .. })
    ));
}
