//! Asking the control plane for budget leases before a request's calls are decided, so the budget
//! check itself never waits: a request whose token carries `max_calls` pauses until every counter it
//! needs has a live lease for as many calls as the body holds (or the control plane said the budget
//! is spent, or could not be reached: the check then fails closed).

use std::collections::HashMap;

use intentgate_core::budget::lease::Lease;
use intentgate_core::token::VerifiedToken;
use intentgate_proto::v1;
use prost::Message;

use crate::budget::CALLS_PREFIX;
use crate::config::ControlPlaneConfig;
use crate::host;
use crate::root::Shared;

/// A lease request on its way: the counter it is for.
pub struct Pending {
    counter: String,
    limit: u64,
}

/// Dispatches a lease request for every counter of `token` whose live leases lack `need` calls. The
/// leases already held stay in use (and are given back when they expire). Returns the calls in
/// flight by token; empty when nothing needs asking (or nothing could be dispatched).
pub fn request(
    shared: &Shared,
    config: &ControlPlaneConfig,
    token: &VerifiedToken,
    need: u64,
) -> HashMap<u32, Pending> {
    let now = host::now_ms();
    let mut pending = HashMap::new();
    let Ok(pool) = shared.leases.try_borrow() else {
        return pending;
    };
    for budget in &token.budgets {
        let counter = format!("{CALLS_PREFIX}{}", budget.counter);
        let available = pool.available(&counter, now);
        if available >= need || pool.spent(&counter, now) {
            continue;
        }
        let request = v1::LeaseRequest {
            filter_id: shared.filter_id.clone(),
            counter: counter.clone(),
            tenant: token.tenant.clone(),
            limit: budget.max_calls,
            want: (need - available).max(config.lease_slice),
            ..Default::default()
        };
        if let Ok(call) = host::dispatch_grpc_call(
            &config.cluster,
            "LeaseBudget",
            &request.encode_to_vec(),
            config.call_timeout(),
            config.metadata().as_deref(),
        ) {
            pending.insert(
                call,
                Pending {
                    counter,
                    limit: budget.max_calls,
                },
            );
        }
    }
    pending
}

/// Reads the control plane's answer into a lease for the waiting request, which adds it to the pool
/// in the same callback that decides it, so no other request takes it first. A failed call gives
/// nothing: the counter then has no lease and the budget check fails closed.
pub fn on_response(pending: Pending, status: u32, size: usize) -> Option<(String, Lease)> {
    if status != 0 {
        return None;
    }
    let answer = v1::LeaseResponse::decode(host::grpc_message(size).as_slice()).ok()?;
    let lease = Lease {
        id: answer.lease_id,
        granted: answer.granted,
        remaining: answer.granted,
        expires_ms: host::now_ms().saturating_add(i64::from(answer.ttl_ms)),
        limit: pending.limit,
        used: answer.used,
    };
    Some((pending.counter, lease))
}
