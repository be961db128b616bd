//! Splunk HTTP Event Collector: `POST /services/collector/event` with `Authorization: Splunk
//! <token>`, a body of concatenated JSON envelopes `{time, source, sourcetype, index?, event}`, one
//! per audit event, `event` being the stored canonical JSON. HEC answers 200
//! `{"text":"Success","code":0}`; a 400 whose `code` is 6 (invalid data format), 12 (event field
//! is required) or 13 (event field cannot be blank) refuses the content, while other 400 codes
//! (no data, incorrect index, channel and ack settings) are configuration and retried.

use reqwest::Client;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;
use serde_json::value::RawValue;

use super::config;
use super::config::Selection;
use super::event::Event;
use super::sink::{Limits, SendError, Shared, Sink, describe, post};

/// HEC's default `max_content_length` is 1 MB in older releases; stay under it with envelopes.
const MAX_BYTES: usize = 800_000;
const CONTENT_CODES: [i64; 3] = [6, 12, 13];

pub struct Splunk {
    config: config::Splunk,
    client: Client,
    batch: usize,
}

#[derive(Serialize)]
struct Envelope<'a> {
    time: f64,
    source: &'a str,
    sourcetype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<&'a str>,
    event: &'a RawValue,
}

impl Splunk {
    fn body(&self, events: &[Event]) -> Result<String, SendError> {
        let mut body = String::with_capacity(events.iter().map(|e| e.body.len() + 120).sum());
        for event in events {
            let raw: &RawValue = serde_json::from_str(&event.body).map_err(|e| {
                SendError::Rejected(format!("event {} is not JSON: {e}", event.id()))
            })?;
            let envelope = Envelope {
                time: event.ts_millis().unwrap_or_default() as f64 / 1000.0,
                source: &self.config.source,
                sourcetype: &self.config.sourcetype,
                index: self.config.index.as_deref(),
                event: raw,
            };
            let line = serde_json::to_string(&envelope)
                .map_err(|e| SendError::Rejected(format!("cannot encode the HEC envelope: {e}")))?;
            body.push_str(&line);
            body.push('\n');
        }
        Ok(body)
    }
}

impl Sink for Splunk {
    type Config = config::Splunk;

    fn build(config: &config::Splunk, shared: &Shared) -> Result<Self, String> {
        Ok(Splunk {
            config: config.clone(),
            client: shared.client.clone(),
            batch: shared.settings.batch_size,
        })
    }

    fn selection(config: &config::Splunk) -> Selection {
        config.select
    }

    fn name(&self) -> &'static str {
        "splunk"
    }

    fn endpoint(&self) -> String {
        describe(&self.config.url, true)
    }

    fn limits(&self) -> Limits {
        Limits {
            max_events: self.batch,
            max_bytes: MAX_BYTES,
        }
    }

    async fn send(&self, events: &[Event]) -> Result<(), SendError> {
        let body = self.body(events)?;
        let request = self
            .client
            .post(self.config.url.clone())
            .header(AUTHORIZATION, format!("Splunk {}", self.config.token.0))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        post("Splunk HEC", request, |body| {
            serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("code").and_then(serde_json::Value::as_i64))
                .is_some_and(|code| CONTENT_CODES.contains(&code))
        })
        .await
    }
}
