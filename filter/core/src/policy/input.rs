//! `input` as a policy sees it (SPEC §3).

use std::collections::BTreeMap;

use regorus::Value;
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
    /// The regorus value of this input, built directly: a JSON text round trip cost most of the time
    /// of a policy check. The token's part comes ready-made from the verified token.
    pub fn to_value(&self, capability: Option<&Value>) -> Result<Value, String> {
        let mut input = BTreeMap::new();
        for key in FIELDS {
            let value = self.field(key, capability)?;
            if value != Value::Undefined {
                insert(&mut input, key, value);
            }
        }
        Ok(Value::from(input))
    }

    /// `input[name]` as [`PolicyInput::to_value`] builds it: undefined for a key it does not have.
    pub fn value_at(&self, name: &str, capability: Option<&Value>) -> Result<Value, String> {
        match FIELDS
            .into_iter()
            .find(|key| KEYS.get(*key as usize) == Some(&name))
        {
            Some(key) => self.field(key, capability),
            None => Ok(Value::Undefined),
        }
    }

    fn field(&self, key: Key, capability: Option<&Value>) -> Result<Value, String> {
        Ok(match key {
            Key::Method => Value::from(self.method),
            Key::Tool => Value::from(self.tool),
            Key::Args => serde_json::from_str(self.args.get()).map_err(|e| e.to_string())?,
            Key::AgentId => Value::from(self.agent_id),
            Key::Tenant => Value::from(self.tenant),
            Key::Capability => match capability {
                Some(ready) => ready.clone(),
                None => self.capability.to_value()?,
            },
            Key::Intent => match self.intent {
                Some(intent) => to_value(intent)?,
                None => Value::Undefined,
            },
            Key::Request => self.request.to_value(),
            Key::Now => Value::from(self.now),
            Key::Path | Key::RemoteIp | Key::Headers => Value::Undefined,
        })
    }
}

impl RequestInput<'_> {
    fn to_value(&self) -> Value {
        let mut request = BTreeMap::new();
        insert(&mut request, Key::Method, Value::from(self.method));
        insert(&mut request, Key::Path, Value::from(self.path));
        insert(&mut request, Key::RemoteIp, Value::from(self.remote_ip));
        let headers: BTreeMap<Value, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
            .collect();
        insert(&mut request, Key::Headers, Value::from(headers));
        Value::from(request)
    }
}

impl CapabilityInput<'_> {
    pub fn to_value(&self) -> Result<Value, String> {
        to_value(self)
    }
}

/// Every key the input uses, made once: a regorus string is a reference-counted allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Method,
    Tool,
    Args,
    AgentId,
    Tenant,
    Capability,
    Intent,
    Request,
    Path,
    RemoteIp,
    Headers,
    Now,
}

const KEYS: [&str; 12] = [
    "method",
    "tool",
    "args",
    "agent_id",
    "tenant",
    "capability",
    "intent",
    "request",
    "path",
    "remote_ip",
    "headers",
    "now",
];

/// The top-level keys, in the order [`PolicyInput::to_value`] builds (and fails on) them.
const FIELDS: [Key; 9] = [
    Key::Method,
    Key::Tool,
    Key::Args,
    Key::AgentId,
    Key::Tenant,
    Key::Capability,
    Key::Intent,
    Key::Request,
    Key::Now,
];

fn insert(map: &mut BTreeMap<Value, Value>, key: Key, value: Value) {
    static MADE: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    let made = MADE.get_or_init(|| KEYS.iter().map(|k| Value::from(*k)).collect());
    let key = made
        .get(key as usize)
        .cloned()
        .unwrap_or_else(|| Value::from(KEYS.get(key as usize).copied().unwrap_or_default()));
    map.insert(key, value);
}

fn to_value(item: &impl Serialize) -> Result<Value, String> {
    serde_json::to_value(item)
        .and_then(serde_json::from_value)
        .map_err(|e| e.to_string())
}

/// `{}` as a raw value, for calls without arguments.
pub fn empty_args() -> &'static RawValue {
    // A valid literal; `from_string` only fails on invalid JSON.
    static EMPTY: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| {
        RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| Box::<RawValue>::default())
    })
}
