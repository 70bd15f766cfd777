//! The SQL both adapters run: one generic store, [`SqlStore<B>`](SqlStore), implements every port once,
//! one file per port ([`AdminReads`](admin_provisioner_core::store::AdminReads) in `admin_reads.rs`,
//! `AdminWrites` in `admin_writes.rs`, `AuditLog` in `audit_log.rs`, `IdempotencyKeys` in
//! `idempotency.rs`, `SagaLog` in `saga_log.rs`, `ScimTokenStore` in `scim_tokens.rs`, the reconciler's
//! queries in `reconcile.rs`). [`SqliteStore`](crate::SqliteStore) and [`PostgresStore`](crate::PostgresStore)
//! are `SqlStore<Sqlite>` and `SqlStore<Postgres>`, so the two adapters cannot drift apart in semantics.
//!
//! The schemas of the two databases have the same tables, columns and constraint names, and
//! [`DbId`](crate::types::DbId) / [`DbTime`](crate::types::DbTime) encode for either, so one text of SQL
//! (with `$n` placeholders, which SQLite also understands) serves both. What differs per database is the
//! [`Backend`] trait, implemented in `sqlite.rs` and `postgres.rs`: how a write transaction starts (SQLite
//! takes the write lock up front with `BEGIN IMMEDIATE` so that concurrent writers queue instead of
//! failing), the lock serialising changes of the set of active admins, a few SQL fragments, and the glue
//! that lets generic code run a query without naming `sqlx`'s per-database bounds (see [`Sql`]).

mod admin_reads;
mod admin_writes;
mod audit_log;
mod idempotency;
mod reconcile;
mod saga_log;
mod scim_tokens;

use crate::error::map_err;
use crate::reconnect::{PoolHealth, Reconnecting};
use crate::types::{AdminRow, DbId, DbTime, Stamper};
use admin_provisioner_core::clock::Clock;
use admin_provisioner_core::domain::{AdminRecord, UserId};
use admin_provisioner_core::pages::StoredAdminFilter;
use admin_provisioner_core::store::{AuditEntry, NewAdmin, SagaState, StoreError};
use const_format::concatcp;
use sqlx::error::BoxDynError;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, Encode, Executor, FromRow, Pool, Postgres, Sqlite, Transaction, Type};
use std::future::Future;
use std::sync::Arc;
use uuid::Uuid;

/// What differs between the databases. Implemented for [`sqlx::Sqlite`] (in `sqlite.rs`) and
/// [`sqlx::Postgres`] (in `postgres.rs`); everything else is written once, generic over `B: Backend`.
///
/// The associated functions exist because `sqlx` states what a database can do as bounds on other
/// types (`&mut Connection: Executor`, `DbId: Encode<DB>`, `AdminRow: FromRow<DB::Row>`), which generic
/// code would have to repeat on every function; each database proves them once, here.
pub trait Backend: Database {
    /// The adapter's name in tracing spans (`db = "sqlite"`).
    const TRACE_NAME: &'static str;
    /// The SQL condition joining `audit_log l` to `users u` on the actor (the actor column is text).
    const ACTOR_IS_USER: &'static str;
    /// Appended to the saga claim's candidate `SELECT` (row locks to skip, if the database has them).
    const ROW_LOCK: &'static str;
    /// Appended to `u.cognito_username` to compare it by bytes (Rust's `str` order).
    const BYTE_COLLATE: &'static str;

    /// Where the product lives beyond the pool: PostgreSQL's schema name; nothing for SQLite.
    type Schema: Clone + Send + Sync + 'static;

    /// `conn` as an executor.
    fn exec<'c>(conn: &'c mut Self::Connection) -> impl Executor<'c, Database = Self>;

    /// `pool` as an executor (each statement on a pooled connection).
    fn pool_exec<'p>(pool: &'p Pool<Self>) -> impl Executor<'p, Database = Self>;

    /// Starts a write transaction.
    fn begin_write(pool: &Pool<Self>) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;

    /// Serialises the write transaction on `conn` with every other one that changes the set of active
    /// admins, until it ends (so two concurrent removals cannot both see "one other active admin left").
    fn lock_admin_set(conn: &mut Self::Connection) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Binds `value` to the next placeholder of a statement's `arguments`.
    fn bind<'q, T: DbValue<'q>>(arguments: &mut Self::Arguments<'q>, value: T) -> Result<(), BoxDynError>;

    /// Decodes `row` (by column name, as `sqlx::FromRow` does).
    fn decode<R: FromDbRow>(row: &Self::Row) -> Result<R, sqlx::Error>;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// A value both databases can bind (ids, times, text, numbers, booleans, and `Option`s of them).
pub trait DbValue<'q>: Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres> + Send + 'q {}

impl<'q, T> DbValue<'q> for T where
    T: Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres> + Send + 'q
{
}

/// A row shape both databases can decode (the `FromRow` structs of `crate::types`, and tuples).
pub trait FromDbRow: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

impl<T> FromDbRow for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// One statement being prepared for database `B`, like `sqlx::query`, with binding and decoding that need
/// no bounds beyond `B: Backend`. Errors are `sqlx`'s, for the caller to map (usually with
/// [`map_err`](crate::error::map_err)).
pub struct Sql<'q, B: Backend> {
    text: &'q str,
    /// The values bound so far, or why one could not be encoded (reported when the statement runs, as
    /// `sqlx::query` does).
    arguments: Result<B::Arguments<'q>, BoxDynError>,
}

/// The statement `text` (with `$1`, `$2`, … placeholders).
pub fn sql<'q, B: Backend>(text: &'q str) -> Sql<'q, B> {
    Sql {
        text,
        arguments: Ok(Default::default()),
    }
}

impl<'q, B: Backend> Sql<'q, B> {
    /// Binds `value` to the next placeholder.
    pub fn bind<T: DbValue<'q>>(mut self, value: T) -> Self {
        if let Ok(arguments) = &mut self.arguments {
            if let Err(e) = B::bind(arguments, value) {
                self.arguments = Err(e);
            }
        }
        self
    }

    /// What `sqlx` executes: the text and its arguments.
    fn statement(self) -> Result<(&'q str, Option<B::Arguments<'q>>), sqlx::Error> {
        Ok((self.text, Some(self.arguments.map_err(sqlx::Error::Encode)?)))
    }

    /// Runs the statement; the number of rows it changed.
    pub async fn execute<'c>(self, on: impl Executor<'c, Database = B>) -> Result<u64, sqlx::Error> {
        let done = on.execute(self.statement()?).await?;
        Ok(B::rows_affected(&done))
    }

    /// The first row, if any.
    pub async fn fetch_optional<'c, R: FromDbRow>(
        self,
        on: impl Executor<'c, Database = B>,
    ) -> Result<Option<R>, sqlx::Error> {
        on.fetch_optional(self.statement()?)
            .await?
            .map(|row| B::decode(&row))
            .transpose()
    }

    /// Exactly one row.
    pub async fn fetch_one<'c, R: FromDbRow>(self, on: impl Executor<'c, Database = B>) -> Result<R, sqlx::Error> {
        B::decode(&on.fetch_one(self.statement()?).await?)
    }

    /// Every row.
    pub async fn fetch_all<'c, R: FromDbRow>(self, on: impl Executor<'c, Database = B>) -> Result<Vec<R>, sqlx::Error> {
        on.fetch_all(self.statement()?).await?.iter().map(B::decode).collect()
    }

    /// The first column of the first row, if any.
    pub async fn fetch_optional_scalar<'c, T>(
        self,
        on: impl Executor<'c, Database = B>,
    ) -> Result<Option<T>, sqlx::Error>
    where
        (T,): FromDbRow,
    {
        Ok(self.fetch_optional::<(T,)>(on).await?.map(|(value,)| value))
    }

    /// The first column of exactly one row.
    pub async fn fetch_one_scalar<'c, T>(self, on: impl Executor<'c, Database = B>) -> Result<T, sqlx::Error>
    where
        (T,): FromDbRow,
    {
        Ok(self.fetch_one::<(T,)>(on).await?.0)
    }
}

/// An [`AdminStore`](admin_provisioner_core::store::AdminStore), [`SagaLog`](admin_provisioner_core::store::SagaLog),
/// [`ScimTokenStore`](admin_provisioner_core::store::ScimTokenStore) and
/// [`ReconcileStore`](admin_provisioner_core::reconcile::ReconcileStore) over database `B`: see
/// [`SqliteStore`](crate::SqliteStore) and [`PostgresStore`](crate::PostgresStore). Cheap to clone (shares
/// one pool).
pub struct SqlStore<B: Backend> {
    pub(crate) pool: Pool<B>,
    /// The connection URL with any password masked, for messages.
    pub(crate) url: String,
    /// Where the product lives beyond the pool (PostgreSQL's schema).
    pub(crate) schema: B::Schema,
    /// Stamps rows (`created_at`, `updated_at`, event times) from the orchestrator's clock.
    pub(crate) stamper: Arc<Stamper>,
    /// When a pooled connection was last found dead (see [`crate::reconnect`]).
    pub(crate) health: Arc<PoolHealth>,
}

impl<B: Backend> Clone for SqlStore<B> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            url: self.url.clone(),
            schema: self.schema.clone(),
            stamper: self.stamper.clone(),
            health: self.health.clone(),
        }
    }
}

impl<B: Backend> SqlStore<B> {
    /// Stamps rows with `clock` instead of the system clock: give it the orchestrator's, so that the
    /// times recovery compares (saga and lease times, record times) come from one clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.stamper = Arc::new(Stamper::new(clock));
        self
    }

    /// Now, by the store's clock, as the database stores it (strictly increasing per store).
    pub(crate) fn now(&self) -> DbTime {
        self.stamper.now()
    }

    /// The underlying pool, for callers that need raw SQL (tests, diagnostics). On PostgreSQL its
    /// connections have `search_path` set to [`PostgresStore::schema`](crate::PostgresStore::schema).
    pub fn pool(&self) -> &Pool<B> {
        &self.pool
    }

    /// This store with every port call run again on a fresh connection when its pooled connection
    /// turns out dead (see [`crate::reconnect`]); what [`crate::connect`] returns.
    pub fn reconnecting(self) -> Reconnecting<Self> {
        let health = self.health.clone();
        Reconnecting::new(self, health)
    }

    /// The pool as an executor (one statement outside any transaction).
    fn db(&self) -> impl Executor<'_, Database = B> {
        B::pool_exec(&self.pool)
    }

    /// Starts a write transaction (see [`Backend::begin_write`]).
    async fn begin_write(&self) -> Result<Transaction<'static, B>, StoreError> {
        B::begin_write(&self.pool).await.map_err(map_err)
    }
}

/// `users JOIN admin_info` columns in [`AdminRow`] order, with the `FROM`.
const SELECT_ADMIN: &str = "SELECT u.id, u.email, u.email_normalized, u.cognito_username, u.cognito_sub, u.status, \
     u.created_at, u.updated_at, a.invited_by, a.invited_at, a.invite_expires_at, a.invites_sent, \
     a.last_invite_sent_at, a.invite_delivered, a.accepted_at, u.disabled_at, u.external_id, u.scim_profile, \
     u.sessions_valid_after, u.mfa_enrolled_at, a.role \
     FROM users u JOIN admin_info a ON a.user_id = u.id";

/// `sagas` columns in [`SagaRow`](crate::types::SagaRow) order.
const SAGA_COLUMNS: &str = "id, kind, actor, email, email_normalized, user_id, cognito_username, cognito_sub, \
     identity_created_by_saga, invite_delivered, state, attempts, last_error, request_id, \
     started_at, updated_at, owner, lease_expires_at, scim_user_name, scim_external_id, scim_profile, role";

/// How long an incomplete idempotency claim blocks retries before a retry of the same request may take it
/// over (longer than any request can run with its timeouts and retries).
pub(crate) const IDEMPOTENCY_CLAIM_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` prefix pattern and appends the `%`.
pub(crate) fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The `WHERE` clauses of one page of stored admins, with `$n` placeholders numbered from 1, in the order
/// `list_admins_page` binds them: prefix, status time, keyset time, keyset id, limit.
pub(crate) fn admin_page_sql(filter: &StoredAdminFilter, keyset: bool) -> String {
    use admin_provisioner_core::domain::InviteStatus;
    let mut sql = String::from(SELECT_ADMIN);
    let mut clauses: Vec<String> = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    if filter.email_prefix.is_some() {
        clauses.push(format!("u.email_normalized LIKE {} ESCAPE '\\'", next()));
    }
    let active = "(u.status = 'active' OR a.accepted_at IS NOT NULL)";
    let enabled = "u.disabled_at IS NULL";
    match filter.status {
        Some(InviteStatus::Active) => clauses.push(format!("{enabled} AND {active}")),
        Some(InviteStatus::Disabled) => clauses.push("u.disabled_at IS NOT NULL".to_string()),
        Some(InviteStatus::Invited) => clauses.push(format!(
            "{enabled} AND NOT {active} AND a.invite_expires_at > {}",
            next()
        )),
        Some(InviteStatus::Expired) => clauses.push(format!(
            "{enabled} AND NOT {active} AND a.invite_expires_at <= {}",
            next()
        )),
        Some(InviteStatus::Pending | InviteStatus::Failed) => clauses.push("1 = 0".to_string()),
        None => {}
    }
    if keyset {
        let (t, t2, id) = (next(), next(), next());
        clauses.push(format!("(u.created_at > {t} OR (u.created_at = {t2} AND u.id > {id}))"));
    }
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(&format!(" ORDER BY u.created_at, u.id LIMIT {}", next()));
    sql
}

// What the ports' transactions share.

/// The admin of user id `id`, read on `conn`.
async fn admin_by_id<B: Backend>(conn: &mut B::Connection, id: UserId) -> Result<Option<AdminRecord>, StoreError> {
    sql(concatcp!(SELECT_ADMIN, " WHERE u.id = $1"))
        .bind(DbId::from(id))
        .fetch_optional::<AdminRow>(B::exec(conn))
        .await
        .map_err(map_err)?
        .map(AdminRecord::try_from)
        .transpose()
}

/// Appends `audit` to the audit log on `conn`.
async fn insert_audit<B: Backend>(conn: &mut B::Connection, audit: &AuditEntry) -> Result<(), StoreError> {
    sql(
        "INSERT INTO audit_log (actor, action, target, outcome, request_id, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(audit.actor.audit_name())
    .bind(audit.action.as_str())
    .bind(&audit.target)
    .bind(&audit.outcome)
    .bind(&audit.request_id)
    .bind(DbTime::new(audit.at))
    .execute(B::exec(conn))
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Writes one lifecycle event (`crate::events`) about `record` in the caller's transaction.
async fn insert_event<B: Backend>(
    conn: &mut B::Connection,
    kind: &str,
    record: &AdminRecord,
    audit: &AuditEntry,
    now: DbTime,
) -> Result<(), StoreError> {
    sql("INSERT INTO events (type, admin_id, email, data, occurred_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(kind)
        .bind(DbId::from(record.user.id))
        .bind(&record.user.email_normalized)
        .bind(crate::events::admin_event_data(record, audit))
        .bind(now)
        .execute(B::exec(conn))
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Moves saga `id` to `state` (a no-op if it is there already). A missing saga is a bug in the caller,
/// not a missing admin, hence `Other` rather than `NotFound`.
///
/// Completing a saga that was already undone (or is being undone) is refused, so a slow saga can never
/// write records after recovery compensated it: the transaction rolls back.
async fn advance_saga<B: Backend>(
    conn: &mut B::Connection,
    id: Uuid,
    state: SagaState,
    now: DbTime,
) -> Result<(), StoreError> {
    advance_saga_linking::<B>(conn, id, state, now, None).await
}

/// [`advance_saga`], also recording `link`'s Cognito user as the saga's own (the records' transaction
/// completing a provisioning).
async fn advance_saga_linking<B: Backend>(
    conn: &mut B::Connection,
    id: Uuid,
    state: SagaState,
    now: DbTime,
    link: Option<&NewAdmin>,
) -> Result<(), StoreError> {
    if state == SagaState::Completed {
        let current: Option<String> = sql("SELECT state FROM sagas WHERE id = $1")
            .bind(DbId(id))
            .fetch_optional_scalar(B::exec(&mut *conn))
            .await
            .map_err(map_err)?;
        if let Some(current) = current {
            if matches!(current.as_str(), "compensating" | "compensated" | "aborted" | "stuck") {
                return Err(StoreError::Other(format!(
                    "saga {id} is {current}: it was undone, so its records are not written"
                )));
            }
        }
    }
    let changed = match link {
        None => sql("UPDATE sagas SET state = $2, updated_at = $3 WHERE id = $1 AND state <> $2")
            .bind(DbId(id))
            .bind(state.as_str())
            .bind(now),
        // The Cognito user the records link to is logged as the saga's own in the same write (the saga
        // logs nothing between its AdminCreateUser and this transaction).
        Some(admin) => sql(
            "UPDATE sagas SET state = $2, updated_at = $3, cognito_username = $4, cognito_sub = $5, \
             identity_created_by_saga = $6, invite_delivered = $7 WHERE id = $1 AND state <> $2",
        )
        .bind(DbId(id))
        .bind(state.as_str())
        .bind(now)
        .bind(&admin.cognito_username)
        .bind(&admin.cognito_sub)
        .bind(true)
        .bind(admin.invite_delivered),
    }
    .execute(B::exec(&mut *conn))
    .await
    .map_err(map_err)?;
    if changed == 0 {
        let exists: Option<i32> = sql("SELECT 1 FROM sagas WHERE id = $1")
            .bind(DbId(id))
            .fetch_optional_scalar(B::exec(&mut *conn))
            .await
            .map_err(map_err)?;
        if exists.is_none() {
            return Err(StoreError::Other(format!("saga {id} does not exist")));
        }
    }
    Ok(())
}
