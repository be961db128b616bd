//! Fetched JWK Sets (a trusted issuer's or a client's `jwks_uri`): cached for [`FRESH`], fetched
//! within [`FETCH_TIMEOUT`] and at most [`MAX_JWKS_BYTES`], through the same reach rule as discovery's
//! pull sources (a URL a per-tenant admin set reaches public addresses only). A JWT naming a key id
//! the cached set lacks refetches the set, at most once per [`REFETCH_AFTER`], so a rotated key is
//! picked up without letting anyone make the control plane hammer an issuer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::jwk::KeySet;
use crate::discovery::reach;
use crate::error::Result;

pub const FRESH: Duration = Duration::from_secs(300);
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most sets kept; beyond it the oldest is dropped.
const MAX_CACHED: usize = 1024;

struct Cached {
    keys: Arc<KeySet>,
    fetched: Instant,
}

/// The cache, keyed by URL and reach (an entry fetched for the superadmin never serves a tenant
/// admin's registration of the same URL).
pub struct Jwks {
    clients: reach::Clients,
    cache: Mutex<HashMap<(String, bool), Cached>>,
    fresh: Duration,
    refetch_after: Duration,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").finish_non_exhaustive()
    }
}

impl Jwks {
    pub fn new() -> Result<Self> {
        Ok(Jwks {
            clients: reach::Clients::new(
                concat!("intentgate-oauth/", env!("CARGO_PKG_VERSION")),
                CONNECT_TIMEOUT,
                FETCH_TIMEOUT,
            )?,
            cache: Mutex::new(HashMap::new()),
            fresh: FRESH,
            refetch_after: REFETCH_AFTER,
        })
    }

    fn cached(&self, key: &(String, bool)) -> Option<(Arc<KeySet>, Duration)> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .map(|c| (Arc::clone(&c.keys), c.fetched.elapsed()))
    }

    /// The set at `url`; `kid` is the key id the JWT at hand names, if any. The error is short and
    /// safe to log; the client is told only that its grant or credentials are invalid.
    pub async fn get(
        &self,
        url: &str,
        private_reach: bool,
        kid: Option<&str>,
    ) -> std::result::Result<Arc<KeySet>, String> {
        let key = (url.to_owned(), private_reach);
        let cached = self.cached(&key).filter(|(_, age)| *age < self.fresh);
        if let Some((keys, age)) = &cached {
            let knows_kid = kid.is_none_or(|kid| keys.has_kid(kid));
            if knows_kid || *age < self.refetch_after {
                return Ok(Arc::clone(keys));
            }
        }
        let keys = match self.fetch(url, private_reach).await {
            Ok(keys) => Arc::new(keys),
            // A refetch for an unknown key id that fails keeps the fresh set it meant to update.
            Err(error) => return cached.map(|(keys, _)| keys).ok_or(error),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED && !cache.contains_key(&key) {
            let oldest = cache
                .iter()
                .min_by_key(|(_, c)| c.fetched)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                cache.remove(&oldest);
            }
        }
        cache.insert(
            key,
            Cached {
                keys: Arc::clone(&keys),
                fetched: Instant::now(),
            },
        );
        Ok(keys)
    }

    async fn fetch(&self, url: &str, private_reach: bool) -> std::result::Result<KeySet, String> {
        let client = self.clients.for_url(url, private_reach)?;
        let request = client.get(url).header("Accept", "application/json");
        let body = reach::fetch_bounded(request, MAX_JWKS_BYTES)
            .await
            .map_err(|e| format!("JWKS {url}: {e}"))?;
        KeySet::from_bytes(&body).map_err(|e| format!("JWKS {url}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Answers every connection with the current body of `body`, counting them.
    async fn serve(body: Arc<Mutex<String>>, hits: Arc<AtomicUsize>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                hits.fetch_add(1, Ordering::SeqCst);
                let text = body.lock().unwrap().clone();
                let mut request = [0u8; 2048];
                let _ = conn.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        format!("http://{addr}/jwks")
    }

    fn set(kids: &[&str]) -> String {
        let keys: Vec<String> = kids
            .iter()
            .map(|kid| {
                format!(
                    r#"{{"kty":"OKP","crv":"Ed25519","kid":"{kid}","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}"#
                )
            })
            .collect();
        format!(r#"{{"keys":[{}]}}"#, keys.join(","))
    }

    #[tokio::test]
    async fn sets_are_cached_refetched_for_unknown_key_ids_at_most_so_often_and_bounded() {
        let body = Arc::new(Mutex::new(set(&["a"])));
        let hits = Arc::new(AtomicUsize::new(0));
        let url = serve(body.clone(), hits.clone()).await;
        let mut jwks = Jwks::new().unwrap();
        jwks.refetch_after = Duration::from_millis(200);
        let keys = jwks.get(&url, true, Some("a")).await.unwrap();
        assert!(keys.has_kid("a"));
        jwks.get(&url, true, Some("a")).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1, "cached");
        *body.lock().unwrap() = set(&["a", "b"]);
        let stale = jwks.get(&url, true, Some("b")).await.unwrap();
        assert!(
            !stale.has_kid("b"),
            "no refetch within the refetch interval"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let rotated = jwks.get(&url, true, Some("b")).await.unwrap();
        assert!(rotated.has_kid("b"));
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // The public-only client refuses a loopback URL; the entry is per reach.
        assert!(
            jwks.get(&url, false, None)
                .await
                .unwrap_err()
                .contains("public")
        );
        // A set past its freshness is fetched again.
        jwks.fresh = Duration::from_millis(0);
        jwks.get(&url, true, Some("a")).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        // An oversized set is refused.
        *body.lock().unwrap() = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(MAX_JWKS_BYTES));
        assert!(
            jwks.get(&url, true, None)
                .await
                .unwrap_err()
                .contains("exceeds")
        );
    }
}
