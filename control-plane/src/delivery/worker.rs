//! One destination's delivery loop, a task of its own: hold the lease, read the next batch after
//! the cursors, send it, record the progress; on failure keep the batch, record `last_error` and
//! back off exponentially (with jitter, at least what `Retry-After` asked) until it goes through.
//! Nothing moves a cursor but a delivery (or a skip by the selection, or a counted drop), so a
//! restart or an outage resumes exactly where delivery stood.
//!
//! A batch whose content the destination refuses is sent again event by event: events refused on
//! their own while others of the batch are accepted are dropped, counted in `events_dropped` and
//! logged with their ids; when every event is refused the fault is taken to be the destination's
//! (a wrong index, a stream that does not match) and the batch is retried like any failure.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;

use super::config::{Selection, Settings};
use super::sink::{SendError, Sink};
use super::store::{self, Batch, Progress};
use crate::error::Result;
use crate::store::Db;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Progress was made; look again at once.
    Progressed,
    /// Nothing to deliver.
    Idle,
    /// Another replica delivers this destination.
    Standby,
}

pub struct Worker<S: Sink> {
    pub db: Db,
    pub sink: S,
    pub selection: Selection,
    pub settings: Settings,
    /// This process's lease identity.
    pub owner: String,
}

impl<S: Sink> Worker<S> {
    /// Runs until `stop` turns true, then gives up the lease.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let name = self.sink.name();
        let mut failures: u32 = 0;
        let mut turn = 0usize;
        loop {
            if *stop.borrow() {
                break;
            }
            let wait = match self.step(turn).await {
                Ok(Step::Progressed) => {
                    failures = 0;
                    turn = turn.wrapping_add(1);
                    continue;
                }
                Ok(Step::Idle) => {
                    failures = 0;
                    self.settings.poll
                }
                Ok(Step::Standby) => self.settings.lease / 3,
                Err(Failure { message, after }) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(destination = name, error = %message, failures, "delivery failed; will retry");
                    if let Err(err) = store::failed(&self.db, name, &message).await {
                        tracing::error!(destination = name, error = %err, "cannot record the delivery error");
                    }
                    backoff(&self.settings, failures).max(after.unwrap_or_default())
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
        }
        if let Err(err) = store::release(&self.db, name, &self.owner).await {
            tracing::warn!(destination = name, error = %err, "cannot release the delivery lease");
        }
    }

    async fn step(&self, turn: usize) -> Result<Step, Failure> {
        let name = self.sink.name();
        store::ensure(&self.db, name).await?;
        if !store::lease(&self.db, name, &self.owner, self.settings.lease).await? {
            return Ok(Step::Standby);
        }
        let batch =
            store::pending(&self.db, name, self.selection, self.sink.limits(), turn).await?;
        if batch.advance.is_empty() {
            return Ok(Step::Idle);
        }
        if batch.events.is_empty() {
            self.record(&batch.advance, 0, 0, None).await?;
            return Ok(Step::Progressed);
        }
        match self.sink.send(&batch.events).await {
            Ok(()) => {
                let n = batch.events.len() as u64;
                self.record(&batch.advance, n, 0, None).await?;
                tracing::debug!(destination = name, events = n, "delivered");
                Ok(Step::Progressed)
            }
            Err(SendError::Rejected(why)) => self.one_by_one(batch, why).await,
            Err(SendError::Retry { message, after, .. }) => Err(Failure { message, after }),
        }
    }

    /// The refused batch again, one event per request (see the module's note).
    async fn one_by_one(&self, batch: Batch, why: String) -> Result<Step, Failure> {
        let name = self.sink.name();
        tracing::warn!(destination = name, error = %why, "batch refused; sending its events one by one");
        let mut refused: Vec<(usize, String)> = Vec::new();
        let mut accepted = 0usize;
        for (i, event) in batch.events.iter().enumerate() {
            match self.sink.send(std::slice::from_ref(event)).await {
                Ok(()) => {
                    accepted += 1;
                    let mut upto = BTreeMap::new();
                    upto.insert(event.tenant.clone(), event.seq);
                    // Earlier refusals of this tenant are behind this cursor now: count them.
                    let (dropped, error) = self.drop_refused(&mut refused, &event.tenant, &batch);
                    self.record(&upto, 1, dropped, error).await?;
                }
                Err(SendError::Rejected(why)) => refused.push((i, why)),
                Err(SendError::Retry { message, after, .. }) => {
                    return Err(Failure { message, after });
                }
            }
        }
        if accepted == 0 {
            return Err(Failure {
                message: format!("every event of the batch was refused: {why}"),
                after: None,
            });
        }
        let dropped = refused.len() as u64;
        let mut error = None;
        for (i, why) in &refused {
            if let Some(event) = batch.events.get(*i) {
                tracing::error!(destination = name, tenant = %event.tenant, event_id = event.id(), error = %why, "event refused by the destination; dropped");
                error.get_or_insert_with(|| dropped_message(event, why));
            }
        }
        self.record(&batch.advance, 0, dropped, error).await?;
        Ok(Step::Progressed)
    }

    /// Removes and counts the refusals of `tenant` (a later accepted event moves its cursor past
    /// them), logging each; the error names the first.
    fn drop_refused(
        &self,
        refused: &mut Vec<(usize, String)>,
        tenant: &str,
        batch: &Batch,
    ) -> (u64, Option<String>) {
        let mut error = None;
        let before = refused.len();
        refused.retain(|(i, why)| match batch.events.get(*i) {
            Some(event) if event.tenant == tenant => {
                tracing::error!(destination = self.sink.name(), tenant, event_id = event.id(), error = %why, "event refused by the destination; dropped");
                error.get_or_insert_with(|| dropped_message(event, why));
                false
            }
            _ => true,
        });
        ((before - refused.len()) as u64, error)
    }

    async fn record(
        &self,
        advance: &BTreeMap<String, i64>,
        flushed: u64,
        dropped: u64,
        error: Option<String>,
    ) -> Result<(), Failure> {
        let progress = Progress {
            advance,
            flushed,
            dropped,
            error,
        };
        if store::commit(&self.db, self.sink.name(), &self.owner, progress).await? {
            Ok(())
        } else {
            Err(Failure {
                message: "the delivery lease passed to another replica".into(),
                after: None,
            })
        }
    }
}

fn dropped_message(event: &super::event::Event, why: &str) -> String {
    format!(
        "event {} of tenant {} was refused and dropped: {why}",
        event.id(),
        event.tenant
    )
}

/// Why a step made no progress, and how long the destination asked to be left alone.
#[derive(Debug)]
struct Failure {
    message: String,
    after: Option<Duration>,
}

impl From<crate::error::Error> for Failure {
    fn from(err: crate::error::Error) -> Self {
        Failure {
            message: format!("database: {err}"),
            after: None,
        }
    }
}

/// `min · 2^(failures-1)`, capped at `max`, with up to 20% taken off at random so that replicas
/// and destinations do not retry in lockstep.
pub fn backoff(settings: &Settings, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let full = settings
        .min_backoff
        .saturating_mul(1u32 << exp)
        .min(settings.max_backoff);
    let mut byte = [0u8; 1];
    let jitter = if getrandom::fill(&mut byte).is_ok() {
        f64::from(byte[0]) / 255.0 * 0.2
    } else {
        0.0
    };
    full.mul_f64(1.0 - jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = Settings {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..Settings::default()
        };
        let b1 = backoff(&settings, 1);
        assert!(b1 <= Duration::from_millis(100) && b1 >= Duration::from_millis(80));
        let b3 = backoff(&settings, 3);
        assert!(b3 <= Duration::from_millis(400) && b3 >= Duration::from_millis(320));
        let b9 = backoff(&settings, 9);
        assert!(b9 <= Duration::from_secs(1) && b9 >= Duration::from_millis(800));
        assert!(backoff(&settings, u32::MAX) <= Duration::from_secs(1));
    }
}
