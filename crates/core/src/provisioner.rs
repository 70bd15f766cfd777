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

    // ----------------------------------------------------------------------------------------------
    // The five operations
    // ----------------------------------------------------------------------------------------------

    /// **Operation 1: create the Cognito user** (one step of the saga, also usable on its own).
    ///
    /// Calls Cognito `AdminCreateUser` with `Username` = the lower-cased e-mail, attributes `email` and
    /// `email_verified=true`, `DesiredDeliveryMediums=[EMAIL]` and, when given, `TemporaryPassword`
    /// (otherwise Cognito generates one). Cognito creates the user in `FORCE_CHANGE_PASSWORD` and e-mails
    /// the invitation with the username and the temporary password.
    ///
    /// * `email` — the new admin's address, already parsed.
    /// * `temporary_password` — `None` to let Cognito generate it (recommended: the product then never
    ///   holds it).
    ///
    /// Returns the [`CreatedIdentity`]: Cognito's `User` (`Username`, `sub`, status) and whether the
    /// invitation was delivered. On `CodeDeliveryFailure` the user *was* created: this calls
    /// `AdminGetUser` and returns it with `invite_delivered = false`.
    ///
    /// Errors: [`Error::ForeignIdentityExists`] (`UsernameExists`), [`Error::PasswordPolicy`]
    /// (`InvalidPassword`), [`Error::RateLimited`], [`Error::IdentityProviderUnavailable`] (timeout,
    /// network, `InternalError`), [`Error::IdentityProviderError`] (anything definitive, e.g.
    /// `InvalidParameter`). Makes no database call.
    pub async fn create_admin_user(
        &self,
        email: &AdminEmail,
        temporary_password: Option<TemporaryPassword>,
    ) -> Result<CreatedIdentity, Error> {
        let req = CreateUserRequest {
            username: email.normalized().to_string(),
            email: email.normalized().to_string(),
            temporary_password,
            message_action: None,
        };
        match self
            .idp_call(idp_op::ADMIN_CREATE_USER, self.idp.admin_create_user(req))
            .await
        {
            Ok(user) => Ok(CreatedIdentity {
                user,
                invite_delivered: true,
            }),
            Err(IdpError::CodeDeliveryFailure(_)) => {
                let user = self
                    .idp_call(idp_op::ADMIN_GET_USER, self.idp.admin_get_user(email.normalized()))
                    .await?;
                Ok(CreatedIdentity {
                    user,
                    invite_delivered: false,
                })
            }
            Err(e) => Err(admin_call_error(e)),
        }
    }

    /// **Operation 2: write the database records**: one `User` row and its linked `AdminInfo` row.
    ///
    /// * `email` — the admin's address (the `User.email`; its lower-cased form is unique).
    /// * `cognito_username`, `cognito_sub` — the Cognito user to link (`User.cognito_username`,
    ///   `User.cognito_sub`, both unique).
    /// * `plan` — the id chosen in advance, who invited, whether the invitation was delivered, and the
    ///   saga to complete in the same transaction.
    ///
    /// SQL: in one transaction `INSERT INTO users`, `INSERT INTO admin_info` (foreign key `user_id`),
    /// `INSERT INTO audit_log` and, for a saga, `UPDATE sagas SET state='completed'`. Idempotent: calling it
    /// again with the same id returns the existing records.
    ///
    /// Returns the [`AdminRecord`]. Errors: [`Error::AdminExists`] (unique e-mail or Cognito user taken),
    /// [`Error::DatabaseUnavailable`]. Makes no Cognito call.
    pub async fn create_admin_database_records(
        &self,
        email: &AdminEmail,
        cognito_username: &str,
        cognito_sub: &str,
        plan: &RecordPlan,
    ) -> Result<AdminRecord, Error> {
        let now = self.now();
        let admin = NewAdmin {
            id: plan.user_id,
            email: email.as_str().to_string(),
            email_normalized: email.normalized().to_string(),
            cognito_username: cognito_username.to_string(),
            cognito_sub: cognito_sub.to_string(),
            invited_by: match &plan.actor {
                Actor::Admin(id) => Some(*id),
                Actor::Operator => None,
            },
            invited_at: now,
            invite_expires_at: now + chrono::Duration::days(self.settings.invite_validity_days as i64),
            invite_delivered: plan.invite_delivered,
        };
        let audit = self.audit(
            &plan.actor,
            plan.action,
            email.normalized(),
            "success",
            plan.request_id.as_deref(),
        );
        Ok(self
            .store_call(self.admins.insert_admin(admin, audit, plan.saga_id))
            .await?)
    }

    /// **Operation 3: provision a new admin** — the saga over operations 1 and 2. Only an authenticated,
    /// active admin (or the operator) may call it.
    ///
    /// * `caller` — a verified token's identity (checked against the database: the caller must be an
    ///   active admin) or [`Caller::Operator`].
    /// * `email` — the raw address as received; it is parsed here, at the edge.
    /// * `request_id` — recorded in the saga log and the audit log.
    ///
    /// Steps: (1) parse the e-mail and authorise the caller; (2) refuse if an admin with this e-mail
    /// exists; (3) record the intent in the saga log (`INSERT INTO sagas`, with the `User.id` and Cognito
    /// username it will use; a unique index lets only one unfinished saga hold an e-mail), then
    /// `UPDATE sagas SET state='identity_creating'` just before Cognito is called; (4) `AdminCreateUser`
    /// (operation 1), retrying transient errors, adopting its own user on `UsernameExists`, treating
    /// `CodeDeliveryFailure` as created; (5) `UPDATE sagas` with the Cognito username and `sub`; (6)
    /// operation 2, which also completes the saga. If (4)–(6) fail definitively, the compensation deletes
    /// the Cognito user this saga created (`AdminDeleteUser`) and marks the saga `compensated`; if that
    /// cannot finish the saga is marked `stuck` and [`Error::SagaStuck`] returned.
    ///
    /// Returns [`ProvisionedAdmin`] (both records and the invitation). Errors: [`Error::InvalidEmail`],
    /// [`Error::Forbidden`], [`Error::AdminExists`], [`Error::ForeignIdentityExists`],
    /// [`Error::RateLimited`], [`Error::IdentityProviderUnavailable`], [`Error::IdentityProviderError`],
    /// [`Error::DatabaseUnavailable`], [`Error::SagaStuck`].
    #[tracing::instrument(skip_all, fields(email_domain))]
    pub async fn provision_new_admin(
        &self,
        caller: &Caller,
        email: &str,
        request_id: Option<&str>,
    ) -> Result<ProvisionedAdmin, Error> {
        let email = AdminEmail::parse(email)?;
        if let Some((_, d)) = email.normalized().split_once('@') {
            tracing::Span::current().record("email_domain", d);
        }
        let actor = self.authorize(caller).await?;
        self.run_provision_saga(actor, email, AuditAction::CreateAdmin, request_id)
            .await
    }

    /// **Operation 4: answer the first-login challenge.** The new admin logs in with the temporary
    /// password from the invitation e-mail and replaces it.
    ///
    /// * `username` — the Cognito username or the e-mail.
    /// * `temporary_password` — from the invitation.
    /// * `new_password` — must satisfy the pool's password policy.
    ///
    /// Cognito calls: `InitiateAuth` (`USER_PASSWORD_AUTH`) → `NEW_PASSWORD_REQUIRED` with a session →
    /// `RespondToAuthChallenge` (`NEW_PASSWORD_REQUIRED`, `USERNAME`, `NEW_PASSWORD`). SQL: `UPDATE users
    /// SET status='active'`, `UPDATE admin_info SET accepted_at`, `INSERT INTO audit_log`, one transaction.
    ///
    /// Returns the [`Tokens`] (ID, access, refresh, lifetime). Errors: [`Error::InvalidCredentials`] (wrong
    /// or expired temporary password, expired session), [`Error::PasswordPolicy`], [`Error::NoChallenge`]
    /// (the password was already changed), [`Error::RateLimited`], [`Error::IdentityProviderUnavailable`].
    /// A database failure after Cognito accepted the new password does not fail the call (the password is
    /// already changed); it is logged and repaired at the next successful login.
    #[tracing::instrument(skip_all)]
    pub async fn handle_new_password_challenge(
        &self,
        username: &str,
        temporary_password: &TemporaryPassword,
        new_password: &Password,
        request_id: Option<&str>,
    ) -> Result<Tokens, Error> {
        match self
            .login(username, &Password::new(temporary_password.expose()), request_id)
            .await?
        {
            LoginOutcome::Tokens(_) => Err(Error::NoChallenge),
            LoginOutcome::NewPasswordRequired { session, username } => {
                self.complete_new_password(&username, &session, new_password, request_id)
                    .await
            }
        }
    }

    /// **Operation 5: resend an invitation** with a new temporary password and a fresh expiry.
    ///
    /// * `caller` — as for [`Provisioner::provision_new_admin`].
    /// * `email` — the admin's address, raw.
    ///
    /// Refused for an admin who already set a password ([`Error::AlreadyActive`]) and within the cooldown
    /// after the previous invitation ([`Error::ResendCooldown`]). Cognito: `AdminCreateUser` with
    /// `MessageAction=RESEND` (same user and `sub`, new temporary password, expiry reset; a
    /// `CodeDeliveryFailure` is recorded as undelivered). SQL: `UPDATE admin_info` (`invites_sent`,
    /// `last_invite_sent_at`, `invite_expires_at`, `invite_delivered`) + `INSERT INTO audit_log`.
    ///
    /// Returns the new [`InviteView`]. Errors: [`Error::InvalidEmail`], [`Error::Forbidden`],
    /// [`Error::NotFound`], [`Error::AlreadyActive`], [`Error::ResendCooldown`], [`Error::RateLimited`],
    /// [`Error::IdentityProviderUnavailable`], [`Error::IdentityProviderError`] (the Cognito user is
    /// missing from the pool), [`Error::DatabaseUnavailable`].
    #[tracing::instrument(skip_all)]
    pub async fn resend_admin_invite(
        &self,
        caller: &Caller,
        email: &str,
        request_id: Option<&str>,
    ) -> Result<InviteView, Error> {
        let email = AdminEmail::parse(email)?;
        let actor = self.authorize(caller).await?;
        let record = self
            .store_call(self.admins.find_admin_by_email(email.normalized()))
            .await?
            .ok_or(Error::NotFound)?;
        self.resend_for(actor, record, request_id).await
    }

    // ----------------------------------------------------------------------------------------------
    // Further operations used by the CLI and the HTTP API
    // ----------------------------------------------------------------------------------------------

    /// Creates the very first admin (operator only). Refused with [`Error::AlreadyBootstrapped`] once any
    /// admin exists. Same saga as [`Provisioner::provision_new_admin`], audited as `bootstrap_admin`.
    pub async fn bootstrap_admin(&self, email: &str, request_id: Option<&str>) -> Result<ProvisionedAdmin, Error> {
        let email = AdminEmail::parse(email)?;
        if !self.store_call(self.admins.list_admins()).await?.is_empty() {
            return Err(Error::AlreadyBootstrapped);
        }
        self.run_provision_saga(Actor::Operator, email, AuditAction::BootstrapAdmin, request_id)
            .await
    }

    /// [`Provisioner::resend_admin_invite`] by admin id.
    pub async fn resend_admin_invite_by_id(
        &self,
        caller: &Caller,
        id: UserId,
        request_id: Option<&str>,
    ) -> Result<InviteView, Error> {
        let actor = self.authorize(caller).await?;
        let record = self
            .store_call(self.admins.get_admin(id))
            .await?
            .ok_or(Error::NotFound)?;
        self.resend_for(actor, record, request_id).await
    }

    /// Resolves a caller to an [`Actor`]: the operator, or an active admin found in the database by the
    /// token's `sub` (or username). Errors: [`Error::Forbidden`], [`Error::DatabaseUnavailable`].
    pub async fn authorize(&self, caller: &Caller) -> Result<Actor, Error> {
        match caller {
            Caller::Operator => Ok(Actor::Operator),
            Caller::Token { sub, username } => {
                let found = match self.store_call(self.admins.find_admin_by_cognito_sub(sub)).await? {
                    Some(r) => Some(r),
                    None => {
                        self.store_call(self.admins.find_admin_by_cognito_username(username))
                            .await?
                    }
                };
                match found {
                    Some(r) if r.user.status == UserStatus::Active => Ok(Actor::Admin(r.user.id)),
                    _ => Err(Error::Forbidden),
                }
            }
        }
    }

    /// Logs in with `USER_PASSWORD_AUTH`. A returning admin whose database row still says `invited`
    /// (a lost write after the password change) is repaired to `active` here.
    pub async fn login(
        &self,
        username: &str,
        password: &Password,
        request_id: Option<&str>,
    ) -> Result<LoginOutcome, Error> {
        let login_name = username.trim().to_lowercase();
        let outcome = self
            .idp_call(idp_op::INITIATE_AUTH, self.idp.initiate_auth(&login_name, password))
            .await
            // Pools that reveal user existence answer UserNotFound: to the caller it is a wrong login.
            .map_err(login_error)?;
        match outcome {
            AuthOutcome::NewPasswordRequired { session, username } => {
                Ok(LoginOutcome::NewPasswordRequired { session, username })
            }
            AuthOutcome::Tokens(tokens) => {
                self.mark_accepted_if_needed(&login_name, request_id).await;
                Ok(LoginOutcome::Tokens(tokens))
            }
        }
    }

    /// Answers a `NEW_PASSWORD_REQUIRED` challenge with its session (the console's path), then marks the
    /// admin active. See [`Provisioner::handle_new_password_challenge`] for errors.
    pub async fn complete_new_password(
        &self,
        username: &str,
        session: &Secret,
        new_password: &Password,
        request_id: Option<&str>,
    ) -> Result<Tokens, Error> {
        let tokens = self
            .idp_call(
                idp_op::RESPOND_TO_AUTH_CHALLENGE,
                self.idp
                    .respond_to_new_password_challenge(username, session, new_password),
            )
            .await
            .map_err(login_error)?;
        self.mark_accepted_if_needed(username, request_id).await;
        Ok(tokens)
    }

    /// Every admin with its computed status, plus unfinished provisionings (`pending`) and stuck ones
    /// (`failed`). Oldest first.
    pub async fn list_admin_views(&self) -> Result<Vec<AdminView>, Error> {
        let now = self.now();
        let mut out: Vec<AdminView> = self
            .store_call(self.admins.list_admins())
            .await?
            .into_iter()
            .map(|r| AdminView::of_record(r, now))
            .collect();
        let stored: std::collections::HashSet<UserId> = out.iter().map(|a| a.id).collect();
        for s in self.store_call(self.sagas.list_unfinished()).await? {
            if s.kind == SagaKind::Provision && !stored.contains(&s.user_id) {
                out.push(AdminView::of_saga(&s));
            }
        }
        Ok(out)
    }

    /// One admin (or unfinished provisioning) by id.
    pub async fn get_admin_view(&self, id: UserId) -> Result<AdminView, Error> {
        if let Some(record) = self.store_call(self.admins.get_admin(id)).await? {
            return Ok(AdminView::of_record(record, self.now()));
        }
        Ok(AdminView::of_saga(
            &self.unfinished_provision_of(id).await?.ok_or(Error::NotFound)?,
        ))
    }

    /// The unfinished provisioning saga that will write admin `id`, if any.
    async fn unfinished_provision_of(&self, id: UserId) -> Result<Option<SagaRecord>, Error> {
        Ok(self
            .store_call(self.sagas.list_unfinished())
            .await?
            .into_iter()
            .find(|s| s.kind == SagaKind::Provision && s.user_id == id))
    }

    /// Removes an admin from both systems (revoking the invitation if it was never accepted).
    ///
    /// Refuses to remove the last active admin ([`Error::LastAdmin`]). Saga: record the intent; delete
    /// `AdminInfo` + `User` (+ audit) in one transaction; `AdminDeleteUser` (a missing user counts as
    /// deleted), retried; mark the saga completed. If Cognito cannot be reached the saga stays
    /// `identity_pending_delete`, is marked `stuck` and is retried by recovery: the database no longer
    /// grants the user anything meanwhile.
    pub async fn remove_admin(&self, caller: &Caller, id: UserId, request_id: Option<&str>) -> Result<(), Error> {
        let actor = self.authorize(caller).await?;
        let record = match self.store_call(self.admins.get_admin(id)).await? {
            Some(r) => r,
            None => match self.revoke_unfinished(&actor, id, request_id).await? {
                Some(r) => r,
                None => return Ok(()),
            },
        };
        if record.user.status == UserStatus::Active && self.store_call(self.admins.count_active_admins()).await? <= 1 {
            return Err(Error::LastAdmin);
        }
        let now = self.now();
        let saga = SagaRecord {
            id: Uuid::new_v4(),
            kind: SagaKind::Remove,
            actor: actor.clone(),
            email: record.user.email.clone(),
            email_normalized: record.user.email_normalized.clone(),
            user_id: record.user.id,
            cognito_username: record.user.cognito_username.clone(),
            cognito_sub: Some(record.user.cognito_sub.clone()),
            identity_created_by_saga: true,
            invite_delivered: record.admin_info.invite_delivered,
            state: SagaState::Started,
            attempts: 0,
            last_error: None,
            request_id: request_id.map(str::to_string),
            started_at: now,
            updated_at: now,
        };
        let saga = match self.retry(|| self.store_call(self.sagas.begin(saga.clone()))).await {
            Ok(s) => s,
            Err(StoreError::SagaInFlight) => return Err(Error::AdminExists),
            Err(e) => return Err(e.into()),
        };
        let audit = self.audit(
            &actor,
            AuditAction::DeleteAdmin,
            &record.user.email_normalized,
            "success",
            request_id,
        );
        match self
            .retry(|| self.store_call(self.admins.delete_admin(id, audit.clone(), Some(saga.id))))
            .await
        {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => {
                // Did the delete land despite the error? Only a definite "gone" lets Cognito be touched.
                match self.store_call(self.admins.get_admin(id)).await {
                    Ok(None) => {}
                    Ok(Some(_)) => {
                        let _ = self.set_state(saga.id, SagaState::Aborted, Some(e.to_string())).await;
                        return Err(e.into());
                    }
                    Err(read_err) => {
                        tracing::error!(saga_id = %saga.id, error = %read_err, "cannot tell whether the admin was deleted; leaving the removal to recovery");
                        return Err(Error::SagaStuck { saga_id: saga.id });
                    }
                }
            }
        }
        self.finish_remove(&saga).await
    }

    /// `DELETE` of a line that has no records yet: a provisioning still running (refused), or one that
    /// was interrupted or is stuck (recovered now: finished or undone). Returns the records when recovery
    /// finished the provisioning (the caller then removes the admin), `None` when nothing is left.
    async fn revoke_unfinished(
        &self,
        actor: &Actor,
        id: UserId,
        request_id: Option<&str>,
    ) -> Result<Option<AdminRecord>, Error> {
        let saga = self.unfinished_provision_of(id).await?.ok_or(Error::NotFound)?;
        if saga.state != SagaState::Stuck && self.now() - saga.updated_at < self.creation_window() {
            return Err(Error::ProvisioningInProgress);
        }
        let end = self.recover_provision(&saga).await;
        if let Some(record) = self.store_call(self.admins.get_admin(id)).await? {
            return Ok(Some(record));
        }
        if !end.is_terminal() {
            return Err(Error::SagaStuck { saga_id: saga.id });
        }
        let audit = self.audit(
            actor,
            AuditAction::DeleteAdmin,
            &saga.email_normalized,
            "success: provisioning undone",
            request_id,
        );
        let _ = self.store_call(self.admins.append_audit(audit)).await;
        Ok(None)
    }

    /// Finds sagas left unfinished by a crash (or stuck) whose last change is older than `min_age` (zero:
    /// all of them) and settles each. A provisioning whose records exist is marked completed; one that
    /// never called Cognito is aborted; one whose own Cognito user exists is rolled forward (records
    /// written, marked active if the invitee already set a password); one with no user is compensated; an
    /// undo under way (or stuck) is finished. A removal is finished in both systems.
    pub async fn recover_unfinished(&self, min_age: chrono::Duration) -> Result<Vec<RecoveryReport>, Error> {
        let now = self.now();
        let mut out = Vec::new();
        for saga in self.store_call(self.sagas.list_unfinished()).await? {
            // A zero age means "every unfinished saga" (operator-triggered recovery, tests).
            if min_age > chrono::Duration::zero() && now - saga.updated_at < min_age {
                continue;
            }
            let state = self.recover_one(&saga).await;
            out.push(RecoveryReport {
                saga_id: saga.id,
                email: saga.email.clone(),
                state,
            });
        }
        Ok(out)
    }

    // ----------------------------------------------------------------------------------------------
    // Saga internals
    // ----------------------------------------------------------------------------------------------

    async fn run_provision_saga(
        &self,
        actor: Actor,
        email: AdminEmail,
        action: AuditAction,
        request_id: Option<&str>,
    ) -> Result<ProvisionedAdmin, Error> {
        let started = Instant::now();
        let result = self.provision_inner(&actor, &email, action, request_id).await;
        let outcome = match &result {
            Ok(_) => "created",
            Err(Error::SagaStuck { .. }) => "stuck",
            Err(Error::AdminExists | Error::ForeignIdentityExists | Error::Forbidden | Error::InvalidEmail(_)) => {
                "rejected"
            }
            Err(_) => "compensated",
        };
        self.observer
            .provision_finished(outcome, started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            tracing::warn!(code = e.code(), error = %e, "provisioning failed");
            let audit = self.audit(
                &actor,
                action,
                email.normalized(),
                &format!("failure: {}", e.code()),
                request_id,
            );
            let _ = self.store_call(self.admins.append_audit(audit)).await;
        }
        result
    }

    async fn provision_inner(
        &self,
        actor: &Actor,
        email: &AdminEmail,
        action: AuditAction,
        request_id: Option<&str>,
    ) -> Result<ProvisionedAdmin, Error> {
        if self
            .store_call(self.admins.find_admin_by_email(email.normalized()))
            .await?
            .is_some()
        {
            return Err(Error::AdminExists);
        }
        let now = self.now();
        let intent = SagaRecord {
            id: Uuid::new_v4(),
            kind: SagaKind::Provision,
            actor: actor.clone(),
            email: email.as_str().to_string(),
            email_normalized: email.normalized().to_string(),
            user_id: UserId::new(),
            cognito_username: email.normalized().to_string(),
            cognito_sub: None,
            identity_created_by_saga: false,
            invite_delivered: true,
            state: SagaState::Started,
            attempts: 0,
            last_error: None,
            request_id: request_id.map(str::to_string),
            started_at: now,
            updated_at: now,
        };

        // Step 1: record the intent before any side effect.
        let mut saga = match self.retry(|| self.store_call(self.sagas.begin(intent.clone()))).await {
            Ok(s) => s,
            Err(StoreError::SagaInFlight) => return Err(Error::AdminExists),
            Err(e) => {
                // The row may exist (a lost reply): release the e-mail. If even that fails, the saga is
                // still `started` with no side effect; recovery aborts it.
                let _ = self.set_state(intent.id, SagaState::Aborted, Some(e.to_string())).await;
                return Err(e.into());
            }
        };

        // Step 2: note in the log that AdminCreateUser is about to be called. A saga still `started` after a
        // crash therefore never called Cognito, and recovery leaves any user at that username alone.
        let creating = SagaUpdate {
            state: Some(SagaState::IdentityCreating),
            expected_state: Some(SagaState::Started),
            ..Default::default()
        };
        if let Err(e) = self
            .retry(|| self.store_call(self.sagas.update(saga.id, creating.clone())))
            .await
        {
            if !matches!(e, StoreError::SagaStateChanged(ref st) if st == SagaState::IdentityCreating.as_str()) {
                let _ = self.set_state(saga.id, SagaState::Aborted, Some(e.to_string())).await;
                return Err(e.into());
            }
        }
        saga.state = SagaState::IdentityCreating;

        // Step 3: the Cognito user.
        let identity = match self.create_identity_step(&saga).await {
            Ok(identity) => identity,
            Err(err) => return Err(self.compensate_provision(&saga, None, err).await),
        };

        // Step 4: remember it in the saga log.
        let update = SagaUpdate {
            state: Some(SagaState::IdentityCreated),
            cognito_username: Some(identity.user.username.clone()),
            cognito_sub: Some(identity.user.sub.clone()),
            identity_created_by_saga: Some(true),
            invite_delivered: Some(identity.invite_delivered),
            add_attempts: 1,
            ..Default::default()
        };
        if let Err(e) = self
            .retry(|| self.store_call(self.sagas.update(saga.id, update.clone())))
            .await
        {
            return Err(self.compensate_provision(&saga, Some(&identity.user), e.into()).await);
        }

        // Step 5: the database records, completing the saga in the same transaction.
        let plan = RecordPlan {
            user_id: saga.user_id,
            actor: actor.clone(),
            action,
            invite_delivered: identity.invite_delivered,
            request_id: request_id.map(str::to_string),
            saga_id: Some(saga.id),
        };
        let err = match self
            .retry(|| self.create_admin_database_records(email, &identity.user.username, &identity.user.sub, &plan))
            .await
        {
            Ok(record) => return Ok(self.provisioned(record, saga.id)),
            Err(e) => e,
        };
        // Verify before undoing: the write may have landed although its reply was lost.
        match self.store_call(self.admins.get_admin(saga.user_id)).await {
            Ok(Some(record)) => Ok(self.provisioned(record, saga.id)),
            Ok(None) => Err(self.compensate_provision(&saga, Some(&identity.user), err).await),
            Err(read_err) => {
                tracing::error!(saga_id = %saga.id, error = %read_err, "cannot tell whether the records were written; leaving the saga for recovery");
                let _ = self
                    .set_state(
                        saga.id,
                        SagaState::Stuck,
                        Some(format!("{err}; read-back failed: {read_err}")),
                    )
                    .await;
                Err(Error::SagaStuck { saga_id: saga.id })
            }
        }
    }

    fn provisioned(&self, record: AdminRecord, saga_id: Uuid) -> ProvisionedAdmin {
        let invite = InviteView::of(&record, self.now());
        ProvisionedAdmin {
            user: record.user,
            admin_info: record.admin_info,
            invite,
            saga_id,
        }
    }

    /// AdminCreateUser with retries, adoption of its own user, and CodeDeliveryFailure handling.
    async fn create_identity_step(&self, saga: &SagaRecord) -> Result<CreatedIdentity, Error> {
        let email = match AdminEmail::parse(&saga.email) {
            Ok(e) => e,
            Err(e) => return Err(e.into()),
        };
        match self.retry(|| self.create_admin_user(&email, None)).await {
            Ok(identity) => Ok(identity),
            Err(Error::ForeignIdentityExists) => {
                // Ours (a retry whose first attempt landed) or someone else's?
                match self.find_own_identity(saga).await {
                    Ok(Some(user)) => {
                        tracing::info!(saga_id = %saga.id, "adopting the Cognito user created by an earlier attempt of this saga");
                        Ok(CreatedIdentity {
                            user,
                            invite_delivered: true,
                        })
                    }
                    Ok(None) => {
                        // Not ours. If the database links it to an admin with this e-mail, a concurrent
                        // provisioning of the same address just finished first: the admin exists.
                        match self
                            .store_call(self.admins.find_admin_by_email(&saga.email_normalized))
                            .await
                        {
                            Ok(Some(_)) => Err(Error::AdminExists),
                            _ => Err(Error::ForeignIdentityExists),
                        }
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// How long after its intent a saga may still have created its Cognito user: every attempt of the
    /// create step with its timeouts and backoff, twice over, plus the clock skew.
    fn creation_window(&self) -> chrono::Duration {
        let per_attempt = self.settings.call_timeout + self.settings.backoff_max;
        let span = per_attempt.saturating_mul(self.settings.max_attempts.max(1) * 2);
        chrono::Duration::from_std(span).unwrap_or(chrono::Duration::minutes(10)) + self.settings.ownership_skew
    }

    /// What is at the saga's Cognito username, and whether it is the saga's own (see the module docs).
    async fn classify_identity(&self, saga: &SagaRecord) -> Result<Found, IdpError> {
        let user = match self
            .retry(|| self.idp_call(idp_op::ADMIN_GET_USER, self.idp.admin_get_user(&saga.cognito_username)))
            .await
        {
            Ok(u) => u,
            Err(IdpError::UserNotFound) => return Ok(Found::Missing),
            Err(e) => return Err(e),
        };
        if saga.identity_created_by_saga && saga.cognito_sub.as_deref() == Some(user.sub.as_str()) {
            return Ok(Found::Recorded(user));
        }
        if saga.state == SagaState::Started {
            // The log says AdminCreateUser was never called: whatever is there is someone else's.
            return Ok(Found::Foreign);
        }
        let from = saga.started_at - self.settings.ownership_skew;
        let until = saga.started_at + self.creation_window();
        let in_window = user.created_at >= from && user.created_at <= until;
        let same_email = user
            .email
            .as_deref()
            .map(|e| e.eq_ignore_ascii_case(&saga.email_normalized))
            .unwrap_or(false);
        let known_status = matches!(
            user.status,
            IdpUserStatus::ForceChangePassword | IdpUserStatus::Confirmed
        );
        if !(in_window && same_email && known_status) {
            return Ok(Found::Foreign);
        }
        // Linked to another admin already? Then it is not ours to adopt or delete.
        match self
            .store_call(self.admins.find_admin_by_cognito_username(&user.username))
            .await
        {
            Ok(Some(r)) if r.user.id != saga.user_id => Ok(Found::Foreign),
            Ok(_) => Ok(Found::InWindow(user)),
            Err(e) => Err(IdpError::Unavailable(format!("cannot check the database: {e}"))),
        }
    }

    /// The Cognito user at the saga's username, if it may be adopted by the running saga: its own by the
    /// log, or created in its window and still waiting for first login.
    async fn find_own_identity(&self, saga: &SagaRecord) -> Result<Option<IdpUser>, IdpError> {
        Ok(match self.classify_identity(saga).await? {
            Found::Recorded(u) => Some(u),
            Found::InWindow(u) if u.status == IdpUserStatus::ForceChangePassword => Some(u),
            _ => None,
        })
    }

    /// Undo of a provisioning: delete the Cognito user if (and only if) it is this saga's own.
    /// Returns the error to report.
    async fn compensate_provision(&self, saga: &SagaRecord, known: Option<&IdpUser>, cause: Error) -> Error {
        // Nothing of ours was created: someone else's user, or an admin that already exists.
        if matches!(cause, Error::ForeignIdentityExists | Error::AdminExists) {
            let _ = self
                .set_state(saga.id, SagaState::Aborted, Some(cause.to_string()))
                .await;
            return cause;
        }
        tracing::warn!(saga_id = %saga.id, cause = %cause, "compensating provisioning");
        let claim = self
            .retry(|| {
                self.store_call(self.sagas.update(
                    saga.id,
                    SagaUpdate {
                        state: Some(SagaState::Compensating),
                        last_error: Some(Some(cause.to_string())),
                        ..Default::default()
                    },
                ))
            })
            .await;
        if let Err(StoreError::SagaStateChanged(state)) = &claim {
            // Another process (recovery) finished this saga meanwhile: its outcome stands, nothing to undo.
            tracing::warn!(saga_id = %saga.id, state = %state, "saga finished elsewhere; not compensating");
            return cause;
        }
        let mut view = saga.clone();
        if let Some(u) = known {
            view.identity_created_by_saga = true;
            view.cognito_username = u.username.clone();
            view.cognito_sub = Some(u.sub.clone());
        }
        match self.undo_identity(&view).await {
            Ok(()) => {
                let _ = self
                    .set_state(saga.id, SagaState::Compensated, Some(cause.to_string()))
                    .await;
                cause
            }
            Err(undo_err) => {
                tracing::error!(saga_id = %saga.id, error = %undo_err, "compensation could not finish; saga is stuck");
                let msg = format!("{cause}; compensation failed: {undo_err}");
                let _ = self.set_state(saga.id, SagaState::Stuck, Some(msg)).await;
                Error::SagaStuck { saga_id: saga.id }
            }
        }
    }

    /// Deletes the saga's own Cognito user, if there is one.
    async fn undo_identity(&self, saga: &SagaRecord) -> Result<(), IdpError> {
        let target = if saga.identity_created_by_saga {
            Some(saga.cognito_username.clone())
        } else {
            // Only a user still waiting for first login is deleted on the strength of the time window.
            self.find_own_identity(saga).await?.map(|u| u.username)
        };
        let Some(username) = target else {
            return Ok(());
        };
        match self
            .retry(|| self.idp_call(idp_op::ADMIN_DELETE_USER, self.idp.admin_delete_user(&username)))
            .await
        {
            Ok(()) | Err(IdpError::UserNotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn finish_remove(&self, saga: &SagaRecord) -> Result<(), Error> {
        match self
            .retry(|| {
                self.idp_call(
                    idp_op::ADMIN_DELETE_USER,
                    self.idp.admin_delete_user(&saga.cognito_username),
                )
            })
            .await
        {
            Ok(()) | Err(IdpError::UserNotFound) => {
                let _ = self.set_state(saga.id, SagaState::Completed, None).await;
                Ok(())
            }
            Err(e) => {
                tracing::error!(saga_id = %saga.id, error = %e, "could not delete the Cognito user; saga is stuck and will be retried");
                let _ = self.set_state(saga.id, SagaState::Stuck, Some(e.to_string())).await;
                Err(Error::SagaStuck { saga_id: saga.id })
            }
        }
    }

    /// Recovery of a provisioning: finish it if its Cognito user exists and is its own (roll forward),
    /// undo it if it was already being undone, close it if nothing was created. Never deletes a user it
    /// cannot prove is its own; a case it cannot decide is marked `stuck` for an operator.
    async fn recover_provision(&self, saga: &SagaRecord) -> SagaState {
        match self.store_call(self.admins.get_admin(saga.user_id)).await {
            Ok(Some(_)) => return self.finish_state(saga, SagaState::Completed, None).await,
            Ok(None) => {}
            Err(_) => return saga.state, // database down: try again next pass
        }
        match saga.state {
            SagaState::Started => {
                self.finish_state(saga, SagaState::Aborted, Some("interrupted before any side effect"))
                    .await
            }
            SagaState::Compensating | SagaState::Stuck => match self.undo_identity(saga).await {
                Ok(()) => {
                    self.finish_state(saga, SagaState::Compensated, Some("undo finished by recovery"))
                        .await
                }
                Err(e) => {
                    let _ = self.set_state(saga.id, SagaState::Stuck, Some(e.to_string())).await;
                    SagaState::Stuck
                }
            },
            _ => match self.classify_identity(saga).await {
                Ok(Found::Recorded(user)) | Ok(Found::InWindow(user)) => match self.roll_forward(saga, &user).await {
                    Ok(()) => SagaState::Completed,
                    Err(e) => {
                        tracing::warn!(saga_id = %saga.id, error = %e, "recovery could not finish the saga yet");
                        saga.state
                    }
                },
                Ok(Found::Missing) => {
                    self.finish_state(
                        saga,
                        SagaState::Compensated,
                        Some("interrupted; no Cognito user was left"),
                    )
                    .await
                }
                Ok(Found::Foreign) => {
                    self.finish_state(
                        saga,
                        SagaState::Aborted,
                        Some("interrupted; the Cognito user at this username is not this saga's and was left alone"),
                    )
                    .await
                }
                Err(_) => saga.state, // Cognito unreachable: try again next pass
            },
        }
    }

    /// Writes the records of an interrupted saga whose Cognito user exists (and marks the admin active if
    /// the invitee already set a password).
    async fn roll_forward(&self, saga: &SagaRecord, user: &IdpUser) -> Result<(), Error> {
        let email = AdminEmail::parse(&saga.email)?;
        let plan = RecordPlan {
            user_id: saga.user_id,
            actor: saga.actor.clone(),
            action: AuditAction::CreateAdmin,
            invite_delivered: saga.invite_delivered,
            request_id: saga.request_id.clone(),
            saga_id: Some(saga.id),
        };
        let record = self
            .create_admin_database_records(&email, &user.username, &user.sub, &plan)
            .await?;
        if user.status == IdpUserStatus::Confirmed {
            let audit = self.audit(
                &Actor::Admin(record.user.id),
                AuditAction::FirstLoginCompleted,
                &record.user.email_normalized,
                "success",
                saga.request_id.as_deref(),
            );
            self.store_call(self.admins.mark_accepted(record.user.id, self.now(), audit))
                .await?;
        }
        tracing::warn!(saga_id = %saga.id, "recovery finished an interrupted provisioning");
        Ok(())
    }

    /// Moves a saga to a final state, only from the state recovery observed (compare-and-set).
    async fn finish_state(&self, saga: &SagaRecord, state: SagaState, why: Option<&str>) -> SagaState {
        let update = SagaUpdate {
            state: Some(state),
            expected_state: Some(saga.state),
            last_error: why.map(|w| Some(w.to_string())),
            ..Default::default()
        };
        match self
            .retry(|| self.store_call(self.sagas.update(saga.id, update.clone())))
            .await
        {
            Ok(r) => r.state,
            Err(StoreError::SagaStateChanged(_)) | Err(_) => self
                .store_call(self.sagas.get(saga.id))
                .await
                .ok()
                .flatten()
                .map(|r| r.state)
                .unwrap_or(saga.state),
        }
    }

    async fn recover_one(&self, saga: &SagaRecord) -> SagaState {
        match saga.kind {
            SagaKind::Provision => self.recover_provision(saga).await,
            SagaKind::Remove => match self.store_call(self.admins.get_admin(saga.user_id)).await {
                Ok(Some(record)) => {
                    // The database delete never happened: redo it, then Cognito.
                    let audit = self.audit(
                        &saga.actor,
                        AuditAction::DeleteAdmin,
                        &record.user.email_normalized,
                        "success",
                        saga.request_id.as_deref(),
                    );
                    if self
                        .store_call(self.admins.delete_admin(saga.user_id, audit, Some(saga.id)))
                        .await
                        .is_err()
                    {
                        return saga.state;
                    }
                    match self.finish_remove(saga).await {
                        Ok(()) => SagaState::Completed,
                        Err(_) => SagaState::Stuck,
                    }
                }
                Ok(None) => match self.finish_remove(saga).await {
                    Ok(()) => SagaState::Completed,
                    Err(_) => SagaState::Stuck,
                },
                Err(_) => saga.state,
            },
        }
    }

    async fn resend_for(
        &self,
        actor: Actor,
        record: AdminRecord,
        request_id: Option<&str>,
    ) -> Result<InviteView, Error> {
        let now = self.now();
        if record.user.status == UserStatus::Active {
            return Err(Error::AlreadyActive);
        }
        let cooldown = chrono::Duration::from_std(self.settings.resend_cooldown).unwrap_or_default();
        let next_allowed = record.admin_info.last_invite_sent_at + cooldown;
        if now < next_allowed {
            let secs = (next_allowed - now).num_milliseconds().max(0) as u64;
            return Err(Error::ResendCooldown {
                retry_after_secs: secs.div_ceil(1000).max(1),
                cooldown_secs: self.settings.resend_cooldown.as_secs(),
            });
        }
        let req = CreateUserRequest {
            username: record.user.cognito_username.clone(),
            email: record.user.email_normalized.clone(),
            temporary_password: None,
            message_action: Some(MessageAction::Resend),
        };
        let delivered = match self
            .retry(|| self.idp_call(idp_op::ADMIN_CREATE_USER, self.idp.admin_create_user(req.clone())))
            .await
        {
            Ok(_) => true,
            Err(IdpError::CodeDeliveryFailure(_)) => false,
            Err(IdpError::UnsupportedUserState(_)) => {
                // Cognito says the password was already changed: repair the database.
                let audit = self.audit(
                    &actor,
                    AuditAction::FirstLoginCompleted,
                    &record.user.email_normalized,
                    "success",
                    request_id,
                );
                let _ = self
                    .store_call(self.admins.mark_accepted(record.user.id, now, audit))
                    .await;
                return Err(Error::AlreadyActive);
            }
            Err(IdpError::UserNotFound) => return Err(Error::IdentityProviderError(
                "the Cognito user of this admin is missing in the user pool; remove the admin and provision it again"
                    .into(),
            )),
            Err(e) => {
                let err = admin_call_error(e);
                let audit = self.audit(
                    &actor,
                    AuditAction::ResendInvite,
                    &record.user.email_normalized,
                    &format!("failure: {}", err.code()),
                    request_id,
                );
                let _ = self.store_call(self.admins.append_audit(audit)).await;
                return Err(err);
            }
        };
        let expires = now + chrono::Duration::days(self.settings.invite_validity_days as i64);
        let audit = self.audit(
            &actor,
            AuditAction::ResendInvite,
            &record.user.email_normalized,
            if delivered { "success" } else { "success: not delivered" },
            request_id,
        );
        let updated = self
            .retry(|| {
                self.store_call(
                    self.admins
                        .record_invite_sent(record.user.id, now, expires, delivered, audit.clone()),
                )
            })
            .await?;
        Ok(InviteView::of(&updated, now))
    }

    async fn mark_accepted_if_needed(&self, username: &str, request_id: Option<&str>) {
        let record = match self
            .store_call(self.admins.find_admin_by_cognito_username(username))
            .await
        {
            Ok(Some(r)) => Some(r),
            Ok(None) => self
                .store_call(self.admins.find_admin_by_email(&username.to_lowercase()))
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        let Some(record) = record else { return };
        if record.user.status == UserStatus::Active {
            return;
        }
        let actor = Actor::Admin(record.user.id);
        let audit = self.audit(
            &actor,
            AuditAction::FirstLoginCompleted,
            &record.user.email_normalized,
            "success",
            request_id,
        );
        if let Err(e) = self
            .retry(|| self.store_call(self.admins.mark_accepted(record.user.id, self.now(), audit.clone())))
            .await
        {
            tracing::error!(user_id = %record.user.id, error = %e, "password changed but the admin could not be marked active; the next login will repair it");
        }
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
