//! Identifiers and secrets from the system's randomness. A failing source is an error, never a
//! weaker fallback.

use crate::error::{Error, Result};

/// A fresh ULID (time-sortable).
pub fn new_id() -> Result<String> {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(unavailable)?;
    let ms = u64::try_from(crate::time::now_ms()).unwrap_or_default();
    Ok(intentgate_core::ids::ulid(ms, random))
}

/// 32 fresh random bytes.
pub fn random32() -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    getrandom::fill(&mut out).map_err(unavailable)?;
    Ok(out)
}

fn unavailable(e: getrandom::Error) -> Error {
    Error::Internal(format!("system randomness unavailable: {e}"))
}
