//! Infoblox DNS query logs:
//! - Threat Defense (BloxOne) DNS events as the `dns_event` API returns them: `qname` (with its
//!   trailing dot), `qtype`, `qip` (the client), `device`, `user`, `event_time`, `policy_action`,
//!   and the threat fields `tclass`, `tproperty`, `threat_indicator`;
//! - NIOS / BIND query log lines (`[16-Oct-2023 22:55:48.123 ]client [@0x...] 10.0.0.7#53211
//!   [(name)]: query: api.openai.com IN A +E(0) (10.0.0.2)`), sent as JSON strings.

use serde_json::Value;

use super::fields::{self, host_of};
use crate::discovery::record::Observation;

pub fn parse(record: &Value) -> Result<Observation, String> {
    let qname = fields::text(record, &["qname", "query", "domain"])?
        .ok_or("field `qname` is required (the queried name)")?;
    let host =
        host_of(&qname).ok_or_else(|| format!("field `qname` is not a DNS name: {qname:?}"))?;
    let action = fields::text(record, &["policy_action", "action"])?;
    let threat = fields::text(record, &["tclass", "threat_indicator", "tproperty"])?;
    Ok(Observation {
        time_ms: fields::time(record, &["event_time", "timestamp"])?,
        user: fields::text(record, &["user"])?,
        device: fields::text(record, &["device", "device_name"])?,
        client_ip: fields::text(record, &["qip", "private_ip", "client_ip"])?,
        host: Some(host),
        category: fields::text(record, &["app_category", "category"])?,
        blocked: fields::is_block(action.as_deref()),
        threat: threat.is_some(),
        ..Observation::default()
    })
}

pub fn parse_line(line: &str) -> Result<Observation, String> {
    let (head, rest) = line
        .split_once("client ")
        .ok_or("not a DNS query log line (no `client`)")?;
    let mut words = rest.split_whitespace();
    let mut client = words.next().ok_or("no client address")?;
    if client.starts_with("@0x") {
        client = words.next().ok_or("no client address")?;
    }
    let client_ip = client
        .trim_end_matches(':')
        .rsplit_once('#')
        .map(|(ip, _)| ip.to_owned())
        .ok_or_else(|| format!("client {client:?} is not address#port"))?;
    let query = rest
        .split_once("query: ")
        .map(|(_, q)| q)
        .ok_or("not a DNS query log line (no `query:`)")?;
    let name = query.split_whitespace().next().ok_or("no queried name")?;
    let host = host_of(name).ok_or_else(|| format!("{name:?} is not a DNS name"))?;
    // BIND's own timestamp, when the line has one; a syslog prefix has no year, so none is read.
    let words: Vec<&str> = head.split_whitespace().collect();
    let time_ms = words
        .windows(2)
        .find_map(|pair| fields::parse_time(&pair.join(" ")));
    Ok(Observation {
        time_ms,
        client_ip: Some(client_ip),
        host: Some(host),
        ..Observation::default()
    })
}
