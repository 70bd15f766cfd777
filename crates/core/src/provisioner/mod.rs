//! The orchestrator: the five operations and the sagas.
//!
//! A newcomer's map: [`engine`] is the saga engine (a saga = a table of action/undo steps; one state
//! machine for the forward run, compensation and recovery); `saga.rs` declares the provisioning saga's
//! table (`PROVISION`) and holds recovery's entry points and the ownership rule it applies; `removal.rs`
//! declares the removal saga (`REMOVE`); `lifecycle.rs` the disable and enable sagas (`DISABLE`,
//! `ENABLE`); `ownership.rs` answers the reconciler with the same rule;
//! `operations.rs` the five operations; `access.rs` login and first login; `invite.rs` invitations;
//! `views.rs` the admin list.
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
    op as idp_op, AuthOutcome, ChallengeAnswer, CreateUserRequest, IdentityProvider, IdpError, IdpUser, IdpUserStatus,
    MessageAction, MfaAuth,
};
use crate::store::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub use ownership::Ownership;

mod access;
mod credentials;
pub mod engine;
mod groups;
pub mod idempotency;
mod invite;
mod lifecycle;
mod operations;
mod ownership;
mod policy;
pub use policy::{decide, AdminAction, Rule, Target};
mod reads;
mod recovery;
mod removal;
mod roles;
mod saga;
mod scim;
mod tokens;
pub use saga::RetryOutcome;
mod views;

/// A saga's table as data: the intent, then each step with the port calls a clean run makes for it
/// (the fault matrix is derived from it), with roles not mirrored into groups. Adding a saga kind: one
/// arm here, in [`crash_points`] and in `Provisioner::recover_one`.
pub fn saga_steps(kind: SagaKind) -> Vec<engine::StepInfo> {
    saga_steps_mirrored(kind, false)
}

/// [`saga_steps`] with roles mirrored into Cognito groups (`COGNITO_ROLE_GROUPS=true`) or not: the
/// provisioning and role-change tables then have their group steps.
pub fn saga_steps_mirrored(kind: SagaKind, role_groups: bool) -> Vec<engine::StepInfo> {
    match (kind, role_groups) {
        (SagaKind::Provision, false) => saga::PROVISION.describe(),
        (SagaKind::Provision, true) => saga::PROVISION_GROUPS.describe(),
        (SagaKind::Remove, _) => removal::REMOVE.describe(),
        (SagaKind::Disable, _) => lifecycle::DISABLE.describe(),
        (SagaKind::Enable, _) => lifecycle::ENABLE.describe(),
        (SagaKind::ChangeRole, false) => roles::CHANGE_ROLE.describe(),
        (SagaKind::ChangeRole, true) => roles::CHANGE_ROLE_GROUPS.describe(),
        (SagaKind::ResetPassword, _) => credentials::RESET_PASSWORD.describe(),
        (SagaKind::ResetMfa, _) => credentials::RESET_MFA.describe(),
    }
}

/// What a saga of `kind` in `state` is doing, in words for people, read from its table (one registry for
/// recovery's step names and the console's saga page). The tables with group steps are read: their
/// states include those of the plain tables.
pub fn saga_step_words(kind: SagaKind, state: SagaState) -> &'static str {
    match kind {
        SagaKind::Provision => saga::PROVISION_GROUPS.words(state),
        SagaKind::Remove => removal::REMOVE.words(state),
        SagaKind::Disable => lifecycle::DISABLE.words(state),
        SagaKind::Enable => lifecycle::ENABLE.words(state),
        SagaKind::ChangeRole => roles::CHANGE_ROLE_GROUPS.words(state),
        SagaKind::ResetPassword => credentials::RESET_PASSWORD.words(state),
        SagaKind::ResetMfa => credentials::RESET_MFA.words(state),
    }
}

/// The crash points of a saga kind, derived from its table, in the order a clean run passes them (roles
/// not mirrored into groups).
pub fn crash_points(kind: SagaKind) -> Vec<String> {
    crash_points_mirrored(kind, false)
}

/// [`crash_points`] with roles mirrored into Cognito groups or not.
pub fn crash_points_mirrored(kind: SagaKind, role_groups: bool) -> Vec<String> {
    match (kind, role_groups) {
        (SagaKind::Provision, false) => saga::PROVISION.crash_points(),
        (SagaKind::Provision, true) => saga::PROVISION_GROUPS.crash_points(),
        (SagaKind::Remove, _) => removal::REMOVE.crash_points(),
        (SagaKind::Disable, _) => lifecycle::DISABLE.crash_points(),
        (SagaKind::Enable, _) => lifecycle::ENABLE.crash_points(),
        (SagaKind::ChangeRole, false) => roles::CHANGE_ROLE.crash_points(),
        (SagaKind::ChangeRole, true) => roles::CHANGE_ROLE_GROUPS.crash_points(),
        (SagaKind::ResetPassword, _) => credentials::RESET_PASSWORD.crash_points(),
        (SagaKind::ResetMfa, _) => credentials::RESET_MFA.crash_points(),
    }
}

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
    /// `SAGA_LEASE_SECS`: how long a running saga holds its row without renewing. The owner renews it
    /// every third of this while it works; recovery takes a saga only once its lease has expired. Must
    /// exceed the longest a single step can run ([`ProvisionerSettings::longest_step`]).
    pub lease_ttl: Duration,
    /// `ADMIN_RATE_LIMIT_PER_MINUTE`: mutating operations (create, resend, disable, enable, remove) per
    /// actor (an admin or a SCIM token) per minute; 0 = unlimited. See `policy.rs`.
    pub admin_actions_per_minute: u32,
    /// `REQUIRE_MFA`: an admin without an enrolled authenticator (`users.mfa_enrolled_at`) may do nothing
    /// but enrol one ([`Error::MfaEnrollmentRequired`]). For pools with `MfaConfiguration=OPTIONAL`; a
    /// pool with `ON` enforces MFA at sign-in itself.
    pub require_mfa: bool,
    /// The issuer label authenticator apps show next to the account (`MFA_ISSUER`).
    pub mfa_issuer: String,
    /// Roles mirrored into Cognito groups: the group-name prefix (`COGNITO_GROUP_PREFIX`) when
    /// `COGNITO_ROLE_GROUPS=true`, `None` when off (see `groups.rs`).
    pub role_groups: Option<String>,
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
            lease_ttl: Duration::from_secs(60),
            admin_actions_per_minute: 30,
            require_mfa: false,
            mfa_issuer: "admin-provisioner".to_string(),
            role_groups: None,
        }
    }
}

impl ProvisionerSettings {
    /// The longest one step (one port call with all its retries) can run: every attempt up to its
    /// timeout, plus every backoff at its largest with full jitter.
    pub fn longest_step(&self) -> Duration {
        let attempts = self.max_attempts.max(1);
        self.call_timeout.saturating_mul(attempts) + self.backoff_max.saturating_mul(2 * (attempts - 1))
    }

    /// Refuses settings under which a step could outlive its saga's lease (recovery could then take over
    /// a saga whose step is still running). The message names the variables to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("the number of attempts per step must be at least 1".into());
        }
        if self.call_timeout.is_zero() {
            return Err("CALL_TIMEOUT_SECS must be greater than zero".into());
        }
        let step = self.longest_step();
        if step >= self.lease_ttl {
            return Err(format!(
                "SAGA_LEASE_SECS={} is too short: one saga step may run {} s ({} attempts x CALL_TIMEOUT_SECS={} s plus backoff), \
                 so recovery in another process could take over a saga that is still working; \
                 set SAGA_LEASE_SECS above {} or lower CALL_TIMEOUT_SECS",
                self.lease_ttl.as_secs(),
                step.as_secs_f64().ceil() as u64,
                self.max_attempts,
                self.call_timeout.as_secs_f64(),
                step.as_secs_f64().ceil() as u64,
            ));
        }
        Ok(())
    }

    fn lease_chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.lease_ttl).unwrap_or(chrono::Duration::minutes(1))
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
        /// The token's `iat` (whole seconds, Cognito's clock). A token issued at or before the admin's
        /// session epoch (sign-out, disable) is refused with [`Error::SessionEnded`].
        issued_at: DateTime<Utc>,
    },
    /// An admin that [`Provisioner::authorize`] already found active in this request (the HTTP extractor
    /// authorizes once per request; passing this on saves the second lookup).
    Authorized(UserId),
    /// A SCIM client authenticated by its SCIM token (the HTTP layer checked the token's hash against
    /// the store): may provision, change, disable, enable and remove admins through `/scim/v2`, audited
    /// as `scim:<name>`.
    Scim(String),
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
    /// The admin's role (for an unfinished provisioning, the role it gives).
    pub role: Role,
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
            role: r.admin_info.role,
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
            role: s.role.unwrap_or_default(),
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

/// The answer to a login or to a challenge: tokens, or the next challenge of Cognito's sign-in loop
/// (`NEW_PASSWORD_REQUIRED`, `MFA_SETUP`, `SOFTWARE_TOKEN_MFA`; each answered within 3 minutes).
pub type LoginOutcome = AuthOutcome;

/// An authenticator to enrol: what the MFA setup step shows (once; the product keeps none of it).
#[derive(Clone, Debug)]
pub struct MfaEnrolment {
    /// The base32 TOTP secret, to type into an authenticator app.
    pub secret_code: Secret,
    /// `otpauth://totp/…` for the QR code (it contains the secret).
    pub otpauth_uri: Secret,
    /// The challenge's next session (enrolment during sign-in, `MFA_SETUP`).
    pub session: Option<Secret>,
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
    tokens: Arc<dyn ScimTokenStore>,
    clock: Arc<dyn Clock>,
    settings: ProvisionerSettings,
    observer: Arc<dyn Observer>,
    process: Arc<str>,
    limiter: policy::ActionLimiter,
}

/// `host:pid` of this process, the stem of every lease owner it writes.
fn process_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_string());
    format!("{host}:{}", std::process::id())
}

impl Provisioner {
    /// Builds an orchestrator over an identity provider and a store that is both admin store and saga log.
    ///
    /// The settings are not checked here; call [`ProvisionerSettings::validate`] at start-up.
    pub fn new(
        idp: Arc<dyn IdentityProvider>,
        store: Arc<dyn crate::store::Store>,
        clock: Arc<dyn Clock>,
        settings: ProvisionerSettings,
    ) -> Self {
        // Trait upcasting: one SQL adapter serves both ports.
        let admins: Arc<dyn AdminStore> = store.clone();
        let sagas: Arc<dyn SagaLog> = store.clone();
        let tokens: Arc<dyn ScimTokenStore> = store;
        Self {
            idp,
            admins,
            sagas,
            tokens,
            clock,
            observer: Arc::new(NoObserver),
            process: process_name().into(),
            limiter: policy::ActionLimiter::new(settings.admin_actions_per_minute),
            settings,
        }
    }

    /// A fresh lease owner for one run of a saga (`host:pid:run`): two runs in one process never share it.
    pub(crate) fn new_owner(&self) -> String {
        let run = Uuid::new_v4().simple().to_string();
        format!("{}:{}", self.process, &run[..8])
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

    /// Moves the saga (held by `saga.owner`) to `state`; [`StoreError::LeaseLost`] if another owner took it.
    async fn set_state(
        &self,
        saga: &SagaRecord,
        state: SagaState,
        last_error: Option<String>,
    ) -> Result<SagaRecord, StoreError> {
        let update = SagaUpdate {
            state: Some(state),
            last_error: last_error.map(Some),
            ..self.owned(saga)
        };
        self.retry(|| self.store_call(self.sagas.update(saga.id, update.clone())))
            .await
    }

    /// An update that applies only while `saga.owner` still holds the saga, stamped with our clock.
    pub(crate) fn owned(&self, saga: &SagaRecord) -> SagaUpdate {
        SagaUpdate {
            expected_owner: saga.owner.clone(),
            at: Some(self.now()),
            ..Default::default()
        }
    }

    /// Gives the lease up (expiry = now), so the next recovery pass may take the saga at once: used when a
    /// run ends with the saga unfinished (stuck, or left for recovery).
    pub(crate) async fn release_lease(&self, saga: &SagaRecord) {
        let update = SagaUpdate {
            lease_expires_at: Some(self.now()),
            ..self.owned(saga)
        };
        let _ = self.store_call(self.sagas.update(saga.id, update)).await;
    }

    /// Runs `work` while renewing `saga`'s lease every third of its length. The renewal stops (and the
    /// work's next saga-log write fails with [`StoreError::LeaseLost`]) once another owner has taken the
    /// saga; dropping the returned future drops both.
    pub(crate) async fn with_lease<T>(&self, saga: &SagaRecord, work: impl Future<Output = T>) -> T {
        let renew = async {
            let period = (self.settings.lease_ttl / 3).max(Duration::from_millis(10));
            loop {
                tokio::time::sleep(period).await;
                let update = SagaUpdate {
                    lease_expires_at: Some(self.now() + self.settings.lease_chrono()),
                    ..self.owned(saga)
                };
                match self.store_call(self.sagas.update(saga.id, update)).await {
                    Ok(_) => {}
                    Err(StoreError::LeaseLost(other)) => {
                        tracing::error!(saga_id = %saga.id, new_owner = %other, "saga lease lost; the step will stop at its next write");
                        return std::future::pending::<()>().await;
                    }
                    // Finished meanwhile (the work is about to return), or the database is down: keep trying.
                    Err(e) => tracing::debug!(saga_id = %saga.id, error = %e, "lease renewal failed"),
                }
            }
        };
        tokio::select! {
            out = work => out,
            _ = renew => unreachable!("the renewal loop never ends"),
        }
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

    /// A read under the call timeout and [`Provisioner::retry`]: repeating a read is always safe. (The
    /// store adapter already runs a call again when its connection died; this also covers the other
    /// transient errors: a pool timeout, a busy database, a timeout.)
    async fn store_read<T, F, Fut>(&self, mut read: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.retry(|| self.store_call(read())).await
    }

    /// The one retry layer: exponential backoff with jitter, `max_attempts` attempts in all, for the
    /// port's own error type (only its transient errors are retried; the AWS SDK's retry is disabled).
    async fn retry<T, E: Transient, F, Fut>(&self, f: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        use backon::Retryable;
        let policy = backon::ExponentialBuilder::default()
            .with_min_delay(self.settings.backoff_base)
            .with_max_delay(self.settings.backoff_max)
            .with_factor(2.0)
            .with_max_times(self.settings.max_attempts.saturating_sub(1) as usize)
            .with_jitter();
        f.retry(policy)
            .sleep(tokio::time::sleep)
            .when(|e: &E| e.transient())
            .notify(|e: &E, after: Duration| tracing::debug!(error = %e, retry_in_ms = after.as_millis() as u64, "transient error; retrying"))
            .await
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
    /// The new admin's role.
    pub role: Role,
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

/// Errors of a port that may be retried. Implemented for the ports' own error types only: a domain
/// [`Error`] is never retried (it has lost the distinction between a definitive and a passing failure).
trait Transient: std::fmt::Display {
    fn transient(&self) -> bool;
}
impl Transient for IdpError {
    fn transient(&self) -> bool {
        self.is_transient()
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

/// A challenge's errors: a wrong or used code is [`Error::InvalidMfaCode`], the rest as [`login_error`].
fn challenge_error(e: IdpError) -> Error {
    match e {
        IdpError::CodeMismatch(_) => Error::InvalidMfaCode,
        e => login_error(e),
    }
}

fn login_error(e: IdpError) -> Error {
    match e {
        IdpError::UserNotFound => Error::InvalidCredentials,
        e => e.into(),
    }
}
