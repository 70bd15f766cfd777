//! The PostgreSQL adapter, for production deployments.
//!
//! Promises: connecting fails fast with a one-line [`StoreError::Unavailable`] naming the (redacted) URL
//! and the cause; migrations run at connect (serialised across processes by `sqlx`'s advisory lock);
//! unique violations are told apart by constraint name (see [`crate::error`]). Ids are `UUID`, times
//! `TIMESTAMPTZ` (microsecond precision).

use crate::redact_url;
use crate::url::{connect_error, connect_timeout, migrate_error, url_error};
use admin_provisioner_core::store::StoreError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, Transaction};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How many connections the pool opens at most.
const MAX_CONNECTIONS: u32 = 10;

/// How long a query waits for a free connection (and connect waits for the server) before failing.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// An [`AdminStore`](admin_provisioner_core::store::AdminStore) and
/// [`SagaLog`](admin_provisioner_core::store::SagaLog) over PostgreSQL. Cheap to clone (shares one pool).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The connection URL with any password masked, for messages.
    url: String,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?…`, or `postgresql://…`) and runs
    /// the migrations.
    ///
    /// Errors: [`StoreError::Unavailable`] when the server cannot be reached or refuses the login (the
    /// message names the URL with its password masked, and the cause); [`StoreError::Other`] for a
    /// malformed URL or a failed migration.
    #[tracing::instrument(skip_all, fields(url = %redact_url(url)))]
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| url_error(url, e))?;
        // One direct connection first: the pool would retry until its timeout and report only that,
        // losing the cause (refused, unknown host, bad password, no such database).
        let mut first = match tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options)).await {
            Ok(connected) => connected.map_err(|e| connect_error(url, e))?,
            Err(_) => return Err(connect_timeout(url, ACQUIRE_TIMEOUT)),
        };
        MIGRATOR.run(&mut first).await.map_err(|e| migrate_error(url, e))?;
        first.close().await.ok();
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // No ping before each acquire (a round trip per statement on PostgreSQL): a broken connection
            // fails its statement as a transient error, which the caller retries on a fresh one; sqlx
            // still tests each connection when it is returned.
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| connect_error(url, e))?;
        tracing::info!(url = %redact_url(url), "postgres store ready");
        Ok(Self {
            pool,
            url: redact_url(url),
        })
    }

    /// The underlying pool, for callers that need raw SQL (tests, diagnostics).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a write transaction (READ COMMITTED; the unique indexes arbitrate races).
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Serialises transactions that change the set of active admins (a transaction-scoped advisory
    /// lock), so two concurrent removals cannot both see "one other active admin left".
    async fn lock_admin_set(&self, tx: &mut Transaction<'static, Postgres>) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('admin-provisioner:active-admins'))")
            .execute(&mut **tx)
            .await
            .map(|_| ())
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

crate::sql::impl_sql_store!(
    PostgresStore,
    sqlx::Postgres,
    "postgres",
    "u.id = CAST(NULLIF(l.actor, 'operator') AS uuid)"
);
