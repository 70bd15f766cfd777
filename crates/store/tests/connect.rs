//! Connecting: adapter choice by URL scheme, durable SQLite files, and one-line errors without secrets.

use admin_provisioner_core::domain::{Actor, UserId};
use admin_provisioner_core::store::ports::*;
use admin_provisioner_core::store::{AuditAction, AuditEntry, NewAdmin, StoreError};
use admin_provisioner_store::{connect, PostgresStore, SqliteStore};
use chrono::{Duration, Utc};
use uuid::Uuid;

fn new_admin(email: &str) -> NewAdmin {
    let now = admin_provisioner_store::truncate_to_micros(Utc::now());
    NewAdmin {
        id: UserId::new(),
        email: email.to_string(),
        email_normalized: email.to_lowercase(),
        cognito_username: email.to_lowercase(),
        cognito_sub: Uuid::new_v4().to_string(),
        invited_by: None,
        invited_at: now,
        invite_expires_at: now + Duration::days(7),
        invite_delivered: true,
        role: Default::default(),
    }
}

fn audit() -> AuditEntry {
    AuditEntry {
        actor: Actor::Operator,
        action: AuditAction::BootstrapAdmin,
        target: "first@example.com".into(),
        outcome: "success".into(),
        request_id: None,
        at: Utc::now(),
    }
}

#[tokio::test]
async fn sqlite_file_store_survives_reconnect() {
    // Arrange: a file that does not exist yet.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nested-name.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    let written = store
        .insert_admin(new_admin("First@Example.com"), audit(), None)
        .await
        .unwrap();
    store.pool().close().await;
    drop(store);

    // Act
    let reopened = SqliteStore::connect(&url).await.unwrap();

    // Assert
    assert_eq!(reopened.get_admin(written.user.id).await.unwrap(), Some(written));
    assert_eq!(reopened.list_audit(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_in_memory_store_keeps_its_data_across_calls() {
    let store = SqliteStore::in_memory().await.unwrap();

    let written = store
        .insert_admin(new_admin("mem@example.com"), audit(), None)
        .await
        .unwrap();

    assert_eq!(store.get_admin(written.user.id).await.unwrap(), Some(written));
}

#[tokio::test]
async fn connect_picks_the_adapter_from_the_scheme() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "sqlite::memory:".to_string(),
        format!("sqlite:{}", dir.path().join("x.db").display()),
    ] {
        let store = connect(&url).await.unwrap();
        store.ping().await.unwrap();
        assert!(store.list_unfinished().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn connect_rejects_an_unknown_scheme_without_echoing_the_password() {
    let err = connect("mysql://root:hunter2@localhost/db")
        .await
        .err()
        .expect("rejected");

    let StoreError::Other(message) = err else {
        panic!("expected Other, got {err:?}")
    };
    assert!(message.contains("mysql://root:***@localhost/db"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn unreachable_postgres_is_a_one_line_unavailable_error_without_the_password() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let url = "postgres://postgres:hunter2secret@127.0.0.1:1/x";

    let err = PostgresStore::connect(url).await.expect_err("cannot connect");

    let StoreError::Unavailable(message) = &err else {
        panic!("expected Unavailable, got {err:?}")
    };
    assert!(err.is_transient());
    assert!(
        message.starts_with("cannot connect to postgres://postgres:***@127.0.0.1:1/x: "),
        "{message}"
    );
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(!message.contains("hunter2secret"), "{message}");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[tokio::test]
async fn unopenable_sqlite_file_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("missing-dir").join("x.db").display());

    let err = SqliteStore::connect(&url).await.expect_err("cannot open");

    let StoreError::Unavailable(message) = &err else {
        panic!("expected Unavailable, got {err:?}")
    };
    assert!(message.starts_with(&format!("cannot connect to {url}: ")), "{message}");
    assert!(message.contains("unable to open database file"), "{message}");
}
