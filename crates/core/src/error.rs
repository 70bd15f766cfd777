//! The product's domain error: one enum, each variant a stable error code and an HTTP status.

use crate::domain::InvalidEmail;
use crate::identity::IdpError;
use crate::store::StoreError;
use uuid::Uuid;

/// Everything the five operations can fail with. [`Error::code`] is the stable code used in the HTTP error
/// envelope and the CLI; messages are for people and never contain a secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The e-mail address is malformed (code `invalid_email`, 400).
    #[error(transparent)]
    InvalidEmail(#[from] InvalidEmail),
    /// The caller is not an active admin in the database (code `forbidden`, 403).
    #[error("only an active admin may do this")]
    Forbidden,
    /// The caller's token was issued at or before the admin's sessions were ended (sign-out, or a disable,
    /// even if the admin was enabled again since): sign in again for a new token (code `session_ended`,
    /// 401).
    #[error("this session has ended (signed out or disabled since the token was issued); sign in again")]
    SessionEnded,
    /// An admin with this e-mail exists or is being provisioned (code `admin_exists`, 409).
    #[error("an admin with this e-mail already exists or is being created")]
    AdminExists,
    /// A Cognito user with this username exists that this product did not create; it is left alone
    /// (code `admin_exists`, 409).
    #[error("a Cognito user with this username already exists and was not created by admin-provisioner; it was left untouched")]
    ForeignIdentityExists,
    /// Another admin already has this SCIM `userName`, or one of the `emails` given is another admin's
    /// address (code `user_name_taken`, 409; SCIM `uniqueness`).
    #[error("another admin already has this userName or e-mail address")]
    UserNameTaken,
    /// No such admin (code `not_found`, 404).
    #[error("no such admin")]
    NotFound,
    /// The admin already completed first login (code `already_active`, 409).
    #[error("this admin has already set a password; there is no invitation to resend")]
    AlreadyActive,
    /// An invitation was sent too recently (code `resend_cooldown`, 429).
    #[error("an invitation was sent less than {cooldown_secs} seconds ago; try again in {retry_after_secs} seconds")]
    ResendCooldown {
        /// Seconds until a resend is allowed.
        retry_after_secs: u64,
        /// The configured cooldown.
        cooldown_secs: u64,
    },
    /// The line is a provisioning still running; wait for it to finish (code `provisioning_in_progress`, 409).
    #[error("this admin is still being provisioned; try again in a minute")]
    ProvisioningInProgress,
    /// Another saga (a removal, a disable or an enable) is changing this admin right now (code
    /// `operation_in_progress`, 409).
    #[error("another change to this admin is in progress; try again shortly")]
    OperationInProgress,
    /// Removing or disabling this admin would leave no active admin (code `last_admin`, 409).
    #[error("this is the last active admin; create and activate another admin first")]
    LastAdmin,
    /// Demoting, disabling or removing this admin would leave no active owner (code `last_owner`, 409).
    #[error("this is the last active owner; make another active admin an owner first")]
    LastOwner,
    /// The actor's role does not allow this operation (code `forbidden`, 403): a viewer writing, or an
    /// admin acting on an owner or giving the owner role. See `provisioner/policy.rs`.
    #[error("your role ({role}) does not allow this: {why}")]
    RoleForbidden {
        /// The actor's role.
        role: crate::domain::Role,
        /// What is refused, in words.
        why: &'static str,
    },
    /// An admin tried to disable or remove their own account (code `self_action_forbidden`, 403): another
    /// admin has to do it. The same rule on every surface (`provisioner/policy.rs`).
    #[error("you cannot disable or remove your own account; ask another admin to do it")]
    SelfAction,
    /// The actor (an admin or a SCIM token) used up its budget of mutating operations per minute (code
    /// `rate_limited`, 429, with `Retry-After`).
    #[error("too many changes to admins in a short time; try again in {retry_after_secs} seconds")]
    TooManyActions {
        /// Seconds until the next operation is allowed.
        retry_after_secs: u64,
    },
    /// A SCIM token name that is not 1–64 lower-case letters, digits, `-` and `_` (code
    /// `invalid_token_name`, 400).
    #[error("invalid SCIM token name: {0}")]
    InvalidTokenName(String),
    /// A SCIM token with this name exists already (code `token_name_taken`, 409).
    #[error("a SCIM token with this name already exists (names of revoked tokens are not reused)")]
    TokenNameTaken,
    /// This `Idempotency-Key` was used before with a different request (code `idempotency_key_reused`, 422).
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still running (code `idempotency_in_progress`, 409).
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    IdempotencyInProgress,
    /// The first admin already exists (code `already_bootstrapped`, 409).
    #[error("an admin already exists; use provision (as an admin) instead of bootstrap-admin")]
    AlreadyBootstrapped,
    /// Wrong username or password, or an expired temporary password (code `invalid_credentials`, 401).
    #[error("wrong e-mail or password, or the temporary password has expired (ask an admin to resend the invitation)")]
    InvalidCredentials,
    /// The new password breaks the pool's policy (code `password_policy`, 400).
    #[error("the new password does not meet the password policy: {0}")]
    PasswordPolicy(String),
    /// `REQUIRE_MFA` is on and this admin has no enrolled authenticator: enrol one first (`POST
    /// /api/auth/mfa/setup`, then `/api/auth/mfa/verify`) (code `mfa_enrollment_required`, 403).
    #[error("multi-factor authentication is required: set up an authenticator app before doing anything else")]
    MfaEnrollmentRequired,
    /// An authenticator code was wrong, or was already used (a code works once) (code `invalid_mfa_code`,
    /// 401). The challenge stays open until its session expires: try the next code.
    #[error("the authenticator code is wrong or was already used; wait for the next code and try again")]
    InvalidMfaCode,
    /// A password-reset code is wrong, expired or used up (code `invalid_reset_code`, 400): ask for a new
    /// one (`POST /api/auth/forgot-password`). Also the answer for an address with no account, so that the
    /// answer reveals nothing.
    #[error("the reset code is wrong or has expired; ask for a new code and try again")]
    InvalidResetCode,
    /// An admin reset this account's password: set a new one with the code that was e-mailed
    /// (`POST /api/auth/confirm-forgot-password`) before signing in (code `password_reset_required`, 409).
    #[error("an admin reset this account's password: use the code sent by e-mail to choose a new password")]
    PasswordResetRequired,
    /// The admin has not set a password yet (an invitation is pending) or is disabled, so there is no
    /// password to reset: resend the invitation, or enable them first (code `not_active`, 409).
    #[error(
        "this admin has no password to reset: they have not signed in yet (resend the invitation) or are disabled"
    )]
    NotActive,
    /// Login worked but Cognito did not ask for a new password (code `no_challenge`, 409).
    #[error("this account does not need a new password; log in normally")]
    NoChallenge,
    /// Cognito rate limit (code `rate_limited`, 429).
    #[error("the identity provider is rate-limiting requests; try again shortly")]
    RateLimited,
    /// Cognito failed or timed out (code `identity_provider_unavailable`, 502).
    #[error("the identity provider is unavailable: {0}")]
    IdentityProviderUnavailable(String),
    /// The identity provider refused the request for a reason the product cannot fix (code
    /// `identity_provider_error`, 502).
    #[error("the identity provider refused the request: {0}")]
    IdentityProviderError(String),
    /// The database failed or timed out (code `database_unavailable`, 503).
    #[error("the database is unavailable: {0}")]
    DatabaseUnavailable(String),
    /// A definitive failure inside the product (the database refused a write for good: a constraint, a
    /// trigger, a broken schema; or a bug). The detail is logged with the request id, never shown (code
    /// `internal`, 500). Retrying will not help.
    #[error("internal error: {0}")]
    Internal(String),
    /// The saga could not undo its partial work; an operator must look at saga `saga_id` (code
    /// `saga_stuck`, 500). Nothing is lost: the saga log keeps it and recovery retries it.
    #[error(
        "provisioning failed and could not be fully undone yet (saga {saga_id}); it is recorded and will be retried"
    )]
    SagaStuck {
        /// The stuck saga.
        saga_id: Uuid,
    },
}

impl Error {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidEmail(_) => "invalid_email",
            Error::Forbidden => "forbidden",
            Error::SessionEnded => "session_ended",
            Error::AdminExists | Error::ForeignIdentityExists => "admin_exists",
            Error::UserNameTaken => "user_name_taken",
            Error::NotFound => "not_found",
            Error::AlreadyActive => "already_active",
            Error::ResendCooldown { .. } => "resend_cooldown",
            Error::LastAdmin => "last_admin",
            Error::LastOwner => "last_owner",
            Error::RoleForbidden { .. } => "forbidden",
            Error::SelfAction => "self_action_forbidden",
            Error::TooManyActions { .. } => "rate_limited",
            Error::ProvisioningInProgress => "provisioning_in_progress",
            Error::OperationInProgress => "operation_in_progress",
            Error::AlreadyBootstrapped => "already_bootstrapped",
            Error::IdempotencyKeyReused => "idempotency_key_reused",
            Error::IdempotencyInProgress => "idempotency_in_progress",
            Error::InvalidTokenName(_) => "invalid_token_name",
            Error::TokenNameTaken => "token_name_taken",
            Error::InvalidCredentials => "invalid_credentials",
            Error::PasswordPolicy(_) => "password_policy",
            Error::NoChallenge => "no_challenge",
            Error::InvalidResetCode => "invalid_reset_code",
            Error::NotActive => "not_active",
            Error::PasswordResetRequired => "password_reset_required",
            Error::MfaEnrollmentRequired => "mfa_enrollment_required",
            Error::InvalidMfaCode => "invalid_mfa_code",
            Error::RateLimited => "rate_limited",
            Error::IdentityProviderUnavailable(_) => "identity_provider_unavailable",
            Error::IdentityProviderError(_) => "identity_provider_error",
            Error::DatabaseUnavailable(_) => "database_unavailable",
            Error::SagaStuck { .. } => "saga_stuck",
            Error::Internal(_) => "internal",
        }
    }

    /// Seconds a client should wait before trying again (the `Retry-After` header), where that is known.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::ResendCooldown { retry_after_secs, .. } | Error::TooManyActions { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            Error::RateLimited => Some(1),
            _ => None,
        }
    }

    /// The message a person sees, on every surface (JSON envelope, SCIM error, console message). Details
    /// of database, identity-provider and internal failures may quote SQL or a remote error: they are
    /// logged here (with the request id of the current span) and replaced by a sentence that names no
    /// internals.
    pub fn public_message(&self) -> String {
        match self {
            Error::DatabaseUnavailable(detail) => {
                tracing::error!(code = self.code(), error = %detail, "database error");
                "the database is unavailable; try again shortly".to_string()
            }
            Error::IdentityProviderUnavailable(detail) => {
                tracing::warn!(code = self.code(), error = %detail, "identity provider unavailable");
                "the identity provider (Cognito) is unavailable; try again shortly".to_string()
            }
            Error::Internal(detail) => {
                tracing::error!(code = self.code(), error = %detail, "internal error");
                "an internal error occurred; quote the request id to an operator".to_string()
            }
            Error::SagaStuck { saga_id } => {
                tracing::error!(code = self.code(), %saga_id, "saga stuck");
                self.to_string()
            }
            other => other.to_string(),
        }
    }

    /// The HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidEmail(_)
            | Error::PasswordPolicy(_)
            | Error::InvalidTokenName(_)
            | Error::InvalidResetCode => 400,
            Error::InvalidCredentials | Error::SessionEnded | Error::InvalidMfaCode => 401,
            Error::Forbidden | Error::SelfAction | Error::RoleForbidden { .. } | Error::MfaEnrollmentRequired => 403,
            Error::NotFound => 404,
            Error::IdempotencyKeyReused => 422,
            Error::AdminExists
            | Error::UserNameTaken
            | Error::ForeignIdentityExists
            | Error::AlreadyActive
            | Error::LastAdmin
            | Error::LastOwner
            | Error::ProvisioningInProgress
            | Error::OperationInProgress
            | Error::AlreadyBootstrapped
            | Error::IdempotencyInProgress
            | Error::TokenNameTaken
            | Error::NoChallenge
            | Error::PasswordResetRequired
            | Error::NotActive => 409,
            Error::ResendCooldown { .. } | Error::RateLimited | Error::TooManyActions { .. } => 429,
            Error::SagaStuck { .. } | Error::Internal(_) => 500,
            Error::IdentityProviderUnavailable(_) | Error::IdentityProviderError(_) => 502,
            Error::DatabaseUnavailable(_) => 503,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken | StoreError::SagaInFlight | StoreError::CognitoUserTaken => Error::AdminExists,
            StoreError::UserNameTaken => Error::UserNameTaken,
            StoreError::NotFound => Error::NotFound,
            StoreError::LastAdmin => Error::LastAdmin,
            StoreError::LastOwner => Error::LastOwner,
            StoreError::TokenNameTaken => Error::TokenNameTaken,
            e if e.is_transient() => Error::DatabaseUnavailable(e.to_string()),
            // A definitive refusal (or a lost compare-and-set): "try again" would be a lie.
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<IdpError> for Error {
    fn from(e: IdpError) -> Self {
        match e {
            IdpError::UsernameExists => Error::ForeignIdentityExists,
            IdpError::UserNotFound => Error::NotFound,
            IdpError::InvalidPassword(m) => Error::PasswordPolicy(m),
            IdpError::PasswordHistoryPolicyViolation => {
                Error::PasswordPolicy("the password was used recently; choose another".into())
            }
            IdpError::NotAuthorized(_) | IdpError::CodeMismatch(_) => Error::InvalidCredentials,
            IdpError::TooManyRequests => Error::RateLimited,
            IdpError::PasswordResetRequired(_) => Error::PasswordResetRequired,
            IdpError::UnsupportedUserState(_) => Error::AlreadyActive,
            e if e.is_transient() => Error::IdentityProviderUnavailable(e.to_string()),
            e => Error::IdentityProviderError(e.to_string()),
        }
    }
}
