//! The limit on failed client authentications at the token endpoint: per client id and per source
//! address, counted in fixed windows of [`WINDOW`]. Once a key has failed its allowance in a window,
//! every attempt on that key is refused until the window ends, right credentials included (else
//! the limit would not slow a guesser down), and told when to retry. Counted per replica, in memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(60);
/// Failed authentications one client id may have in a window.
pub const PER_CLIENT: u32 = 10;
/// Failed authentications one source address may have in a window.
pub const PER_SOURCE: u32 = 30;
/// Keys tracked at most; expired windows are dropped first, then new keys go uncounted.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Client(String),
    Source(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Debug, Default)]
pub struct FailureLimit {
    windows: Mutex<HashMap<Key, Window>>,
}

fn keys(client: Option<&str>, source: Option<IpAddr>) -> Vec<(Key, u32)> {
    let mut keys = Vec::with_capacity(2);
    if let Some(client) = client {
        keys.push((Key::Client(client.to_owned()), PER_CLIENT));
    }
    if let Some(source) = source {
        keys.push((Key::Source(source), PER_SOURCE));
    }
    keys
}

impl FailureLimit {
    /// `Err(seconds)` to wait when the client id or the source spent its allowance.
    pub fn check(&self, client: Option<&str>, source: Option<IpAddr>) -> Result<(), u64> {
        self.check_at(Instant::now(), client, source)
    }

    pub fn record_failure(&self, client: Option<&str>, source: Option<IpAddr>) {
        self.record_at(Instant::now(), client, source);
    }

    fn check_at(
        &self,
        now: Instant,
        client: Option<&str>,
        source: Option<IpAddr>,
    ) -> Result<(), u64> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let wait = keys(client, source)
            .into_iter()
            .filter_map(|(key, limit)| {
                let window = windows.get(&key)?;
                let age = now.saturating_duration_since(window.started);
                (age < WINDOW && window.failures >= limit).then(|| (WINDOW - age).as_secs().max(1))
            })
            .max();
        wait.map_or(Ok(()), Err)
    }

    fn record_at(&self, now: Instant, client: Option<&str>, source: Option<IpAddr>) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        for (key, _) in keys(client, source) {
            if !windows.contains_key(&key) && windows.len() >= MAX_KEYS {
                windows.retain(|_, w| now.saturating_duration_since(w.started) < WINDOW);
                if windows.len() >= MAX_KEYS {
                    continue;
                }
            }
            let window = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.saturating_duration_since(window.started) >= WINDOW {
                *window = Window {
                    started: now,
                    failures: 0,
                };
            }
            window.failures = window.failures.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_is_refused_after_its_allowance_until_the_window_ends() {
        let limit = FailureLimit::default();
        let t0 = Instant::now();
        let source: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        for _ in 0..PER_CLIENT {
            assert!(limit.check_at(t0, Some("c1"), source).is_ok());
            limit.record_at(t0, Some("c1"), source);
        }
        assert_eq!(limit.check_at(t0, Some("c1"), source), Err(60));
        let later = t0 + Duration::from_secs(45);
        assert_eq!(limit.check_at(later, Some("c1"), None), Err(15));
        assert!(
            limit.check_at(later, Some("c2"), source).is_ok(),
            "another client"
        );
        assert!(
            limit.check_at(t0 + WINDOW, Some("c1"), source).is_ok(),
            "a new window"
        );
    }

    #[test]
    fn a_source_is_refused_after_its_allowance_whatever_the_client() {
        let limit = FailureLimit::default();
        let t0 = Instant::now();
        let source: Option<IpAddr> = Some("2001:db8::1".parse().unwrap());
        for i in 0..PER_SOURCE {
            limit.record_at(t0, Some(&format!("client-{i}")), source);
        }
        assert!(limit.check_at(t0, Some("fresh"), source).is_err());
        assert!(
            limit
                .check_at(t0, Some("fresh"), Some("2001:db8::2".parse().unwrap()))
                .is_ok()
        );
        assert!(limit.check_at(t0, Some("fresh"), None).is_ok());
    }
}
