//! The audited change every mutating endpoint goes through: its writes, its audit event and its
//! state version commit together, and it is announced only once committed.

use intentgate_control_plane::audit;
use intentgate_control_plane::error::Error;
use intentgate_control_plane::store::Db;
use intentgate_control_plane::store::changes::Change;
use sqlx::Row;

use crate::on_both_backends;
use crate::support::TestApp;

on_both_backends!(
    a_change_is_announced_only_once_it_and_its_event_are_committed,
    a_change_whose_event_is_refused_leaves_nothing,
    a_change_dropped_before_commit_leaves_nothing,
);

const WRITE: &str = "INSERT INTO tenant_settings (tenant, settings, intent_rules, updated_at, updated_by) \
                     VALUES ('acme', '{}', '[]', 1, 'test')";

/// What another connection sees: the change's row, the tenant's audit events, the state version.
async fn seen(db: &Db) -> (i64, i64, i64) {
    let count = |sql: &'static str| async move {
        sqlx::query(sql)
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap()
    };
    (
        count("SELECT COUNT(*) FROM tenant_settings WHERE tenant = 'acme'").await,
        count("SELECT COUNT(*) FROM audit_events WHERE tenant = 'acme'").await,
        count("SELECT version FROM sync_version WHERE id = 1").await,
    )
}

fn event() -> intentgate_core::audit::AuditEvent {
    audit::record::admin("acme", "settings", "superadmin", "settings changed".into()).unwrap()
}

fn settings_changed() -> Change {
    Change::TenantSettings {
        tenant: "acme".into(),
    }
}

async fn a_change_is_announced_only_once_it_and_its_event_are_committed(app: TestApp) {
    let (_, _, before) = seen(&app.state.db).await;
    let recorder = app.state.recorder();
    let mut announced = app.state.changes.subscribe();
    let mut tx = recorder.begin().await.unwrap();
    sqlx::query(WRITE).execute(&mut *tx).await.unwrap();
    assert!(announced.try_recv().is_err(), "announced before commit");
    assert_eq!(seen(&app.state.db).await, (0, 0, before));

    // Whoever hears the announcement reads at once: the change, its event and its version are there.
    let db = app.state.db.clone();
    let listener = tokio::spawn(async move {
        let committed = announced.recv().await.unwrap();
        (committed, seen(&db).await)
    });
    let version = tx
        .commit_announcing(event(), settings_changed())
        .await
        .unwrap();
    let (committed, (rows, events, current)) = listener.await.unwrap();
    assert_eq!(committed.change, settings_changed());
    assert_eq!(committed.version, version);
    assert_eq!(u64::try_from(before + 1).unwrap(), version);
    assert_eq!((rows, events, current), (1, 1, before + 1));
    let events = app.events("acme").await;
    assert_eq!(events[0]["method"], "admin/settings");
}

async fn a_change_whose_event_is_refused_leaves_nothing(app: TestApp) {
    let (_, _, before) = seen(&app.state.db).await;
    let recorder = app.state.recorder();
    let mut announced = app.state.changes.subscribe();
    let mut tx = recorder.begin().await.unwrap();
    sqlx::query(WRITE).execute(&mut *tx).await.unwrap();
    let mut bad = event();
    bad.ts = "yesterday".into();
    let refused = tx.commit_announcing(bad, settings_changed()).await;
    assert!(matches!(refused, Err(Error::BadRequest(_))), "{refused:?}");
    assert!(
        announced.try_recv().is_err(),
        "a refused change was announced"
    );
    assert_eq!(seen(&app.state.db).await, (0, 0, before));
}

async fn a_change_dropped_before_commit_leaves_nothing(app: TestApp) {
    let (_, _, before) = seen(&app.state.db).await;
    let recorder = app.state.recorder();
    let mut announced = app.state.changes.subscribe();
    {
        let mut tx = recorder.begin().await.unwrap();
        sqlx::query(WRITE).execute(&mut *tx).await.unwrap();
    }
    assert!(announced.try_recv().is_err());
    assert_eq!(seen(&app.state.db).await, (0, 0, before));
    // And the next change goes through: the dropped one released its locks.
    let mut tx = recorder.begin().await.unwrap();
    sqlx::query(WRITE).execute(&mut *tx).await.unwrap();
    tx.commit(event()).await.unwrap();
    assert_eq!(seen(&app.state.db).await, (1, 1, before));
}
