//! The store stamps rows with the injected clock, not the database's or the system's: `users.created_at` /
//! `updated_at`, the saga log's `updated_at` (an update without its own `at`, and the transactions that
//! advance a saga), and event times. A fake clock set ten days in the past proves it, on SQLite and on
//! PostgreSQL (`TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`; fails, never
//! skips, when the server is unreachable).

use admin_provisioner_core::clock::{Clock, ManualClock};
use admin_provisioner_core::domain::{Actor, UserId};
use admin_provisioner_core::store::Store;
use admin_provisioner_core::store::{AuditAction, AuditEntry, NewAdmin, SagaKind, SagaRecord, SagaState, SagaUpdate};
use admin_provisioner_store::{truncate_to_micros, PostgresStore, SqliteStore};
use chrono::{DateTime, Duration, Utc};
use sqlx::{Connection, Executor, PgConnection};
use std::sync::Arc;
use uuid::Uuid;

/// A manual clock ten days behind the real time: a stamp from `Utc::now` could never equal it.
fn past_clock() -> Arc<ManualClock> {
    let clock = Arc::new(ManualClock::new());
    clock.advance(Duration::days(-10));
    clock
}

fn new_admin(email: &str, at: DateTime<Utc>) -> NewAdmin {
    NewAdmin {
        id: UserId::new(),
        email: email.to_string(),
        email_normalized: email.to_string(),
        cognito_username: email.to_string(),
        cognito_sub: Uuid::new_v4().to_string(),
        invited_by: None,
        invited_at: at,
        invite_expires_at: at + Duration::days(7),
        invite_delivered: true,
        role: Default::default(),
    }
}

fn audit(action: AuditAction, target: &str, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        actor: Actor::Operator,
        action,
        target: target.to_string(),
        outcome: "success".to_string(),
        request_id: None,
        at,
    }
}

fn saga(kind: SagaKind, email: &str, user_id: UserId, at: DateTime<Utc>) -> SagaRecord {
    SagaRecord {
        id: Uuid::new_v4(),
        kind,
        actor: Actor::Operator,
        email: email.to_string(),
        email_normalized: email.to_string(),
        user_id,
        cognito_username: email.to_string(),
        cognito_sub: None,
        identity_created_by_saga: false,
        invite_delivered: true,
        state: SagaState::Started,
        attempts: 0,
        last_error: None,
        request_id: None,
        started_at: at,
        updated_at: at,
        owner: None,
        lease_expires_at: None,
        scim: None,
        role: None,
    }
}

async fn stamps_follow_the_injected_clock(store: Arc<dyn Store>, clock: Arc<ManualClock>) {
    let t1 = truncate_to_micros(clock.now());
    assert!(t1 < Utc::now() - Duration::days(9), "the fake clock is not in the past");

    // A provisioning saga whose records complete it in their transaction.
    let admin = new_admin("clocked@example.com", t1);
    let provision = saga(SagaKind::Provision, "clocked@example.com", admin.id, t1);
    store.begin(provision.clone()).await.unwrap();
    clock.advance(Duration::seconds(30));
    let t2 = truncate_to_micros(clock.now());
    // An update without its own `at` is stamped by the store's clock.
    let updated = store
        .update(
            provision.id,
            SagaUpdate {
                state: Some(SagaState::IdentityCreating),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.updated_at, t2, "saga update without `at`");
    clock.advance(Duration::seconds(30));
    let t3 = truncate_to_micros(clock.now());
    let record = store
        .insert_admin(
            admin.clone(),
            audit(AuditAction::CreateAdmin, "clocked@example.com", t3),
            Some(provision.id),
        )
        .await
        .unwrap();
    assert_eq!(record.user.created_at, t3, "users.created_at");
    assert_eq!(record.user.updated_at, t3, "users.updated_at");
    let done = store.get(provision.id).await.unwrap().unwrap();
    assert_eq!(done.state, SagaState::Completed);
    assert_eq!(done.updated_at, t3, "saga completed in the records' transaction");

    // A removal saga advanced by the delete's transaction.
    clock.advance(Duration::seconds(30));
    let t4 = truncate_to_micros(clock.now());
    let mut removal = saga(SagaKind::Remove, "clocked@example.com", admin.id, t4);
    removal.id = Uuid::new_v4();
    store.begin(removal.clone()).await.unwrap();
    clock.advance(Duration::seconds(30));
    let t5 = truncate_to_micros(clock.now());
    store
        .delete_admin(
            admin.id,
            audit(AuditAction::DeleteAdmin, "clocked@example.com", t5),
            Some(removal.id),
        )
        .await
        .unwrap();
    let pending = store.get(removal.id).await.unwrap().unwrap();
    assert_eq!(pending.state, SagaState::IdentityPendingDelete);
    assert_eq!(pending.updated_at, t5, "saga advanced in the delete's transaction");

    // A clock that stands still: rows written one after the other still get increasing stamps, so that
    // "oldest first" keeps the order they were written in.
    let mut last = None;
    for i in 0..3 {
        let email = format!("still.{i}@example.com");
        let r = store
            .insert_admin(new_admin(&email, t5), audit(AuditAction::CreateAdmin, &email, t5), None)
            .await
            .unwrap();
        assert!(r.user.created_at > t5, "a stamp repeated an earlier one");
        if let Some(prev) = last {
            assert!(
                r.user.created_at > prev,
                "rows written in order got stamps out of order"
            );
        }
        last = Some(r.user.created_at);
    }
}

#[tokio::test]
async fn sqlite_stamps_rows_with_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("clock.db").display());
    let clock = past_clock();
    let store = SqliteStore::connect(&url).await.unwrap().with_clock(clock.clone());
    stamps_follow_the_injected_clock(Arc::new(store), clock).await;
}

#[tokio::test]
async fn postgres_stamps_rows_with_the_injected_clock() {
    let admin_url =
        std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("this test needs PostgreSQL (TEST_POSTGRES_URL): {e}"));
    let name = format!("ap_clock_test_{}", Uuid::new_v4().simple());
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (admin_url.clone(), String::new()),
    };
    let start = base.find("://").map_or(0, |i| i + 3);
    let end = base[start..].find('/').map_or(base.len(), |i| start + i);
    let url = format!("{}/{name}{query}", &base[..end]);
    let clock = past_clock();
    let store = PostgresStore::connect(&url).await.unwrap().with_clock(clock.clone());
    let pool = store.pool().clone();
    let outcome = tokio::spawn(stamps_follow_the_injected_clock(Arc::new(store), clock)).await;
    pool.close().await;
    let _ = admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
