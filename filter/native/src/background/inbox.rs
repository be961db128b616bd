//! Where the background thread leaves the answers to one stream's gRPC calls, and how it wakes the
//! stream on its worker to take them. Once the stream is over the inbox is closed: an answer is
//! refused, and a budget lease it granted goes back to the control plane.

use std::sync::{Mutex, MutexGuard, PoisonError};

use intentgate_core::engine::{Answer, CallId};
use intentgate_envoy_dm::Waker;

pub struct Inbox {
    waker: Waker,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    answers: Vec<Delivered>,
    closed: bool,
}

struct Delivered {
    call: CallId,
    answer: Answer,
    /// The lease the answer granted, as a giveback request, should the stream not use it.
    giveback: Option<Vec<u8>>,
}

impl Inbox {
    pub fn new(waker: Waker) -> Self {
        Inbox {
            waker,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leaves an answer and wakes the stream (from the background thread). Returns `giveback` when
    /// the stream is gone and will never take it.
    pub fn deliver(
        &self,
        call: CallId,
        answer: Answer,
        giveback: Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let mut state = self.state();
        if state.closed {
            return giveback;
        }
        state.answers.push(Delivered {
            call,
            answer,
            giveback,
        });
        drop(state);
        if self.waker.wake(0) {
            return None;
        }
        // Envoy destroyed the stream without completing it: nobody will take the answer.
        let mut state = self.state();
        state.closed = true;
        state.answers.pop().and_then(|d| d.giveback)
    }

    /// The answers left so far (on the stream's worker).
    pub fn take(&self) -> Vec<(CallId, Answer)> {
        std::mem::take(&mut self.state().answers)
            .into_iter()
            .map(|d| (d.call, d.answer))
            .collect()
    }

    /// Refuses every answer from now on; returns the givebacks of the answers left untaken.
    pub fn close(&self) -> Vec<Vec<u8>> {
        let mut state = self.state();
        state.closed = true;
        std::mem::take(&mut state.answers)
            .into_iter()
            .filter_map(|d| d.giveback)
            .collect()
    }
}
