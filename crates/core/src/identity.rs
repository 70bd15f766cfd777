//! The identity-provider port: the subset of the Cognito user-pool API the product uses.
//!
//! Two adapters implement it: the built-in emulator (`admin-provisioner-emulator`) and AWS Cognito through
//! the AWS SDK (`admin-provisioner-cognito`). Names and shapes follow Cognito's API (`AdminCreateUser`,
//! `AdminGetUser`, …) so the mapping is obvious. Every error is an [`IdpError`] that says whether retrying
//! may help ([`IdpError::is_transient`]).

use crate::domain::{Password, Secret, TemporaryPassword, Tokens};

pub use crate::totp::otpauth_uri;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Names of the identity-provider operations, as used by fault injection, metrics and logs.
pub mod op {
    /// `AdminCreateUser` (also with `MessageAction=RESEND`).
    pub const ADMIN_CREATE_USER: &str = "AdminCreateUser";
    /// `AdminGetUser`.
    pub const ADMIN_GET_USER: &str = "AdminGetUser";
    /// `AdminDeleteUser`.
    pub const ADMIN_DELETE_USER: &str = "AdminDeleteUser";
    /// `AdminDisableUser`.
    pub const ADMIN_DISABLE_USER: &str = "AdminDisableUser";
    /// `AdminEnableUser`.
    pub const ADMIN_ENABLE_USER: &str = "AdminEnableUser";
    /// `ListUsers`.
    pub const LIST_USERS: &str = "ListUsers";
    /// `InitiateAuth` with `USER_PASSWORD_AUTH`.
    pub const INITIATE_AUTH: &str = "InitiateAuth";
    /// `RespondToAuthChallenge` (`NEW_PASSWORD_REQUIRED`, `MFA_SETUP`, `SOFTWARE_TOKEN_MFA`).
    pub const RESPOND_TO_AUTH_CHALLENGE: &str = "RespondToAuthChallenge";
    /// `AssociateSoftwareToken`.
    pub const ASSOCIATE_SOFTWARE_TOKEN: &str = "AssociateSoftwareToken";
    /// `VerifySoftwareToken`.
    pub const VERIFY_SOFTWARE_TOKEN: &str = "VerifySoftwareToken";
    /// `SetUserMFAPreference`.
    pub const SET_USER_MFA_PREFERENCE: &str = "SetUserMFAPreference";
    /// `ForgotPassword`.
    pub const FORGOT_PASSWORD: &str = "ForgotPassword";
    /// `ConfirmForgotPassword`.
    pub const CONFIRM_FORGOT_PASSWORD: &str = "ConfirmForgotPassword";
    /// `AdminResetUserPassword`.
    pub const ADMIN_RESET_USER_PASSWORD: &str = "AdminResetUserPassword";
    /// `AdminUserGlobalSignOut`.
    pub const ADMIN_USER_GLOBAL_SIGN_OUT: &str = "AdminUserGlobalSignOut";
    /// `AdminSetUserMFAPreference`.
    pub const ADMIN_SET_USER_MFA_PREFERENCE: &str = "AdminSetUserMFAPreference";
    /// `CreateGroup` (role groups).
    pub const CREATE_GROUP: &str = "CreateGroup";
    /// `GetGroup` (role groups).
    pub const GET_GROUP: &str = "GetGroup";
    /// `AdminAddUserToGroup` (role groups).
    pub const ADMIN_ADD_USER_TO_GROUP: &str = "AdminAddUserToGroup";
    /// `AdminRemoveUserFromGroup` (role groups).
    pub const ADMIN_REMOVE_USER_FROM_GROUP: &str = "AdminRemoveUserFromGroup";
    /// `AdminListGroupsForUser` (role groups).
    pub const ADMIN_LIST_GROUPS_FOR_USER: &str = "AdminListGroupsForUser";
}

/// Cognito's `UserStatus`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdpUserStatus {
    /// Created by an admin; must change the temporary password at first login.
    ForceChangePassword,
    /// Password set; normal login works.
    Confirmed,
    /// Any other Cognito status (`UNCONFIRMED`, `RESET_REQUIRED`, `ARCHIVED`, `COMPROMISED`, `UNKNOWN`, …).
    Other(String),
}

impl IdpUserStatus {
    /// Cognito's spelling.
    pub fn as_cognito(&self) -> &str {
        match self {
            IdpUserStatus::ForceChangePassword => "FORCE_CHANGE_PASSWORD",
            IdpUserStatus::Confirmed => "CONFIRMED",
            IdpUserStatus::Other(s) => s,
        }
    }
    /// Parses Cognito's spelling.
    pub fn from_cognito(s: &str) -> Self {
        match s {
            "FORCE_CHANGE_PASSWORD" => IdpUserStatus::ForceChangePassword,
            "CONFIRMED" => IdpUserStatus::Confirmed,
            other => IdpUserStatus::Other(other.to_string()),
        }
    }
}

/// A user as Cognito describes it (`AdminCreateUser`'s `User`, `AdminGetUser`'s output, `ListUsers` items).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdpUser {
    /// `Username` (the e-mail we asked for, or a UUID in e-mail-as-username pools).
    pub username: String,
    /// The `sub` attribute.
    pub sub: String,
    /// The `email` attribute, if present.
    pub email: Option<String>,
    /// `UserStatus`.
    pub status: IdpUserStatus,
    /// `Enabled`.
    pub enabled: bool,
    /// `UserCreateDate`.
    pub created_at: DateTime<Utc>,
    /// `UserLastModifiedDate`.
    pub last_modified_at: DateTime<Utc>,
}

/// A group of the user pool (`GetGroup`'s `Group`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpGroup {
    /// `GroupName`.
    pub name: String,
    /// `Description`, if any.
    pub description: Option<String>,
}

/// `MessageAction` of `AdminCreateUser`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageAction {
    /// Resend the invitation to an existing user with a new temporary password; resets its expiry.
    Resend,
    /// Create without sending any message.
    Suppress,
}

/// Parameters of `AdminCreateUser`. The adapter always sends `DesiredDeliveryMediums=[EMAIL]` and the
/// attributes `email` and `email_verified=true`.
#[derive(Clone, Debug)]
pub struct CreateUserRequest {
    /// `Username`.
    pub username: String,
    /// Value of the `email` attribute.
    pub email: String,
    /// `TemporaryPassword`; `None` lets Cognito generate one.
    pub temporary_password: Option<TemporaryPassword>,
    /// `MessageAction`; `None` sends the welcome (invitation) message.
    pub message_action: Option<MessageAction>,
}

/// One page of `ListUsers`.
#[derive(Clone, Debug)]
pub struct UserPage {
    /// The users on this page.
    pub users: Vec<IdpUser>,
    /// `PaginationToken` for the next page, if any.
    pub next_token: Option<String>,
}

/// The answer to `InitiateAuth` and to `RespondToAuthChallenge`: tokens, or the next challenge.
#[derive(Clone, Debug)]
pub enum AuthOutcome {
    /// Logged in.
    Tokens(Tokens),
    /// `ChallengeName=NEW_PASSWORD_REQUIRED`: answer with `RespondToAuthChallenge` within 3 minutes.
    NewPasswordRequired {
        /// The challenge `Session`.
        session: Secret,
        /// `ChallengeParameters.USER_ID_FOR_SRP`: the username to send back.
        username: String,
    },
    /// `ChallengeName=MFA_SETUP` (a pool with `MfaConfiguration=ON`, the user has no authenticator yet):
    /// `AssociateSoftwareToken` with this session, `VerifySoftwareToken` with a code, then
    /// `RespondToAuthChallenge` with the session `VerifySoftwareToken` answered.
    MfaSetup {
        /// The challenge `Session`.
        session: Secret,
        /// The username to send back.
        username: String,
    },
    /// `ChallengeName=SOFTWARE_TOKEN_MFA`: answer with the authenticator's current code.
    SoftwareTokenMfa {
        /// The challenge `Session`.
        session: Secret,
        /// The username to send back.
        username: String,
    },
}

impl AuthOutcome {
    /// Cognito's `ChallengeName`, or `None` for tokens.
    pub fn challenge_name(&self) -> Option<&'static str> {
        match self {
            AuthOutcome::Tokens(_) => None,
            AuthOutcome::NewPasswordRequired { .. } => Some(challenge::NEW_PASSWORD_REQUIRED),
            AuthOutcome::MfaSetup { .. } => Some(challenge::MFA_SETUP),
            AuthOutcome::SoftwareTokenMfa { .. } => Some(challenge::SOFTWARE_TOKEN_MFA),
        }
    }
}

/// Cognito's challenge names.
pub mod challenge {
    /// First login: the temporary password must be replaced.
    pub const NEW_PASSWORD_REQUIRED: &str = "NEW_PASSWORD_REQUIRED";
    /// An authenticator must be enrolled before sign-in completes.
    pub const MFA_SETUP: &str = "MFA_SETUP";
    /// The authenticator's current code is asked for.
    pub const SOFTWARE_TOKEN_MFA: &str = "SOFTWARE_TOKEN_MFA";
}

/// An answer to a challenge (`RespondToAuthChallenge`'s `ChallengeResponses`).
#[derive(Clone, Debug)]
pub enum ChallengeAnswer {
    /// `NEW_PASSWORD_REQUIRED` with `NEW_PASSWORD`.
    NewPassword(Password),
    /// `MFA_SETUP`, answered with the session `VerifySoftwareToken` returned (the code was checked there).
    MfaSetup,
    /// `SOFTWARE_TOKEN_MFA` with `SOFTWARE_TOKEN_MFA_CODE`.
    SoftwareTokenMfa(Secret),
}

/// Who asks to enrol an authenticator: a signed-in user (their access token) or a sign-in in its
/// `MFA_SETUP` challenge (its session). `AssociateSoftwareToken` and `VerifySoftwareToken` take either.
#[derive(Clone, Debug)]
pub enum MfaAuth {
    /// `AccessToken`.
    AccessToken(Secret),
    /// `Session` of an `MFA_SETUP` challenge.
    Session(Secret),
}

/// `AssociateSoftwareToken`'s answer.
#[derive(Clone, Debug)]
pub struct SoftwareTokenAssociation {
    /// `SecretCode`: the base32 TOTP secret to put in the authenticator (shown once, never stored by the
    /// product).
    pub secret_code: Secret,
    /// The next `Session` when called with a session.
    pub session: Option<Secret>,
}

/// The issuer and audience tokens of this identity provider carry, for token verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSettings {
    /// Expected `iss`.
    pub issuer: String,
    /// The app client id: `aud` of ID tokens, `client_id` of access tokens.
    pub client_id: String,
}

/// An error from the identity provider, named after Cognito's exceptions.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum IdpError {
    /// `UsernameExistsException`.
    #[error("UsernameExists: a user with this username already exists")]
    UsernameExists,
    /// `UserNotFoundException`.
    #[error("UserNotFound: no such user")]
    UserNotFound,
    /// `InvalidPasswordException`: the password does not meet the pool's policy.
    #[error("InvalidPassword: {0}")]
    InvalidPassword(String),
    /// `InvalidParameterException`.
    #[error("InvalidParameter: {0}")]
    InvalidParameter(String),
    /// `NotAuthorizedException`: wrong or expired (temporary) password, expired session, disabled user.
    #[error("NotAuthorized: {0}")]
    NotAuthorized(String),
    /// `UnsupportedUserStateException` (for example RESEND to a user who already set a password).
    #[error("UnsupportedUserState: {0}")]
    UnsupportedUserState(String),
    /// `CodeDeliveryFailureException`: the user may well exist; the message was not delivered.
    #[error("CodeDeliveryFailure: {0}")]
    CodeDeliveryFailure(String),
    /// `CodeMismatchException` / `ExpiredCodeException` in a challenge answer.
    #[error("CodeMismatch: {0}")]
    CodeMismatch(String),
    /// `PasswordHistoryPolicyViolationException`.
    #[error("PasswordHistoryPolicyViolation")]
    PasswordHistoryPolicyViolation,
    /// `PasswordResetRequiredException`: an administrator reset the password (`AdminResetUserPassword`);
    /// the user must set a new one with the e-mailed code (`ConfirmForgotPassword`) before signing in.
    #[error("PasswordResetRequired: {0}")]
    PasswordResetRequired(String),
    /// `TooManyRequestsException` / `LimitExceededException` (after the SDK's own retries).
    #[error("TooManyRequests: rate exceeded")]
    TooManyRequests,
    /// `ResourceNotFoundException`: the pool or app client does not exist, or (group calls) the group
    /// does not.
    #[error("ResourceNotFound: {0}")]
    ResourceNotFound(String),
    /// `GroupExistsException` (`CreateGroup` of a name the pool already has).
    #[error("GroupExists: {0}")]
    GroupExists(String),
    /// The call did not answer within its timeout: it may or may not have taken effect.
    #[error("timeout: {0} did not answer in time")]
    Timeout(String),
    /// Network failure, `InternalErrorException` or a 5xx: try again later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else (`UserLambdaValidation`, `OperationNotEnabled`, `PreconditionNotMet`, …).
    #[error("{code}: {message}")]
    Other {
        /// Cognito's error code.
        code: String,
        /// Message.
        message: String,
        /// Whether retrying may help.
        transient: bool,
    },
}

impl IdpError {
    /// True when the same call may succeed if retried (throttling, timeouts, network, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            IdpError::TooManyRequests | IdpError::Timeout(_) | IdpError::Unavailable(_) => true,
            IdpError::Other { transient, .. } => *transient,
            _ => false,
        }
    }

    /// A stable short code for metrics and logs.
    pub fn code(&self) -> &str {
        match self {
            IdpError::UsernameExists => "UsernameExists",
            IdpError::UserNotFound => "UserNotFound",
            IdpError::InvalidPassword(_) => "InvalidPassword",
            IdpError::InvalidParameter(_) => "InvalidParameter",
            IdpError::NotAuthorized(_) => "NotAuthorized",
            IdpError::UnsupportedUserState(_) => "UnsupportedUserState",
            IdpError::CodeDeliveryFailure(_) => "CodeDeliveryFailure",
            IdpError::CodeMismatch(_) => "CodeMismatch",
            IdpError::PasswordHistoryPolicyViolation => "PasswordHistoryPolicyViolation",
            IdpError::PasswordResetRequired(_) => "PasswordResetRequired",
            IdpError::TooManyRequests => "TooManyRequests",
            IdpError::ResourceNotFound(_) => "ResourceNotFound",
            IdpError::GroupExists(_) => "GroupExists",
            IdpError::Timeout(_) => "Timeout",
            IdpError::Unavailable(_) => "Unavailable",
            IdpError::Other { code, .. } => code,
        }
    }
}

/// The identity-provider port. Implementations must be safe to call concurrently.
#[async_trait]
pub trait IdentityProvider: Send + Sync + 'static {
    /// `"emulator"` or `"cognito"`.
    fn kind(&self) -> &'static str;

    /// Issuer and client id of the tokens this provider signs.
    fn token_settings(&self) -> TokenSettings;

    /// `AdminCreateUser`: creates a user in `FORCE_CHANGE_PASSWORD` and e-mails the temporary password,
    /// or with [`MessageAction::Resend`] re-sends the invitation with a new temporary password and a reset
    /// expiry (`UserNotFound` for a missing user, `UnsupportedUserState` once the password was changed).
    async fn admin_create_user(&self, req: CreateUserRequest) -> Result<IdpUser, IdpError>;

    /// `AdminGetUser`: strongly consistent existence and status check.
    async fn admin_get_user(&self, username: &str) -> Result<IdpUser, IdpError>;

    /// `AdminDeleteUser`. `UserNotFound` for a missing user.
    async fn admin_delete_user(&self, username: &str) -> Result<(), IdpError>;

    /// `AdminDisableUser`: the user can no longer sign in (`InitiateAuth` answers `NotAuthorized`, "User
    /// is disabled."). Idempotent. `UserNotFound` for a missing user.
    async fn admin_disable_user(&self, username: &str) -> Result<(), IdpError>;

    /// `AdminEnableUser`: undoes [`IdentityProvider::admin_disable_user`]. Idempotent. `UserNotFound` for
    /// a missing user.
    async fn admin_enable_user(&self, username: &str) -> Result<(), IdpError>;

    /// `ListUsers`, one page (`limit` ≤ 60). Eventually consistent in Cognito.
    async fn list_users(&self, pagination_token: Option<String>, limit: u32) -> Result<UserPage, IdpError>;

    // ---- Groups (roles mirrored into Cognito groups, `COGNITO_ROLE_GROUPS`) ----

    /// `CreateGroup` with a description. `GroupExists` when the pool already has a group of this name.
    async fn create_group(&self, name: &str, description: &str) -> Result<(), IdpError>;

    /// `GetGroup`: whether the group exists (`ResourceNotFound` when it does not).
    async fn get_group(&self, name: &str) -> Result<IdpGroup, IdpError>;

    /// `AdminAddUserToGroup`. Idempotent (adding a member again succeeds). `UserNotFound` for a missing
    /// user, `ResourceNotFound` for a missing group.
    async fn admin_add_user_to_group(&self, username: &str, group: &str) -> Result<(), IdpError>;

    /// `AdminRemoveUserFromGroup`. Idempotent (removing a non-member succeeds). `UserNotFound` for a
    /// missing user, `ResourceNotFound` for a missing group.
    async fn admin_remove_user_from_group(&self, username: &str, group: &str) -> Result<(), IdpError>;

    /// `AdminListGroupsForUser`, every page: the names of the user's groups, sorted. `UserNotFound` for a
    /// missing user.
    async fn admin_list_groups_for_user(&self, username: &str) -> Result<Vec<String>, IdpError>;

    /// `InitiateAuth` with `USER_PASSWORD_AUTH` (adds `SECRET_HASH` when the client has a secret).
    async fn initiate_auth(&self, username: &str, password: &Password) -> Result<AuthOutcome, IdpError>;

    /// `RespondToAuthChallenge`: answers the challenge `session` belongs to with `answer`; the result is
    /// tokens or the next challenge (a new password in a pool with `MfaConfiguration=ON` leads to
    /// `MFA_SETUP`). Wrong or replayed codes are `CodeMismatch`; an unknown, used or expired session is
    /// `NotAuthorized`.
    async fn respond_to_auth_challenge(
        &self,
        username: &str,
        session: &Secret,
        answer: &ChallengeAnswer,
    ) -> Result<AuthOutcome, IdpError>;

    /// `RespondToAuthChallenge` with `NEW_PASSWORD_REQUIRED`, for callers that expect tokens: a further
    /// challenge is `NotAuthorized` ("the sign-in needs another step"). Prefer
    /// [`IdentityProvider::respond_to_auth_challenge`], which returns it.
    async fn respond_to_new_password_challenge(
        &self,
        username: &str,
        session: &Secret,
        new_password: &Password,
    ) -> Result<Tokens, IdpError> {
        match self
            .respond_to_auth_challenge(username, session, &ChallengeAnswer::NewPassword(new_password.clone()))
            .await?
        {
            AuthOutcome::Tokens(t) => Ok(t),
            other => Err(IdpError::NotAuthorized(format!(
                "the sign-in needs another step: {}",
                other.challenge_name().unwrap_or("?")
            ))),
        }
    }

    /// `AssociateSoftwareToken`: a new TOTP secret for the user (replacing any not yet verified one).
    async fn associate_software_token(&self, auth: &MfaAuth) -> Result<SoftwareTokenAssociation, IdpError>;

    /// `VerifySoftwareToken`: checks `code` against the associated secret and marks it verified. With a
    /// session, answers the session to send with `RespondToAuthChallenge` (`MFA_SETUP`).
    /// `CodeMismatch` for a wrong code (`EnableSoftwareTokenMFAException` in Cognito).
    async fn verify_software_token(&self, auth: &MfaAuth, code: &Secret) -> Result<Option<Secret>, IdpError>;

    /// `SetUserMFAPreference` with the user's access token: software-token MFA enabled and preferred, or
    /// disabled.
    async fn set_user_mfa_preference(
        &self,
        access_token: &Secret,
        software_token_enabled: bool,
    ) -> Result<(), IdpError>;

    /// `ForgotPassword`: e-mails the user a confirmation code for [`IdentityProvider::confirm_forgot_password`].
    /// With user-existence errors prevented (the emulator; a pool with `PreventUserExistenceErrors=ENABLED`)
    /// an unknown user gets the same answer; otherwise `UserNotFound`. A user who cannot reset (no verified
    /// e-mail, `FORCE_CHANGE_PASSWORD`, disabled) is `NotAuthorized` or `InvalidParameter`.
    async fn forgot_password(&self, username: &str) -> Result<(), IdpError>;

    /// `ConfirmForgotPassword`: sets `new_password` if `code` is the user's latest, unexpired confirmation
    /// code (from [`IdentityProvider::forgot_password`] or [`IdentityProvider::admin_reset_user_password`]);
    /// the user is `CONFIRMED` afterwards. `CodeMismatch` for a wrong or expired code (`ExpiredCode` is
    /// mapped to it), `InvalidPassword` for a policy failure, `UserNotFound` / `NotAuthorized` otherwise.
    async fn confirm_forgot_password(
        &self,
        username: &str,
        code: &Secret,
        new_password: &Password,
    ) -> Result<(), IdpError>;

    /// `AdminResetUserPassword`: the user's password stops working (`RESET_REQUIRED`: `InitiateAuth` answers
    /// `PasswordResetRequired`) and a confirmation code is e-mailed. `UserNotFound` for a missing user,
    /// `NotAuthorized` for one who cannot reset (no verified e-mail, disabled).
    async fn admin_reset_user_password(&self, username: &str) -> Result<(), IdpError>;

    /// `AdminUserGlobalSignOut`: revokes every refresh token of the user (their ID and access tokens still
    /// verify until `exp`). Idempotent. `UserNotFound` for a missing user.
    async fn admin_user_global_sign_out(&self, username: &str) -> Result<(), IdpError>;

    /// `AdminSetUserMFAPreference` with the software token enabled and preferred, or disabled (an MFA
    /// reset: in a pool with `MfaConfiguration=ON` the next sign-in enrols again with `MFA_SETUP`).
    /// Idempotent. `UserNotFound` for a missing user.
    async fn admin_set_user_mfa_preference(&self, username: &str, software_token_enabled: bool)
        -> Result<(), IdpError>;

    /// The JSON Web Key Set (`{"keys":[…]}`) that verifies this provider's tokens.
    async fn jwks(&self) -> Result<serde_json::Value, IdpError>;

    /// Cheap reachability check for `/readyz` and start-up validation.
    async fn ping(&self) -> Result<(), IdpError>;
}
