//! Approvals end when nobody can use them: a held call's with its hold (timed out, abandoned, as its
//! filter tells it or as the sweep finds it), a parked one at the end of its lifetime, an approved
//! one nobody used; each ending once, with its audit event, and out of the pending list.

use std::time::Duration;

use axum::http::StatusCode;
use intentgate_control_plane::approvals::runtime::{
    self, EndRequest, Ending, Escalated, State, Use, UseRequest,
};
use intentgate_control_plane::approvals::{Settings, sweep};
use intentgate_control_plane::error::Error;
use intentgate_core::audit::{AuditEvent, EventKind};
use intentgate_core::decision::AuditDecision;
use intentgate_core::exchange::arguments_digest_of;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{ACME, GLOBEX, SUPER, TestApp};

on_both_backends!(
    a_held_call_ends_its_approval_with_the_event_its_filter_sends,
    the_sweep_ends_holds_whose_filter_is_gone_or_whose_time_is_over,
    a_wait_cut_short_leaves_the_filter_the_grace_alone,
    parked_approvals_expire_after_the_tenants_lifetime,
    the_list_filters_by_status,
);

const GRACE: Settings = Settings { grace_ms: 300 };

/// A call's event; a `deny` of approval `id` has the same id each time it is made.
fn event(decision: AuditDecision, tenant: &str, id: &str) -> AuditEvent {
    let event_id = match decision {
        AuditDecision::Deny => format!("ev-deny-{id}"),
        _ => intentgate_control_plane::ids::new_id().unwrap(),
    };
    let mut event = AuditEvent::new(
        event_id,
        intentgate_control_plane::time::now_ms(),
        EventKind::ToolCall,
        decision,
    );
    event.tenant = tenant.into();
    event.agent_id = "agent-7".into();
    event.tool = "wire".into();
    event.rule = "wires".into();
    event.pending_id = id.into();
    event
}

/// Parks an escalated call as a filter does; held for `hold_ms`, or parked when 0.
async fn escalate(app: &TestApp, tenant: &str, hold_ms: u64) -> String {
    let arguments = json!({"amount": 5});
    let escalated = Escalated {
        filter_id: "envoy-1/0001".into(),
        event_json: serde_json::to_string(&event(AuditDecision::Escalate, tenant, "")).unwrap(),
        arguments_json: arguments.to_string(),
        arguments_sha256: arguments_digest_of(&arguments),
        hold_ms,
    };
    runtime::park(&app.state.recorder(), &GRACE, &escalated)
        .await
        .unwrap()
}

fn end_request(id: &str, tenant: &str, ending: Ending, reason: &str) -> EndRequest {
    let mut event = event(AuditDecision::Deny, tenant, id);
    event.reason = reason.into();
    EndRequest {
        id: id.into(),
        tenant: tenant.into(),
        ending,
        event_json: serde_json::to_string(&event).unwrap(),
    }
}

async fn listed(app: &TestApp, status: Option<&str>) -> Vec<Value> {
    let uri = match status {
        Some(status) => format!("/v1/admin/approvals?tenant=acme&status={status}"),
        None => "/v1/admin/approvals?tenant=acme".into(),
    };
    let (code, page) = app.get(SUPER, &uri).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn ids(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["id"].as_str().unwrap()).collect()
}

/// The tenant's events naming approval `id`, oldest first.
async fn events_of(app: &TestApp, tenant: &str, id: &str) -> Vec<Value> {
    let mut events: Vec<Value> = app
        .events(tenant)
        .await
        .into_iter()
        .filter(|e| e["pending_id"] == id)
        .collect();
    events.reverse();
    events
}

async fn a_held_call_ends_its_approval_with_the_event_its_filter_sends(app: TestApp) {
    let recorder = app.state.recorder();
    let timed_out = escalate(&app, "acme", 60_000).await;
    let abandoned = escalate(&app, "acme", 60_000).await;
    assert_eq!(ids(&listed(&app, None).await), [&abandoned, &timed_out]);

    // Told wrong: another tenant's approval is absent; an event not naming it is refused.
    let err = runtime::end(
        &recorder,
        &end_request(&timed_out, "globex", Ending::TimedOut, "x"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    let mut wrong = end_request(&timed_out, "acme", Ending::TimedOut, "x");
    wrong.event_json = serde_json::to_string(&event(AuditDecision::Deny, "acme", "other")).unwrap();
    assert!(matches!(
        runtime::end(&recorder, &wrong).await,
        Err(Error::BadRequest(_))
    ));

    let reason = format!("approval {timed_out} was not decided within 60 s");
    let told = end_request(&timed_out, "acme", Ending::TimedOut, &reason);
    assert!(runtime::end(&recorder, &told).await.unwrap());
    let gone =
        format!("approval {abandoned} abandoned: the client went away before it was decided");
    let told_gone = end_request(&abandoned, "acme", Ending::Abandoned, &gone);
    assert!(runtime::end(&recorder, &told_gone).await.unwrap());
    // Told twice (an answer lost on the way): ended once, its event written once.
    assert!(!runtime::end(&recorder, &told).await.unwrap());

    assert!(listed(&app, None).await.is_empty(), "neither is pending");
    let ended = listed(&app, Some("ended")).await;
    assert_eq!(ids(&ended), [&abandoned, &timed_out]);
    assert_eq!(ended[1]["status"], "timed_out");
    assert_eq!(ended[1]["end_reason"], reason.as_str());
    assert_eq!(ended[1]["held"], true);
    assert!(ended[1]["ended_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ended[0]["status"], "abandoned");
    for (id, reason) in [(&timed_out, &reason), (&abandoned, &gone)] {
        let events = events_of(&app, "acme", id).await;
        let decisions: Vec<&str> = events
            .iter()
            .map(|e| e["decision"].as_str().unwrap())
            .collect();
        assert_eq!(decisions, ["escalate", "deny"], "{id}");
        assert_eq!(events[1]["reason"], reason.as_str());
    }

    // Nobody can decide an approval that ended.
    let (status, body) = app
        .post(
            ACME,
            &format!("/v1/admin/approvals/{timed_out}/decide"),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"].as_str().unwrap().contains("timed out"),
        "{body}"
    );
    // A waiting filter learns that it ended, and how.
    let status = runtime::wait(
        &app.state.db,
        &app.state.changes,
        &GRACE,
        &abandoned,
        "acme",
        10,
    )
    .await
    .unwrap();
    assert_eq!((status.state, status.reason), (State::Ended, gone));

    // A decision made before the filter told its ending stands; the call's event is written.
    let decided = escalate(&app, "acme", 60_000).await;
    let (status, _) = app
        .post(
            ACME,
            &format!("/v1/admin/approvals/{decided}/decide"),
            json!({"decision": "reject"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let late = end_request(&decided, "acme", Ending::TimedOut, "too late");
    assert!(!runtime::end(&recorder, &late).await.unwrap());
    assert_eq!(
        listed(&app, Some("rejected")).await[0]["id"],
        decided.as_str()
    );
    let decisions: Vec<String> = events_of(&app, "acme", &decided)
        .await
        .iter()
        .map(|e| e["decision"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(decisions, ["escalate", "reject", "deny"]);
}

async fn the_sweep_ends_holds_whose_filter_is_gone_or_whose_time_is_over(app: TestApp) {
    let recorder = app.state.recorder();
    let forsaken = escalate(&app, "acme", 60_000).await;
    let overdue = escalate(&app, "acme", 100).await;
    let waited = escalate(&app, "acme", 60_000).await;
    let approved = escalate(&app, "acme", 100).await;
    let (status, _) = app
        .post(
            ACME,
            &format!("/v1/admin/approvals/{approved}/decide"),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        sweep::sweep(&recorder, &GRACE).await.unwrap(),
        0,
        "nothing due yet"
    );

    // A filter waits on one of them the whole time; the others' filters are silent.
    let db = app.state.db.clone();
    let changes = app.state.changes.clone();
    let waiting = waited.clone();
    let wait =
        tokio::spawn(
            async move { runtime::wait(&db, &changes, &GRACE, &waiting, "acme", 1_500).await },
        );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sweep::sweep(&recorder, &GRACE).await.unwrap(), 3);
    assert_eq!(
        sweep::sweep(&recorder, &GRACE).await.unwrap(),
        0,
        "each ends once"
    );

    let ended = listed(&app, Some("all")).await;
    let status_of = |id: &str| {
        ended
            .iter()
            .find(|a| a["id"] == id)
            .map(|a| a["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(status_of(&forsaken), "abandoned");
    assert_eq!(status_of(&overdue), "timed_out", "its hold is over");
    assert_eq!(status_of(&approved), "expired", "approved, never used");
    assert_eq!(status_of(&waited), "pending", "its filter still waits");
    assert_eq!(ids(&listed(&app, None).await), [&waited]);

    let events = events_of(&app, "acme", &forsaken).await;
    let ending = events.last().unwrap();
    assert_eq!(
        (ending["event"].as_str(), ending["decision"].as_str()),
        (Some("intentgate.approval"), Some("deny"))
    );
    assert_eq!(ending["decided_by"], "control-plane");
    assert_eq!(ending["method"], "approval/end");
    assert_eq!(ending["rule"], "wires");
    assert_eq!(ending["tool"], "wire");
    assert!(
        ending["reason"]
            .as_str()
            .unwrap()
            .contains("stopped waiting for it"),
        "{ending}"
    );
    let overdue_events = events_of(&app, "acme", &overdue).await;
    assert_eq!(
        overdue_events.last().unwrap()["reason"],
        format!("approval {overdue} was not decided within 1 s")
    );

    // Its filter stopped waiting (its wait answered): abandoned once the grace is over.
    assert_eq!(wait.await.unwrap().unwrap().state, State::Pending);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sweep::sweep(&recorder, &GRACE).await.unwrap(), 1);
    assert!(listed(&app, None).await.is_empty());
}

async fn a_wait_cut_short_leaves_the_filter_the_grace_alone(app: TestApp) {
    let recorder = app.state.recorder();
    let held = escalate(&app, "acme", 60_000).await;
    let db = app.state.db.clone();
    let changes = app.state.changes.clone();
    let id = held.clone();
    let wait =
        tokio::spawn(
            async move { runtime::wait(&db, &changes, &GRACE, &id, "acme", 30_000).await },
        );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sweep::sweep(&recorder, &GRACE).await.unwrap(),
        0,
        "it waits"
    );
    // The filter's call goes away (its proxy died): nobody waits any more.
    wait.abort();
    let _ = wait.await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sweep::sweep(&recorder, &GRACE).await.unwrap(), 1);
    assert_eq!(
        listed(&app, Some("abandoned")).await[0]["id"],
        held.as_str()
    );
}

async fn parked_approvals_expire_after_the_tenants_lifetime(app: TestApp) {
    let recorder = app.state.recorder();
    let (status, body) = app
        .put(
            ACME,
            "/v1/admin/tenants/acme/settings",
            json!({"settings": {"approval_mode": "async", "approval_lifetime_secs": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let undecided = escalate(&app, "acme", 0).await;
    let unused = escalate(&app, "acme", 0).await;
    let used = escalate(&app, "acme", 0).await;
    let lasting = escalate(&app, "globex", 0).await;
    for id in [&unused, &used] {
        let (status, _) = app
            .post(
                ACME,
                &format!("/v1/admin/approvals/{id}/decide"),
                json!({"decision": "approve"}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let use_of = |id: &str| UseRequest {
        id: id.into(),
        tenant: "acme".into(),
        agent_id: "agent-7".into(),
        tool: "wire".into(),
        arguments_sha256: arguments_digest_of(&json!({"amount": 5})),
    };
    assert!(matches!(
        runtime::use_once(&app.state.db, &GRACE, &use_of(&used))
            .await
            .unwrap(),
        Use::Granted { .. }
    ));
    let expires_at = listed(&app, None).await[0]["expires_at"].clone();
    assert!(expires_at.as_str().unwrap().ends_with('Z'));

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Past its lifetime it is neither listed, decided nor used, even before the sweep.
    assert!(listed(&app, None).await.is_empty());
    let (status, _) = app
        .post(
            ACME,
            &format!("/v1/admin/approvals/{undecided}/decide"),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        runtime::use_once(&app.state.db, &GRACE, &use_of(&unused))
            .await
            .unwrap(),
        Use::Refused("the approval expired".into())
    );

    assert_eq!(sweep::sweep(&recorder, &GRACE).await.unwrap(), 2);
    let expired = listed(&app, Some("expired")).await;
    assert_eq!(ids(&expired), [&unused, &undecided]);
    assert_eq!(
        expired[1]["end_reason"],
        format!("approval {undecided} expired undecided after 1 s")
    );
    assert_eq!(
        expired[0]["decided_by"], "tenant-admin:acme",
        "who approved it stays"
    );
    assert_eq!(
        runtime::use_once(&app.state.db, &GRACE, &use_of(&unused))
            .await
            .unwrap(),
        Use::Refused("the approval expired".into())
    );
    let ending = events_of(&app, "acme", &unused).await;
    let decisions: Vec<&str> = ending
        .iter()
        .map(|e| e["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["escalate", "approve", "deny"]);
    assert_eq!(listed(&app, Some("approved")).await[0]["id"], used.as_str());
    // Another tenant's default lifetime (a day) is its own.
    let (_, theirs) = app.get(GLOBEX, "/v1/admin/approvals").await;
    assert_eq!(theirs["items"][0]["id"], lasting.as_str());
}

async fn the_list_filters_by_status(app: TestApp) {
    let pending = escalate(&app, "acme", 60_000).await;
    let rejected = escalate(&app, "acme", 60_000).await;
    let (status, _) = app
        .post(
            ACME,
            &format!("/v1/admin/approvals/{rejected}/decide"),
            json!({"decision": "reject", "reason": "no"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(ids(&listed(&app, None).await), [&pending]);
    assert_eq!(ids(&listed(&app, Some("pending")).await), [&pending]);
    let decided = listed(&app, Some("decided")).await;
    assert_eq!(ids(&decided), [&rejected]);
    assert_eq!(decided[0]["decision_reason"], "no");
    assert_eq!(decided[0]["decided_by"], "tenant-admin:acme");
    assert!(decided[0]["decided_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ids(&listed(&app, Some("all")).await), [&rejected, &pending]);
    assert!(listed(&app, Some("approved")).await.is_empty());
    let (status, body) = app.get(SUPER, "/v1/admin/approvals?status=stuck").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("status"));
    // A cursor continues only the list it was issued for.
    let (_, page) = app
        .get(SUPER, "/v1/admin/approvals?tenant=acme&status=all&limit=1")
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (status, _) = app
        .get(
            SUPER,
            &format!("/v1/admin/approvals?tenant=acme&status=decided&cursor={cursor}"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
