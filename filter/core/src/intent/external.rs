//! The external extractor contract: `POST /v1/extract {prompt, agent_id}` answers
//! `{"intent": {summary, allowed_tools, forbidden_tools, confidence}}`. Anything else — a non-200
//! status, a body that is not that shape, a timeout — makes the intent unavailable (fail closed).
//! Answers are cached per VM by a hash of agent and prompt.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Intent, IntentSource};

/// Largest answer read from an extractor.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Serialize)]
struct ExtractRequest<'a> {
    prompt: &'a str,
    agent_id: &'a str,
}

#[derive(Deserialize)]
struct ExtractAnswer {
    intent: Intent,
}

pub fn request_body(prompt: &str, agent_id: &str) -> Vec<u8> {
    serde_json::to_vec(&ExtractRequest { prompt, agent_id }).unwrap_or_default()
}

/// Reads an extractor's answer; `status` is the HTTP status, `None` when the call failed outright.
pub fn parse_answer(status: Option<u16>, body: &[u8]) -> IntentSource {
    match status {
        None => {
            IntentSource::Unavailable("extractor did not answer (unreachable or timed out)".into())
        }
        Some(200) if body.len() <= MAX_ANSWER_BYTES => {
            match serde_json::from_slice::<ExtractAnswer>(body) {
                Ok(answer) if answer.intent.confidence.is_finite() => {
                    IntentSource::Extracted(answer.intent)
                }
                Ok(_) => {
                    IntentSource::Unavailable("extractor answered a non-finite confidence".into())
                }
                Err(err) => {
                    IntentSource::Unavailable(format!("extractor answer is malformed: {err}"))
                }
            }
        }
        Some(200) => IntentSource::Unavailable("extractor answer is too large".into()),
        // Envoy answers a callout that ran past its timeout with a 504 of its own.
        Some(504) => IntentSource::Unavailable("extractor timed out (HTTP 504)".into()),
        Some(status) => IntentSource::Unavailable(format!("extractor answered HTTP {status}")),
    }
}

/// The cache key: SHA-256 of agent and prompt.
pub fn cache_key(agent_id: &str, prompt: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(agent_id.as_bytes());
    h.update([0u8]);
    h.update(prompt.as_bytes());
    h.finalize().into()
}

/// Extracted intents by key, bounded, each valid for a time-to-live.
pub struct IntentCache {
    capacity: usize,
    ttl_ms: i64,
    entries: HashMap<[u8; 32], (Intent, i64)>,
    order: VecDeque<[u8; 32]>,
}

impl IntentCache {
    pub fn new(capacity: usize, ttl_ms: i64) -> Self {
        IntentCache {
            capacity: capacity.max(1),
            ttl_ms,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn get(&self, key: &[u8; 32], now_ms: i64) -> Option<&Intent> {
        self.entries
            .get(key)
            .filter(|(_, expires)| *expires > now_ms)
            .map(|(intent, _)| intent)
    }

    /// Only successful extractions are cached: a failure is retried on the next call.
    pub fn insert(&mut self, key: [u8; 32], intent: Intent, now_ms: i64) {
        if !self.entries.contains_key(&key) {
            if self.entries.len() >= self.capacity
                && let Some(oldest) = self.order.pop_front()
            {
                self.entries.remove(&oldest);
            }
            self.order.push_back(key);
        }
        // Saturating: a TTL configured near i64::MAX means "never expires", not wrap into the past.
        self.entries
            .insert(key, (intent, now_ms.saturating_add(self.ttl_ms)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_answer_is_extracted() {
        let body = br#"{"intent":{"summary":"pay","allowed_tools":["pay_*"],"forbidden_tools":[],"confidence":0.9}}"#;
        match parse_answer(Some(200), body) {
            IntentSource::Extracted(i) => {
                assert_eq!(i.allowed_tools, vec!["pay_*"]);
                assert_eq!(i.confidence, 0.9);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_failure_makes_intent_unavailable() {
        for (status, body) in [
            (None, &b""[..]),
            (Some(500), b"{}"),
            (Some(504), b""),
            (Some(200), b"{}"),
            (Some(200), b"not json"),
            (Some(200), br#"{"intent":{"summary":1}}"#),
        ] {
            assert!(
                matches!(parse_answer(status, body), IntentSource::Unavailable(_)),
                "{status:?}"
            );
        }
    }

    #[test]
    fn request_body_is_the_contract() {
        assert_eq!(
            request_body("hi \"x\"", "a-1"),
            br#"{"prompt":"hi \"x\"","agent_id":"a-1"}"#
        );
    }

    #[test]
    fn cache_expires_and_is_bounded() {
        let intent = Intent {
            summary: "s".into(),
            allowed_tools: vec![],
            forbidden_tools: vec![],
            confidence: 1.0,
        };
        let mut cache = IntentCache::new(2, 1000);
        let (a, b, c) = (
            cache_key("x", "1"),
            cache_key("x", "2"),
            cache_key("y", "1"),
        );
        assert_ne!(a, c, "the agent is part of the key");
        cache.insert(a, intent.clone(), 0);
        assert!(cache.get(&a, 999).is_some());
        assert!(cache.get(&a, 1000).is_none());
        cache.insert(b, intent.clone(), 0);
        cache.insert(c, intent, 0);
        assert!(cache.get(&a, 1).is_none(), "oldest evicted");
        assert!(cache.get(&c, 1).is_some());
    }

    #[test]
    fn a_ttl_at_the_limit_of_i64_keeps_entries_instead_of_overflowing() {
        let intent = Intent {
            summary: "s".into(),
            allowed_tools: vec![],
            forbidden_tools: vec![],
            confidence: 1.0,
        };
        let mut cache = IntentCache::new(2, i64::MAX);
        let key = cache_key("x", "1");
        cache.insert(key, intent, 1_781_444_520_000);
        assert!(cache.get(&key, 1_781_444_520_001).is_some());
    }
}
