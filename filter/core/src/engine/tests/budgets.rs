//! Budgets counted across the workers of one proxy without a control plane: reserved in blocks
//! with one compare-and-swap, never over the limit, and given back on the tick.

use serde_json::json;

use super::*;

fn call(proxy: &mut Proxy, token: &str, id: u64) -> Client {
    proxy.exchange(
        Request::post(Some(token), tools_call(id, "read_a", json!({}))),
        Upstream::result(id),
    )
}

#[test]
fn max_calls_holds_exactly_across_workers_that_reserve_blocks() {
    let counters = SharedCounters::default();
    let config = config(json!({}), json!({}));
    let mut workers = [
        Proxy::sharing(&config, counters.clone()),
        Proxy::sharing(&config, counters.clone()),
    ];
    let limit = 200;
    let token = token("agent-b", &["read_*"], Some(limit));
    let mut allowed = 0;
    for id in 0..300u64 {
        let worker = &mut workers[usize::try_from(id % 2).unwrap()];
        if !call(worker, &token, id).local {
            allowed += 1;
        }
        if id % 50 == 49 {
            workers.iter_mut().for_each(Proxy::tick);
        }
    }
    assert_eq!(allowed, limit, "exactly the limit, never more");
    let stored = counters.borrow()["intentgate/budget/calls/jti-agent-b"];
    assert_eq!(stored.1, limit);
}

#[test]
fn reserved_calls_go_back_on_the_tick_for_the_other_workers() {
    let counters = SharedCounters::default();
    let config = config(json!({}), json!({}));
    let mut a = Proxy::sharing(&config, counters.clone());
    let mut b = Proxy::sharing(&config, counters.clone());
    let token = token("agent-r", &["read_*"], Some(40));
    // A reserves a block of 2 (40 / 16) and uses one.
    assert!(!call(&mut a, &token, 1).local);
    let reserved = counters.borrow()["intentgate/budget/calls/jti-agent-r"].1;
    assert_eq!(reserved, 2);
    a.tick();
    assert_eq!(
        counters.borrow()["intentgate/budget/calls/jti-agent-r"].1,
        1,
        "the unused call is back"
    );
    let mut allowed = 0;
    for id in 2..60 {
        if !call(&mut b, &token, id).local {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 39, "B gets everything A did not use");
    let refused = call(&mut b, &token, 99);
    assert_eq!(refused.error_code(), -32013);
    assert_eq!(refused.json()["error"]["data"]["limit"], 40);
    assert_eq!(refused.json()["error"]["data"]["used"], 40);
}

#[test]
fn a_rate_limit_counts_per_window_and_a_refused_call_gives_its_reservation_back() {
    let settings = json!({"settings": {"rate_limits": {"per_agent_per_minute": 3}}});
    let mut proxy = Proxy::new(&config(settings, json!({})));
    let token = token("agent-rl", &["read_*"], Some(100));
    for id in 0..3 {
        assert!(!call(&mut proxy, &token, id).local);
    }
    let refused = call(&mut proxy, &token, 3);
    assert_eq!(refused.error_code(), -32013);
    assert!(
        refused.json()["error"]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("rate limit of 3 calls per minute")
    );
    // The max_calls call taken before the rate limit refused went back: 3 used, not 4.
    proxy.tick();
    assert_eq!(
        proxy.host.counters.borrow()["intentgate/budget/calls/jti-agent-rl"].1,
        3
    );
    proxy.advance_ms(60_000);
    assert!(!call(&mut proxy, &token, 4).local, "a new window");
}
