//! Microsoft Sentinel through the Azure Monitor Logs Ingestion API: `POST
//! <DCE>/dataCollectionRules/<DCR immutable id>/streams/<stream>?api-version=2023-01-01` with a
//! JSON array of records (each event's fields plus `TimeGenerated`) and `Authorization: Bearer`
//! a token from Microsoft Entra ID's client-credentials grant (`POST <authority>/<tenant>/oauth2/
//! v2.0/token`, scope `https://monitor.azure.com//.default`), cached until a minute before it
//! expires and dropped on a 401. The API answers 204; 400 and 413 refuse the content; at most
//! 1 MB per call.

use std::time::{Duration, Instant};

use reqwest::Client;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::config;
use super::config::Selection;
use super::event::Event;
use super::sink::{Limits, SendError, Shared, Sink, describe, post, transport};

const MAX_BYTES: usize = 900_000;
const SCOPE: &str = "https://monitor.azure.com//.default";
/// A token is renewed this long before Entra ID says it expires.
const EARLY: Duration = Duration::from_secs(60);

pub struct Sentinel {
    config: config::Sentinel,
    client: Client,
    batch: usize,
    token: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl Sentinel {
    async fn token(&self) -> Result<String, SendError> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let response = self
            .client
            .post(self.config.token_url.clone())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.config.client_id.as_str()),
                ("client_secret", self.config.client_secret.0.as_str()),
                ("scope", SCOPE),
            ])
            .send()
            .await
            .map_err(|e| SendError::retry(format!("Entra ID token: {}", transport(&e))))?;
        let status = response.status();
        if !status.is_success() {
            let body: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(SendError::retry(format!(
                "Entra ID token request answered {status}: {body}"
            )));
        }
        let token: TokenResponse = response
            .json()
            .await
            .map_err(|e| SendError::retry(format!("Entra ID token response is not valid: {e}")))?;
        let lifetime = Duration::from_secs(token.expires_in).saturating_sub(EARLY);
        *cached = Some((token.access_token.clone(), Instant::now() + lifetime));
        Ok(token.access_token)
    }

    fn records(events: &[Event]) -> Vec<Value> {
        events
            .iter()
            .map(|event| {
                let mut record = event.value().clone();
                if let Some(map) = record.as_object_mut() {
                    map.insert("TimeGenerated".into(), Value::from(event.field("ts")));
                }
                record
            })
            .collect()
    }
}

impl Sink for Sentinel {
    type Config = config::Sentinel;

    fn build(config: &config::Sentinel, shared: &Shared) -> Result<Self, String> {
        Ok(Sentinel {
            config: config.clone(),
            client: shared.client.clone(),
            batch: shared.settings.batch_size,
            token: Mutex::new(None),
        })
    }

    fn selection(config: &config::Sentinel) -> Selection {
        config.select
    }

    fn name(&self) -> &'static str {
        "sentinel"
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
        let token = self.token().await?;
        let request = self
            .client
            .post(self.config.url.clone())
            .bearer_auth(token)
            .json(&Self::records(events));
        let result = post("Sentinel Logs Ingestion", request, |_| true).await;
        if let Err(SendError::Retry { status, .. }) = &result
            && *status == Some(StatusCode::UNAUTHORIZED.as_u16())
        {
            // The token was revoked or the clock drifted: fetch a new one next time.
            *self.token.lock().await = None;
        }
        result
    }
}
