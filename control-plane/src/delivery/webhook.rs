//! A generic webhook: `POST <url>` with a JSON body, signed with HMAC-SHA256 so the receiver can
//! tell it came from this gateway and was not replayed. [`WebhookSender`] is the reusable part
//! (approval notifications use it too); [`Webhook`] delivers audit batches with it.
//!
//! Headers: `X-IntentGate-Event` (what the body is, `audit.events` here), `X-IntentGate-Delivery`
//! (an id that stays the same when the same content is retried, for de-duplication),
//! `X-IntentGate-Timestamp` (unix seconds) and `X-IntentGate-Signature: sha256=<hex>`, the
//! HMAC-SHA256 under the shared secret of `<timestamp>.<body>`. A receiver recomputes it, compares
//! in constant time, and refuses timestamps older than a few minutes.

use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Url};
use sha2::{Digest, Sha256};

use super::config;
use super::config::Selection;
use super::event::Event;
use super::sink::{Limits, SendError, Shared, Sink, describe, post};
use crate::auth::Secret;

const MAX_BYTES: usize = 4_000_000;

/// Posts signed JSON bodies to one URL.
pub struct WebhookSender {
    url: Url,
    secret: Secret,
    client: Client,
}

impl WebhookSender {
    pub fn new(url: Url, secret: Secret, client: Client) -> Self {
        WebhookSender {
            url,
            secret,
            client,
        }
    }

    /// Where it posts, without path or query (a webhook path is often itself a credential).
    pub fn endpoint(&self) -> String {
        describe(&self.url, false)
    }

    /// Posts `body` (JSON) as event `kind` with delivery id `delivery`; 2xx is delivered, 400,
    /// 413 and 422 refuse the content, anything else is worth retrying.
    pub async fn post(&self, kind: &str, delivery: &str, body: Vec<u8>) -> Result<(), SendError> {
        let timestamp = crate::time::now_ms().div_euclid(1000);
        let request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("X-IntentGate-Event", kind)
            .header("X-IntentGate-Delivery", delivery)
            .header("X-IntentGate-Timestamp", timestamp.to_string())
            .header(
                "X-IntentGate-Signature",
                signature(self.secret.0.as_bytes(), timestamp, &body),
            )
            .body(body);
        post("webhook", request, |_| true).await
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Audit batches as `{"events": [<canonical event>, ...]}`.
pub struct Webhook {
    sender: WebhookSender,
    batch: usize,
}

impl Sink for Webhook {
    type Config = config::Webhook;

    fn build(config: &config::Webhook, shared: &Shared) -> Result<Self, String> {
        Ok(Webhook {
            sender: WebhookSender::new(
                config.url.clone(),
                config.secret.clone(),
                shared.client.clone(),
            ),
            batch: shared.settings.batch_size,
        })
    }

    fn selection(config: &config::Webhook) -> Selection {
        config.select
    }

    fn name(&self) -> &'static str {
        "webhook"
    }

    fn endpoint(&self) -> String {
        self.sender.endpoint()
    }

    fn limits(&self) -> Limits {
        Limits {
            max_events: self.batch,
            max_bytes: MAX_BYTES,
        }
    }

    async fn send(&self, events: &[Event]) -> Result<(), SendError> {
        let mut body =
            Vec::with_capacity(events.iter().map(|e| e.body.len() + 1).sum::<usize>() + 16);
        body.extend_from_slice(b"{\"events\":[");
        let mut id = Sha256::new();
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(event.body.as_bytes());
            id.update(event.tenant.as_bytes());
            id.update([0]);
            id.update(event.seq.to_be_bytes());
        }
        body.extend_from_slice(b"]}");
        let delivery = hex::encode(id.finalize().get(..16).unwrap_or_default());
        self.sender.post("audit.events", &delivery, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Independently: printf '1781444520.{"events":[]}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            signature(b"s3cret", 1_781_444_520, br#"{"events":[]}"#),
            "sha256=20728c3a5c792c81cb562dd4aaab2e352515319328af565db6086fbd7050dea0"
        );
    }
}
