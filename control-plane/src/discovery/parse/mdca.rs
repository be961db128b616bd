//! Microsoft Defender for Cloud Apps. Two record shapes:
//! - discovered apps, as Microsoft Graph returns them (`discoveredCloudAppDetail`: `displayName`,
//!   `domains`, `category`, `riskScore` 0–10, `lastSeenDateTime`, `tags`): one record summarises
//!   an app's use across the organisation;
//! - activities, as the MDCA activities API returns them (`appName`, `timestamp` in ms,
//!   `user.userName`, `device.clientIP`, `device.userAgent`, `resolvedActor`) or as advanced
//!   hunting's `CloudAppEvents` rows (`Application`, `Timestamp`, `AccountDisplayName`,
//!   `IPAddress`, `UserAgent`).

use serde_json::Value;

use super::fields::{self, host_of};
use crate::discovery::record::Observation;

pub fn parse(record: &Value) -> Result<Observation, String> {
    if record.get("displayName").is_some() || record.get("domains").is_some() {
        discovered_app(record)
    } else if ["appName", "appId", "Application"]
        .iter()
        .any(|k| record.get(*k).is_some())
    {
        activity(record)
    } else {
        Err(
            "neither a discovered app (displayName, domains) nor an activity (appName, timestamp)"
                .into(),
        )
    }
}

fn discovered_app(record: &Value) -> Result<Observation, String> {
    let host = match record.get("domains") {
        None | Some(Value::Null) => None,
        Some(Value::Array(domains)) => domains.iter().filter_map(Value::as_str).find_map(host_of),
        Some(_) => return Err("field `domains` must be an array of strings".into()),
    };
    let tags = match record.get("tags") {
        Some(Value::Array(tags)) => tags
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect(),
        _ => Vec::new(),
    };
    // Risk scores run 0–10, higher is safer; Microsoft calls 0–4 high risk.
    let score = fields::integer(record, &["riskScore", "score"])?;
    Ok(Observation {
        time_ms: fields::time(record, &["lastSeenDateTime", "lastUsed", "lastSeen"])?,
        host,
        app: fields::text(record, &["displayName", "name"])?,
        category: fields::text(record, &["category"])?,
        blocked: tags.iter().any(|t| t == "unsanctioned"),
        low_trust: score.is_some_and(|s| s <= 4),
        ..Observation::default()
    })
}

fn activity(record: &Value) -> Result<Observation, String> {
    let success = record
        .pointer("/mainInfo/activityResult/isSuccess")
        .and_then(Value::as_bool);
    let taken = fields::text(record, &["takenAction", "activity.takenAction"])?;
    Ok(Observation {
        time_ms: fields::time(record, &["timestamp", "Timestamp"])?,
        user: fields::text(
            record,
            &[
                "user.userName",
                "resolvedActor.name",
                "failedUserData.userName",
                "AccountDisplayName",
                "AccountId",
            ],
        )?,
        device: fields::text(record, &["device.deviceName", "DeviceName"])?,
        client_ip: fields::text(record, &["device.clientIP", "ipAddress", "IPAddress"])?,
        user_agent: fields::text(record, &["device.userAgent", "UserAgent"])?,
        host: fields::text(record, &["domain", "rawDataJson.Host"])?.and_then(|h| host_of(&h)),
        app: fields::text(record, &["appName", "Application"])?,
        category: None,
        blocked: fields::is_block(taken.as_deref()) || success == Some(false),
        ..Observation::default()
    })
}
