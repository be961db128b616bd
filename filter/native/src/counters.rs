//! Budget counters shared by every worker of this Envoy process: one map behind one lock, so each
//! change is exact. The engine reserves calls in blocks, so a counter is touched once per block,
//! not once per call. Kept for the life of the process, whatever configuration uses them, as the
//! wasm filter's shared data is.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use intentgate_core::engine::CounterError;

/// `key` → (window, count).
static COUNTERS: LazyLock<Mutex<HashMap<String, (u64, u64)>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Applies `step` to the counter `key` of `window` atomically: `step` gets the count, `None` when
/// there is none for this window, and returns the new count, or `None` to leave it.
pub fn update(
    key: &str,
    window: u64,
    step: &mut dyn FnMut(Option<u64>) -> Option<u64>,
) -> Result<(), CounterError> {
    let mut counters = COUNTERS.lock().unwrap_or_else(PoisonError::into_inner);
    let count = counters
        .get(key)
        .filter(|(stored, _)| *stored == window)
        .map(|(_, count)| *count);
    if let Some(next) = step(count) {
        counters.insert(key.to_owned(), (window, next));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(key: &str, window: u64, n: u64) -> Option<u64> {
        let mut seen = None;
        update(key, window, &mut |count| {
            seen = count;
            Some(count.unwrap_or(0) + n)
        })
        .unwrap();
        seen
    }

    #[test]
    fn a_counter_counts_within_its_window_and_starts_over_in_the_next() {
        assert_eq!(add("test/window", 1, 5), None);
        assert_eq!(add("test/window", 1, 2), Some(5));
        assert_eq!(add("test/window", 2, 1), None, "another window");
        assert_eq!(add("test/window", 2, 1), Some(1));
    }

    #[test]
    fn concurrent_updates_are_all_counted() {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..1000 {
                        add("test/concurrent", 0, 1);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(add("test/concurrent", 0, 0), Some(8000));
    }

    #[test]
    fn a_step_may_leave_the_counter_as_it_is() {
        add("test/limit", 0, 3);
        update("test/limit", 0, &mut |_| None).unwrap();
        assert_eq!(add("test/limit", 0, 0), Some(3));
    }
}
