//! Netskope events as the REST API v2 (`/api/v2/events/data/...`, dataexport iterators) and the
//! v1 events API return them: flat records with `timestamp`, `user`/`ur_normalized`, `srcip`,
//! `hostname` (the device), `url`, `domain`, `app`, `appcategory`, `ccl`, `action`, `useragent`.

use serde_json::Value;

use super::fields::{self, host_of, path_of};
use crate::discovery::record::Observation;

pub fn parse(record: &Value) -> Result<Observation, String> {
    let url = fields::text(record, &["url", "page"])?;
    let host = fields::text(record, &["domain", "dsthost"])?
        .and_then(|d| host_of(&d))
        .or_else(|| url.as_deref().and_then(host_of));
    // Netskope's Cloud Confidence Level: excellent, high, medium, low, poor.
    let ccl = fields::text(record, &["ccl"])?.map(|c| c.to_ascii_lowercase());
    let threat = fields::text(record, &["malware_name", "malware_type"])?.is_some()
        || fields::text(record, &["alert_type"])?
            .is_some_and(|t| t.eq_ignore_ascii_case("malware"));
    Ok(Observation {
        time_ms: fields::time(record, &["timestamp", "_insertion_epoch_timestamp"])?,
        agent: None,
        user: fields::text(record, &["ur_normalized", "user", "userkey"])?,
        device: fields::text(record, &["hostname"])?,
        client_ip: fields::text(record, &["srcip", "userip"])?,
        user_agent: fields::text(record, &["useragent", "user_agent"])?,
        path: url.as_deref().and_then(path_of),
        host,
        app: fields::text(record, &["app", "appname"])?,
        category: fields::text(record, &["appcategory", "category"])?,
        blocked: fields::is_block(fields::text(record, &["action"])?.as_deref()),
        low_trust: matches!(ccl.as_deref(), Some("low" | "poor")),
        threat,
    })
}
