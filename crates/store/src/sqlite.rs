//! The SQLite adapter: the default database, a single file next to the binary (or in memory for tests).
//!
//! Promises: the file is created if missing (its folder must exist), readable by its owner only (mode
//! 0600; SQLite gives the `-wal`/`-shm` files the same mode); every connection enforces foreign keys, uses WAL and waits
//! up to [`BUSY_TIMEOUT`] for the write lock; write transactions start with `BEGIN IMMEDIATE`, so
//! concurrent writers queue behind each other instead of failing with "database is locked". Ids are
//! stored as hyphenated text and timestamps as fixed-precision RFC 3339 text (see [`crate::types`]).

use crate::reconnect::PoolHealth;
use crate::redact_url;
use crate::sql::{Backend, DbValue, FromDbRow, SqlStore};
use crate::url::{connect_error, migrate_error, url_error};
use admin_provisioner_core::clock::SystemClock;
use admin_provisioner_core::store::StoreError;
use sqlx::error::BoxDynError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments, Executor, FromRow, Sqlite, Transaction};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How long a connection waits for another connection's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections a file-backed store opens at most (readers run in parallel under WAL).
const MAX_CONNECTIONS: u32 = 8;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// An [`AdminStore`](admin_provisioner_core::store::AdminStore) and
/// [`SagaLog`](admin_provisioner_core::store::SagaLog) over SQLite. Cheap to clone (shares one pool).
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Opens (creating it if missing) the database at `url` (`sqlite://path/to/file.db`, `sqlite:file.db`,
    /// or `sqlite::memory:` which behaves like [`SqliteStore::in_memory`]) and runs the migrations.
    ///
    /// Errors: [`StoreError::Unavailable`] when the file cannot be opened (the message names the URL and
    /// the cause); [`StoreError::Other`] for a malformed URL or a failed migration.
    #[tracing::instrument(skip_all, fields(url = %redact_url(url)))]
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if is_memory_url(url) {
            let options = SqliteConnectOptions::from_str(url).map_err(|e| url_error(url, e))?;
            return Self::open_in_memory(options, url).await;
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| url_error(url, e))?
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);
        create_private(options.get_filename()).map_err(|e| {
            StoreError::Unavailable(format!("cannot create the database file of {}: {e}", redact_url(url)))
        })?;
        let health = Arc::new(PoolHealth::default());
        let hook_health = health.clone();
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // No ping before each acquire: as in the PostgreSQL adapter, a call whose connection turns
            // out dead runs again on a fresh one, and connections idle since the last loss are pinged
            // first (see `crate::reconnect`); sqlx still tests each connection when it is returned.
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                let health = hook_health.clone();
                Box::pin(async move { Ok(health.check(conn, meta.idle_for).await) })
            })
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| connect_error(url, e))?;
        Self::migrated(pool, url, health).await
    }

    /// A private, empty in-memory database (one connection, so every query sees the same data), with
    /// the migrations applied. For tests and the demo.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let url = "sqlite::memory:";
        let options = SqliteConnectOptions::from_str(url).map_err(|e| url_error(url, e))?;
        Self::open_in_memory(options, url).await
    }

    /// The lifecycle events and webhook queue over the same pool (the same database, even in memory).
    pub fn event_log(&self) -> crate::EventLog {
        crate::EventLog::Sqlite(self.pool.clone())
    }

    async fn open_in_memory(options: SqliteConnectOptions, url: &str) -> Result<Self, StoreError> {
        let options = options.foreign_keys(true).busy_timeout(BUSY_TIMEOUT);
        // One connection that never expires: an in-memory database lives and dies with its connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| connect_error(url, e))?;
        // One connection that is never replaced: nothing to test before reuse.
        Self::migrated(pool, url, Arc::default()).await
    }

    async fn migrated(pool: SqlitePool, url: &str, health: Arc<PoolHealth>) -> Result<Self, StoreError> {
        MIGRATOR.run(&pool).await.map_err(|e| migrate_error(url, e))?;
        tracing::info!(url = %redact_url(url), "sqlite store ready");
        Ok(Self {
            pool,
            url: redact_url(url),
            schema: (),
            stamper: Arc::new(crate::types::Stamper::new(Arc::new(SystemClock))),
            health,
        })
    }
}

impl fmt::Debug for SqlStore<Sqlite> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Creates the database file mode 0600 when it does not exist yet. An existing file keeps its mode (the
/// operator may have chosen one); a missing folder is left for the connection to report, as before.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    if path.exists() || path.parent().is_some_and(|p| !p.as_os_str().is_empty() && !p.exists()) {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// True for URLs that name an in-memory database (each connection would otherwise get its own).
fn is_memory_url(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

impl Backend for Sqlite {
    const TRACE_NAME: &'static str = "sqlite";
    const ACTOR_IS_USER: &'static str = "u.id = l.actor";
    /// No row locks in SQLite: the claim's `BEGIN IMMEDIATE` already makes it the only writer.
    const ROW_LOCK: &'static str = "";
    /// SQLite's default `BINARY` collation already compares by bytes.
    const BYTE_COLLATE: &'static str = "";

    type Schema = ();

    fn exec<'c>(conn: &'c mut SqliteConnection) -> impl Executor<'c, Database = Self> {
        conn
    }

    fn pool_exec<'p>(pool: &'p SqlitePool) -> impl Executor<'p, Database = Self> {
        pool
    }

    /// Starts a write transaction holding SQLite's write lock from the first statement, so that a
    /// read-then-write transaction cannot fail with `SQLITE_BUSY` when another writer commits first.
    async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Nothing to do: `BEGIN IMMEDIATE` already serialises every write transaction.
    async fn lock_admin_set(_conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }

    fn bind<'q, T: DbValue<'q>>(arguments: &mut SqliteArguments<'q>, value: T) -> Result<(), BoxDynError> {
        arguments.add(value)
    }

    fn decode<R: FromDbRow>(row: &SqliteRow) -> Result<R, sqlx::Error> {
        <R as FromRow<SqliteRow>>::from_row(row)
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}
