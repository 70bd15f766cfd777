//! SQLite and PostgreSQL adapters for admin-provisioner's database ports.
//!
//! Both [`SqliteStore`] and [`PostgresStore`] implement the core's
//! [`AdminStore`](admin_provisioner_core::store::AdminStore) (users, admin info, audit log, idempotency
//! keys) and [`SagaLog`](admin_provisioner_core::store::SagaLog) over one database, which is what lets a
//! single transaction write an admin's records, its audit event and its saga's completion. [`connect`]
//! picks the adapter from the URL scheme, connects and runs the migrations (embedded from
//! `migrations/sqlite` and `migrations/postgres`); [`connect_with`] also takes the PostgreSQL schema
//! (`DATABASE_SCHEMA`: every table and the migration history live there, see [`PostgresStore`]) and returns
//! the [`EventLog`] of lifecycle events over the same database (see [`events`]).
//!
//! What the schema guarantees, in both databases:
//! - `users.email_normalized`, `users.cognito_username` and `users.cognito_sub` are unique, so two admins
//!   can never share an e-mail (case-insensitively: the normalised form is lower-cased) or a Cognito user;
//! - `admin_info.user_id` references `users.id` (enforced), and `admin_info.invited_by` is set to NULL when
//!   the inviting admin is deleted;
//! - at most one unfinished saga holds an e-mail (a unique partial index on `sagas`): this is the guard
//!   that makes concurrent provisioning of one address create exactly one admin;
//! - `audit_log` is append-only: triggers reject `UPDATE` and `DELETE`;
//! - every change of an admin's state writes one row to `events` in its own transaction (see [`events`]).
//!
//! Timestamps are stored with microsecond precision (sub-microsecond parts are truncated on write); see
//! [`truncate_to_micros`]. Errors are mapped as described in the `error` module: unique violations to the
//! domain errors, connection trouble to the transient [`StoreError::Unavailable`], and no message ever
//! contains a database password ([`redact_url`]). The store [`connect`] returns survives dead pooled
//! connections (a restart, a failover, a proxy's idle kill): see [`reconnect`].

mod error;
pub mod events;
mod postgres;
pub mod reconnect;
mod sql;
mod sqlite;
mod types;
mod url;

pub use crate::events::EventLog;
pub use crate::postgres::{validate_schema, PostgresStore, DEFAULT_SCHEMA};
pub use crate::reconnect::Reconnecting;
pub use crate::sqlite::SqliteStore;
pub use crate::types::truncate_to_micros;
pub use crate::url::redact_url;

use admin_provisioner_core::clock::{Clock, SystemClock};
use admin_provisioner_core::store::Store;
use admin_provisioner_core::store::StoreError;
use std::sync::Arc;

/// Picks the adapter from the URL scheme (`sqlite:…`, or `postgres:`/`postgresql:…`), connects, and runs
/// the migrations.
///
/// Errors: [`StoreError::Unavailable`] when the database cannot be reached or opened, with a one-line
/// message naming the redacted URL and the cause (e.g. `cannot connect to
/// postgres://postgres:***@127.0.0.1:5432/x: Connection refused (os error 111)`);
/// [`StoreError::Other`] for an unsupported scheme, a malformed URL or a failed migration.
pub async fn connect(database_url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(connect_with(database_url, &ConnectOptions::default()).await?.store)
}

/// How to connect, beyond the URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// PostgreSQL only: the schema of the product's tables and migration history (`DATABASE_SCHEMA`,
    /// default [`DEFAULT_SCHEMA`]). SQLite keeps the product in a file of its own and ignores it.
    pub schema: String,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            schema: DEFAULT_SCHEMA.to_string(),
        }
    }
}

/// A connected store and the event log over the same database.
#[derive(Clone)]
pub struct Connected {
    /// Both database ports.
    pub store: Arc<dyn Store>,
    /// The lifecycle events and their webhook queue.
    pub events: EventLog,
}

/// Like [`connect`], with [`ConnectOptions`], also returning the [`EventLog`].
///
/// Errors: as [`connect`], plus [`StoreError::Other`] for an invalid schema name or a schema the role
/// may not create or use (PostgreSQL).
pub async fn connect_with(database_url: &str, options: &ConnectOptions) -> Result<Connected, StoreError> {
    connect_with_clock(database_url, options, Arc::new(SystemClock)).await
}

/// Like [`connect_with`], stamping rows (`created_at`, `updated_at`, event times) with `clock`: pass the
/// orchestrator's, so that every time recovery compares comes from one clock.
pub async fn connect_with_clock(
    database_url: &str,
    options: &ConnectOptions,
    clock: Arc<dyn Clock>,
) -> Result<Connected, StoreError> {
    let scheme = database_url.split(':').next().unwrap_or_default().to_ascii_lowercase();
    match scheme.as_str() {
        "sqlite" => {
            let store = SqliteStore::connect(database_url).await?.with_clock(clock);
            let events = store.event_log();
            Ok(Connected {
                store: Arc::new(store.reconnecting()),
                events,
            })
        }
        "postgres" | "postgresql" => {
            let store = PostgresStore::connect_in_schema(database_url, &options.schema)
                .await?
                .with_clock(clock);
            let events = store.event_log();
            Ok(Connected {
                store: Arc::new(store.reconnecting()),
                events,
            })
        }
        _ => Err(StoreError::Other(format!(
            "unsupported database URL {}: expected sqlite:… or postgres://…",
            redact_url(database_url)
        ))),
    }
}
