//! The whole flow inside an application's own PostgreSQL database: beside the application's `users`,
//! `admin_info` and `_sqlx_migrations` (left untouched, compared before and after), with the README's
//! least-privilege roles and its SQL for reading the records.
//!
//! Needs PostgreSQL at `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`, a role
//! that may create databases and roles); fails, never skips, without it.

mod common;

use admin_provisioner::app::{App, Hooks};
use admin_provisioner::http::{self, AppState, Metrics};
use admin_provisioner_core::clock::ManualClock;
use admin_provisioner_core::faults::{FaultMode, FaultPlan};
use admin_provisioner_core::identity::op;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use std::sync::Arc;

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// `TEST_POSTGRES_URL` with another database and user.
fn url_for(database: &str, user: Option<&str>) -> String {
    let base = admin_url();
    let (scheme, rest) = base.split_once("://").unwrap();
    let (authority, _) = rest.split_once('/').unwrap_or((rest, ""));
    let authority = match user {
        Some(user) => format!("{user}@{}", authority.rsplit_once('@').map_or(authority, |(_, h)| h)),
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}/{database}")
}

/// Drops the test's database and roles (cluster-wide) even when the test fails.
struct Cleanup {
    database: String,
    roles: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let database = self.database.clone();
        let roles = self.roles.clone();
        // A thread of its own: this may run inside the test's runtime, which cannot block on itself.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    if let Ok(mut root) = PgConnection::connect(&admin_url()).await {
                        let _ = root
                            .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
                            .await;
                        for role in roles {
                            let _ = root.execute(format!("DROP ROLE IF EXISTS {role}").as_str()).await;
                        }
                    }
                })
        })
        .join();
    }
}

/// The README's SQL block whose first line starts with `first_line`.
fn readme_sql(first_line: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find(&format!("```sql\n{first_line}"))
        .unwrap_or_else(|| panic!("README has no sql block starting with {first_line:?}"))
        + 7;
    let end = start + readme[start..].find("```").unwrap();
    readme[start..end].to_string()
}

async fn snapshot_public(conn: &mut PgConnection) -> Vec<String> {
    let mut out: Vec<String> = sqlx::query_scalar(
        "SELECT format('column %s.%s %s', table_name, column_name, data_type) FROM information_schema.columns \
         WHERE table_schema = 'public' \
         UNION ALL SELECT format('constraint %s %s', conrelid::regclass, conname) FROM pg_constraint \
           WHERE connamespace = 'public'::regnamespace \
         UNION ALL SELECT format('index %s', indexname) FROM pg_indexes WHERE schemaname = 'public' \
         ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for table in ["users", "admin_info", "_sqlx_migrations", "orders"] {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT row_to_json(t)::text FROM public.{table} t ORDER BY row_to_json(t)::text"
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        out.extend(rows.into_iter().map(|r| format!("row {table} {r}")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_runs_in_the_applications_database_with_the_readme_roles_and_leaves_its_tables_untouched() {
    // Arrange: the application's database, its own tables and sqlx history, and the README's roles.
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let database = format!("ap_appdb_{suffix}");
    let (product, reader, login) = (
        format!("ap_product_{suffix}"),
        format!("ap_app_reader_{suffix}"),
        format!("app_login_{suffix}"),
    );
    let _cleanup = Cleanup {
        database: database.clone(),
        roles: vec![product.clone(), reader.clone(), login.clone()],
    };
    let mut root = PgConnection::connect(&admin_url())
        .await
        .unwrap_or_else(|e| panic!("this test needs PostgreSQL at TEST_POSTGRES_URL: {e}"));
    root.execute(format!("CREATE DATABASE {database}").as_str())
        .await
        .unwrap();
    root.execute(format!("CREATE ROLE {login} LOGIN").as_str())
        .await
        .unwrap();
    let mut owner = PgConnection::connect(&url_for(&database, None)).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, email TEXT NOT NULL UNIQUE, cognito_sub TEXT);
         CREATE TABLE admin_info (user_id BIGINT PRIMARY KEY REFERENCES users (id), level INT NOT NULL);
         CREATE TABLE orders (id BIGSERIAL PRIMARY KEY, total NUMERIC NOT NULL, created_by_sub TEXT);
         CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL,
             execution_time BIGINT NOT NULL);
         INSERT INTO _sqlx_migrations VALUES (20230101000000, 'app init', '2023-01-01T00:00:00Z', true, '\\x01', 1);
         INSERT INTO users (email, cognito_sub) VALUES ('customer@app.example', 'customer-sub');
         INSERT INTO admin_info VALUES (1, 5);",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    let roles = readme_sql("-- roles:")
        .replace("ap_product", &product)
        .replace("ap_app_reader", &reader)
        .replace("app_login", &login)
        .replace("DATABASE app ", &format!("DATABASE {database} "));
    sqlx::raw_sql(&roles).execute(&mut owner).await.unwrap();
    let before = snapshot_public(&mut owner).await;

    // Act: the app as the product's role; the whole flow through the HTTP API.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.database_url = url_for(&database, Some(&product));
    let clock = Arc::new(ManualClock::new());
    let faults = FaultPlan::new();
    let metrics = Metrics::new();
    let hooks = Hooks {
        clock: Some(clock.clone()),
        faults: Some(faults.clone()),
        settings: Some(fast_settings()),
        observer: Some(metrics.clone()),
    };
    let app = App::build_with(config.clone(), hooks).await.unwrap();
    let state = AppState::with_metrics(app.clone(), metrics.clone());
    let mut t = TestApp {
        router: http::router(state.clone()),
        app,
        state,
        clock,
        faults,
        metrics,
        admin: None,
        dir,
    };
    t.app
        .provisioner
        .bootstrap_admin(ADMIN_EMAIL, Some("bootstrap"))
        .await
        .unwrap();
    t.admin = Some(t.activate(ADMIN_EMAIL).await);
    let second = t.invite("second@example.com").await;
    t.clock.advance(chrono::Duration::seconds(61));
    let resent = t
        .post(
            &format!("/api/admins/{second}/resend-invite"),
            Some(t.token()),
            json!({}),
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.text);
    t.activate("second@example.com").await;
    t.faults.fail(op::ADMIN_CREATE_USER, FaultMode::Error, None);
    let failed = t
        .post("/api/admins", Some(t.token()), json!({"email": "down@example.com"}))
        .await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "the fault fired");
    t.faults.clear();
    let revoked = t.invite("third@example.com").await;
    assert_eq!(
        t.delete(&format!("/api/admins/{revoked}"), Some(t.token()))
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    // Assert: public is exactly as it was; the records and events are in the product's schema.
    assert_eq!(snapshot_public(&mut owner).await, before);
    let admins = t.get("/api/admins", Some(t.token())).await.json();
    assert_eq!(admins["admins"].as_array().unwrap().len(), 2);
    let events = t.get("/api/events", Some(t.token())).await.json();
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "admin.invited",
            "admin.activated",
            "admin.invited",
            "admin.invite_resent",
            "admin.activated",
            "admin.provisioning_failed",
            "admin.invited",
            "admin.removed"
        ]
    );
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE tableowner = $1 ORDER BY 1")
            .bind(&product)
            .fetch_all(&mut owner)
            .await
            .unwrap();
    assert!(
        tables.contains(&"_sqlx_migrations".to_string()) && tables.contains(&"events".to_string()),
        "{tables:?}"
    );
    let outside: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = $1) \
         AND relnamespace NOT IN ('admin_provisioner'::regnamespace, 'pg_toast'::regnamespace)",
    )
    .bind(&product)
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(outside, 0, "the product created nothing outside its schema");

    // The application reads through its read-only role, joins its own rows, and cannot write.
    let first_sub: String = sqlx::query_scalar("SELECT cognito_sub FROM admin_provisioner.users WHERE email = $1")
        .bind(ADMIN_EMAIL)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    sqlx::query("INSERT INTO orders (total, created_by_sub) VALUES (9.99, $1)")
        .bind(&first_sub)
        .execute(&mut owner)
        .await
        .unwrap();
    owner
        .execute(format!("GRANT SELECT ON orders TO {login}").as_str())
        .await
        .unwrap();
    let mut app_conn = PgConnection::connect(&url_for(&database, Some(&login))).await.unwrap();
    let joined: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.email, u.status FROM public.orders o \
         JOIN admin_provisioner.users u ON u.cognito_sub = o.created_by_sub \
         JOIN admin_provisioner.admin_info a ON a.user_id = u.id",
    )
    .fetch_all(&mut app_conn)
    .await
    .unwrap();
    assert_eq!(joined, vec![(ADMIN_EMAIL.to_string(), "active".to_string())]);
    let events_read: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_provisioner.events")
        .fetch_one(&mut app_conn)
        .await
        .unwrap();
    assert_eq!(
        events_read, 8,
        "tables created by migrations are readable through the default privileges"
    );
    for write in [
        "DELETE FROM admin_provisioner.users",
        "UPDATE admin_provisioner.admin_info SET invites_sent = 0",
        "INSERT INTO admin_provisioner.events (type, admin_id, email, data, occurred_at) \
         VALUES ('x', gen_random_uuid(), 'x', '{}', now())",
    ] {
        let err = app_conn.execute(write).await.unwrap_err().to_string();
        assert!(err.contains("permission denied"), "{write}: {err}");
    }
    app_conn.close().await.ok();
    sqlx::raw_sql(&readme_sql("-- view:"))
        .execute(&mut owner)
        .await
        .unwrap();
    let viewed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM public.app_admins")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(viewed, 2);

    // doctor: the product's role has every privilege; the application's read-only role is not enough.
    let report = admin_provisioner::doctor::check(&config).await;
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.severity != admin_provisioner_cognito::doctor::Severity::Blocking),
        "{:?}",
        report.findings
    );
    assert!(
        report.ok.iter().any(|l| l.contains("every privilege")),
        "{:?}",
        report.ok
    );
    let mut as_reader = config.clone();
    as_reader.database_url = url_for(&database, Some(&login));
    let report = admin_provisioner::doctor::check(&as_reader).await;
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.severity == admin_provisioner_cognito::doctor::Severity::Blocking),
        "{:?}",
        report
    );

    // `_cleanup` drops the database and the roles.
    drop(t);
    owner.close().await.ok();
    root.close().await.ok();
}
