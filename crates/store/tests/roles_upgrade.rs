//! The roles migration (issue 21) on a copy of the previous release's schema, on both databases: the
//! earliest active admin (enabled, first login done, oldest by creation) becomes an `owner`, every other
//! admin an `admin`; the saga log keeps its rows and learns the `change_role` kind.
//!
//! PostgreSQL through `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`): a fresh
//! database per test, dropped afterwards; the test fails, never skips, without a server.

use admin_provisioner_core::domain::Role;
use admin_provisioner_core::store::ports::*;
use admin_provisioner_core::store::SagaLog;
use admin_provisioner_store::{PostgresStore, SqliteStore};
use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor, PgConnection, SqliteConnection};
use std::borrow::Cow;
use uuid::Uuid;

static PG_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The first migration of the roles release.
const ROLES_VERSION: i64 = 20261204100100;

/// The previous release: every migration before the roles one.
fn previous_release(all: &'static Migrator) -> Migrator {
    Migrator {
        migrations: Cow::Owned(all.iter().filter(|m| m.version < ROLES_VERSION).cloned().collect()),
        ..Migrator::DEFAULT
    }
}

/// Four admins as the previous release left them: the oldest is still invited, the next active but
/// disabled, the third the earliest active and enabled one, the fourth active; and a finished saga.
const ROWS: &str = r#"
INSERT INTO users (id, email, email_normalized, cognito_username, cognito_sub, status, created_at, updated_at, disabled_at) VALUES
  ('11111111-1111-4111-8111-111111111111', 'invited@example.com', 'invited@example.com', 'invited@example.com', 'sub-1', 'invited', '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z', NULL),
  ('22222222-2222-4222-8222-222222222222', 'disabled@example.com', 'disabled@example.com', 'disabled@example.com', 'sub-2', 'active', '2024-01-02T00:00:00.000000Z', '2024-01-02T00:00:00.000000Z', '2024-01-05T00:00:00.000000Z'),
  ('33333333-3333-4333-8333-333333333333', 'first@example.com', 'first@example.com', 'first@example.com', 'sub-3', 'active', '2024-01-03T00:00:00.000000Z', '2024-01-03T00:00:00.000000Z', NULL),
  ('44444444-4444-4444-8444-444444444444', 'later@example.com', 'later@example.com', 'later@example.com', 'sub-4', 'active', '2024-01-04T00:00:00.000000Z', '2024-01-04T00:00:00.000000Z', NULL);
INSERT INTO admin_info (user_id, invited_by, invited_at, invite_expires_at, invites_sent, last_invite_sent_at, invite_delivered, accepted_at) VALUES
  ('11111111-1111-4111-8111-111111111111', NULL, '2024-01-01T00:00:00.000000Z', '2024-01-08T00:00:00.000000Z', 1, '2024-01-01T00:00:00.000000Z', TRUE, NULL),
  ('22222222-2222-4222-8222-222222222222', NULL, '2024-01-02T00:00:00.000000Z', '2024-01-09T00:00:00.000000Z', 1, '2024-01-02T00:00:00.000000Z', TRUE, '2024-01-02T01:00:00.000000Z'),
  ('33333333-3333-4333-8333-333333333333', NULL, '2024-01-03T00:00:00.000000Z', '2024-01-10T00:00:00.000000Z', 1, '2024-01-03T00:00:00.000000Z', TRUE, '2024-01-03T01:00:00.000000Z'),
  ('44444444-4444-4444-8444-444444444444', NULL, '2024-01-04T00:00:00.000000Z', '2024-01-11T00:00:00.000000Z', 1, '2024-01-04T00:00:00.000000Z', TRUE, '2024-01-04T01:00:00.000000Z');
INSERT INTO sagas (id, kind, actor, email, email_normalized, user_id, cognito_username, cognito_sub, identity_created_by_saga, invite_delivered, state, attempts, last_error, request_id, started_at, updated_at) VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'disable', 'operator', 'disabled@example.com', 'disabled@example.com', '22222222-2222-4222-8222-222222222222', 'disabled@example.com', 'sub-2', TRUE, TRUE, 'completed', 2, NULL, 'req-1', '2024-01-05T00:00:00.000000Z', '2024-01-05T00:00:00.000000Z');
"#;

/// What the upgrade must leave, whichever database.
async fn assert_upgraded(store: &(impl AdminReads + SagaLog)) {
    let role =
        |email: &'static str| async move { store.find_admin_by_email(email).await.unwrap().unwrap().admin_info.role };
    assert_eq!(
        role("invited@example.com").await,
        Role::Admin,
        "an invited admin is no active admin"
    );
    assert_eq!(
        role("disabled@example.com").await,
        Role::Admin,
        "a disabled admin is no active admin"
    );
    assert_eq!(
        role("first@example.com").await,
        Role::Owner,
        "the earliest active admin owns"
    );
    assert_eq!(role("later@example.com").await, Role::Admin);
    let saga = store
        .get(Uuid::parse_str("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa").unwrap())
        .await
        .unwrap()
        .expect("the saga log keeps its rows");
    assert_eq!(saga.role, None);
    assert_eq!(saga.attempts, 2);
}

#[tokio::test]
async fn sqlite_the_earliest_active_admin_of_the_previous_release_becomes_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("previous.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    previous_release(&SQLITE_MIGRATIONS).run(&mut conn).await.unwrap();
    // SQLite stores booleans as 0/1.
    conn.execute(ROWS.replace("TRUE", "1").as_str()).await.unwrap();
    conn.close().await.unwrap();

    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert_upgraded(&store).await;
    // The rebuilt saga table takes the new kind.
    sqlx::query("UPDATE sagas SET kind = 'change_role' WHERE attempts = 2")
        .execute(store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_the_earliest_active_admin_of_the_previous_release_becomes_the_owner() {
    let admin_url =
        std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("this test needs PostgreSQL at TEST_POSTGRES_URL: {e}"));
    let name = format!("ap_roles_upgrade_{}", Uuid::new_v4().simple());
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (admin_url.clone(), String::new()),
    };
    let url = format!("{}/{name}{query}", &base[..base.rfind('/').unwrap()]);

    // The previous release's layout: its migrations in the product's schema.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    conn.execute("CREATE SCHEMA admin_provisioner; SET search_path TO admin_provisioner")
        .await
        .unwrap();
    previous_release(&PG_MIGRATIONS).run(&mut conn).await.unwrap();
    sqlx::raw_sql(ROWS).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();

    let store = PostgresStore::connect(&url).await.unwrap();
    assert_upgraded(&store).await;
    sqlx::query("UPDATE sagas SET kind = 'change_role' WHERE attempts = 2")
        .execute(store.pool())
        .await
        .unwrap();
    store.pool().close().await;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
}
