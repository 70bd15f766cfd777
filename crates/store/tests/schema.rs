//! PostgreSQL: the product lives in a schema of its own inside the application's database.
//!
//! Each test creates its own database through `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and drops it afterwards; they fail, never skip, when the
//! server cannot be reached.

use admin_provisioner_core::domain::{Actor, Role, UserId};
use admin_provisioner_core::store::ports::*;
use admin_provisioner_core::store::{
    AuditAction, AuditEntry, NewAdmin, SagaKind, SagaLog, SagaRecord, SagaState, SagaUpdate, StoreError,
};
use admin_provisioner_store::{truncate_to_micros, PostgresStore};
use chrono::{Duration, Utc};
use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor, PgConnection};
use std::borrow::Cow;
use uuid::Uuid;

/// The migrations of this build; the first release had only the first of them.
static ALL_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// `url` with its database (and optionally its user) replaced.
fn with_database(url: &str, name: &str, user: Option<&str>) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut authority = base[authority_start..authority_end].to_string();
    if let Some(user) = user {
        let host = authority
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, h)| h)
            .to_string();
        authority = format!("{user}@{host}");
    }
    format!("{}{authority}/{name}{query}", &base[..authority_start])
}

/// A database of its own for one test, dropped on `drop().await`.
struct Fresh {
    name: String,
    url: String,
}

impl Fresh {
    async fn create() -> Self {
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .unwrap_or_else(|e| panic!("these tests need PostgreSQL at TEST_POSTGRES_URL: {e}"));
        let name = format!("ap_schema_test_{}", Uuid::new_v4().simple());
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        admin.close().await.ok();
        let url = with_database(&admin_url(), &name, None);
        Self { name, url }
    }

    async fn conn(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    async fn drop(self) {
        if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await;
        }
    }
}

/// Everything in schema `public`: each table's columns, constraints, indexes and triggers, and its rows
/// as JSON in a stable order. Two equal snapshots mean nothing in `public` changed.
async fn snapshot_public(conn: &mut PgConnection) -> Vec<String> {
    let mut out: Vec<String> = sqlx::query_scalar(
        "SELECT format('column %s.%s %s %s', table_name, column_name, data_type, is_nullable) \
         FROM information_schema.columns WHERE table_schema = 'public' \
         UNION ALL SELECT format('constraint %s %s', conrelid::regclass, conname) FROM pg_constraint \
           WHERE connamespace = 'public'::regnamespace \
         UNION ALL SELECT format('index %s', indexname) FROM pg_indexes WHERE schemaname = 'public' \
         UNION ALL SELECT format('trigger %s %s', tgrelid::regclass, tgname) FROM pg_trigger t \
           JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = 'public'::regnamespace \
         UNION ALL SELECT format('function %s', proname) FROM pg_proc WHERE pronamespace = 'public'::regnamespace \
         ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT row_to_json(t)::text FROM public.\"{table}\" t ORDER BY row_to_json(t)::text"
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        out.extend(rows.into_iter().map(|r| format!("row {table} {r}")));
    }
    out
}

/// `table {json}` rows as (table, value) pairs, sorted.
fn parse_rows(rows: &[String]) -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<(String, serde_json::Value)> = rows
        .iter()
        .map(|r| {
            let (table, json) = r.split_once(' ').unwrap();
            (table.to_string(), serde_json::from_str(json).unwrap())
        })
        .collect();
    out.sort_by_key(|(t, v)| format!("{t} {v}"));
    out
}

/// `after` restricted to the columns `before` had per table; a column added since must be NULL, but
/// `admin_info.role` (the roles migration gives every admin one, see the test of the upgrade).
fn first_release_columns(after: &[String], before: &[String]) -> Vec<(String, serde_json::Value)> {
    let before = parse_rows(before);
    let columns = |table: &str| -> Vec<String> {
        before
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, v)| v.as_object().unwrap().keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut out: Vec<(String, serde_json::Value)> = parse_rows(after)
        .into_iter()
        .map(|(table, mut v)| {
            let keep = columns(&table);
            let obj = v.as_object_mut().unwrap();
            for (k, value) in obj.iter() {
                if !(keep.contains(k) || (table == "admin_info" && k == "role")) {
                    assert!(
                        value.is_null(),
                        "{table}.{k} was added by a later migration but is {value}"
                    );
                }
            }
            obj.retain(|k, _| keep.contains(k));
            (table, v)
        })
        .collect();
    out.sort_by_key(|(t, v)| format!("{t} {v}"));
    out
}

/// Every row of the product's tables in `schema`, as JSON in a stable order.
async fn snapshot_rows(conn: &mut PgConnection, schema: &str, tables: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT row_to_json(t)::text FROM \"{schema}\".\"{table}\" t ORDER BY row_to_json(t)::text"
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        out.extend(rows.into_iter().map(|r| format!("{table} {r}")));
    }
    out
}

async fn tables_in(conn: &mut PgConnection, schema: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1")
        .bind(schema)
        .fetch_all(&mut *conn)
        .await
        .unwrap()
}

/// The application's own tables, named like the product's, with an sqlx history of its own.
const APPLICATION_TABLES: &str = r#"
CREATE TABLE users (id BIGSERIAL PRIMARY KEY, email TEXT NOT NULL UNIQUE, display_name TEXT);
CREATE TABLE admin_info (user_id BIGINT PRIMARY KEY REFERENCES users (id), level INT NOT NULL);
CREATE TABLE orders (id BIGSERIAL PRIMARY KEY, user_id BIGINT REFERENCES users (id), total NUMERIC);
CREATE TABLE _sqlx_migrations (
    version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);
INSERT INTO _sqlx_migrations VALUES (20230101000000, 'app init', '2023-01-01T00:00:00Z', true, '\x0102', 5);
INSERT INTO users (email, display_name) VALUES ('ann@app.example', 'Ann'), ('bob@app.example', 'Bob');
INSERT INTO admin_info VALUES (1, 3);
INSERT INTO orders (user_id, total) VALUES (1, 9.99), (2, 20);
"#;

fn new_admin(email: &str, invited_by: Option<UserId>) -> NewAdmin {
    let now = truncate_to_micros(Utc::now());
    NewAdmin {
        id: UserId::new(),
        email: email.to_string(),
        email_normalized: email.to_lowercase(),
        cognito_username: email.to_lowercase(),
        cognito_sub: Uuid::new_v4().to_string(),
        invited_by,
        invited_at: now,
        invite_expires_at: now + Duration::days(7),
        invite_delivered: true,
        role: Default::default(),
    }
}

fn audit(action: AuditAction, target: &str) -> AuditEntry {
    AuditEntry {
        actor: Actor::Operator,
        action,
        target: target.to_string(),
        outcome: "success".into(),
        request_id: Some("req-1".into()),
        at: truncate_to_micros(Utc::now()),
    }
}

fn saga(email: &str) -> SagaRecord {
    let now = truncate_to_micros(Utc::now());
    SagaRecord {
        id: Uuid::new_v4(),
        kind: SagaKind::Provision,
        actor: Actor::Operator,
        email: email.to_string(),
        email_normalized: email.to_lowercase(),
        user_id: UserId::new(),
        cognito_username: email.to_lowercase(),
        cognito_sub: None,
        identity_created_by_saga: false,
        invite_delivered: true,
        state: SagaState::Started,
        attempts: 0,
        last_error: None,
        request_id: Some("req-1".into()),
        started_at: now,
        updated_at: now,
        owner: None,
        lease_expires_at: None,
        scim: None,
        role: None,
    }
}

/// Every store write the product makes: provision (saga + records), resend, first login, a failed
/// provisioning, and a removal.
async fn exercise(store: &PostgresStore) {
    let first = store
        .insert_admin(
            new_admin("first@example.com", None),
            audit(AuditAction::BootstrapAdmin, "first@example.com"),
            None,
        )
        .await
        .unwrap();
    store
        .mark_accepted(
            first.user.id,
            Utc::now(),
            audit(AuditAction::FirstLoginCompleted, "first@example.com"),
        )
        .await
        .unwrap();
    let s = store.begin(saga("second@example.com")).await.unwrap();
    let mut second = new_admin("second@example.com", Some(first.user.id));
    second.id = s.user_id;
    let second = store
        .insert_admin(
            second,
            audit(AuditAction::CreateAdmin, "second@example.com"),
            Some(s.id),
        )
        .await
        .unwrap();
    store
        .record_invite_sent(
            second.user.id,
            Utc::now(),
            Utc::now() + Duration::days(7),
            true,
            audit(AuditAction::ResendInvite, "second@example.com"),
        )
        .await
        .unwrap();
    let failed = store.begin(saga("third@example.com")).await.unwrap();
    store
        .update(
            failed.id,
            SagaUpdate {
                state: Some(SagaState::Aborted),
                ..SagaUpdate::default()
            },
        )
        .await
        .unwrap();
    store
        .delete_admin(
            second.user.id,
            audit(AuditAction::DeleteAdmin, "second@example.com"),
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_product_runs_beside_the_applications_own_users_admin_info_and_sqlx_migrations_and_leaves_them_untouched() {
    // Arrange: the application's tables, named like the product's, and its sqlx history, in public.
    let db = Fresh::create().await;
    let mut conn = db.conn().await;
    sqlx::raw_sql(APPLICATION_TABLES).execute(&mut conn).await.unwrap();
    let before = snapshot_public(&mut conn).await;

    // Act: connect (creates the schema, migrates), use every write, reconnect (migrations again).
    let store = PostgresStore::connect(&db.url).await.unwrap();
    exercise(&store).await;
    store.pool().close().await;
    let store = PostgresStore::connect(&db.url).await.unwrap();
    let after = snapshot_public(&mut conn).await;

    // Assert: public is byte-for-byte what it was; the product's tables and history are in its schema.
    assert_eq!(before, after);
    assert_eq!(store.schema(), "admin_provisioner");
    let own = tables_in(&mut conn, "admin_provisioner").await;
    for table in [
        "_sqlx_migrations",
        "admin_info",
        "audit_log",
        "events",
        "idempotency_keys",
        "sagas",
        "users",
        "webhook_attempts",
        "webhook_deliveries",
    ] {
        assert!(
            own.contains(&table.to_string()),
            "{table} missing from admin_provisioner: {own:?}"
        );
    }
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM admin_provisioner._sqlx_migrations ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(versions, ALL_MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>());
    assert_eq!(store.list_admins().await.unwrap().len(), 1);
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_provisioner.events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        events, 6,
        "invited, activated, invited, invite_resent, provisioning_failed, removed"
    );
    store.pool().close().await;
    conn.close().await.ok();
    db.drop().await;
}

/// What the first release did: its one migration, in `public`, through sqlx.
async fn install_first_release(conn: &mut PgConnection) {
    let first_release = Migrator {
        migrations: Cow::Owned(
            ALL_MIGRATIONS
                .iter()
                .filter(|m| m.version == 20240101000000)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    };
    first_release.run(&mut *conn).await.unwrap();
}

/// Rows as the first release wrote them: two admins (one invited by the other), their sagas (one
/// completed, one compensated, one stuck), audit events and an idempotency key.
const FIRST_RELEASE_ROWS: &str = r#"
INSERT INTO users VALUES
  ('11111111-1111-4111-8111-111111111111', 'First@Example.com', 'first@example.com', 'first@example.com',
   'sub-1', 'active', '2024-02-01T10:00:00.123456Z', '2024-02-01T11:00:00Z'),
  ('22222222-2222-4222-8222-222222222222', 'second@example.com', 'second@example.com', 'second@example.com',
   'sub-2', 'invited', '2024-02-02T10:00:00Z', '2024-02-02T10:00:00Z');
INSERT INTO admin_info VALUES
  ('11111111-1111-4111-8111-111111111111', NULL, '2024-02-01T10:00:00Z', '2024-02-08T10:00:00Z', 1,
   '2024-02-01T10:00:00Z', true, '2024-02-01T11:00:00Z'),
  ('22222222-2222-4222-8222-222222222222', '11111111-1111-4111-8111-111111111111', '2024-02-02T10:00:00Z',
   '2024-02-09T10:00:00Z', 2, '2024-02-03T10:00:00Z', false, NULL);
INSERT INTO sagas VALUES
  ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'provision', '11111111-1111-4111-8111-111111111111',
   'second@example.com', 'second@example.com', '22222222-2222-4222-8222-222222222222', 'second@example.com',
   'sub-2', true, false, 'completed', 3, NULL, 'req-2', '2024-02-02T09:59:59Z', '2024-02-02T10:00:00Z'),
  ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'provision', 'operator', 'gone@example.com', 'gone@example.com',
   '33333333-3333-4333-8333-333333333333', 'gone@example.com', NULL, false, true, 'compensated', 5,
   'identity provider unavailable', 'req-3', '2024-02-03T09:00:00Z', '2024-02-03T09:01:00Z'),
  ('cccccccc-cccc-4ccc-8ccc-cccccccccccc', 'provision', 'operator', 'stuck@example.com', 'stuck@example.com',
   '44444444-4444-4444-8444-444444444444', 'stuck@example.com', 'sub-4', true, true, 'stuck', 9,
   'cannot delete', 'req-4', '2024-02-04T09:00:00Z', '2024-02-04T09:05:00Z');
INSERT INTO audit_log (actor, action, target, outcome, request_id, at) VALUES
  ('operator', 'bootstrap_admin', 'first@example.com', 'success', 'cli-1', '2024-02-01T10:00:00Z'),
  ('11111111-1111-4111-8111-111111111111', 'create_admin', 'second@example.com', 'success', 'req-2', '2024-02-02T10:00:00Z'),
  ('11111111-1111-4111-8111-111111111111', 'resend_invite', 'second@example.com', 'success', 'req-5', '2024-02-03T10:00:00Z');
INSERT INTO idempotency_keys VALUES ('11111111-1111-4111-8111-111111111111', 'key-1', 'hash', 201, '{}', '2024-02-02T10:00:00Z');
"#;

const FIRST_RELEASE_TABLES: [&str; 5] = ["users", "admin_info", "sagas", "audit_log", "idempotency_keys"];

#[tokio::test]
async fn a_database_created_by_the_first_release_moves_into_the_schema_with_every_row_intact() {
    // Arrange: the first release's layout in public, with rows, beside an application table.
    let db = Fresh::create().await;
    let mut conn = db.conn().await;
    install_first_release(&mut conn).await;
    sqlx::raw_sql(FIRST_RELEASE_ROWS).execute(&mut conn).await.unwrap();
    conn.execute("CREATE TABLE orders (id BIGSERIAL PRIMARY KEY, note TEXT); INSERT INTO orders (note) VALUES ('x')")
        .await
        .unwrap();
    let rows_before = snapshot_rows(&mut conn, "public", &FIRST_RELEASE_TABLES).await;
    let history_before = snapshot_rows(&mut conn, "public", &["_sqlx_migrations"]).await;
    assert_eq!(rows_before.len(), 2 + 2 + 3 + 3 + 1);

    // Act
    let store = PostgresStore::connect(&db.url).await.unwrap();

    // Assert: every row moved, nothing of the product is left in public, the application's table stayed.
    // Later migrations add nullable columns (the saga lease); every column the first release had is intact.
    let rows_after = snapshot_rows(&mut conn, "admin_provisioner", &FIRST_RELEASE_TABLES).await;
    assert_eq!(
        first_release_columns(&rows_after, &rows_before),
        parse_rows(&rows_before)
    );
    let history_after = snapshot_rows(&mut conn, "admin_provisioner", &["_sqlx_migrations"]).await;
    assert!(
        history_after.contains(&history_before[0]),
        "the first release's history row moved as it was"
    );
    assert_eq!(tables_in(&mut conn, "public").await, vec!["orders".to_string()]);
    let functions: Vec<String> =
        sqlx::query_scalar("SELECT proname::text FROM pg_proc WHERE pronamespace = 'public'::regnamespace")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(functions.is_empty(), "{functions:?}");
    // The store reads the moved rows, the sequences continue, and the audit log is still append-only.
    let first = store.find_admin_by_email("first@example.com").await.unwrap().unwrap();
    assert_eq!(first.user.cognito_sub, "sub-1");
    let second = store.find_admin_by_email("second@example.com").await.unwrap().unwrap();
    assert_eq!(second.admin_info.invited_by, Some(first.user.id));
    // The roles migration: the earliest active admin is the owner, the others admins.
    assert_eq!(first.admin_info.role, Role::Owner);
    assert_eq!(second.admin_info.role, Role::Admin);
    let stuck = store.list_unfinished().await.unwrap();
    assert_eq!(stuck.len(), 1);
    assert_eq!(stuck[0].state, SagaState::Stuck);
    store
        .append_audit(audit(AuditAction::DeleteAdmin, "second@example.com"))
        .await
        .unwrap();
    let audit_ids: Vec<i64> = store.list_audit(10).await.unwrap().iter().map(|e| e.id).collect();
    assert_eq!(audit_ids, vec![4, 3, 2, 1]);
    let update = sqlx::query("UPDATE audit_log SET outcome = 'x'")
        .execute(store.pool())
        .await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    // The moved schema takes the migrations that came after the first release.
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM admin_provisioner._sqlx_migrations ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(versions, ALL_MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>());

    // And a second start-up (or a second replica) finds nothing more to move.
    store.pool().close().await;
    let again = PostgresStore::connect(&db.url).await.unwrap();
    assert_eq!(again.list_admins().await.unwrap().len(), 2);
    again.pool().close().await;
    conn.close().await.ok();
    db.drop().await;
}

#[tokio::test]
async fn a_shared_sqlx_history_keeps_the_applications_rows_in_public() {
    // Arrange: the first release's tables, and the application's own migration row in the same history.
    let db = Fresh::create().await;
    let mut conn = db.conn().await;
    install_first_release(&mut conn).await;
    conn.execute(
        "INSERT INTO _sqlx_migrations VALUES (20230101000000, 'app init', '2023-01-01T00:00:00Z', true, '\\x0102', 5)",
    )
    .await
    .unwrap();

    // Act
    let store = PostgresStore::connect(&db.url).await.unwrap();

    // Assert: the application's row stayed in public; the product's moved.
    let public: Vec<i64> = sqlx::query_scalar("SELECT version FROM public._sqlx_migrations")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(public, vec![20230101000000]);
    let own: Vec<i64> = sqlx::query_scalar("SELECT version FROM admin_provisioner._sqlx_migrations ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(own, ALL_MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>());
    assert_eq!(
        tables_in(&mut conn, "public").await,
        vec!["_sqlx_migrations".to_string()]
    );
    store.pool().close().await;
    conn.close().await.ok();
    db.drop().await;
}

#[tokio::test]
async fn tables_named_like_the_products_are_not_moved_without_its_migration_history() {
    // Arrange: the application happens to have all five names, with its own shapes, and no sqlx history.
    let db = Fresh::create().await;
    let mut conn = db.conn().await;
    sqlx::raw_sql(
        "CREATE TABLE users (id INT PRIMARY KEY); CREATE TABLE admin_info (id INT); CREATE TABLE sagas (id INT); \
         CREATE TABLE audit_log (id INT); CREATE TABLE idempotency_keys (id INT); INSERT INTO users VALUES (7);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let before = snapshot_public(&mut conn).await;

    // Act
    let store = PostgresStore::connect(&db.url).await.unwrap();
    exercise(&store).await;

    // Assert
    assert_eq!(snapshot_public(&mut conn).await, before);
    store.pool().close().await;
    conn.close().await.ok();
    db.drop().await;
}

#[tokio::test]
async fn the_products_history_beside_a_foreign_users_table_is_refused_and_nothing_moves() {
    // Arrange: the first release's history row, but public.users is the application's table.
    let db = Fresh::create().await;
    let mut conn = db.conn().await;
    install_first_release(&mut conn).await;
    sqlx::raw_sql(
        "DROP TABLE admin_info; DROP TABLE users; CREATE TABLE users (id INT PRIMARY KEY); \
         CREATE TABLE admin_info (id INT);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let before = snapshot_public(&mut conn).await;

    // Act
    let err = PostgresStore::connect(&db.url).await.unwrap_err();

    // Assert: a clear refusal, and public exactly as it was.
    let StoreError::Other(message) = &err else {
        panic!("expected Other, got {err:?}")
    };
    assert!(message.contains("public.users is not the product's table"), "{message}");
    assert!(message.contains("nothing was moved"), "{message}");
    assert_eq!(snapshot_public(&mut conn).await, before);
    conn.close().await.ok();
    db.drop().await;
}

#[tokio::test]
async fn a_role_that_may_not_create_the_schema_is_told_what_to_run() {
    // Arrange: a login role without CREATE on the database (PostgreSQL's default for a new role).
    let db = Fresh::create().await;
    let role = format!("ap_schema_role_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    admin
        .execute(format!("CREATE ROLE {role} LOGIN").as_str())
        .await
        .unwrap();
    let url = with_database(&db.url, &db.name, Some(&role));

    // Act
    let err = PostgresStore::connect(&url).await.unwrap_err();

    // Assert
    let message = err.to_string();
    assert!(message.contains(&format!("role {role} may not create it")), "{message}");
    assert!(
        message.contains(&format!("CREATE SCHEMA admin_provisioner AUTHORIZATION {role};")),
        "{message}"
    );

    // And once the owner created the schema for the role, it works without CREATE on the database.
    let mut owner = db.conn().await;
    owner
        .execute(format!("CREATE SCHEMA admin_provisioner AUTHORIZATION {role}").as_str())
        .await
        .unwrap();
    let store = PostgresStore::connect(&url).await.unwrap();
    exercise(&store).await;
    store.pool().close().await;
    owner.execute("DROP SCHEMA admin_provisioner CASCADE").await.unwrap();
    owner.close().await.ok();
    db.drop().await;
    admin.execute(format!("DROP ROLE IF EXISTS {role}").as_str()).await.ok();
    admin.close().await.ok();
}

#[tokio::test]
async fn two_schemas_in_one_database_are_two_independent_products() {
    let db = Fresh::create().await;
    let a = PostgresStore::connect_in_schema(&db.url, "tenant_a").await.unwrap();
    let b = PostgresStore::connect_in_schema(&db.url, "tenant_b").await.unwrap();
    exercise(&a).await;
    assert_eq!(a.list_admins().await.unwrap().len(), 1);
    assert!(b.list_admins().await.unwrap().is_empty());
    a.pool().close().await;
    b.pool().close().await;
    db.drop().await;
}

#[tokio::test]
async fn an_invalid_schema_name_is_refused_before_connecting() {
    for bad in [
        "",
        "Admin",
        "a-b",
        "x;drop table users",
        "pg_admin",
        &"a".repeat(57),
        "1abc",
    ] {
        let err = PostgresStore::connect_in_schema("postgres://nobody@127.0.0.1:1/none", bad)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is not a valid schema name"), "{bad}: {err}");
    }
}
