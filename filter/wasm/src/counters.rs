//! Counters in Envoy shared data, exact across every worker VM of one Envoy: each change is a
//! compare-and-swap. Envoy's shared data cannot create a key atomically (a set on a missing key always
//! succeeds), so counters are created under a lock key that the first VM configured creates before any
//! worker serves traffic.

use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

type Stored = (Option<Vec<u8>>, Option<u32>);

fn shared_get(key: &str) -> Result<Stored, Status> {
    hostcalls::get_shared_data(key)
}

fn shared_set(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
    hostcalls::set_shared_data(key, Some(value), cas)
}

const LOCK: &str = "intentgate/.lock";
const MAX_CAS_ATTEMPTS: usize = 64;
const MAX_LOCK_SPINS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shared counter: {0}")]
pub struct CounterError(&'static str);

/// Creates the lock key if no VM has yet. Called from `on_configure`.
pub fn init() {
    if let Ok((None, _)) = shared_get(LOCK) {
        let _ = shared_set(LOCK, b"0", None);
    }
}

fn encode(window: u64, count: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    let (w, c) = out.split_at_mut(8);
    w.copy_from_slice(&window.to_le_bytes());
    c.copy_from_slice(&count.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<(u64, u64)> {
    let window: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let count: [u8; 8] = bytes.get(8..16)?.try_into().ok()?;
    Some((u64::from_le_bytes(window), u64::from_le_bytes(count)))
}

/// Creates `key` with a zero count unless another VM did first.
fn create(key: &str, window: u64) -> Result<(), CounterError> {
    let mut acquired = false;
    for _ in 0..MAX_LOCK_SPINS {
        match shared_get(LOCK) {
            Ok((Some(v), Some(cas))) if v.as_slice() != b"1" && cas != 0 => {
                if shared_set(LOCK, b"1", Some(cas)).is_ok() {
                    acquired = true;
                    break;
                }
            }
            Ok((Some(_), _)) => {}
            _ => return Err(CounterError("lock key missing")),
        }
    }
    if !acquired {
        return Err(CounterError("lock contention"));
    }
    let result = match shared_get(key) {
        Ok((None, _)) => shared_set(key, &encode(window, 0), None)
            .map_err(|_| CounterError("cannot create counter")),
        Ok(_) => Ok(()),
        Err(_) => Err(CounterError("cannot read counter")),
    };
    let _ = shared_set(LOCK, b"0", None);
    result
}

/// Applies `step` to the counter `key` of `window` by compare-and-swap. `step` gets the count, `None`
/// when stored for another window, and returns the new count, or `None` to leave it.
pub fn update(
    key: &str,
    window: u64,
    step: &mut dyn FnMut(Option<u64>) -> Option<u64>,
) -> Result<(), CounterError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (value, cas) = match shared_get(key) {
            Ok((Some(value), Some(cas))) if cas != 0 => (value, cas),
            Ok((None, _)) => {
                create(key, window)?;
                continue;
            }
            _ => return Err(CounterError("cannot read counter")),
        };
        let (stored_window, stored) = decode(&value).ok_or(CounterError("corrupt counter"))?;
        let Some(next) = step((stored_window == window).then_some(stored)) else {
            return Ok(());
        };
        match shared_set(key, &encode(window, next), Some(cas)) {
            Ok(()) => return Ok(()),
            Err(Status::CasMismatch) => continue,
            Err(_) => return Err(CounterError("cannot write counter")),
        }
    }
    Err(CounterError("too much contention on a counter"))
}
