//! Column types and row shapes shared by the SQLite and PostgreSQL adapters.
//!
//! The two databases store ids and timestamps differently (PostgreSQL: `UUID` and `TIMESTAMPTZ`;
//! SQLite: hyphenated `TEXT` and RFC 3339 `TEXT`). [`DbId`] and [`DbTime`] hide that difference behind
//! one Rust type each, so the SQL and the row structs below are written once and used by both adapters.
//!
//! Timestamps are truncated to whole microseconds when written ([`DbTime::new`]): that is PostgreSQL's
//! precision, and SQLite stores exactly six fractional digits so text order is time order. A value read
//! back therefore equals the value written only if the latter had no sub-microsecond part; the store's
//! methods return what was read back, never the caller's untruncated input.

use admin_provisioner_core::domain::{Actor, AdminInfo, AdminRecord, Role, User, UserId, UserStatus};
use admin_provisioner_core::store::{
    AuditAction, AuditEntry, AuditEvent, SagaKind, SagaRecord, SagaState, ScimAttributes, StoreError, StoredResponse,
};
use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

/// A UUID column: `UUID` in PostgreSQL, hyphenated lower-case `TEXT` in SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DbId(pub Uuid);

impl From<Uuid> for DbId {
    fn from(u: Uuid) -> Self {
        DbId(u)
    }
}

impl From<UserId> for DbId {
    fn from(u: UserId) -> Self {
        DbId(u.0)
    }
}

impl Type<Postgres> for DbId {
    fn type_info() -> PgTypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <Uuid as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for DbId {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Uuid as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbId {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(DbId(<Uuid as Decode<Postgres>>::decode(value)?))
    }
}

impl Type<Sqlite> for DbId {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for DbId {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0.hyphenated().to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbId {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(DbId(Uuid::parse_str(text)?))
    }
}

/// The store's source of row stamps: the injected clock (the orchestrator's), made strictly increasing
/// per store so that rows written one after the other keep their order even under a clock that stands
/// still (a test's manual clock) or repeats a microsecond: a stamp is the clock's time, or 1 µs after the
/// previous stamp when the clock has not moved past it.
pub(crate) struct Stamper {
    clock: std::sync::Arc<dyn admin_provisioner_core::clock::Clock>,
    last_micros: std::sync::atomic::AtomicI64,
}

impl Stamper {
    pub(crate) fn new(clock: std::sync::Arc<dyn admin_provisioner_core::clock::Clock>) -> Self {
        Self {
            clock,
            last_micros: std::sync::atomic::AtomicI64::new(i64::MIN),
        }
    }

    /// The next stamp.
    pub(crate) fn now(&self) -> DbTime {
        use std::sync::atomic::Ordering;
        let t = truncate_to_micros(self.clock.now()).timestamp_micros();
        let mut prev = self.last_micros.load(Ordering::Relaxed);
        loop {
            let next = t.max(prev.saturating_add(1));
            match self
                .last_micros
                .compare_exchange_weak(prev, next, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return DbTime(DateTime::from_timestamp_micros(next).unwrap_or_else(Utc::now)),
                Err(p) => prev = p,
            }
        }
    }
}

/// A timestamp column: `TIMESTAMPTZ` in PostgreSQL, RFC 3339 `TEXT` with six fractional digits in
/// SQLite. Always whole microseconds (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DbTime(pub DateTime<Utc>);

impl DbTime {
    /// Wraps `t`, truncated to whole microseconds.
    pub(crate) fn new(t: DateTime<Utc>) -> Self {
        DbTime(truncate_to_micros(t))
    }

    /// The current time, truncated to whole microseconds.
    pub(crate) fn now() -> Self {
        Self::new(Utc::now())
    }

    /// The SQLite text form: `2024-05-01T12:00:00.123456Z`.
    fn to_sqlite_text(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl From<DateTime<Utc>> for DbTime {
    fn from(t: DateTime<Utc>) -> Self {
        DbTime::new(t)
    }
}

/// Drops the sub-microsecond part of `t` (the precision both databases keep).
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    // `nanosecond()` may exceed 999_999_999 only for a leap second; integer division keeps that range.
    t.with_nanosecond(t.nanosecond() / 1_000 * 1_000).unwrap_or(t)
}

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&truncate_to_micros(self.0), buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(DbTime(<DateTime<Utc> as Decode<Postgres>>::decode(value)?))
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for DbTime {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(DbTime::new(self.0).to_sqlite_text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(DbTime(DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc)))
    }
}

/// A stored row whose text could not be turned back into a domain value: a broken schema or a row
/// written by something else. Not transient.
fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Other(format!("corrupt row: unknown {what} {value:?}"))
}

/// One row of `users JOIN admin_info`, in the column order of `SELECT_ADMIN` (`crate::sql`).
#[derive(sqlx::FromRow)]
pub(crate) struct AdminRow {
    id: DbId,
    email: String,
    email_normalized: String,
    cognito_username: String,
    cognito_sub: String,
    status: String,
    created_at: DbTime,
    updated_at: DbTime,
    invited_by: Option<DbId>,
    invited_at: DbTime,
    invite_expires_at: DbTime,
    invites_sent: i32,
    last_invite_sent_at: DbTime,
    invite_delivered: bool,
    accepted_at: Option<DbTime>,
    disabled_at: Option<DbTime>,
    external_id: Option<String>,
    scim_profile: Option<String>,
    sessions_valid_after: Option<DbTime>,
    mfa_enrolled_at: Option<DbTime>,
    role: String,
}

impl TryFrom<AdminRow> for AdminRecord {
    type Error = StoreError;

    fn try_from(r: AdminRow) -> Result<Self, StoreError> {
        let status = UserStatus::parse(&r.status).ok_or_else(|| corrupt("user status", &r.status))?;
        let role = Role::parse(&r.role).ok_or_else(|| corrupt("role", &r.role))?;
        Ok(AdminRecord {
            user: User {
                id: UserId(r.id.0),
                email: r.email,
                email_normalized: r.email_normalized,
                cognito_username: r.cognito_username,
                cognito_sub: r.cognito_sub,
                status,
                created_at: r.created_at.0,
                updated_at: r.updated_at.0,
                disabled_at: r.disabled_at.map(|t| t.0),
                external_id: r.external_id,
                scim_profile: r.scim_profile,
                sessions_valid_after: r.sessions_valid_after.map(|t| t.0),
                mfa_enrolled_at: r.mfa_enrolled_at.map(|t| t.0),
            },
            admin_info: AdminInfo {
                user_id: UserId(r.id.0),
                invited_by: r.invited_by.map(|i| UserId(i.0)),
                invited_at: r.invited_at.0,
                invite_expires_at: r.invite_expires_at.0,
                invites_sent: r.invites_sent,
                last_invite_sent_at: r.last_invite_sent_at.0,
                invite_delivered: r.invite_delivered,
                accepted_at: r.accepted_at.map(|t| t.0),
                role,
            },
        })
    }
}

/// One row of `sagas`, in the column order of `SAGA_COLUMNS` (`crate::sql`).
#[derive(sqlx::FromRow)]
pub(crate) struct SagaRow {
    id: DbId,
    kind: String,
    actor: String,
    email: String,
    email_normalized: String,
    user_id: DbId,
    cognito_username: String,
    cognito_sub: Option<String>,
    identity_created_by_saga: bool,
    invite_delivered: bool,
    state: String,
    attempts: i32,
    last_error: Option<String>,
    request_id: Option<String>,
    started_at: DbTime,
    updated_at: DbTime,
    owner: Option<String>,
    lease_expires_at: Option<DbTime>,
    scim_user_name: Option<String>,
    scim_external_id: Option<String>,
    scim_profile: Option<String>,
    role: Option<String>,
}

impl TryFrom<SagaRow> for SagaRecord {
    type Error = StoreError;

    fn try_from(r: SagaRow) -> Result<Self, StoreError> {
        Ok(SagaRecord {
            id: r.id.0,
            kind: SagaKind::parse(&r.kind).ok_or_else(|| corrupt("saga kind", &r.kind))?,
            actor: Actor::from_audit_name(&r.actor).ok_or_else(|| corrupt("actor", &r.actor))?,
            email: r.email,
            email_normalized: r.email_normalized,
            user_id: UserId(r.user_id.0),
            cognito_username: r.cognito_username,
            cognito_sub: r.cognito_sub,
            identity_created_by_saga: r.identity_created_by_saga,
            invite_delivered: r.invite_delivered,
            state: SagaState::parse(&r.state).ok_or_else(|| corrupt("saga state", &r.state))?,
            attempts: r.attempts,
            last_error: r.last_error,
            request_id: r.request_id,
            started_at: r.started_at.0,
            updated_at: r.updated_at.0,
            owner: r.owner,
            lease_expires_at: r.lease_expires_at.map(|t| t.0),
            scim: r.scim_user_name.map(|user_name| ScimAttributes {
                external_id: r.scim_external_id,
                user_name,
                profile: r.scim_profile.unwrap_or_else(|| "{}".to_string()),
            }),
            role: match r.role {
                Some(role) => Some(Role::parse(&role).ok_or_else(|| corrupt("role", &role))?),
                None => None,
            },
        })
    }
}

/// One row of `audit_log`.
#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    request_id: Option<String>,
    at: DbTime,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(r: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditEvent {
            id: r.id,
            entry: AuditEntry {
                actor: Actor::from_audit_name(&r.actor).ok_or_else(|| corrupt("actor", &r.actor))?,
                action: AuditAction::parse(&r.action).ok_or_else(|| corrupt("audit action", &r.action))?,
                target: r.target,
                outcome: r.outcome,
                request_id: r.request_id,
                at: r.at.0,
            },
        })
    }
}

/// One row of `idempotency_keys` (without the key itself).
#[derive(sqlx::FromRow)]
pub(crate) struct IdempotencyRow {
    pub(crate) request_hash: String,
    status: Option<i32>,
    body: Option<String>,
}

impl IdempotencyRow {
    /// The stored response, once the key's request has completed.
    pub(crate) fn response(&self) -> Result<Option<StoredResponse>, StoreError> {
        match (self.status, &self.body) {
            (Some(status), Some(body)) => {
                let status = u16::try_from(status).map_err(|_| corrupt("HTTP status", &status.to_string()))?;
                Ok(Some(StoredResponse {
                    status,
                    body: body.clone(),
                }))
            }
            _ => Ok(None),
        }
    }
}
