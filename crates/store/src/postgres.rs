//! The PostgreSQL adapter, for production deployments: the product lives in a schema of its own inside
//! the application's database.
//!
//! Promises: connecting fails fast with a one-line [`StoreError::Unavailable`] naming the (redacted) URL
//! and the cause; every table, index, trigger and the migration history (`_sqlx_migrations`) live in the
//! schema named by `DATABASE_SCHEMA` (default [`DEFAULT_SCHEMA`]), which is created if missing (a clear
//! error if the role may not) and is the only entry of every connection's `search_path`, so the
//! application's own `public.users` or `public._sqlx_migrations` are never read or written; a database
//! still in the layout of releases before the schema (the product's tables in `public`) is moved into the
//! schema at connect, in one transaction, and only when `public` carries the product's own fingerprint
//! (see [`adopt_public_layout`]); migrations run at connect (serialised across processes by `sqlx`'s
//! advisory lock); unique violations are told apart by constraint name (see [`crate::error`]). Ids are
//! `UUID`, times `TIMESTAMPTZ` (microsecond precision).

use crate::reconnect::PoolHealth;
use crate::redact_url;
use crate::sql::{Backend, DbValue, FromDbRow, SqlStore};
use crate::url::{connect_error, connect_timeout, migrate_error, url_error};
use admin_provisioner_core::clock::SystemClock;
use admin_provisioner_core::store::StoreError;
use sqlx::error::BoxDynError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult, PgRow};
use sqlx::{Arguments, Connection, Executor, FromRow, PgConnection, Postgres, Transaction};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How many connections the pool opens at most.
const MAX_CONNECTIONS: u32 = 10;

/// How long a query waits for a free connection (and connect waits for the server) before failing.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema the product uses when `DATABASE_SCHEMA` is not set.
pub const DEFAULT_SCHEMA: &str = "admin_provisioner";

/// The longest schema name accepted: PostgreSQL's 63-byte identifier limit, less the `_events` suffix of
/// the NOTIFY channel.
const MAX_SCHEMA_LEN: usize = 56;

/// The tables of the first release, which put them in `public`.
const LEGACY_TABLES: [&str; 5] = ["users", "admin_info", "sagas", "audit_log", "idempotency_keys"];

/// The version of the first migration, whose checksum identifies the product's history in `public`.
const INIT_VERSION: i64 = 20240101000000;

/// The table privileges the product's SQL needs (the README's least-privilege role grants exactly these).
pub const REQUIRED_TABLE_PRIVILEGES: [(&str, &str); 8] = [
    ("users", "SELECT, INSERT, UPDATE, DELETE"),
    ("admin_info", "SELECT, INSERT, UPDATE, DELETE"),
    ("sagas", "SELECT, INSERT, UPDATE"),
    ("audit_log", "SELECT, INSERT"),
    ("idempotency_keys", "SELECT, INSERT, UPDATE, DELETE"),
    ("events", "SELECT, INSERT"),
    ("webhook_deliveries", "SELECT, INSERT, UPDATE"),
    ("webhook_attempts", "SELECT, INSERT"),
];

/// The sequences the product draws ids from.
pub const REQUIRED_SEQUENCES: [&str; 3] = ["audit_log_id_seq", "events_id_seq", "webhook_attempts_id_seq"];

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// An [`AdminStore`](admin_provisioner_core::store::AdminStore) and
/// [`SagaLog`](admin_provisioner_core::store::SagaLog) over PostgreSQL. Cheap to clone (shares one pool).
pub type PostgresStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user:password@host:port/database?…`, or `postgresql://…`) with the
    /// product in schema [`DEFAULT_SCHEMA`]; see [`PostgresStore::connect_in_schema`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_in_schema(url, DEFAULT_SCHEMA).await
    }

    /// Connects to `url` with every table of the product in `schema`: creates the schema if missing,
    /// moves a first-release layout out of `public` (see [`adopt_public_layout`]), runs the migrations in
    /// the schema, and opens a pool whose connections all have `search_path` set to the schema alone.
    ///
    /// Errors: [`StoreError::Unavailable`] when the server cannot be reached or refuses the login (the
    /// message names the URL with its password masked, and the cause); [`StoreError::Other`] for a
    /// malformed URL, an invalid schema name, a schema the role may not create or use (the message says
    /// what to grant), a `public` layout that looks like the product's but is incomplete, or a failed
    /// migration.
    #[tracing::instrument(skip_all, fields(url = %redact_url(url), schema = schema))]
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        validate_schema(schema)?;
        let options = PgConnectOptions::from_str(url).map_err(|e| url_error(url, e))?;
        // One direct connection first: the pool would retry until its timeout and report only that,
        // losing the cause (refused, unknown host, bad password, no such database).
        let mut first = match tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options)).await {
            Ok(connected) => connected.map_err(|e| connect_error(url, e))?,
            Err(_) => return Err(connect_timeout(url, ACQUIRE_TIMEOUT)),
        };
        ensure_schema(&mut first, schema)
            .await
            .map_err(|e| schema_error(url, schema, e))?;
        adopt_public_layout(&mut first, schema).await?;
        set_search_path(&mut first, schema)
            .await
            .map_err(|e| connect_error(url, e))?;
        MIGRATOR.run(&mut first).await.map_err(|e| migrate_error(url, e))?;
        first.close().await.ok();
        let search_path = search_path_sql(schema);
        let health = Arc::new(PoolHealth::default());
        let hook_health = health.clone();
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // No ping before each acquire (a round trip per statement on PostgreSQL): a call whose
            // connection turns out dead runs again on a fresh one (see `crate::reconnect`), and once one
            // connection is found dead every connection idle since before is pinged before its next use;
            // sqlx still tests each connection when it is returned.
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                let health = hook_health.clone();
                Box::pin(async move { Ok(health.check(conn, meta.idle_for).await) })
            })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _meta| {
                let sql = search_path.clone();
                Box::pin(async move { conn.execute(sql.as_str()).await.map(|_| ()) })
            })
            .connect_with(options)
            .await
            .map_err(|e| connect_error(url, e))?;
        tracing::info!(url = %redact_url(url), schema, "postgres store ready");
        Ok(Self {
            pool,
            url: redact_url(url),
            schema: schema.to_string(),
            stamper: Arc::new(crate::types::Stamper::new(Arc::new(SystemClock))),
            health,
        })
    }

    /// The schema the product's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The lifecycle events and webhook queue over the same pool.
    pub fn event_log(&self) -> crate::EventLog {
        crate::EventLog::Postgres(self.pool.clone(), self.schema.clone())
    }

    /// What the connected role lacks of the privileges the product needs, one line per object (empty
    /// when nothing is missing): `USAGE` on the schema, and per table and sequence the rights the
    /// product's SQL uses. `CREATE` on the schema is reported separately by
    /// [`PostgresStore::can_create_in_schema`] (only migrations need it).
    pub async fn missing_privileges(&self) -> Result<Vec<String>, StoreError> {
        let mut missing = Vec::new();
        let usage: bool = sqlx::query_scalar("SELECT has_schema_privilege($1, 'USAGE')")
            .bind(&self.schema)
            .fetch_one(&self.pool)
            .await
            .map_err(crate::error::map_err)?;
        if !usage {
            missing.push(format!("USAGE on schema {}", self.schema));
            return Ok(missing);
        }
        for (table, privileges) in REQUIRED_TABLE_PRIVILEGES {
            let mut lacking = Vec::new();
            for privilege in privileges.split(", ") {
                let ok: bool =
                    sqlx::query_scalar("SELECT has_table_privilege(format('%I.%I', $1::text, $2::text), $3)")
                        .bind(&self.schema)
                        .bind(table)
                        .bind(privilege)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(crate::error::map_err)?;
                if !ok {
                    lacking.push(privilege);
                }
            }
            if !lacking.is_empty() {
                missing.push(format!("{} on {}.{table}", lacking.join(", "), self.schema));
            }
        }
        for sequence in REQUIRED_SEQUENCES {
            let ok: bool =
                sqlx::query_scalar("SELECT has_sequence_privilege(format('%I.%I', $1::text, $2::text), 'USAGE')")
                    .bind(&self.schema)
                    .bind(sequence)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(crate::error::map_err)?;
            if !ok {
                missing.push(format!("USAGE on sequence {}.{sequence}", self.schema));
            }
        }
        Ok(missing)
    }

    /// True when the role may create objects in the schema (needed by the migrations of an upgrade).
    pub async fn can_create_in_schema(&self) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT has_schema_privilege($1, 'CREATE')")
            .bind(&self.schema)
            .fetch_one(&self.pool)
            .await
            .map_err(crate::error::map_err)
    }
}

impl fmt::Debug for SqlStore<Postgres> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.url)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Accepts a plain lower-case SQL identifier (`[a-z_][a-z0-9_]*`, at most 56 characters, not `pg_…`):
/// the name is used unquoted by people reading the README's SQL, and inside the NOTIFY channel's name.
pub fn validate_schema(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= MAX_SCHEMA_LEN
        && !schema.starts_with("pg_");
    if valid {
        Ok(())
    } else {
        Err(StoreError::Other(format!(
            "DATABASE_SCHEMA {schema:?} is not a valid schema name: use lower-case letters, digits and '_' \
             (starting with a letter or '_', at most {MAX_SCHEMA_LEN} characters, not pg_…)"
        )))
    }
}

/// `"schema"` as a quoted identifier (the name is validated, so there is nothing to escape).
fn quote_ident(schema: &str) -> String {
    format!("\"{schema}\"")
}

fn search_path_sql(schema: &str) -> String {
    format!("SET search_path TO {}", quote_ident(schema))
}

async fn set_search_path(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    conn.execute(search_path_sql(schema).as_str()).await.map(|_| ())
}

/// Why the schema cannot be used.
enum SchemaProblem {
    /// The schema is missing and the role may not create it.
    CannotCreate {
        role: String,
        database: String,
        cause: String,
    },
    /// The schema exists but the role has no `USAGE` on it.
    NoUsage { role: String },
    /// The database said something else.
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for SchemaProblem {
    fn from(e: sqlx::Error) -> Self {
        SchemaProblem::Sql(e)
    }
}

/// Creates `schema` unless it exists (checked first: `CREATE SCHEMA IF NOT EXISTS` needs the `CREATE`
/// privilege on the database even when the schema is there), and checks that the role may use it.
async fn ensure_schema(conn: &mut PgConnection, schema: &str) -> Result<(), SchemaProblem> {
    let (exists, role, database): (bool, String, String) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), current_user::text, current_database()::text",
    )
    .bind(schema)
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        let created = conn
            .execute(format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)).as_str())
            .await;
        if let Err(e) = created {
            let denied = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|code| code == "42501");
            if denied {
                let cause = e
                    .as_database_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_default();
                return Err(SchemaProblem::CannotCreate { role, database, cause });
            }
            return Err(SchemaProblem::Sql(e));
        }
        tracing::info!(schema, "created schema");
        return Ok(());
    }
    let usage: bool = sqlx::query_scalar("SELECT has_schema_privilege($1, 'USAGE')")
        .bind(schema)
        .fetch_one(&mut *conn)
        .await?;
    if !usage {
        return Err(SchemaProblem::NoUsage { role });
    }
    Ok(())
}

fn schema_error(url: &str, schema: &str, problem: SchemaProblem) -> StoreError {
    match problem {
        SchemaProblem::CannotCreate { role, database, cause } => StoreError::Other(format!(
            "schema {schema} does not exist in database {database} and role {role} may not create it ({cause}): \
             have the database owner run `CREATE SCHEMA {schema} AUTHORIZATION {role};`, or set DATABASE_SCHEMA \
             to a schema the role owns"
        )),
        SchemaProblem::NoUsage { role } => StoreError::Other(format!(
            "role {role} has no USAGE privilege on schema {schema}: have its owner run \
             `GRANT USAGE, CREATE ON SCHEMA {schema} TO {role};`"
        )),
        SchemaProblem::Sql(e) => crate::url::connect_error(url, e),
    }
}

/// Moves the layout of the first release (the product's tables and migration history in `public`) into
/// `schema`, in one transaction under an advisory lock, so nothing is lost and concurrent start-ups do it
/// once.
///
/// The move happens only when all of these hold; otherwise nothing in `public` is touched:
/// - `schema` is not `public` and has no `_sqlx_migrations` of its own yet (a fresh or an old install);
/// - the role may read `public._sqlx_migrations` (one it may not read is the application's);
/// - `public._sqlx_migrations` has the product's first migration (version `20240101000000`) with the
///   checksum of the product's own SQL: an application's history cannot carry it by accident;
/// - `public` has all five tables of that migration, each with the product's constraint names
///   (`users_cognito_sub_key`, `admin_info_user_id_fkey`, `sagas_unfinished_email_key`,
///   `audit_log_no_update` trigger, `idempotency_keys_pkey`).
///
/// What moves: the five tables (with their indexes, constraints, triggers and the `audit_log` id
/// sequence), the trigger function of `audit_log`, and the product's rows of `public._sqlx_migrations`
/// (the whole table when every row is the product's; otherwise only its rows, leaving the application's
/// rows where they are).
///
/// Errors ([`StoreError::Other`], nothing moved): the history is the product's but a table is missing or
/// is not the product's, or the history in `public` has product migrations this layout does not know.
pub async fn adopt_public_layout(conn: &mut PgConnection, schema: &str) -> Result<(), StoreError> {
    let sql_err = |e: sqlx::Error| StoreError::Other(format!("cannot check for the product's tables in public: {e}"));
    if schema == "public" {
        return Ok(());
    }
    let mut tx = conn.begin().await.map_err(sql_err)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('admin-provisioner:adopt-public-layout'))")
        .execute(&mut *tx)
        .await
        .map_err(sql_err)?;
    let (own_history, public_history): (bool, bool) = sqlx::query_as(
        "SELECT to_regclass(format('%I._sqlx_migrations', $1::text)) IS NOT NULL, \
                to_regclass('public._sqlx_migrations') IS NOT NULL",
    )
    .bind(schema)
    .fetch_one(&mut *tx)
    .await
    .map_err(sql_err)?;
    if own_history || !public_history {
        return Ok(());
    }
    // A history the role may not even read is the application's (the first release owned its own).
    let readable: bool = sqlx::query_scalar("SELECT has_table_privilege('public._sqlx_migrations', 'SELECT')")
        .fetch_one(&mut *tx)
        .await
        .map_err(sql_err)?;
    if !readable {
        return Ok(());
    }
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT version, checksum FROM public._sqlx_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(sql_err)?;
    let is_ours = |version: i64, checksum: &[u8]| {
        MIGRATOR
            .iter()
            .any(|m| m.version == version && m.checksum.as_ref() == checksum)
    };
    let fingerprint = rows
        .iter()
        .any(|(version, checksum)| *version == INIT_VERSION && is_ours(*version, checksum));
    if !fingerprint {
        return Ok(());
    }
    let ours: Vec<i64> = rows.iter().filter(|(v, c)| is_ours(*v, c)).map(|(v, _)| *v).collect();
    if ours.iter().any(|v| *v != INIT_VERSION) {
        return Err(StoreError::Other(format!(
            "public._sqlx_migrations has admin-provisioner migrations {ours:?} beyond the first release's; \
             move the product's tables into schema {schema} by hand (ALTER TABLE … SET SCHEMA {schema})"
        )));
    }

    // Each table must be there and carry the product's own constraint (or trigger) name.
    let checks = [
        ("users", "SELECT 1 FROM pg_constraint WHERE conrelid = 'public.users'::regclass AND conname = 'users_cognito_sub_key'"),
        ("admin_info", "SELECT 1 FROM pg_constraint WHERE conrelid = 'public.admin_info'::regclass AND conname = 'admin_info_user_id_fkey'"),
        ("sagas", "SELECT 1 FROM pg_class WHERE relname = 'sagas_unfinished_email_key' AND relnamespace = 'public'::regnamespace"),
        ("audit_log", "SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.audit_log'::regclass AND tgname = 'audit_log_no_update'"),
        ("idempotency_keys", "SELECT 1 FROM pg_constraint WHERE conrelid = 'public.idempotency_keys'::regclass AND conname = 'idempotency_keys_pkey'"),
    ];
    for (table, check) in checks {
        let present: bool = sqlx::query_scalar("SELECT to_regclass(format('public.%I', $1::text)) IS NOT NULL")
            .bind(table)
            .fetch_one(&mut *tx)
            .await
            .map_err(sql_err)?;
        let own = present
            && sqlx::query_scalar::<_, i32>(check)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql_err)?
                .is_some();
        if !own {
            return Err(StoreError::Other(format!(
                "public._sqlx_migrations records admin-provisioner's first migration, but public.{table} is {}; \
                 nothing was moved: restore the table or move the product's tables into schema {schema} by hand",
                if present { "not the product's table" } else { "missing" }
            )));
        }
    }

    let target = quote_ident(schema);
    let trigger_function: Option<String> = sqlx::query_scalar(
        "SELECT p.proname::text FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid \
         WHERE t.tgrelid = 'public.audit_log'::regclass AND t.tgname = 'audit_log_no_update' \
         AND p.pronamespace = 'public'::regnamespace",
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(sql_err)?;
    for table in LEGACY_TABLES {
        tx.execute(format!("ALTER TABLE public.\"{table}\" SET SCHEMA {target}").as_str())
            .await
            .map_err(|e| StoreError::Other(format!("cannot move public.{table} into schema {schema}: {e}")))?;
    }
    if let Some(function) = trigger_function {
        tx.execute(format!("ALTER FUNCTION public.\"{function}\"() SET SCHEMA {target}").as_str())
            .await
            .map_err(|e| StoreError::Other(format!("cannot move public.{function}() into schema {schema}: {e}")))?;
    }
    if ours.len() == rows.len() {
        tx.execute(format!("ALTER TABLE public._sqlx_migrations SET SCHEMA {target}").as_str())
            .await
            .map_err(sql_err)?;
    } else {
        // The application shares the history table: copy the product's rows, leave the application's.
        let copy = format!(
            "CREATE TABLE {target}._sqlx_migrations (LIKE public._sqlx_migrations INCLUDING ALL); \
             INSERT INTO {target}._sqlx_migrations SELECT * FROM public._sqlx_migrations WHERE version = {INIT_VERSION}; \
             DELETE FROM public._sqlx_migrations WHERE version = {INIT_VERSION}"
        );
        sqlx::raw_sql(&copy).execute(&mut *tx).await.map_err(sql_err)?;
    }
    tx.commit().await.map_err(sql_err)?;
    tracing::warn!(
        schema,
        "moved admin-provisioner's tables and migration history from public into schema {schema}"
    );
    Ok(())
}

impl Backend for Postgres {
    const TRACE_NAME: &'static str = "postgres";
    /// Actors that are not admins (`operator`, `reconciler`, …) are no uuid: cast only what looks like one.
    const ACTOR_IS_USER: &'static str = "u.id = CAST(CASE WHEN l.actor ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN l.actor END AS uuid)";
    /// The saga claim skips rows another claimer holds instead of waiting for them.
    const ROW_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";
    /// `COLLATE "C"`, served by the index `users_cognito_username_c_idx`.
    const BYTE_COLLATE: &'static str = " COLLATE \"C\"";

    /// The schema every connection's `search_path` names.
    type Schema = String;

    fn exec<'c>(conn: &'c mut PgConnection) -> impl Executor<'c, Database = Self> {
        conn
    }

    fn pool_exec<'p>(pool: &'p PgPool) -> impl Executor<'p, Database = Self> {
        pool
    }

    /// Starts a write transaction (READ COMMITTED; the unique indexes arbitrate races).
    async fn begin_write(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        pool.begin().await
    }

    /// A transaction-scoped advisory lock.
    async fn lock_admin_set(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('admin-provisioner:active-admins'))")
            .execute(conn)
            .await
            .map(|_| ())
    }

    fn bind<'q, T: DbValue<'q>>(arguments: &mut PgArguments, value: T) -> Result<(), BoxDynError> {
        arguments.add(value)
    }

    fn decode<R: FromDbRow>(row: &PgRow) -> Result<R, sqlx::Error> {
        <R as FromRow<PgRow>>::from_row(row)
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}
