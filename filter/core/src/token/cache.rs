//! Verified tokens, remembered per VM: an Ed25519 chain check costs ~100 µs inside V8, a lookup
//! well under one. Only signatures and structure are cached; expiry and revocation are checked on
//! every call by the caller, and a hit is used only while its key is still trusted.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::TokenError;
use super::keys::PublicKeys;
use super::verify::{VerifiedToken, verify};

/// What the capability check verifies tokens with: a cache, or a cache shared by threads that
/// verifies outside its lock.
pub trait TokenVerifier {
    /// Verifies `text`, or returns the earlier verification while its key is still in `keys`.
    fn verify(&mut self, text: &str, keys: &PublicKeys) -> Result<Arc<VerifiedToken>, TokenError>;
}

impl TokenVerifier for TokenCache {
    fn verify(&mut self, text: &str, keys: &PublicKeys) -> Result<Arc<VerifiedToken>, TokenError> {
        if let Some(hit) = self.get(text, keys) {
            return hit;
        }
        let verified = Arc::new(verify(text, keys)?);
        self.insert(text, Arc::clone(&verified));
        Ok(verified)
    }
}

pub struct TokenCache {
    capacity: usize,
    entries: HashMap<Box<str>, Arc<VerifiedToken>>,
    /// Insertion order, for first-in first-out eviction.
    order: VecDeque<Box<str>>,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            capacity: capacity.max(1),
            entries: HashMap::with_capacity(capacity.min(4096)),
            order: VecDeque::with_capacity(capacity.min(4096)),
        }
    }

    /// The earlier verification of `text`: `Some(Err)` when its key is no longer trusted.
    pub fn get(
        &self,
        text: &str,
        keys: &PublicKeys,
    ) -> Option<Result<Arc<VerifiedToken>, TokenError>> {
        let hit = self.entries.get(text)?;
        Some(if keys.contains(&hit.kid) {
            Ok(Arc::clone(hit))
        } else {
            Err(TokenError::UnknownKey(hit.kid.clone()))
        })
    }

    /// Remembers a verification, evicting the oldest entry when full.
    pub fn insert(&mut self, text: &str, verified: Arc<VerifiedToken>) {
        if self.entries.contains_key(text) {
            return;
        }
        if self.entries.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.entries.remove(&oldest);
        }
        let key: Box<str> = text.into();
        self.order.push_back(key.clone());
        self.entries.insert(key, verified);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
