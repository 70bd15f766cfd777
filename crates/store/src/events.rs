//! Lifecycle events: the transactional outbox (`events`), its reading API, and the webhook delivery
//! queue with row leases (`webhook_deliveries`) and log (`webhook_attempts`).
//!
//! Promises:
//! - every change of an admin's state writes exactly one row to `events` in the transaction of the
//!   change (the store's write methods, and a trigger on `sagas` for `admin.provisioning_failed`); a
//!   transaction that rolls back leaves none;
//! - ids increase in commit order (PostgreSQL assigns them under a transaction-scoped lock, SQLite has one
//!   writer), so [`EventLog::list_after`] with the last id seen never misses an event;
//! - each event is queued for webhook delivery in the same transaction; [`EventLog::claim_deliveries`]
//!   leases only the oldest undelivered event of each admin, so deliveries are in order per admin and
//!   each attempt is made by one replica; a lease that expires (its replica died) makes the event
//!   claimable again: at least once, never lost.

use crate::error::map_err;
use crate::types::{DbId, DbTime};
use admin_provisioner_core::domain::AdminRecord;
use admin_provisioner_core::store::{AuditEntry, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgListener;
use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;

/// `admin.invited`: `User` + `AdminInfo` written (provisioning or bootstrap completed).
pub const ADMIN_INVITED: &str = "admin.invited";
/// `admin.invite_resent`: a new temporary password and expiry were sent.
pub const ADMIN_INVITE_RESENT: &str = "admin.invite_resent";
/// `admin.activated`: the admin replaced the temporary password (status `active`).
pub const ADMIN_ACTIVATED: &str = "admin.activated";
/// `admin.removed`: both records deleted (a revoked invitation or a removed admin).
pub const ADMIN_REMOVED: &str = "admin.removed";
/// `admin.disabled`: the admin was disabled (`disabled_at` set; Cognito `AdminDisableUser` follows in the
/// same saga, or the change is undone and `admin.enabled` follows).
pub const ADMIN_DISABLED: &str = "admin.disabled";
/// `admin.enabled`: a disabled admin was enabled again (or a disable was undone).
pub const ADMIN_ENABLED: &str = "admin.enabled";
/// `admin.provisioning_failed`: a provisioning saga ended undone (`compensated`, `aborted`) or `stuck`.
pub const ADMIN_PROVISIONING_FAILED: &str = "admin.provisioning_failed";

/// `admin.drift_detected`: reserved for the reconciler (Cognito and the database disagree about an
/// admin); written with [`EventLog::append`].
pub const ADMIN_DRIFT_DETECTED: &str = "admin.drift_detected";

/// `admin.role_changed`: the admin's role changed (`data.previous_role` → `data.role`), written in the
/// role change's transaction.
pub const ADMIN_ROLE_CHANGED: &str = "admin.role_changed";

/// `admin.password_reset`: another admin reset the admin's password (Cognito `AdminResetUserPassword`);
/// their sessions ended in the same transaction.
pub const ADMIN_PASSWORD_RESET: &str = "admin.password_reset";

/// `admin.mfa_reset`: another admin cleared the admin's authenticator; the next sign-in enrols again.
pub const ADMIN_MFA_RESET: &str = "admin.mfa_reset";

/// Every event type the product writes through the store's transactions.
pub const EVENT_TYPES: [&str; 10] = [
    ADMIN_INVITED,
    ADMIN_INVITE_RESENT,
    ADMIN_ACTIVATED,
    ADMIN_REMOVED,
    ADMIN_DISABLED,
    ADMIN_ENABLED,
    ADMIN_PROVISIONING_FAILED,
    ADMIN_ROLE_CHANGED,
    ADMIN_PASSWORD_RESET,
    ADMIN_MFA_RESET,
];

/// The `data` of an admin event: the admin's records after the change (before it, for `admin.removed`),
/// who acted and the request id. Never a secret (the records hold none).
pub(crate) fn admin_event_data(record: &AdminRecord, audit: &AuditEntry) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        admin_id: String,
        email: &'a str,
        status: &'a str,
        role: &'a str,
        actor: String,
        request_id: Option<&'a str>,
        at: DateTime<Utc>,
        user: &'a admin_provisioner_core::domain::User,
        admin_info: &'a admin_provisioner_core::domain::AdminInfo,
    }
    serde_json::to_string(&Data {
        admin_id: record.user.id.to_string(),
        email: &record.user.email,
        status: if record.user.is_disabled() {
            "disabled"
        } else {
            record.user.status.as_str()
        },
        role: record.admin_info.role.as_str(),
        actor: audit.actor.audit_name(),
        request_id: audit.request_id.as_deref(),
        at: audit.at,
        user: &record.user,
        admin_info: &record.admin_info,
    })
    .unwrap_or_else(|_| "{}".to_string())
}

/// The `data` of `admin.role_changed`: [`admin_event_data`] with `previous_role`.
pub(crate) fn role_changed_data(
    record: &AdminRecord,
    audit: &AuditEntry,
    previous: admin_provisioner_core::domain::Role,
) -> String {
    let mut data: serde_json::Value =
        serde_json::from_str(&admin_event_data(record, audit)).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(map) = data.as_object_mut() {
        map.insert("previous_role".into(), previous.as_str().into());
    }
    data.to_string()
}

/// A stored lifecycle event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Monotonic id (in commit order; gaps are possible).
    pub id: i64,
    /// `admin.invited`, `admin.invite_resent`, `admin.activated`, `admin.removed`,
    /// `admin.provisioning_failed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The admin's `users.id` (for a failed provisioning, the id its saga had chosen).
    pub admin_id: Uuid,
    /// The admin's normalised e-mail.
    pub email: String,
    /// When the change was committed (approximately: when it was written).
    pub occurred_at: DateTime<Utc>,
    /// Type-specific fields (see the README).
    pub data: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    #[sqlx(rename = "type")]
    kind: String,
    admin_id: DbId,
    email: String,
    data: String,
    occurred_at: DbTime,
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        Event {
            id: r.id,
            kind: r.kind,
            admin_id: r.admin_id.0,
            email: r.email,
            occurred_at: r.occurred_at.0,
            data: serde_json::from_str(&r.data).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// An event leased for one delivery attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The event.
    pub event: Event,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
}

/// The outcome of one delivery attempt, for [`EventLog::finish_delivery`].
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptOutcome {
    /// True when the receiver answered 2xx.
    pub delivered: bool,
    /// The HTTP status, if the receiver answered.
    pub status: Option<u16>,
    /// Why it failed (never a secret: no URL query, no signature).
    pub error: Option<String>,
    /// The receiver's URL without query, fragment or credentials.
    pub url: String,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration: std::time::Duration,
    /// When to try again if it failed.
    pub retry_at: DateTime<Utc>,
}

/// Delivery counts, for `/metrics`-style reporting and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryStats {
    /// Events still to deliver.
    pub pending: i64,
    /// Events delivered.
    pub delivered: i64,
    /// Attempts logged.
    pub attempts: i64,
}

/// Read access to the outbox and the webhook queue, over the same database as the store.
#[derive(Clone, Debug)]
pub enum EventLog {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL, with the product's schema (its NOTIFY channel is `<schema>_events`).
    Postgres(PgPool, String),
}

/// Runs the same code over either pool (the SQL text is shared; `DbId`/`DbTime` encode for both).
macro_rules! with_pool {
    ($log:expr, $pool:ident => $body:expr) => {
        match $log {
            EventLog::Sqlite($pool) => $body,
            EventLog::Postgres($pool, _) => $body,
        }
    };
}

const EVENT_COLUMNS: &str = "id, type, admin_id, email, data, occurred_at";

impl EventLog {
    /// The PostgreSQL NOTIFY channel (`<schema>_events`), or `None` on SQLite.
    pub fn notify_channel(&self) -> Option<String> {
        match self {
            EventLog::Sqlite(_) => None,
            EventLog::Postgres(_, schema) => Some(format!("{schema}_events")),
        }
    }

    /// A listener on [`EventLog::notify_channel`] (PostgreSQL only): each notification's payload is
    /// `{"id","type","admin_id"}` of a committed event.
    pub async fn listen(&self) -> Result<Option<PgListener>, StoreError> {
        match self {
            EventLog::Sqlite(_) => Ok(None),
            EventLog::Postgres(pool, schema) => {
                let mut listener = PgListener::connect_with(pool).await.map_err(map_err)?;
                listener.listen(&format!("{schema}_events")).await.map_err(map_err)?;
                Ok(Some(listener))
            }
        }
    }

    /// Up to `limit` (1..=1000) events with an id greater than `after`, oldest first.
    pub async fn list_after(&self, after: i64, limit: i64) -> Result<Vec<Event>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2");
        let rows: Vec<EventRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(after)
            .bind(limit.clamp(1, 1000))
            .fetch_all(pool)
            .await
            .map_err(map_err)?);
        Ok(rows.into_iter().map(Event::from).collect())
    }

    /// Appends one event in a transaction of its own (for writers without a store transaction, such as
    /// the reconciler reporting drift); queued for webhooks and announced by NOTIFY like every other.
    /// Returns its id.
    pub async fn append(
        &self,
        kind: &str,
        admin_id: Uuid,
        email: &str,
        data: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let sql =
            "INSERT INTO events (type, admin_id, email, data, occurred_at) VALUES ($1, $2, $3, $4, $5) RETURNING id";
        with_pool!(self, pool => sqlx::query_scalar::<_, i64>(sql)
            .bind(kind)
            .bind(DbId(admin_id))
            .bind(email)
            .bind(data.to_string())
            .bind(DbTime::now())
            .fetch_one(pool)
            .await
            .map_err(map_err))
    }

    /// The greatest event id (0 when there is none).
    pub async fn last_id(&self) -> Result<i64, StoreError> {
        with_pool!(self, pool => sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM events")
            .fetch_one(pool)
            .await
            .map_err(map_err))
    }

    /// One event.
    pub async fn get(&self, id: i64) -> Result<Option<Event>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1");
        let row: Option<EventRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(map_err)?);
        Ok(row.map(Event::from))
    }

    /// Leases up to `limit` events due for delivery to `owner` until `now + lease`: only the oldest
    /// undelivered event of each admin is eligible (order per admin), and only if no live lease holds
    /// it (one replica per attempt). Returns them oldest first with their attempt numbers.
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let lease_until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        // The outer conditions repeat the inner ones: under READ COMMITTED, PostgreSQL re-checks them on
        // a row another replica has just leased, and skips it.
        let sql = "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
                   WHERE state = 'pending' AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until < $3) \
                   AND event_id IN ( \
                     SELECT d.event_id FROM webhook_deliveries d \
                     WHERE d.state = 'pending' AND d.next_attempt_at <= $3 \
                     AND (d.lease_until IS NULL OR d.lease_until < $3) \
                     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.state = 'pending' \
                                     AND p.admin_id = d.admin_id AND p.event_id < d.event_id) \
                     ORDER BY d.event_id LIMIT $4) \
                   RETURNING event_id, attempts";
        let mut claimed: Vec<(i64, i32)> = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(owner)
            .bind(DbTime::new(lease_until))
            .bind(DbTime::new(now))
            .bind(limit.max(1))
            .fetch_all(pool)
            .await
            .map_err(map_err)?);
        claimed.sort_unstable();
        let mut out = Vec::with_capacity(claimed.len());
        for (id, attempt) in claimed {
            if let Some(event) = self.get(id).await? {
                out.push(Delivery { event, attempt });
            }
        }
        Ok(out)
    }

    /// Records one attempt in the delivery log and, if `owner` still holds the lease, its outcome:
    /// delivered, or due again at `outcome.retry_at`. Returns false when the lease was lost (it expired
    /// and another replica took the event): the attempt is logged, the state left to the new holder.
    pub async fn finish_delivery(
        &self,
        event_id: i64,
        attempt: i32,
        owner: &str,
        outcome: &AttemptOutcome,
    ) -> Result<bool, StoreError> {
        let status = outcome.status.map(i32::from);
        let error = outcome.error.as_deref().map(|e| truncate(e, 500));
        let duration_ms = i64::try_from(outcome.duration.as_millis()).unwrap_or(i64::MAX);
        let log =
            "INSERT INTO webhook_attempts (event_id, attempt, replica, url, started_at, duration_ms, status, error) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let update = if outcome.delivered {
            "UPDATE webhook_deliveries SET state = 'delivered', delivered_at = $3, lease_owner = NULL, \
             lease_until = NULL, last_status = $4, last_error = $5 WHERE event_id = $1 AND lease_owner = $2"
        } else {
            "UPDATE webhook_deliveries SET next_attempt_at = $3, lease_owner = NULL, lease_until = NULL, \
             last_status = $4, last_error = $5 WHERE event_id = $1 AND lease_owner = $2"
        };
        let now = DbTime::now();
        let next = if outcome.delivered {
            now
        } else {
            DbTime::new(outcome.retry_at)
        };
        let changed = with_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(map_err)?;
            sqlx::query(log)
                .bind(event_id)
                .bind(attempt)
                .bind(owner)
                .bind(&outcome.url)
                .bind(DbTime::new(outcome.started_at))
                .bind(duration_ms)
                .bind(status)
                .bind(error.clone())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let changed = sqlx::query(update)
                .bind(event_id)
                .bind(owner)
                .bind(next)
                .bind(status)
                .bind(error.clone())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
            tx.commit().await.map_err(map_err)?;
            changed
        });
        Ok(changed == 1)
    }

    /// Pending and delivered counts, and the number of attempts logged.
    pub async fn delivery_stats(&self) -> Result<DeliveryStats, StoreError> {
        let sql = "SELECT \
                   (SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'), \
                   (SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'delivered'), \
                   (SELECT COUNT(*) FROM webhook_attempts)";
        let (pending, delivered, attempts): (i64, i64, i64) =
            with_pool!(self, pool => sqlx::query_as(sql).fetch_one(pool).await.map_err(map_err)?);
        Ok(DeliveryStats {
            pending,
            delivered,
            attempts,
        })
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
