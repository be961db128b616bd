//! Zscaler Internet Access web logs from an NSS or Cloud NSS feed in JSON. Zscaler lets each
//! customer write the feed format, so the common published formats are all read: the SIEM
//! integration format (`datetime`, `hostname`, `url`, `user`, `ClientIP`, `useragent`,
//! `appname`, `urlcategory`, `action`, ...) and the raw-field format (`time`, `host`, `login`,
//! `cltip`, `b64url`, `appriskscore`, ...), with or without the `{"sourcetype", "event"}` envelope.

use serde_json::Value;

use super::fields::{self, decode_base64_text, host_of, path_of};
use crate::discovery::record::Observation;

pub fn parse(record: &Value) -> Result<Observation, String> {
    let event = match record.get("event") {
        Some(inner @ Value::Object(_)) => inner,
        Some(_) => return Err("field `event` must be an object".into()),
        None => record,
    };
    let url = match fields::text(event, &["url", "eurl"])? {
        Some(url) => Some(url),
        None => fields::text(event, &["b64url"])?
            .map(|b64| decode_base64_text(&b64).ok_or("field `b64url` is not base64 text"))
            .transpose()?,
    };
    let host = fields::text(event, &["hostname", "host", "ehost"])?
        .and_then(|h| host_of(&h))
        .or_else(|| url.as_deref().and_then(host_of));
    let risk = fields::integer(event, &["appriskscore"]).unwrap_or(None);
    let threat = fields::text(event, &["threatname", "threatcategory", "malwarecat"])?;
    Ok(Observation {
        time_ms: fields::time(event, &["datetime", "time", "epochtime"])?,
        agent: None,
        user: fields::text(event, &["user", "login", "elogin"])?,
        device: fields::text(event, &["devicehostname"])?,
        client_ip: fields::text(event, &["ClientIP", "cip", "cltip", "cltintip"])?,
        user_agent: fields::text(event, &["useragent", "ua", "eua"])?,
        path: url.as_deref().and_then(path_of),
        host,
        app: fields::text(event, &["appname"])?,
        category: fields::text(
            event,
            &[
                "urlcategory",
                "urlcat",
                "appclass",
                "urlsupercategory",
                "urlsupercat",
            ],
        )?,
        blocked: fields::is_block(fields::text(event, &["action"])?.as_deref()),
        // Zscaler's cloud application risk index runs from 1 (low risk) to 5 (high risk).
        low_trust: risk.is_some_and(|r| r >= 4),
        threat: threat.is_some_and(|t| !t.eq_ignore_ascii_case("clean")),
    })
}
