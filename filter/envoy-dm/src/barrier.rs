//! The panic barrier every exported hook runs in: a panic never unwinds into Envoy's C++ frames
//! (that would be undefined behaviour), and a stream whose hook panicked fails closed.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`; a panic comes back as its message.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    // Unwind safety: after a panic the stream's state is never used again (it is marked failed),
    // and configuration state is only reached through `&self` of the module's own types.
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| payload_message(payload.as_ref()))
}

pub(crate) fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// How a stream whose hook failed is ended, so that nothing more of it is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailClosed {
    /// Nothing has gone downstream yet: answer with the configuration's error response.
    Respond,
    /// The response has begun (or our own answer is on its way): reset the stream.
    Reset,
}

impl FailClosed {
    pub(crate) fn choose(response_started: bool, local_reply_sent: bool) -> FailClosed {
        if response_started || local_reply_sent {
            FailClosed::Reset
        } else {
            FailClosed::Respond
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_passes_through() {
        assert_eq!(catch(|| 7), Ok(7));
    }

    #[test]
    fn a_panic_comes_back_with_its_message() {
        let literal = catch(|| -> u8 { panic!("boom") });
        assert_eq!(literal, Err("boom".to_owned()));
        let formatted = catch(|| -> u8 { panic!("code {}", 42) });
        assert_eq!(formatted, Err("code 42".to_owned()));
        let other = catch(|| -> u8 { std::panic::panic_any(3_u32) });
        assert_eq!(other, Err("panic with a non-string payload".to_owned()));
    }

    #[test]
    fn a_failed_stream_answers_before_its_response_and_is_reset_after() {
        assert_eq!(FailClosed::choose(false, false), FailClosed::Respond);
        assert_eq!(FailClosed::choose(true, false), FailClosed::Reset);
        assert_eq!(FailClosed::choose(false, true), FailClosed::Reset);
    }
}
