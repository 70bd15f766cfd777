//! Request and response DTOs of the JSON API: the wire format, converted from the core's types; each
//! derives `ToSchema` for the OpenAPI document.

use crate::http::error::ApiError;
use admin_provisioner_core::domain::{AdminInfo, InviteStatus, Role, Tokens, User, UserId, UserStatus};
use admin_provisioner_core::{AdminView, InviteView, ProvisionedAdmin};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Body of `POST /api/admins`.
#[derive(Deserialize, ToSchema)]
pub struct CreateAdminRequest {
    /// The new admin's e-mail address (case-insensitive; trimmed; at most 128 characters).
    #[schema(example = "ann@example.com", format = Email, min_length = 3, max_length = 128)]
    pub email: String,
    /// The new admin's role (default `admin`). Only an owner may create an owner; a viewer creates
    /// nobody.
    #[serde(default)]
    pub role: Option<RoleDto>,
}

/// Body of `PATCH /api/admins/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeAdminRequest {
    /// The admin's new role.
    pub role: RoleDto,
}

/// An admin's role: `owner` (everything, owners included), `admin` (admins and viewers, never owners
/// nor the owner role), `viewer` (read only).
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum RoleDto {
    /// Everything, including creating, promoting, demoting, disabling and removing owners.
    Owner,
    /// Create, resend, disable, enable, remove and change the role of admins and viewers.
    Admin,
    /// Read only.
    Viewer,
}

impl From<Role> for RoleDto {
    fn from(r: Role) -> Self {
        match r {
            Role::Owner => RoleDto::Owner,
            Role::Admin => RoleDto::Admin,
            Role::Viewer => RoleDto::Viewer,
        }
    }
}

impl From<RoleDto> for Role {
    fn from(r: RoleDto) -> Self {
        match r {
            RoleDto::Owner => Role::Owner,
            RoleDto::Admin => Role::Admin,
            RoleDto::Viewer => Role::Viewer,
        }
    }
}

/// Longest username or e-mail accepted by the auth endpoints (Cognito's username limit).
pub const MAX_USERNAME: usize = 128;
/// Longest password accepted (Cognito's limit).
pub const MAX_PASSWORD: usize = 256;
/// Longest challenge session accepted (Cognito's are about 1 KB; the limit is generous).
pub const MAX_SESSION: usize = 4096;

/// 400 `invalid_request` unless `value` has `min..=max` characters (never echoes the value).
pub(super) fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ApiError::invalid_request(format!(
            "the field `{field}` must be {min} to {max} characters long"
        )));
    }
    Ok(())
}

/// Body of `POST /api/auth/login`.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// E-mail (or Cognito username).
    #[schema(min_length = 1, max_length = 128)]
    pub email: String,
    /// Password, or the temporary password from the invitation.
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
}

/// Body of `POST /api/auth/new-password`: `temporary_password` (or the `session` from a login challenge)
/// and the new password.
#[derive(Deserialize, ToSchema)]
pub struct NewPasswordRequest {
    /// Cognito username (the `username` of the challenge) or e-mail.
    #[schema(min_length = 1, max_length = 128)]
    pub username: String,
    /// The temporary password from the invitation e-mail (this or `session` is required).
    #[schema(min_length = 1, max_length = 256)]
    pub temporary_password: Option<String>,
    /// Instead of `temporary_password`: the `session` of a `NEW_PASSWORD_REQUIRED` login answer.
    #[schema(min_length = 1, max_length = 4096)]
    pub session: Option<String>,
    /// The new password (default policy: at least 8 characters with upper case, lower case, digit, symbol).
    #[schema(min_length = 8, max_length = 256)]
    pub new_password: String,
}

/// An admin's status in the database.
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum UserStatusDto {
    /// Invited; the temporary password is not yet replaced.
    Invited,
    /// Completed first login.
    Active,
}

/// Computed invitation status.
#[derive(Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InviteStatusDto {
    /// Being provisioned (not yet in both systems).
    Pending,
    /// Invited, temporary password still valid.
    Invited,
    /// The temporary password expired: resend the invitation.
    Expired,
    /// First login completed.
    Active,
    /// Disabled in both systems (cannot log in, tokens refused): `POST /api/admins/{id}/enable` restores.
    Disabled,
    /// Provisioning failed and needs an operator.
    Failed,
}

/// The `User` record.
#[derive(Serialize, ToSchema)]
pub struct UserDto {
    /// `User.id`.
    pub id: Uuid,
    /// E-mail as typed.
    pub email: String,
    /// Lower-cased e-mail (unique).
    pub email_normalized: String,
    /// Linked Cognito `Username`.
    pub cognito_username: String,
    /// Linked Cognito `sub`.
    pub cognito_sub: String,
    /// Invited or active.
    pub status: UserStatusDto,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When the admin was disabled; null while enabled (`status` keeps what they were before).
    pub disabled_at: Option<DateTime<Utc>>,
    /// The identity provider's id for the person (SCIM `externalId`), when provisioned over SCIM.
    pub external_id: Option<String>,
}

/// The `AdminInfo` record.
#[derive(Serialize, ToSchema)]
pub struct AdminInfoDto {
    /// Foreign key to `User.id`.
    pub user_id: Uuid,
    /// Inviting admin's id; null when the operator invited.
    pub invited_by: Option<Uuid>,
    /// First invitation time.
    pub invited_at: DateTime<Utc>,
    /// Expiry of the current temporary password.
    pub invite_expires_at: DateTime<Utc>,
    /// Invitations sent.
    pub invites_sent: i32,
    /// Last invitation time.
    pub last_invite_sent_at: DateTime<Utc>,
    /// False when Cognito could not deliver the last invitation.
    pub invite_delivered: bool,
    /// When first login was completed.
    pub accepted_at: Option<DateTime<Utc>>,
    /// The admin's role.
    pub role: RoleDto,
}

/// Invitation state.
#[derive(Serialize, ToSchema)]
pub struct InviteDto {
    /// Computed status.
    pub status: InviteStatusDto,
    /// When the current temporary password expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Invitations sent.
    pub invites_sent: i32,
    /// When the last one was sent.
    pub last_sent_at: Option<DateTime<Utc>>,
    /// False when Cognito could not deliver the last one.
    pub delivered: bool,
}

/// `201` answer of `POST /api/admins`.
#[derive(Serialize, ToSchema)]
pub struct ProvisionedResponse {
    /// The `User` row.
    pub user: UserDto,
    /// The `AdminInfo` row.
    pub admin_info: AdminInfoDto,
    /// Invitation state.
    pub invite: InviteDto,
}

/// One admin (or unfinished provisioning).
#[derive(Serialize, ToSchema)]
pub struct AdminDto {
    /// `User.id` (planned id for a pending line).
    pub id: Uuid,
    /// E-mail.
    pub email: String,
    /// Computed status.
    pub status: InviteStatusDto,
    /// The admin's role (for a pending line, the role its provisioning gives).
    pub role: RoleDto,
    /// The `User` row, once written.
    pub user: Option<UserDto>,
    /// The `AdminInfo` row, once written.
    pub admin_info: Option<AdminInfoDto>,
    /// Invitation details, once written.
    pub invite: Option<InviteDto>,
    /// The unfinished saga, for `pending` and `failed` lines.
    pub saga_id: Option<Uuid>,
    /// Why a `failed` line failed.
    pub last_error: Option<String>,
}

/// `GET /api/admins`: one page.
#[derive(Serialize, ToSchema)]
pub struct AdminList {
    /// Oldest first: stored admins, then unfinished provisionings (`pending`, `failed`).
    pub admins: Vec<AdminDto>,
    /// Opaque cursor of the next page (pass it back as `?cursor=`); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /api/admins` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminListParams {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Only admins with this status: `pending`, `invited`, `expired`, `active`, `disabled` or `failed`.
    pub status: Option<String>,
    /// Only admins whose e-mail starts with this (case-insensitive).
    pub email_prefix: Option<String>,
}

impl AdminListParams {
    /// The validated query; `400 invalid_request` with a human message otherwise.
    pub fn to_query(&self) -> Result<admin_provisioner_core::pages::AdminListQuery, ApiError> {
        use admin_provisioner_core::pages::{AdminCursor, AdminListQuery, MAX_LIMIT, MAX_PREFIX_LEN};
        let limit = self.limit.unwrap_or(admin_provisioner_core::pages::DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid_request(format!(
                "limit must be a number from 1 to {MAX_LIMIT}"
            )));
        }
        let status = match self.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some("pending") => Some(InviteStatus::Pending),
            Some("invited") => Some(InviteStatus::Invited),
            Some("expired") => Some(InviteStatus::Expired),
            Some("active") => Some(InviteStatus::Active),
            Some("disabled") => Some(InviteStatus::Disabled),
            Some("failed") => Some(InviteStatus::Failed),
            Some(_) => {
                return Err(ApiError::invalid_request(
                    "status must be one of pending, invited, expired, active, disabled, failed",
                ))
            }
        };
        let email_prefix = self
            .email_prefix
            .as_deref()
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty());
        if email_prefix
            .as_ref()
            .is_some_and(|p| p.chars().count() > MAX_PREFIX_LEN)
        {
            return Err(ApiError::invalid_request(format!(
                "email_prefix must be at most {MAX_PREFIX_LEN} characters"
            )));
        }
        let cursor = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(AdminCursor::decode(c).map_err(|e| ApiError::invalid_request(e.to_string()))?),
        };
        Ok(AdminListQuery {
            status,
            email_prefix,
            cursor,
            limit,
        })
    }
}

/// `POST /api/admins/{id}/resend-invite`.
#[derive(Serialize, ToSchema)]
pub struct ResendResponse {
    /// The new invitation state.
    pub invite: InviteDto,
}

/// Tokens after a successful login or password change.
#[derive(Serialize, ToSchema)]
pub struct TokensResponse {
    /// Cognito ID token (JWT).
    pub id_token: String,
    /// Cognito access token (JWT).
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: String,
    /// Lifetime of the ID and access tokens, seconds.
    pub expires_in: i64,
}

/// The next step of the sign-in: answer it within 3 minutes with `POST /api/auth/respond` (or, for
/// `NEW_PASSWORD_REQUIRED`, `POST /api/auth/new-password`).
#[derive(Serialize, ToSchema)]
pub struct ChallengeResponse {
    /// `NEW_PASSWORD_REQUIRED`, `MFA_SETUP` or `SOFTWARE_TOKEN_MFA`.
    #[schema(example = "NEW_PASSWORD_REQUIRED")]
    pub challenge: String,
    /// Challenge session to send back.
    pub session: String,
    /// Username to answer with.
    pub username: String,
    /// `MFA_SETUP` after its first step: the authenticator secret (base32), to type into an authenticator
    /// app. Shown once; the product keeps no copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_code: Option<String>,
    /// `MFA_SETUP` after its first step: the same secret as an `otpauth://totp/…` URI (for a QR code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otpauth_uri: Option<String>,
}

/// `POST /api/auth/respond`: the answer to a challenge.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RespondRequest {
    /// The challenge answered: `NEW_PASSWORD_REQUIRED`, `MFA_SETUP` or `SOFTWARE_TOKEN_MFA`.
    #[schema(example = "SOFTWARE_TOKEN_MFA")]
    pub challenge: String,
    /// The `username` of the challenge.
    #[schema(min_length = 1, max_length = 128)]
    pub username: String,
    /// The `session` of the challenge.
    #[schema(min_length = 1, max_length = 4096)]
    pub session: String,
    /// `NEW_PASSWORD_REQUIRED`: the new password.
    #[schema(min_length = 8, max_length = 256)]
    pub new_password: Option<String>,
    /// `SOFTWARE_TOKEN_MFA`: the authenticator's current code. `MFA_SETUP`: absent on the first call
    /// (the answer carries `secret_code` and `otpauth_uri`), then the first code the authenticator shows.
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$", example = "123456")]
    pub code: Option<String>,
}

/// `POST /api/auth/mfa/setup` answer: an authenticator to enrol.
#[derive(Serialize, ToSchema)]
pub struct MfaSetupResponse {
    /// The authenticator secret (base32). Shown once; the product keeps no copy.
    pub secret_code: String,
    /// The same secret as an `otpauth://totp/…` URI (for a QR code).
    pub otpauth_uri: String,
}

/// Body of `POST /api/auth/forgot-password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    /// The account's e-mail address.
    #[schema(min_length = 1, max_length = 128)]
    pub email: String,
}

/// `POST /api/auth/forgot-password` answer: the same for every address, known or not.
#[derive(Serialize, ToSchema)]
pub struct ForgotPasswordResponse {
    /// Always `accepted`.
    #[schema(example = "accepted")]
    pub status: String,
    /// What happens next, in words.
    pub message: String,
}

/// Body of `POST /api/auth/confirm-forgot-password`: the e-mailed code and the new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmForgotPasswordRequest {
    /// The account's e-mail address.
    #[schema(min_length = 1, max_length = 128)]
    pub email: String,
    /// The six-digit code from the e-mail.
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$", example = "123456")]
    pub code: String,
    /// The new password (the pool's password policy applies).
    #[schema(min_length = 1, max_length = 256)]
    pub new_password: String,
}

/// `POST /api/auth/mfa/verify`: the first code of the authenticator being enrolled.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyRequest {
    /// The authenticator's current code.
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$", example = "123456")]
    pub code: String,
}

/// `POST /api/auth/login` (and `/respond`, `/new-password`) answer: tokens, or the next challenge.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    /// Logged in.
    Tokens(TokensResponse),
    /// A new password, an authenticator setup or an authenticator code is required.
    Challenge(ChallengeResponse),
}

/// Tokens or the next challenge, as the API answers them.
pub(super) fn login_dto(outcome: &admin_provisioner_core::LoginOutcome) -> LoginResponse {
    use admin_provisioner_core::identity::AuthOutcome;
    match outcome {
        AuthOutcome::Tokens(t) => LoginResponse::Tokens(tokens_dto(t)),
        AuthOutcome::NewPasswordRequired { session, username }
        | AuthOutcome::MfaSetup { session, username }
        | AuthOutcome::SoftwareTokenMfa { session, username } => LoginResponse::Challenge(ChallengeResponse {
            challenge: outcome.challenge_name().unwrap_or_default().to_string(),
            session: session.expose().to_string(),
            username: username.clone(),
            secret_code: None,
            otpauth_uri: None,
        }),
    }
}

/// One audit event.
#[derive(Serialize, ToSchema)]
pub struct AuditEventDto {
    /// Monotonic id.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Acting admin's id, or `operator`.
    pub actor: String,
    /// Acting admin's e-mail, when still known.
    pub actor_email: Option<String>,
    /// `create_admin`, `bootstrap_admin`, `resend_invite`, `delete_admin`, `first_login_completed`.
    pub action: String,
    /// Target admin's e-mail.
    pub target: String,
    /// `success`, or `failure: <code>`.
    pub outcome: String,
    /// Request id of the HTTP request (or CLI run).
    pub request_id: Option<String>,
}

/// `GET /api/audit`: one page.
#[derive(Serialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub events: Vec<AuditEventDto>,
    /// Opaque cursor of the next (older) page (pass it back as `?cursor=`); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /api/audit` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Page size (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// The error envelope.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Inside the error envelope.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code.
    #[schema(example = "invalid_email")]
    pub code: String,
    /// For people.
    pub message: String,
    /// Same as the `x-request-id` header and the log line.
    pub request_id: String,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub struct ReadyResponse {
    /// `ready` or `not_ready`.
    pub status: String,
    /// `ok` or `unavailable`.
    pub database: String,
    /// `ok` or `unavailable`.
    pub identity_provider: String,
}

fn user_dto(u: User) -> UserDto {
    UserDto {
        id: u.id.0,
        email: u.email,
        email_normalized: u.email_normalized,
        cognito_username: u.cognito_username,
        cognito_sub: u.cognito_sub,
        status: match u.status {
            UserStatus::Invited => UserStatusDto::Invited,
            UserStatus::Active => UserStatusDto::Active,
        },
        created_at: u.created_at,
        updated_at: u.updated_at,
        disabled_at: u.disabled_at,
        external_id: u.external_id,
    }
}

fn admin_info_dto(a: AdminInfo) -> AdminInfoDto {
    AdminInfoDto {
        user_id: a.user_id.0,
        invited_by: a.invited_by.map(|i| i.0),
        invited_at: a.invited_at,
        invite_expires_at: a.invite_expires_at,
        invites_sent: a.invites_sent,
        last_invite_sent_at: a.last_invite_sent_at,
        invite_delivered: a.invite_delivered,
        accepted_at: a.accepted_at,
        role: a.role.into(),
    }
}

/// The wire form of an [`InviteStatus`].
pub fn status_dto(s: InviteStatus) -> InviteStatusDto {
    match s {
        InviteStatus::Pending => InviteStatusDto::Pending,
        InviteStatus::Invited => InviteStatusDto::Invited,
        InviteStatus::Expired => InviteStatusDto::Expired,
        InviteStatus::Active => InviteStatusDto::Active,
        InviteStatus::Disabled => InviteStatusDto::Disabled,
        InviteStatus::Failed => InviteStatusDto::Failed,
    }
}

pub(super) fn invite_dto(i: InviteView) -> InviteDto {
    InviteDto {
        status: status_dto(i.status),
        expires_at: i.expires_at,
        invites_sent: i.invites_sent,
        last_sent_at: i.last_sent_at,
        delivered: i.delivered,
    }
}

pub(super) fn provisioned_dto(p: ProvisionedAdmin) -> ProvisionedResponse {
    ProvisionedResponse {
        user: user_dto(p.user),
        admin_info: admin_info_dto(p.admin_info),
        invite: invite_dto(p.invite),
    }
}

pub(super) fn admin_dto(a: AdminView) -> AdminDto {
    AdminDto {
        id: a.id.0,
        email: a.email,
        status: status_dto(a.status),
        role: a.role.into(),
        user: a.user.map(user_dto),
        admin_info: a.admin_info.map(admin_info_dto),
        invite: a.invite.map(invite_dto),
        saga_id: a.saga_id,
        last_error: a.last_error,
    }
}

pub(super) fn tokens_dto(t: &Tokens) -> TokensResponse {
    TokensResponse {
        id_token: t.id_token.expose().to_string(),
        access_token: t.access_token.expose().to_string(),
        refresh_token: t.refresh_token.expose().to_string(),
        expires_in: t.expires_in,
    }
}

/// Parses an admin id from the path: 400 `invalid_request` unless it is a UUID.
pub fn parse_admin_id(raw: &str) -> Result<UserId, ApiError> {
    Uuid::parse_str(raw)
        .map(UserId)
        .map_err(|_| ApiError::invalid_request("the admin id must be a UUID"))
}
