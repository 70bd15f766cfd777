//! The database ports: the admin store (`User` + `AdminInfo`, audit log, idempotency keys) and the saga log.
//!
//! One SQL adapter (`admin-provisioner-store`, SQLite and PostgreSQL) implements both traits over one
//! database, which is what lets [`AdminStore::insert_admin`] write the records, the audit event and the
//! saga's completion in a single transaction. Every write that changes an admin takes the
//! [`AuditEntry`] to append in the same transaction: the audit log cannot disagree with the state.

use crate::domain::{Actor, AdminRecord, Role, UserId};
use crate::pages::{StoredAdminFilter, UnfinishedFilter};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Names of the store's write operations, as used by fault injection.
pub mod op {
    /// [`super::SagaLog::begin`].
    pub const SAGA_BEGIN: &str = "saga.begin";
    /// [`super::SagaLog::update`].
    pub const SAGA_UPDATE: &str = "saga.update";
    /// [`super::AdminStore::insert_admin`].
    pub const INSERT_ADMIN: &str = "store.insert_admin";
    /// [`super::AdminStore::mark_accepted`].
    pub const MARK_ACCEPTED: &str = "store.mark_accepted";
    /// [`super::AdminStore::record_invite_sent`].
    pub const RECORD_INVITE_SENT: &str = "store.record_invite_sent";
    /// [`super::AdminStore::delete_admin`].
    pub const DELETE_ADMIN: &str = "store.delete_admin";
    /// [`super::AdminStore::set_admin_disabled`].
    pub const SET_ADMIN_DISABLED: &str = "store.set_admin_disabled";
    /// [`super::AdminStore::set_admin_role`].
    pub const SET_ADMIN_ROLE: &str = "store.set_admin_role";
    /// [`super::AdminStore::end_sessions`].
    pub const END_SESSIONS: &str = "store.end_sessions";
    /// [`super::AdminStore::set_mfa_enrolled`].
    pub const SET_MFA_ENROLLED: &str = "store.set_mfa_enrolled";
    /// [`super::AdminWrites::record_credentials_reset`].
    pub const RECORD_CREDENTIALS_RESET: &str = "store.record_credentials_reset";
    /// [`super::AdminStore::append_audit`].
    pub const APPEND_AUDIT: &str = "store.append_audit";
    /// [`super::SagaLog::claim_expired`].
    pub const SAGA_CLAIM: &str = "saga.claim_expired";
    /// [`super::SagaLog::get`] (a read).
    pub const SAGA_GET: &str = "saga.get";
    /// [`super::AdminStore::get_admin`] (a read).
    pub const GET_ADMIN: &str = "store.get_admin";
    /// [`super::AdminStore::find_admin_by_email`] (a read).
    pub const FIND_ADMIN_BY_EMAIL: &str = "store.find_admin_by_email";
    /// [`super::AdminStore::find_admin_by_cognito_username`] (a read).
    pub const FIND_ADMIN_BY_COGNITO_USERNAME: &str = "store.find_admin_by_cognito_username";
}

/// An error from the database.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// Another admin already has this normalised e-mail (unique index `users_email_normalized_key`).
    #[error("an admin with this e-mail already exists")]
    EmailTaken,
    /// Another admin is already linked to this Cognito username (unique index).
    #[error("another admin is already linked to this Cognito user")]
    CognitoUserTaken,
    /// Another unfinished saga already holds this e-mail (unique partial index on the saga log).
    #[error("another provisioning of this e-mail is in progress")]
    SagaInFlight,
    /// Deleting this admin would leave no active admin (checked inside the delete's transaction).
    #[error("this is the last active admin")]
    LastAdmin,
    /// Demoting, disabling or removing this admin would leave no active owner (checked inside the
    /// change's transaction, under the same lock as [`StoreError::LastAdmin`]).
    #[error("this is the last active owner")]
    LastOwner,
    /// A saga update was refused: the saga is not in the expected state (another process moved it), or
    /// it is already finished and finished sagas never change. Carries the current state.
    #[error("the saga is now {0}; the update was not applied")]
    SagaStateChanged(String),
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// The call did not answer within its timeout: it may or may not have taken effect.
    #[error("timeout: {0} did not answer in time")]
    Timeout(String),
    /// Connection or I/O trouble: retrying may help.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The saga is held by another owner (its lease expired and another process took it over), so this
    /// process must not act on it. Carries the current owner.
    #[error("the saga's lease was lost to {0}; the update was not applied")]
    LeaseLost(String),
    /// A SCIM token with this name exists already (revoked or not: names are never reused).
    #[error("a SCIM token with this name already exists")]
    TokenNameTaken,
    /// Another admin already has this SCIM `userName` (unique index `users_scim_user_name_key`).
    #[error("another admin already has this SCIM userName")]
    UserNameTaken,
    /// A definitive refusal (a CHECK, unique or foreign-key violation, a trigger, a broken schema, a bug):
    /// retrying will not help.
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    /// True when retrying may help: only connection loss, pool timeout, serialization failure /
    /// deadlock and "database is locked" (all mapped to [`StoreError::Unavailable`] by the adapter) and
    /// a call that did not answer in time.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Timeout(_) | StoreError::Unavailable(_))
    }
}

/// The audit log's actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// An admin was provisioned (`provision_new_admin`).
    CreateAdmin,
    /// The first admin was created by the operator.
    BootstrapAdmin,
    /// An invitation was re-sent.
    ResendInvite,
    /// An admin (or pending invite) was removed.
    DeleteAdmin,
    /// An admin replaced the temporary password.
    FirstLoginCompleted,
    /// The reconciler deleted a Cognito user the product created and no admin links to (a ghost).
    ReconcileDeleteGhost,
    /// The reconciler marked an admin active whose Cognito user had already set a password.
    ReconcileMarkActive,
    /// An admin was disabled in both systems.
    DisableAdmin,
    /// A disabled admin was enabled again in both systems.
    EnableAdmin,
    /// A SCIM token was issued.
    CreateScimToken,
    /// A SCIM token was revoked.
    RevokeScimToken,
    /// An admin's role was changed.
    ChangeRole,
    /// Another admin reset an admin's password (Cognito `AdminResetUserPassword`).
    ResetPassword,
    /// Another admin cleared an admin's authenticator (Cognito `AdminSetUserMFAPreference`).
    ResetMfa,
    /// Another admin signed an admin out everywhere (Cognito `AdminUserGlobalSignOut`).
    SignOutAdmin,
    /// The reconciler put an admin's Cognito role groups back as the database says.
    ReconcileRoleGroups,
}

impl AuditAction {
    /// Stored text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditAction::CreateAdmin => "create_admin",
            AuditAction::BootstrapAdmin => "bootstrap_admin",
            AuditAction::ResendInvite => "resend_invite",
            AuditAction::DeleteAdmin => "delete_admin",
            AuditAction::FirstLoginCompleted => "first_login_completed",
            AuditAction::ReconcileDeleteGhost => "reconcile_delete_ghost",
            AuditAction::ReconcileMarkActive => "reconcile_mark_active",
            AuditAction::DisableAdmin => "disable_admin",
            AuditAction::EnableAdmin => "enable_admin",
            AuditAction::CreateScimToken => "create_scim_token",
            AuditAction::RevokeScimToken => "revoke_scim_token",
            AuditAction::ChangeRole => "change_role",
            AuditAction::ResetPassword => "reset_password",
            AuditAction::ResetMfa => "reset_mfa",
            AuditAction::SignOutAdmin => "sign_out_admin",
            AuditAction::ReconcileRoleGroups => "reconcile_role_groups",
        }
    }
    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "create_admin" => AuditAction::CreateAdmin,
            "bootstrap_admin" => AuditAction::BootstrapAdmin,
            "resend_invite" => AuditAction::ResendInvite,
            "delete_admin" => AuditAction::DeleteAdmin,
            "first_login_completed" => AuditAction::FirstLoginCompleted,
            "reconcile_delete_ghost" => AuditAction::ReconcileDeleteGhost,
            "reconcile_mark_active" => AuditAction::ReconcileMarkActive,
            "disable_admin" => AuditAction::DisableAdmin,
            "enable_admin" => AuditAction::EnableAdmin,
            "create_scim_token" => AuditAction::CreateScimToken,
            "revoke_scim_token" => AuditAction::RevokeScimToken,
            "change_role" => AuditAction::ChangeRole,
            "reset_password" => AuditAction::ResetPassword,
            "reset_mfa" => AuditAction::ResetMfa,
            "sign_out_admin" => AuditAction::SignOutAdmin,
            "reconcile_role_groups" => AuditAction::ReconcileRoleGroups,
            _ => return None,
        })
    }
}

/// An audit event to append. Never contains a secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Who acted.
    pub actor: Actor,
    /// What they did.
    pub action: AuditAction,
    /// The target admin's e-mail (normalised).
    pub target: String,
    /// `success`, or `failure: <error code>`.
    pub outcome: String,
    /// The HTTP request id, or a CLI run id.
    pub request_id: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A stored audit event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Monotonic id.
    pub id: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// What [`AdminStore::insert_admin`] writes.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAdmin {
    /// The id the saga chose before its first side effect.
    pub id: UserId,
    /// E-mail as typed (trimmed).
    pub email: String,
    /// Lower-cased e-mail.
    pub email_normalized: String,
    /// Cognito `Username`.
    pub cognito_username: String,
    /// Cognito `sub`.
    pub cognito_sub: String,
    /// Who invited (`None` = operator).
    pub invited_by: Option<UserId>,
    /// When the invitation went out.
    pub invited_at: DateTime<Utc>,
    /// When the temporary password expires.
    pub invite_expires_at: DateTime<Utc>,
    /// False when Cognito reported CodeDeliveryFailure.
    pub invite_delivered: bool,
    /// The new admin's role.
    pub role: Role,
}

/// A stored idempotent response.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// Response body (JSON text).
    pub body: String,
}

/// The outcome of [`AdminStore::idempotency_begin`].
#[derive(Clone, Debug, PartialEq)]
pub enum IdempotencyBegin {
    /// First use of the key: the caller now owns it and must complete or abandon it.
    Started,
    /// The key was used before with this request hash: replay `response` (`None` = still in progress).
    Existing {
        /// Hash of the request body that first used the key.
        request_hash: String,
        /// The stored response, once complete.
        response: Option<StoredResponse>,
    },
}

/// An indexed SCIM lookup ([`AdminStore::find_admins_by_scim_key`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScimKey {
    /// Admins whose normalised e-mail or SCIM `userName` is this (lower-cased).
    UserName(String),
    /// Admins whose SCIM `externalId` is exactly this.
    ExternalId(String),
}

/// Reads of `User` + `AdminInfo` rows (and a reachability check).
#[async_trait]
pub trait AdminReads: Send + Sync + 'static {
    /// Cheap reachability check.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The admin with this normalised e-mail.
    async fn find_admin_by_email(&self, email_normalized: &str) -> Result<Option<AdminRecord>, StoreError>;

    /// The admin with this id.
    async fn get_admin(&self, id: UserId) -> Result<Option<AdminRecord>, StoreError>;

    /// The admin linked to this Cognito username.
    async fn find_admin_by_cognito_username(&self, username: &str) -> Result<Option<AdminRecord>, StoreError>;

    /// The admin linked to this Cognito `sub`.
    async fn find_admin_by_cognito_sub(&self, sub: &str) -> Result<Option<AdminRecord>, StoreError>;

    /// All admins, oldest first.
    async fn list_admins(&self) -> Result<Vec<AdminRecord>, StoreError>;

    /// How many admins have completed first login.
    async fn count_active_admins(&self) -> Result<i64, StoreError>;

    /// The admins a SCIM equality filter can match, by an indexed lookup (at most a handful of rows,
    /// whatever the table holds): see [`ScimKey`].
    async fn find_admins_by_scim_key(&self, key: &ScimKey) -> Result<Vec<AdminRecord>, StoreError>;

    /// At most `limit` stored admins passing `filter`, oldest first by `(created_at, id)`, starting after
    /// `after` (a keyset page: one range scan, memory bounded by `limit`).
    async fn list_admins_page(
        &self,
        filter: &StoredAdminFilter,
        after: Option<(DateTime<Utc>, UserId)>,
        limit: i64,
    ) -> Result<Vec<AdminRecord>, StoreError>;

    /// How many stored admins are `(active, invited, expired)` at `now` (one aggregate query).
    async fn count_admins_by_status(&self, now: DateTime<Utc>) -> Result<(i64, i64, i64), StoreError>;
}

/// Writes of `User` + `AdminInfo` rows, each one transaction with its audit entry (and, where named,
/// its saga's log write and its event).
#[async_trait]
pub trait AdminWrites: Send + Sync + 'static {
    /// Writes `User` + `AdminInfo` + the audit entry, and when `complete_saga` is given marks that saga
    /// `completed` and logs the linked Cognito user (username, sub, delivery flag) as the saga's own, all
    /// in one transaction. Idempotent: if a user with the same id and Cognito username
    /// exists already, returns it and writes nothing. Errors: [`StoreError::EmailTaken`] /
    /// [`StoreError::CognitoUserTaken`] when another admin holds the e-mail or Cognito user.
    async fn insert_admin(
        &self,
        admin: NewAdmin,
        audit: AuditEntry,
        complete_saga: Option<Uuid>,
    ) -> Result<AdminRecord, StoreError>;

    /// Marks first login completed (status `active`, `accepted_at`), with the audit entry. Idempotent:
    /// an already active admin keeps its first `accepted_at`.
    async fn mark_accepted(&self, id: UserId, at: DateTime<Utc>, audit: AuditEntry) -> Result<AdminRecord, StoreError>;

    /// Records a (re)sent invitation: `invites_sent + 1`, `last_invite_sent_at`, new expiry, delivery flag.
    async fn record_invite_sent(
        &self,
        id: UserId,
        sent_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        delivered: bool,
        audit: AuditEntry,
    ) -> Result<AdminRecord, StoreError>;

    /// Deletes `AdminInfo` then `User`, appends the audit entry; with `complete_saga` also advances that
    /// saga to `identity_pending_delete` in the same transaction. `NotFound` if absent;
    /// [`StoreError::LastAdmin`] (nothing written) when the admin is the last active one.
    async fn delete_admin(&self, id: UserId, audit: AuditEntry, saga: Option<Uuid>) -> Result<(), StoreError>;

    /// Disables (`disabled_at = Some(at)`) or enables (`None`) an admin, with the audit entry and, when
    /// the state changed, the lifecycle event `admin.disabled` / `admin.enabled`; with `saga` also moves
    /// that saga to the given state, all in one transaction. Idempotent (an admin already in the asked
    /// state is returned unchanged, the saga still advanced). Disabling also ends every session of the
    /// admin in the same write (`sessions_valid_after` = `disabled_at`, never moved back, see
    /// [`AdminStore::end_sessions`]); enabling leaves the session epoch as it is. `NotFound` if absent;
    /// [`StoreError::LastAdmin`] (nothing written) when disabling the last active admin.
    async fn set_admin_disabled(
        &self,
        id: UserId,
        disabled_at: Option<DateTime<Utc>>,
        audit: AuditEntry,
        saga: Option<(Uuid, SagaState)>,
    ) -> Result<AdminRecord, StoreError>;

    /// Sets the admin's role, with the audit entry and, when the role changed, the event
    /// `admin.role_changed`; with `saga` also moves that saga to the given state, all in one transaction.
    /// Idempotent (an admin already in the role is returned unchanged, the saga still advanced).
    /// `NotFound` if absent; [`StoreError::LastOwner`] (nothing written) when demoting the last active
    /// owner (checked under the same lock as the last-admin guard).
    async fn set_admin_role(
        &self,
        id: UserId,
        role: Role,
        audit: AuditEntry,
        saga: Option<(Uuid, SagaState)>,
    ) -> Result<AdminRecord, StoreError>;

    /// Ends every session of the admin: sets the session epoch `users.sessions_valid_after` to `at`
    /// (tokens issued at or before it are refused by the core), unless a later epoch is stored already
    /// (the epoch never moves back). Returns the records after the write. `NotFound` if absent.
    async fn end_sessions(&self, id: UserId, at: DateTime<Utc>) -> Result<AdminRecord, StoreError>;

    /// Records a reset of the admin's credentials by another admin, in one transaction: every session
    /// ends (the session epoch `users.sessions_valid_after` set to `at`, never moved back, as
    /// [`AdminWrites::end_sessions`]); for [`CredentialsReset::Mfa`] `mfa_enrolled_at` is cleared; the
    /// audit entry; the event `admin.password_reset` / `admin.mfa_reset` (none for a sign-out); and, with
    /// `saga`, that saga moved to the given state. Returns the records after the write. `NotFound` if
    /// absent.
    async fn record_credentials_reset(
        &self,
        id: UserId,
        reset: CredentialsReset,
        at: DateTime<Utc>,
        audit: AuditEntry,
        saga: Option<(Uuid, SagaState)>,
    ) -> Result<AdminRecord, StoreError>;

    /// Records when the admin's software-token MFA was enrolled (`users.mfa_enrolled_at`), or clears it
    /// (`None`: an MFA reset). Idempotent: an enrolment already recorded keeps its first time. Returns the
    /// records after the write. `NotFound` if absent.
    async fn set_mfa_enrolled(&self, id: UserId, at: Option<DateTime<Utc>>) -> Result<AdminRecord, StoreError>;

    /// Records the SCIM `externalId`, the SCIM `userName` (lower-cased; unique among admins, by a
    /// database index: another admin's → [`StoreError::UserNameTaken`]) and the kept SCIM attributes (JSON) of
    /// an admin (`None` clears them). `NotFound` if absent.
    async fn set_scim_attributes(
        &self,
        id: UserId,
        external_id: Option<String>,
        user_name: Option<String>,
        scim_profile: Option<String>,
    ) -> Result<AdminRecord, StoreError>;
}

/// What [`AdminWrites::record_credentials_reset`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialsReset {
    /// The password was reset (`AdminResetUserPassword`): event `admin.password_reset`.
    Password,
    /// The authenticator was cleared (`AdminSetUserMFAPreference`): `mfa_enrolled_at` cleared, event
    /// `admin.mfa_reset`.
    Mfa,
    /// Signed out everywhere (`AdminUserGlobalSignOut`): the session epoch only.
    SignOut,
}

/// The audit log.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends an audit event on its own (used for failed attempts).
    async fn append_audit(&self, audit: AuditEntry) -> Result<(), StoreError>;

    /// Audit events, newest first.
    async fn list_audit(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError>;

    /// At most `limit` audit events older than `before_id` (all when `None`), newest first, each with the
    /// acting admin's e-mail when the actor is an admin that still exists (one query with a join).
    async fn list_audit_page(
        &self,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(AuditEvent, Option<String>)>, StoreError>;
}

/// Idempotency keys of the HTTP API's creates.
#[async_trait]
pub trait IdempotencyKeys: Send + Sync + 'static {
    /// Claims an idempotency key for `scope` (the caller). See [`IdempotencyBegin`].
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyBegin, StoreError>;

    /// Stores the response for a claimed key.
    async fn idempotency_complete(&self, scope: &str, key: &str, response: StoredResponse) -> Result<(), StoreError>;

    /// Releases a claimed key without a response (the request failed before any side effect).
    async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<(), StoreError>;
}

/// The store's narrow ports, for a `use …::store::ports::*` where a concrete adapter's methods are called.
pub mod ports {
    pub use super::{AdminReads, AdminStore, AdminWrites, AuditLog, IdempotencyKeys, SagaLog, ScimTokenStore};
}

/// The admin store: the four narrow ports above, joined (lldap's shape: each adapter implements the
/// narrow traits; code that needs them all takes an `AdminStore`). Implemented for every type that
/// implements the four.
pub trait AdminStore: AdminReads + AdminWrites + AuditLog + IdempotencyKeys {}

impl<T: AdminReads + AdminWrites + AuditLog + IdempotencyKeys + ?Sized> AdminStore for T {}

/// What a saga does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaKind {
    /// Create an admin in Cognito and the database.
    Provision,
    /// Remove an admin from the database and Cognito.
    Remove,
    /// Disable an admin: `disabled_at` in the database, then Cognito `AdminDisableUser`.
    Disable,
    /// Enable a disabled admin: Cognito `AdminEnableUser`, then clear `disabled_at`.
    Enable,
    /// Change an admin's role (`admin_info.role`).
    ChangeRole,
    /// Reset an admin's password: Cognito `AdminResetUserPassword` and `AdminUserGlobalSignOut`, then the
    /// sessions ended in the database (event `admin.password_reset`).
    ResetPassword,
    /// Reset an admin's authenticator: Cognito `AdminSetUserMFAPreference` (off) and
    /// `AdminUserGlobalSignOut`, then `mfa_enrolled_at` cleared and the sessions ended (`admin.mfa_reset`).
    ResetMfa,
}

impl SagaKind {
    /// Stored text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            SagaKind::Provision => "provision",
            SagaKind::Remove => "remove",
            SagaKind::Disable => "disable",
            SagaKind::Enable => "enable",
            SagaKind::ChangeRole => "change_role",
            SagaKind::ResetPassword => "reset_password",
            SagaKind::ResetMfa => "reset_mfa",
        }
    }
    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "provision" => Some(SagaKind::Provision),
            "remove" => Some(SagaKind::Remove),
            "disable" => Some(SagaKind::Disable),
            "enable" => Some(SagaKind::Enable),
            "change_role" => Some(SagaKind::ChangeRole),
            "reset_password" => Some(SagaKind::ResetPassword),
            "reset_mfa" => Some(SagaKind::ResetMfa),
            _ => None,
        }
    }
}

/// Where a saga is. Terminal states: `completed`, `compensated`, `aborted`; `stuck` needs an operator
/// (or the recovery loop) and still holds the e-mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaState {
    /// Intent recorded; no side effect attempted yet.
    Started,
    /// `AdminCreateUser` is about to be called (or was, with an unknown outcome).
    IdentityCreating,
    /// The Cognito user exists (username and sub recorded); database records next.
    IdentityCreated,
    /// Provision: both records written. Remove: both systems cleaned.
    Completed,
    /// Undoing a provision: the Cognito user this saga created is being deleted.
    Compensating,
    /// Undone: nothing remains in either system.
    Compensated,
    /// Failed before any side effect: nothing to undo.
    Aborted,
    /// Remove: database records gone, the Cognito user still to delete.
    IdentityPendingDelete,
    /// An undo (or a forward step that cannot be undone) could not finish: needs attention.
    Stuck,
    /// Disable / enable: the first side effect happened (disable: the database; enable: Cognito), the
    /// other system is next.
    IdentityUpdating,
}

impl SagaState {
    /// Stored text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            SagaState::Started => "started",
            SagaState::IdentityCreating => "identity_creating",
            SagaState::IdentityCreated => "identity_created",
            SagaState::Completed => "completed",
            SagaState::Compensating => "compensating",
            SagaState::Compensated => "compensated",
            SagaState::Aborted => "aborted",
            SagaState::IdentityPendingDelete => "identity_pending_delete",
            SagaState::Stuck => "stuck",
            SagaState::IdentityUpdating => "identity_updating",
        }
    }
    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "started" => SagaState::Started,
            "identity_creating" => SagaState::IdentityCreating,
            "identity_created" => SagaState::IdentityCreated,
            "completed" => SagaState::Completed,
            "compensating" => SagaState::Compensating,
            "compensated" => SagaState::Compensated,
            "aborted" => SagaState::Aborted,
            "identity_pending_delete" => SagaState::IdentityPendingDelete,
            "stuck" => SagaState::Stuck,
            "identity_updating" => SagaState::IdentityUpdating,
            _ => return None,
        })
    }
    /// True for `completed`, `compensated` and `aborted`: the saga no longer holds its e-mail.
    pub fn is_terminal(&self) -> bool {
        matches!(self, SagaState::Completed | SagaState::Compensated | SagaState::Aborted)
    }
}

/// A saga's durable record. Written before the first side effect, updated after each step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SagaRecord {
    /// Saga id.
    pub id: Uuid,
    /// Provision or remove.
    pub kind: SagaKind,
    /// Who started it.
    pub actor: Actor,
    /// E-mail as typed.
    pub email: String,
    /// Lower-cased e-mail; while the saga is not terminal, no other saga may hold it.
    pub email_normalized: String,
    /// The `User.id` the saga will write (chosen before any side effect).
    pub user_id: UserId,
    /// The Cognito username asked for, then the one Cognito returned.
    pub cognito_username: String,
    /// Cognito `sub`, once known.
    pub cognito_sub: Option<String>,
    /// True once the saga knows the Cognito user is its own (created or adopted by it): only then may an
    /// undo delete it.
    pub identity_created_by_saga: bool,
    /// False when Cognito reported CodeDeliveryFailure.
    pub invite_delivered: bool,
    /// Current state.
    pub state: SagaState,
    /// How many steps/attempts were made (for logs).
    pub attempts: i32,
    /// Last error (never a secret).
    pub last_error: Option<String>,
    /// Request id that started the saga.
    pub request_id: Option<String>,
    /// When the intent was recorded.
    pub started_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Who is running the saga now (`host:pid:run`); a running saga holds a lease on its row.
    pub owner: Option<String>,
    /// Until when `owner` holds the saga. The owner renews it while it works; recovery takes only a saga
    /// whose lease has expired ([`SagaLog::claim_expired`]).
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The SCIM attributes a provisioning through `/scim/v2` writes in its records' transaction; their
    /// `userName` is claimed by the intent (while the saga is not terminal, no other saga may hold it).
    #[serde(default)]
    pub scim: Option<ScimAttributes>,
    /// The role the saga gives: a provisioning's new admin's (`None`: `admin`, as before roles), a
    /// role change's new role.
    #[serde(default)]
    pub role: Option<Role>,
}

/// The SCIM attributes of an admin that the product keeps (database only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimAttributes {
    /// `externalId`, exactly as the identity provider sent it.
    pub external_id: Option<String>,
    /// The `userName` key, normalised like an e-mail ([`crate::domain::scim_user_name_key`]); unique.
    pub user_name: String,
    /// `userName` and `emails` as sent (JSON text), returned on reads.
    pub profile: String,
}

impl SagaRecord {
    /// True when the saga needs attention: marked `stuck`, or unfinished with its lease expired (its
    /// owner died or gave it up, and recovery has not settled it yet).
    pub fn is_stuck(&self, now: DateTime<Utc>) -> bool {
        if self.state.is_terminal() {
            return false;
        }
        self.state == SagaState::Stuck || self.lease_expires_at.is_none_or(|t| t <= now)
    }
}

/// The fields a step may change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SagaUpdate {
    /// New state.
    pub state: Option<SagaState>,
    /// New Cognito username.
    pub cognito_username: Option<String>,
    /// Cognito sub.
    pub cognito_sub: Option<String>,
    /// Mark the Cognito user as the saga's own.
    pub identity_created_by_saga: Option<bool>,
    /// Delivery flag.
    pub invite_delivered: Option<bool>,
    /// Last error; `Some(None)` clears it.
    pub last_error: Option<Option<String>>,
    /// Add to `attempts`.
    pub add_attempts: i32,
    /// Compare-and-set: apply only if the saga is in this state ([`StoreError::SagaStateChanged`]
    /// otherwise). Recovery uses it to claim a saga, so two processes never act on one saga at once.
    pub expected_state: Option<SagaState>,
    /// Compare-and-set on the lease: apply only if the saga's owner is this one
    /// ([`StoreError::LeaseLost`] otherwise).
    pub expected_owner: Option<String>,
    /// New lease expiry (renewal, or release with "now").
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The time to stamp as `updated_at` (the orchestrator's injected clock); `None`: the database's.
    pub at: Option<DateTime<Utc>>,
}

/// The append-only-in-spirit saga log (rows are updated as steps complete; never deleted).
#[async_trait]
pub trait SagaLog: Send + Sync + 'static {
    /// Records a saga's intent. Idempotent by `saga.id` (same id again returns the stored row).
    /// [`StoreError::SagaInFlight`] when another non-terminal saga holds the e-mail.
    async fn begin(&self, saga: SagaRecord) -> Result<SagaRecord, StoreError>;

    /// Applies a step's changes; returns the updated row. `NotFound` for an unknown id;
    /// [`StoreError::LeaseLost`] when `expected_owner` is not the saga's owner;
    /// [`StoreError::SagaStateChanged`] when `expected_state` does not match or when the change would move
    /// a finished (`completed`, `compensated`, `aborted`) saga to another state.
    async fn update(&self, id: Uuid, update: SagaUpdate) -> Result<SagaRecord, StoreError>;

    /// Takes over unfinished sagas whose lease has expired (`lease_expires_at <= now`, or no lease), at
    /// most `limit`, oldest first, and only saga `only` when given: sets `owner` and
    /// `lease_expires_at = lease_until` by compare-and-set, so two processes never take the same saga
    /// (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one writer at a time). Returns the sagas taken.
    async fn claim_expired(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        only: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<SagaRecord>, StoreError>;

    /// One saga.
    async fn get(&self, id: Uuid) -> Result<Option<SagaRecord>, StoreError>;

    /// Sagas not in a terminal state (including `stuck`), oldest first.
    async fn list_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError>;

    /// The `limit` most recently started sagas, finished or not, newest first (the operator's view).
    async fn list_recent(&self, limit: i64) -> Result<Vec<SagaRecord>, StoreError>;

    /// Every saga (finished or not) of one normalised e-mail, oldest first: the history an operator reads
    /// to see why a provisioning failed.
    async fn list_for_email(&self, email_normalized: &str) -> Result<Vec<SagaRecord>, StoreError>;

    /// At most `limit` unfinished provisioning sagas whose admin has no records yet, passing `filter`,
    /// oldest first by `(started_at, id)`, starting after `after`.
    ///
    /// The default filters [`SagaLog::list_unfinished`] in memory (without the "no records" check, which
    /// the caller repeats); the SQL adapter overrides it with one query.
    async fn list_unfinished_provisions_page(
        &self,
        filter: &UnfinishedFilter,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<SagaRecord>, StoreError> {
        let mut all = self.list_unfinished().await?;
        all.sort_by_key(|s| (s.started_at, s.id));
        Ok(all
            .into_iter()
            .filter(|s| s.kind == SagaKind::Provision)
            .filter(|s| after.is_none_or(|a| (s.started_at, s.id) > a))
            .filter(|s| filter.stuck.is_none_or(|stuck| (s.state == SagaState::Stuck) == stuck))
            .filter(|s| {
                filter
                    .email_prefix
                    .as_deref()
                    .is_none_or(|p| s.email_normalized.starts_with(p))
            })
            .take(usize::try_from(limit).unwrap_or(0))
            .collect())
    }
}

/// A SCIM client's bearer token as listed to admins (the token itself is never stored, only its SHA-256).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScimToken {
    /// The name the admin gave it (`okta`, `entra`, …); the audit actor is `scim:<name>`.
    pub name: String,
    /// Who issued it (an audit actor name).
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked token authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it last authenticated a request.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// SCIM tokens: issued by an admin or the operator, stored as hashes, revocable.
#[async_trait]
pub trait ScimTokenStore: Send + Sync + 'static {
    /// Stores a new token's hash under `name`, with the audit entry. [`StoreError::TokenNameTaken`] when
    /// the name exists (revoked tokens keep their name).
    async fn create_scim_token(
        &self,
        name: &str,
        token_sha256: &str,
        audit: AuditEntry,
    ) -> Result<ScimToken, StoreError>;

    /// Every token, revoked or not, by name.
    async fn list_scim_tokens(&self) -> Result<Vec<ScimToken>, StoreError>;

    /// Revokes token `name` (idempotent), with the audit entry. `NotFound` for an unknown name.
    async fn revoke_scim_token(&self, name: &str, audit: AuditEntry) -> Result<ScimToken, StoreError>;

    /// The name of the unrevoked token with this hash, stamping its `last_used_at` with `now`.
    async fn authenticate_scim_token(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;
}

/// Something that is an [`AdminStore`], a [`SagaLog`], a [`ScimTokenStore`] and a
/// [`ReconcileStore`](crate::reconcile::ReconcileStore) (the SQL adapter).
pub trait Store: AdminStore + SagaLog + ScimTokenStore + crate::reconcile::ReconcileStore {}
impl<T: AdminStore + SagaLog + ScimTokenStore + crate::reconcile::ReconcileStore> Store for T {}
