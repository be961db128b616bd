//! IntentGate's own record shape, for scripts, SIEM searches and anything without a parser:
//!
//! ```json
//! {"timestamp": "2026-06-14T13:42:00Z", "agent": "invoice-bot", "user": "jdoe@acme.example",
//!  "device": "build-7", "client_ip": "10.0.0.7", "url": "https://api.openai.com/v1/responses",
//!  "host": "api.openai.com", "app": "OpenAI", "category": "Generative AI",
//!  "user_agent": "openai-python/1.40", "action": "allowed"}
//! ```
//!
//! Every field is optional except a destination: `url`, `host` or `app`. `timestamp` is RFC 3339
//! or epoch seconds/milliseconds. Other fields are ignored.

use serde_json::Value;

use super::fields::{self, host_of, path_of};
use crate::discovery::record::Observation;

pub fn parse(record: &Value) -> Result<Observation, String> {
    let url = fields::text(record, &["url"])?;
    let host = match fields::text(record, &["host", "destination"])? {
        Some(h) => {
            Some(host_of(&h).ok_or_else(|| format!("field `host` is not a host name: {h:?}"))?)
        }
        None => url.as_deref().and_then(host_of),
    };
    Ok(Observation {
        time_ms: fields::time(record, &["timestamp", "time"])?,
        agent: fields::text(record, &["agent", "agent_id"])?,
        user: fields::text(record, &["user"])?,
        device: fields::text(record, &["device", "hostname"])?,
        client_ip: fields::text(record, &["client_ip", "src_ip"])?,
        user_agent: fields::text(record, &["user_agent"])?,
        path: url.as_deref().and_then(path_of),
        host,
        app: fields::text(record, &["app"])?,
        category: fields::text(record, &["category"])?,
        blocked: fields::is_block(fields::text(record, &["action"])?.as_deref()),
        low_trust: false,
        threat: false,
    })
}
