//! Surviving the database's restarts, failovers and idle kills: a port call whose pooled connection
//! turns out to be dead runs again on a fresh connection, before any caller sees the failure.
//!
//! The pool does not ping a connection before each use (a round trip per statement; see
//! `test_before_acquire(false)` in the adapters), so after the server ends its sessions each pooled
//! connection would fail one statement. Two pieces close that gap without a round trip in the steady
//! state:
//! - [`Reconnecting`] wraps an adapter and runs each port call inside a scope where
//!   [`crate::error::map_err`] reports a dead connection ([`ConnectionLoss`]); such a call is run again,
//!   at most [`MAX_ATTEMPTS`] times in all, with a short backoff (the `backon` crate, as in the core);
//! - [`PoolHealth`] remembers when a connection was last found dead; the pool's `before_acquire` hook
//!   pings (once) every connection that went idle before that instant, and drops it if the ping fails.
//!   So after a mass termination the first failure condemns every connection of the same age, and the
//!   retry gets a live one instead of the next dead one.
//!
//! What is run again, per method (a call is replayed whole: a transaction on a dead connection never
//! committed, so only a `COMMIT` or a single-statement write that was in flight when the socket broke is
//! ambiguous):
//! - [`Replay::Always`]: every read, and the writes whose second run after a committed first changes
//!   nothing and answers the same: `insert_admin` (idempotent by user id: the replay finds its row and
//!   writes nothing), saga `begin` (idempotent by saga id), `set_scim_attributes` (sets the same values),
//!   `idempotency_complete` and `idempotency_abandon` (set or delete one key), `authenticate_scim_token`
//!   (a read plus a best-effort time stamp), the reconciler's `try_acquire_lease` (the same holder renews
//!   its own lease) and `release_lease`.
//! - [`Replay::IfRolledBack`]: writes whose replay after a commit would double an effect or answer
//!   wrongly, replayed only when the server itself reported the end of the session
//!   ([`ConnectionLoss::RolledBack`]: the transaction was rolled back): `mark_accepted`,
//!   `set_admin_disabled` and `revoke_scim_token` (a second audit line), `record_invite_sent` (counts the
//!   invitation twice), `delete_admin` (`NotFound`), `append_audit` (a second line), `idempotency_begin`
//!   (would find its own claim "in progress"), `create_scim_token` (`TokenNameTaken`), saga `update`
//!   (a compare-and-set: `SagaStateChanged`, attempts counted twice) and `claim_expired` (would lose the
//!   sagas it claimed until their lease expires). After a broken socket ([`ConnectionLoss::Unknown`])
//!   they fail with the transient [`StoreError::Unavailable`], for the caller to decide.

use crate::error::ConnectionLoss;
use admin_provisioner_core::domain::{AdminRecord, UserId};
use admin_provisioner_core::pages::{StoredAdminFilter, UnfinishedFilter};
use admin_provisioner_core::reconcile::ReconcileStore;
use admin_provisioner_core::store::{
    AdminReads, AdminStore, AdminWrites, AuditEntry, AuditEvent, AuditLog, IdempotencyBegin, IdempotencyKeys, NewAdmin,
    SagaLog, SagaRecord, SagaState, SagaUpdate, ScimKey, ScimToken, ScimTokenStore, StoreError, StoredResponse,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Attempts per call, the first included: enough for a fresh connection after a mass termination (the
/// first loss condemns every older idle connection), bounded so a database that keeps dying fails fast.
pub const MAX_ATTEMPTS: usize = 3;

/// First backoff before a replay (doubles, with jitter, up to [`MAX_BACKOFF`]).
const MIN_BACKOFF: Duration = Duration::from_millis(5);

/// Largest backoff before a replay.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

tokio::task_local! {
    /// The worst connection loss seen by the call running in this scope.
    static LOSS: Arc<Mutex<Option<ConnectionLoss>>>;
}

/// Records `loss` for the enclosing [`Reconnecting`] call (nothing outside one).
pub(crate) fn note_connection_loss(loss: ConnectionLoss) {
    let _ = LOSS.try_with(|seen| {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen = (*seen).max(Some(loss));
    });
}

/// When a pooled connection was last found dead. Shared by a pool's `before_acquire` hook (see
/// [`PoolHealth::needs_ping`]) and its [`Reconnecting`] wrapper.
#[derive(Debug, Default)]
pub(crate) struct PoolHealth {
    lost_at: Mutex<Option<Instant>>,
}

impl PoolHealth {
    /// A connection was found dead now: every connection idle since before now is suspect.
    pub(crate) fn connection_lost(&self) {
        *self.lost_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// True when a connection idle for `idle_for` went idle before the last loss (it may have died with
    /// the others): test it before use.
    pub(crate) fn needs_ping(&self, idle_for: Duration) -> bool {
        let lost_at = *self.lost_at.lock().unwrap_or_else(|e| e.into_inner());
        lost_at.is_some_and(|lost| {
            Instant::now()
                .checked_sub(idle_for)
                .is_none_or(|idle_since| idle_since <= lost)
        })
    }

    /// The pool's `before_acquire` hook: pings a suspect connection, and rejects it (the pool closes it
    /// and opens another) if the ping fails. No round trip for the others.
    pub(crate) async fn check<C: sqlx::Connection>(&self, conn: &mut C, idle_for: Duration) -> bool {
        if !self.needs_ping(idle_for) {
            return true;
        }
        match conn.ping().await {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "dropping a pooled database connection that died while idle");
                false
            }
        }
    }
}

/// Whether a call may run again after its connection was lost; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Replay {
    /// After any loss: a read, or a write whose replay changes nothing.
    Always,
    /// Only when the server reported the end of the session (nothing committed).
    IfRolledBack,
}

impl Replay {
    fn allows(self, loss: Option<ConnectionLoss>) -> bool {
        match (self, loss) {
            (_, None) => false,
            (Replay::Always, Some(_)) => true,
            (Replay::IfRolledBack, Some(loss)) => loss == ConnectionLoss::RolledBack,
        }
    }
}

/// One failed attempt, with what it saw of its connection.
struct Failed {
    error: StoreError,
    loss: Option<ConnectionLoss>,
}

/// An adapter whose port calls survive dead pooled connections (see the module docs). Built by
/// [`crate::PostgresStore::reconnecting`] and [`crate::SqliteStore::reconnecting`]; [`crate::connect`]
/// returns one.
#[derive(Clone, Debug)]
pub struct Reconnecting<S> {
    inner: S,
    health: Arc<PoolHealth>,
}

impl<S> Reconnecting<S> {
    pub(crate) fn new(inner: S, health: Arc<PoolHealth>) -> Self {
        Self { inner, health }
    }

    /// The wrapped adapter (its calls are not retried).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Runs `call` (one port call) until it succeeds, fails for another reason than a lost connection,
    /// fails in a way `replay` does not allow to repeat, or has run [`MAX_ATTEMPTS`] times.
    async fn run<T, F, Fut>(&self, op: &'static str, replay: Replay, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T, StoreError>> + Send,
        T: Send,
    {
        use backon::Retryable;
        let health = &self.health;
        let attempt = move || {
            let seen: Arc<Mutex<Option<ConnectionLoss>>> = Arc::default();
            let scoped = LOSS.scope(seen.clone(), call());
            async move {
                scoped.await.map_err(|error| {
                    let loss = *seen.lock().unwrap_or_else(|e| e.into_inner());
                    if loss.is_some() {
                        health.connection_lost();
                    }
                    Failed { error, loss }
                })
            }
        };
        let policy = backon::ExponentialBuilder::default()
            .with_min_delay(MIN_BACKOFF)
            .with_max_delay(MAX_BACKOFF)
            .with_max_times(MAX_ATTEMPTS - 1)
            .with_jitter();
        attempt
            .retry(policy)
            .sleep(tokio::time::sleep)
            .when(move |failed: &Failed| replay.allows(failed.loss))
            .notify(move |failed: &Failed, after: Duration| {
                tracing::warn!(
                    op,
                    error = %failed.error,
                    retry_in_ms = after.as_millis() as u64,
                    "database connection lost; running the call again on a fresh connection"
                );
            })
            .await
            .map_err(|failed| failed.error)
    }
}

#[async_trait]
impl<S: AdminStore> AdminReads for Reconnecting<S> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", Replay::Always, || self.inner.ping()).await
    }

    async fn find_admin_by_email(&self, email_normalized: &str) -> Result<Option<AdminRecord>, StoreError> {
        self.run("find_admin_by_email", Replay::Always, || {
            self.inner.find_admin_by_email(email_normalized)
        })
        .await
    }

    async fn get_admin(&self, id: UserId) -> Result<Option<AdminRecord>, StoreError> {
        self.run("get_admin", Replay::Always, || self.inner.get_admin(id)).await
    }

    async fn find_admin_by_cognito_username(&self, username: &str) -> Result<Option<AdminRecord>, StoreError> {
        self.run("find_admin_by_cognito_username", Replay::Always, || {
            self.inner.find_admin_by_cognito_username(username)
        })
        .await
    }

    async fn find_admin_by_cognito_sub(&self, sub: &str) -> Result<Option<AdminRecord>, StoreError> {
        self.run("find_admin_by_cognito_sub", Replay::Always, || {
            self.inner.find_admin_by_cognito_sub(sub)
        })
        .await
    }

    async fn list_admins(&self) -> Result<Vec<AdminRecord>, StoreError> {
        self.run("list_admins", Replay::Always, || self.inner.list_admins())
            .await
    }

    async fn count_active_admins(&self) -> Result<i64, StoreError> {
        self.run("count_active_admins", Replay::Always, || {
            self.inner.count_active_admins()
        })
        .await
    }

    async fn find_admins_by_scim_key(&self, key: &ScimKey) -> Result<Vec<AdminRecord>, StoreError> {
        self.run("find_admins_by_scim_key", Replay::Always, || {
            self.inner.find_admins_by_scim_key(key)
        })
        .await
    }

    async fn list_admins_page(
        &self,
        filter: &StoredAdminFilter,
        after: Option<(DateTime<Utc>, UserId)>,
        limit: i64,
    ) -> Result<Vec<AdminRecord>, StoreError> {
        self.run("list_admins_page", Replay::Always, || {
            self.inner.list_admins_page(filter, after, limit)
        })
        .await
    }

    async fn count_admins_by_status(&self, now: DateTime<Utc>) -> Result<(i64, i64, i64), StoreError> {
        self.run("count_admins_by_status", Replay::Always, || {
            self.inner.count_admins_by_status(now)
        })
        .await
    }
}

#[async_trait]
impl<S: AdminStore> AdminWrites for Reconnecting<S> {
    async fn insert_admin(
        &self,
        admin: NewAdmin,
        audit: AuditEntry,
        complete_saga: Option<Uuid>,
    ) -> Result<AdminRecord, StoreError> {
        self.run("insert_admin", Replay::Always, || {
            self.inner.insert_admin(admin.clone(), audit.clone(), complete_saga)
        })
        .await
    }

    async fn mark_accepted(&self, id: UserId, at: DateTime<Utc>, audit: AuditEntry) -> Result<AdminRecord, StoreError> {
        self.run("mark_accepted", Replay::IfRolledBack, || {
            self.inner.mark_accepted(id, at, audit.clone())
        })
        .await
    }

    async fn record_invite_sent(
        &self,
        id: UserId,
        sent_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        delivered: bool,
        audit: AuditEntry,
    ) -> Result<AdminRecord, StoreError> {
        self.run("record_invite_sent", Replay::IfRolledBack, || {
            self.inner
                .record_invite_sent(id, sent_at, expires_at, delivered, audit.clone())
        })
        .await
    }

    async fn delete_admin(&self, id: UserId, audit: AuditEntry, saga: Option<Uuid>) -> Result<(), StoreError> {
        self.run("delete_admin", Replay::IfRolledBack, || {
            self.inner.delete_admin(id, audit.clone(), saga)
        })
        .await
    }

    async fn set_admin_disabled(
        &self,
        id: UserId,
        disabled_at: Option<DateTime<Utc>>,
        audit: AuditEntry,
        saga: Option<(Uuid, SagaState)>,
    ) -> Result<AdminRecord, StoreError> {
        self.run("set_admin_disabled", Replay::IfRolledBack, || {
            self.inner.set_admin_disabled(id, disabled_at, audit.clone(), saga)
        })
        .await
    }

    // Idempotent: the epoch is set to `at` unless a later one is stored (it never moves back).
    async fn set_admin_role(
        &self,
        id: UserId,
        role: admin_provisioner_core::domain::Role,
        audit: AuditEntry,
        saga: Option<(Uuid, SagaState)>,
    ) -> Result<AdminRecord, StoreError> {
        self.run("set_admin_role", Replay::IfRolledBack, || {
            self.inner.set_admin_role(id, role, audit.clone(), saga)
        })
        .await
    }

    async fn set_mfa_enrolled(&self, id: UserId, at: Option<DateTime<Utc>>) -> Result<AdminRecord, StoreError> {
        self.run("set_mfa_enrolled", Replay::Always, || {
            self.inner.set_mfa_enrolled(id, at)
        })
        .await
    }
    async fn record_credentials_reset(
        &self,
        id: UserId,
        reset: admin_provisioner_core::store::CredentialsReset,
        at: DateTime<Utc>,
        audit: AuditEntry,
        saga: Option<(Uuid, SagaState)>,
    ) -> Result<AdminRecord, StoreError> {
        self.run("record_credentials_reset", Replay::IfRolledBack, || {
            self.inner.record_credentials_reset(id, reset, at, audit.clone(), saga)
        })
        .await
    }

    async fn end_sessions(&self, id: UserId, at: DateTime<Utc>) -> Result<AdminRecord, StoreError> {
        self.run("end_sessions", Replay::Always, || self.inner.end_sessions(id, at))
            .await
    }

    async fn set_scim_attributes(
        &self,
        id: UserId,
        external_id: Option<String>,
        user_name: Option<String>,
        scim_profile: Option<String>,
    ) -> Result<AdminRecord, StoreError> {
        self.run("set_scim_attributes", Replay::Always, || {
            self.inner
                .set_scim_attributes(id, external_id.clone(), user_name.clone(), scim_profile.clone())
        })
        .await
    }
}

#[async_trait]
impl<S: AdminStore> AuditLog for Reconnecting<S> {
    async fn append_audit(&self, audit: AuditEntry) -> Result<(), StoreError> {
        self.run("append_audit", Replay::IfRolledBack, || {
            self.inner.append_audit(audit.clone())
        })
        .await
    }

    async fn list_audit(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        self.run("list_audit", Replay::Always, || self.inner.list_audit(limit))
            .await
    }

    async fn list_audit_page(
        &self,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(AuditEvent, Option<String>)>, StoreError> {
        self.run("list_audit_page", Replay::Always, || {
            self.inner.list_audit_page(before_id, limit)
        })
        .await
    }
}

#[async_trait]
impl<S: AdminStore> IdempotencyKeys for Reconnecting<S> {
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyBegin, StoreError> {
        self.run("idempotency_begin", Replay::IfRolledBack, || {
            self.inner.idempotency_begin(scope, key, request_hash)
        })
        .await
    }

    async fn idempotency_complete(&self, scope: &str, key: &str, response: StoredResponse) -> Result<(), StoreError> {
        self.run("idempotency_complete", Replay::Always, || {
            self.inner.idempotency_complete(scope, key, response.clone())
        })
        .await
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        self.run("idempotency_abandon", Replay::Always, || {
            self.inner.idempotency_abandon(scope, key)
        })
        .await
    }
}

#[async_trait]
impl<S: SagaLog> SagaLog for Reconnecting<S> {
    async fn begin(&self, saga: SagaRecord) -> Result<SagaRecord, StoreError> {
        self.run("saga.begin", Replay::Always, || self.inner.begin(saga.clone()))
            .await
    }

    async fn update(&self, id: Uuid, update: SagaUpdate) -> Result<SagaRecord, StoreError> {
        self.run("saga.update", Replay::IfRolledBack, || {
            self.inner.update(id, update.clone())
        })
        .await
    }

    async fn claim_expired(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        only: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<SagaRecord>, StoreError> {
        self.run("saga.claim_expired", Replay::IfRolledBack, || {
            self.inner.claim_expired(owner, now, lease_until, only, limit)
        })
        .await
    }

    async fn get(&self, id: Uuid) -> Result<Option<SagaRecord>, StoreError> {
        self.run("saga.get", Replay::Always, || self.inner.get(id)).await
    }

    async fn list_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
        self.run("saga.list_unfinished", Replay::Always, || self.inner.list_unfinished())
            .await
    }

    async fn list_recent(&self, limit: i64) -> Result<Vec<SagaRecord>, StoreError> {
        self.run("saga.list_recent", Replay::Always, || self.inner.list_recent(limit))
            .await
    }

    async fn list_for_email(&self, email_normalized: &str) -> Result<Vec<SagaRecord>, StoreError> {
        self.run("saga.list_for_email", Replay::Always, || {
            self.inner.list_for_email(email_normalized)
        })
        .await
    }

    async fn list_unfinished_provisions_page(
        &self,
        filter: &UnfinishedFilter,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<SagaRecord>, StoreError> {
        self.run("saga.list_unfinished_provisions_page", Replay::Always, || {
            self.inner.list_unfinished_provisions_page(filter, after, limit)
        })
        .await
    }
}

#[async_trait]
impl<S: ScimTokenStore> ScimTokenStore for Reconnecting<S> {
    async fn create_scim_token(
        &self,
        name: &str,
        token_sha256: &str,
        audit: AuditEntry,
    ) -> Result<ScimToken, StoreError> {
        self.run("create_scim_token", Replay::IfRolledBack, || {
            self.inner.create_scim_token(name, token_sha256, audit.clone())
        })
        .await
    }

    async fn list_scim_tokens(&self) -> Result<Vec<ScimToken>, StoreError> {
        self.run("list_scim_tokens", Replay::Always, || self.inner.list_scim_tokens())
            .await
    }

    async fn revoke_scim_token(&self, name: &str, audit: AuditEntry) -> Result<ScimToken, StoreError> {
        self.run("revoke_scim_token", Replay::IfRolledBack, || {
            self.inner.revoke_scim_token(name, audit.clone())
        })
        .await
    }

    async fn authenticate_scim_token(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.run("authenticate_scim_token", Replay::Always, || {
            self.inner.authenticate_scim_token(token_sha256, now)
        })
        .await
    }
}

#[async_trait]
impl<S: ReconcileStore> ReconcileStore for Reconnecting<S> {
    async fn admins_after_cognito_username(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AdminRecord>, StoreError> {
        self.run("admins_after_cognito_username", Replay::Always, || {
            self.inner.admins_after_cognito_username(after, limit)
        })
        .await
    }

    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<bool, StoreError> {
        self.run("try_acquire_lease", Replay::Always, || {
            self.inner.try_acquire_lease(name, holder, now, ttl)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.run("release_lease", Replay::Always, || {
            self.inner.release_lease(name, holder)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_idle_since_before_the_last_loss_are_pinged() {
        let health = PoolHealth::default();
        assert!(!health.needs_ping(Duration::from_secs(60)), "nothing lost yet: no ping");
        std::thread::sleep(Duration::from_millis(20));
        health.connection_lost();
        assert!(health.needs_ping(Duration::from_secs(60)), "idle before the loss");
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !health.needs_ping(Duration::from_millis(5)),
            "returned to the pool after the loss"
        );
    }

    #[test]
    fn writes_that_cannot_be_replayed_run_again_only_after_a_rollback() {
        assert!(Replay::Always.allows(Some(ConnectionLoss::Unknown)));
        assert!(Replay::IfRolledBack.allows(Some(ConnectionLoss::RolledBack)));
        assert!(!Replay::IfRolledBack.allows(Some(ConnectionLoss::Unknown)));
        assert!(!Replay::Always.allows(None), "other errors are not retried here");
    }
}
