//! The orchestrator: the five operations and the provisioning saga.
//!
//! [`Provisioner`] knows only the ports ([`IdentityProvider`], [`AdminStore`], [`SagaLog`], [`Clock`]).
//! Every port call runs under a timeout; transient errors (throttling, timeouts, network) are retried with
//! bounded exponential backoff; definitive errors are compensated. The saga log is written before the first
//! side effect and after each step, so a crash at any point leaves enough to finish or undo the work
//! ([`Provisioner::recover_unfinished`]).
//!
//! Ownership rule: the product deletes a Cognito user only when it knows the user is its own: the saga
//! log recorded it (same `sub`), or the user was created inside the saga's time window (from its intent to
//! the end of its last possible create attempt), is still in `FORCE_CHANGE_PASSWORD`, carries the saga's
//! e-mail and is linked to no database admin. A saga whose log never reached `identity_creating` never
//! called `AdminCreateUser`, so it treats any user at its username as someone else's. A pre-existing user
//! is never deleted.
//!
//! Recovery prefers finishing to undoing: an interrupted saga whose own Cognito user exists gets its
//! records written (the invitee already has the e-mail); only an undo that was under way is completed.

use crate::clock::Clock;
use crate::domain::*;
use crate::error::Error;
use crate::identity::{
    op as idp_op, AuthOutcome, CreateUserRequest, IdentityProvider, IdpError, IdpUser, IdpUserStatus, MessageAction,
};
use crate::store::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

mod access;
mod invite;
mod operations;
mod removal;
mod saga;
mod views;

/// Tunables of the orchestrator.
#[derive(Clone, Debug)]
pub struct ProvisionerSettings {
    /// `INVITE_VALIDITY_DAYS`: must equal the pool's `TemporaryPasswordValidityDays`.
    pub invite_validity_days: u32,
    /// Timeout of each identity-provider or database call.
    pub call_timeout: Duration,
    /// Attempts per step for transient errors (1 = no retry).
    pub max_attempts: u32,
    /// First backoff delay; doubles per attempt.
    pub backoff_base: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
    /// Minimum time between two invitations to the same admin.
    pub resend_cooldown: Duration,
    /// Clock skew tolerated when deciding whether a Cognito user was created by this saga.
    pub ownership_skew: chrono::Duration,
}

impl Default for ProvisionerSettings {
    fn default() -> Self {
        Self {
            invite_validity_days: 7,
            call_timeout: Duration::from_secs(10),
            max_attempts: 4,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            resend_cooldown: Duration::from_secs(60),
            ownership_skew: chrono::Duration::seconds(5),
        }
    }
}

/// Receives measurements (the HTTP service turns them into Prometheus metrics). All methods default to
/// doing nothing.
pub trait Observer: Send + Sync + 'static {
    /// One identity-provider call finished; `result` is `ok` or an [`IdpError::code`].
    fn idp_call(&self, _op: &str, _result: &str) {}
    /// A provisioning ended; `outcome` is `created`, `compensated`, `rejected` or `stuck`.
    fn provision_finished(&self, _outcome: &str, _seconds: f64) {}
}

struct NoObserver;
impl Observer for NoObserver {}

/// Who is calling an operation that only an admin may perform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The operator at the command line on the server.
    Operator,
    /// A caller authenticated by a verified Cognito token; the database decides whether they are an admin.
    Token {
        /// The token's `sub`.
        sub: String,
        /// The token's Cognito username (`cognito:username` or `username`).
        username: String,
    },
    /// An admin that [`Provisioner::authorize`] already found active in this request (the HTTP extractor
    /// authorizes once per request; passing this on saves the second lookup).
    Authorized(UserId),
}

/// An invitation's state, as returned to clients.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InviteView {
    /// Computed status.
    pub status: InviteStatus,
    /// When the current temporary password expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// How many invitations were sent.
    pub invites_sent: i32,
    /// When the last one was sent.
    pub last_sent_at: Option<DateTime<Utc>>,
    /// False when Cognito could not deliver the last one (resend it).
    pub delivered: bool,
}

impl InviteView {
    fn of(record: &AdminRecord, now: DateTime<Utc>) -> Self {
        Self {
            status: InviteStatus::of(record, now),
            expires_at: Some(record.admin_info.invite_expires_at),
            invites_sent: record.admin_info.invites_sent,
            last_sent_at: Some(record.admin_info.last_invite_sent_at),
            delivered: record.admin_info.invite_delivered,
        }
    }
}

/// The result of a successful provisioning: the two records and the invitation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProvisionedAdmin {
    /// The `User` row.
    pub user: User,
    /// The `AdminInfo` row.
    pub admin_info: AdminInfo,
    /// Invitation state.
    pub invite: InviteView,
    /// The saga that did it.
    pub saga_id: Uuid,
}

/// One line of the admin list: a stored admin, or an unfinished provisioning.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdminView {
    /// `User.id` (the planned one for a pending provisioning).
    pub id: UserId,
    /// E-mail as typed.
    pub email: String,
    /// Computed status.
    pub status: InviteStatus,
    /// The `User` row, when written.
    pub user: Option<User>,
    /// The `AdminInfo` row, when written.
    pub admin_info: Option<AdminInfo>,
    /// Invitation details, when written.
    pub invite: Option<InviteView>,
    /// The unfinished saga, for `pending` and `failed` lines.
    pub saga_id: Option<Uuid>,
    /// Why a `failed` line failed.
    pub last_error: Option<String>,
}

impl AdminView {
    /// A stored admin.
    fn of_record(r: AdminRecord, now: DateTime<Utc>) -> Self {
        Self {
            id: r.user.id,
            email: r.user.email.clone(),
            status: InviteStatus::of(&r, now),
            invite: Some(InviteView::of(&r, now)),
            user: Some(r.user),
            admin_info: Some(r.admin_info),
            saga_id: None,
            last_error: None,
        }
    }

    /// An unfinished provisioning: `pending`, or `failed` when stuck.
    fn of_saga(s: &SagaRecord) -> Self {
        Self {
            id: s.user_id,
            email: s.email.clone(),
            status: if s.state == SagaState::Stuck {
                InviteStatus::Failed
            } else {
                InviteStatus::Pending
            },
            user: None,
            admin_info: None,
            invite: None,
            saga_id: Some(s.id),
            last_error: s.last_error.clone(),
        }
    }
}

/// The identity-provider side of a provisioning: the Cognito user and whether the e-mail went out.
#[derive(Clone, Debug, PartialEq)]
pub struct CreatedIdentity {
    /// The user as Cognito describes it.
    pub user: IdpUser,
    /// False when Cognito answered CodeDeliveryFailure (created, invitation not delivered).
    pub invite_delivered: bool,
}

/// The answer to a login.
#[derive(Clone, Debug)]
pub enum LoginOutcome {
    /// Logged in.
    Tokens(Tokens),
    /// First login: a new password must be chosen (answer within 3 minutes).
    NewPasswordRequired {
        /// Challenge session.
        session: Secret,
        /// Username to answer with.
        username: String,
    },
}

/// How a recovered saga ended.
#[derive(Clone, Debug, PartialEq)]
pub struct RecoveryReport {
    /// Saga id.
    pub saga_id: Uuid,
    /// E-mail.
    pub email: String,
    /// New state.
    pub state: SagaState,
}

/// The orchestrator. Cheap to clone.
#[derive(Clone)]
pub struct Provisioner {
    idp: Arc<dyn IdentityProvider>,
    admins: Arc<dyn AdminStore>,
    sagas: Arc<dyn SagaLog>,
    clock: Arc<dyn Clock>,
    settings: ProvisionerSettings,
    observer: Arc<dyn Observer>,
}

impl Provisioner {
    /// Builds an orchestrator over an identity provider and a store that is both admin store and saga log.
    pub fn new(
        idp: Arc<dyn IdentityProvider>,
        store: Arc<dyn crate::faults::Store>,
        clock: Arc<dyn Clock>,
        settings: ProvisionerSettings,
    ) -> Self {
        // Trait upcasting: one SQL adapter serves both ports.
        let admins: Arc<dyn AdminStore> = store.clone();
        let sagas: Arc<dyn SagaLog> = store;
        Self {
            idp,
            admins,
            sagas,
            clock,
            settings,
            observer: Arc::new(NoObserver),
        }
    }

    /// Installs an [`Observer`] for metrics.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// The identity provider.
    pub fn identity_provider(&self) -> &Arc<dyn IdentityProvider> {
        &self.idp
    }

    /// The admin store.
    pub fn admin_store(&self) -> &Arc<dyn AdminStore> {
        &self.admins
    }

    /// The saga log.
    pub fn saga_log(&self) -> &Arc<dyn SagaLog> {
        &self.sagas
    }

    /// The settings.
    pub fn settings(&self) -> &ProvisionerSettings {
        &self.settings
    }

    /// Now, by the injected clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn set_state(
        &self,
        id: Uuid,
        state: SagaState,
        last_error: Option<String>,
    ) -> Result<SagaRecord, StoreError> {
        let update = SagaUpdate {
            state: Some(state),
            last_error: last_error.map(Some),
            ..Default::default()
        };
        self.retry(|| self.store_call(self.sagas.update(id, update.clone())))
            .await
    }

    fn audit(
        &self,
        actor: &Actor,
        action: AuditAction,
        target: &str,
        outcome: &str,
        request_id: Option<&str>,
    ) -> AuditEntry {
        AuditEntry {
            actor: actor.clone(),
            action,
            target: target.to_string(),
            outcome: outcome.to_string(),
            request_id: request_id.map(str::to_string),
            at: self.now(),
        }
    }

    // ----------------------------------------------------------------------------------------------
    // Timeouts and retries
    // ----------------------------------------------------------------------------------------------

    async fn idp_call<T>(&self, op: &str, fut: impl Future<Output = Result<T, IdpError>>) -> Result<T, IdpError> {
        let res = match tokio::time::timeout(self.settings.call_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(IdpError::Timeout(op.to_string())),
        };
        self.observer.idp_call(
            op,
            match &res {
                Ok(_) => "ok",
                Err(e) => e.code(),
            },
        );
        res
    }

    async fn store_call<T>(&self, fut: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.settings.call_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout("database call".into())),
        }
    }

    async fn backoff(&self, attempt: u32) {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        let delay = self
            .settings
            .backoff_base
            .saturating_mul(factor)
            .min(self.settings.backoff_max);
        let jitter = rand::random::<f64>() * 0.5 + 0.75;
        tokio::time::sleep(delay.mul_f64(jitter)).await;
    }

    async fn retry<T, E: Transient, F, Fut>(&self, mut f: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 0;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if e.transient() && attempt + 1 < self.settings.max_attempts => {
                    attempt += 1;
                    self.backoff(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// What [`Provisioner::create_admin_database_records`] needs beyond the e-mail and the Cognito user.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordPlan {
    /// The `User.id` chosen before any side effect.
    pub user_id: UserId,
    /// Who invited.
    pub actor: Actor,
    /// `create_admin` or `bootstrap_admin`, for the audit log.
    pub action: AuditAction,
    /// False after CodeDeliveryFailure.
    pub invite_delivered: bool,
    /// Request id for the audit log.
    pub request_id: Option<String>,
    /// The saga to complete in the same transaction.
    pub saga_id: Option<Uuid>,
}

/// What is at a saga's Cognito username.
enum Found {
    /// No user.
    Missing,
    /// The user the saga log recorded (same `sub`).
    Recorded(IdpUser),
    /// A user the log did not record but that the saga created: in its time window, same e-mail, linked to
    /// no other admin (may already be CONFIRMED if the invitee was quick).
    InWindow(IdpUser),
    /// Someone else's user: never adopted, never deleted.
    Foreign,
}

trait Transient {
    fn transient(&self) -> bool;
}
impl Transient for IdpError {
    fn transient(&self) -> bool {
        self.is_transient()
    }
}
/// Domain errors retried by a saga step: throttling and unavailability of either system.
impl Transient for Error {
    fn transient(&self) -> bool {
        matches!(
            self,
            Error::RateLimited | Error::IdentityProviderUnavailable(_) | Error::DatabaseUnavailable(_)
        )
    }
}
impl Transient for StoreError {
    fn transient(&self) -> bool {
        self.is_transient()
    }
}

/// Errors of the administrative calls (`AdminCreateUser`, …): `NotAuthorized` there means the product's
/// own credentials or IAM policy are wrong, not the caller's, so it is a 502, not a 401.
fn admin_call_error(e: IdpError) -> Error {
    match e {
        IdpError::NotAuthorized(m) => Error::IdentityProviderError(format!(
            "Cognito refused the product's call (NotAuthorized: {m}); check the AWS credentials and the IAM policy"
        )),
        e => e.into(),
    }
}

fn login_error(e: IdpError) -> Error {
    match e {
        IdpError::UserNotFound => Error::InvalidCredentials,
        e => e.into(),
    }
}
