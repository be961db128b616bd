//! `input` as a policy sees it (SPEC §3).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::intent::Intent;
use crate::token::{Caveat, VerifiedToken};

#[derive(Debug, Serialize)]
pub struct PolicyInput<'a> {
    pub method: &'a str,
    pub tool: &'a str,
    /// The call's arguments object, passed through unparsed; `{}` when absent.
    pub args: &'a RawValue,
    pub agent_id: &'a str,
    pub tenant: &'a str,
    pub capability: CapabilityInput<'a>,
    /// Absent (undefined in Rego) when no intent was declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<&'a Intent>,
    pub request: RequestInput<'a>,
    /// Unix seconds.
    pub now: i64,
}

#[derive(Debug, Serialize)]
pub struct CapabilityInput<'a> {
    pub subject: &'a str,
    pub tenant: &'a str,
    pub jti: &'a str,
    pub root_jti: &'a str,
    /// Absent when the token carries none, so `not input.capability.step_up_at` reads naturally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_up_at: Option<i64>,
    pub caveats: &'a [Caveat],
}

impl<'a> CapabilityInput<'a> {
    pub fn of(token: &'a VerifiedToken) -> Self {
        CapabilityInput {
            subject: &token.subject,
            tenant: &token.tenant,
            jti: &token.jti,
            root_jti: &token.root_jti,
            step_up_at: token.step_up_at,
            caveats: &token.caveats,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RequestInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub remote_ip: &'a str,
    /// Lower-case names; credentials are never included.
    pub headers: &'a BTreeMap<String, String>,
}

impl PolicyInput<'_> {
    /// The regorus value of this input.
    pub fn to_value(&self) -> Result<regorus::Value, String> {
        let text = serde_json::to_string(self).map_err(|e| e.to_string())?;
        regorus::Value::from_json_str(&text).map_err(|e| e.to_string())
    }
}

/// `{}` as a raw value, for calls without arguments.
pub fn empty_args() -> &'static RawValue {
    // A valid literal; `from_string` only fails on invalid JSON.
    static EMPTY: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| {
        RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| Box::<RawValue>::default())
    })
}
