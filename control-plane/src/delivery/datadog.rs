//! Datadog logs: `POST /api/v2/logs` on the site's intake (`http-intake.logs.<site>`) with the
//! `DD-API-KEY` header and a JSON array of log entries `{ddsource, ddtags, service, hostname?,
//! message}`, `message` being the stored canonical JSON (Datadog parses JSON messages into
//! attributes). The intake answers 202; 400 and 413 refuse the content; at most 1000 entries and
//! 5 MB per request.

use reqwest::Client;
use reqwest::header::CONTENT_TYPE;
use serde::Serialize;

use super::config;
use super::config::Selection;
use super::event::Event;
use super::sink::{Limits, SendError, Shared, Sink, describe, post};

const MAX_ENTRIES: usize = 1000;
const MAX_BYTES: usize = 4_000_000;

pub struct Datadog {
    config: config::Datadog,
    client: Client,
    batch: usize,
}

#[derive(Serialize)]
struct Entry<'a> {
    ddsource: &'static str,
    ddtags: String,
    service: &'a str,
    message: &'a str,
}

impl Datadog {
    fn entry<'a>(&'a self, event: &'a Event) -> Entry<'a> {
        let mut tags = format!(
            "tenant:{},decision:{}",
            event.field("tenant"),
            event.field("decision")
        );
        if let Some(extra) = &self.config.tags {
            tags.push(',');
            tags.push_str(extra);
        }
        Entry {
            ddsource: "intentgate",
            ddtags: tags,
            service: &self.config.service,
            message: &event.body,
        }
    }
}

impl Sink for Datadog {
    type Config = config::Datadog;

    fn build(config: &config::Datadog, shared: &Shared) -> Result<Self, String> {
        Ok(Datadog {
            config: config.clone(),
            client: shared.client.clone(),
            batch: shared.settings.batch_size,
        })
    }

    fn selection(config: &config::Datadog) -> Selection {
        config.select
    }

    fn name(&self) -> &'static str {
        "datadog"
    }

    fn endpoint(&self) -> String {
        describe(&self.config.url, true)
    }

    fn limits(&self) -> Limits {
        Limits {
            max_events: self.batch.min(MAX_ENTRIES),
            max_bytes: MAX_BYTES,
        }
    }

    async fn send(&self, events: &[Event]) -> Result<(), SendError> {
        let entries: Vec<Entry<'_>> = events.iter().map(|e| self.entry(e)).collect();
        let request = self
            .client
            .post(self.config.url.clone())
            .header("DD-API-KEY", &self.config.api_key.0)
            .header(CONTENT_TYPE, "application/json")
            .json(&entries);
        post("Datadog", request, |_| true).await
    }
}
