//! The JSON API of the contract, its DTOs and its OpenAPI document.
//!
//! Response types are defined here (not in the core) and converted from the core's types, so the wire
//! format is explicit and every one of them derives [`ToSchema`]: `/openapi.json` is generated from these
//! types and the `#[utoipa::path]` annotations on the handlers, and a test checks that it lists every route
//! of the contract.

use super::auth::AdminCaller;
use super::edge::ClientAddr;
use super::error::{parse_json, ApiError, REQUEST_ID};
use super::{AppState, RequestId};
use admin_provisioner_core::domain::{
    AdminInfo, InviteStatus, Password, Secret, TemporaryPassword, Tokens, User, UserId, UserStatus,
};
use admin_provisioner_core::store::{AuditEvent, IdempotencyBegin, StoredResponse};
use admin_provisioner_core::{AdminView, InviteView, LoginOutcome, ProvisionedAdmin};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

/// The header that makes `POST /api/admins` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a replayed idempotent answer.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The API routes (plus health, metrics, OpenAPI and, in emulator mode, the emulator's JWKS).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admins", post(create_admin).get(list_admins))
        .route("/api/admins/{id}", get(get_admin).delete(delete_admin))
        .route("/api/admins/{id}/resend-invite", post(resend_invite))
        .route("/api/admins/{id}/disable", post(disable_admin))
        .route("/api/admins/{id}/enable", post(enable_admin))
        .route("/api/auth/login", post(login))
        .route("/api/auth/new-password", post(new_password))
        .route("/api/audit", get(audit))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/emulator/.well-known/jwks.json", get(emulator_jwks))
}

// ---------------------------------------------------------------------------------------------------
// DTOs
// ---------------------------------------------------------------------------------------------------

/// Body of `POST /api/admins`.
#[derive(Deserialize, ToSchema)]
pub struct CreateAdminRequest {
    /// The new admin's e-mail address (case-insensitive; trimmed; at most 128 characters).
    #[schema(example = "ann@example.com", format = Email, min_length = 3, max_length = 128)]
    pub email: String,
}

/// Longest username or e-mail accepted by the auth endpoints (Cognito's username limit).
pub const MAX_USERNAME: usize = 128;
/// Longest password accepted (Cognito's limit).
pub const MAX_PASSWORD: usize = 256;
/// Longest challenge session accepted (Cognito's are about 1 KB; the limit is generous).
pub const MAX_SESSION: usize = 4096;

/// 400 `invalid_request` unless `value` has `min..=max` characters (never echoes the value).
fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
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

/// First login: a new password must be chosen (within 3 minutes, with `session`).
#[derive(Serialize, ToSchema)]
pub struct ChallengeResponse {
    /// Always `NEW_PASSWORD_REQUIRED`.
    #[schema(example = "NEW_PASSWORD_REQUIRED")]
    pub challenge: String,
    /// Challenge session for `POST /api/auth/new-password`.
    pub session: String,
    /// Username to answer with.
    pub username: String,
}

/// `POST /api/auth/login` answer: tokens, or the new-password challenge.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    /// Logged in.
    Tokens(TokensResponse),
    /// A new password is required.
    Challenge(ChallengeResponse),
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

fn invite_dto(i: InviteView) -> InviteDto {
    InviteDto {
        status: status_dto(i.status),
        expires_at: i.expires_at,
        invites_sent: i.invites_sent,
        last_sent_at: i.last_sent_at,
        delivered: i.delivered,
    }
}

fn provisioned_dto(p: ProvisionedAdmin) -> ProvisionedResponse {
    ProvisionedResponse {
        user: user_dto(p.user),
        admin_info: admin_info_dto(p.admin_info),
        invite: invite_dto(p.invite),
    }
}

fn admin_dto(a: AdminView) -> AdminDto {
    AdminDto {
        id: a.id.0,
        email: a.email,
        status: status_dto(a.status),
        user: a.user.map(user_dto),
        admin_info: a.admin_info.map(admin_info_dto),
        invite: a.invite.map(invite_dto),
        saga_id: a.saga_id,
        last_error: a.last_error,
    }
}

fn tokens_dto(t: &Tokens) -> TokensResponse {
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

// ---------------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------------

/// Provision a new admin in Cognito and the database (the saga). Safe to retry with `Idempotency-Key`.
#[utoipa::path(
    post, path = "/api/admins", tag = "admins",
    request_body = CreateAdminRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[!-~]+$",
        description = "Retry key (1 to 255 visible ASCII characters): the same key with the same body replays the first answer (header `Idempotent-Replayed: true`)")),
    responses(
        (status = 201, description = "Created in both systems; the invitation e-mail was sent", body = ProvisionedResponse),
        (status = 400, description = "`invalid_email` or `invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an active admin", body = ErrorBody),
        (status = 409, description = "`admin_exists`, or `idempotency_in_progress`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused` with a different body", body = ErrorBody),
        (status = 429, description = "`rate_limited` by Cognito", body = ErrorBody),
        (status = 502, description = "`identity_provider_unavailable` or `identity_provider_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_admin(
    State(state): State<AppState>,
    admin: AdminCaller,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: CreateAdminRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    // Run to completion even if the client goes away: the saga and the idempotency record must not be
    // abandoned half-way by a dropped connection.
    let work = REQUEST_ID.scope(request_id.clone(), async move {
        match key {
            None => provision_answer(&state, &admin, &request.email, &request_id)
                .await
                .into_response(),
            Some(key) => idempotent_provision(&state, &admin, &request.email, &request_id, &key, &body).await,
        }
    });
    match tokio::spawn(work).await {
        Ok(res) => res,
        Err(e) => ApiError::internal(format!("provisioning task failed: {e}")).into_response(),
    }
}

/// The answer of one provisioning: status and JSON body.
struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    error: Option<ApiError>,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self.error {
            Some(e) => e.into_response(),
            None => with_location(self.status, self.body).into_response(),
        }
    }
}

fn with_location(status: StatusCode, body: serde_json::Value) -> Response {
    let location = body
        .pointer("/user/id")
        .and_then(|v| v.as_str())
        .and_then(|id| HeaderValue::from_str(&format!("/api/admins/{id}")).ok());
    let mut res = (status, Json(body)).into_response();
    if let (Some(loc), true) = (location, status == StatusCode::CREATED) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    res
}

async fn provision_answer(state: &AppState, admin: &AdminCaller, email: &str, request_id: &str) -> Answer {
    match state
        .provisioner()
        .provision_new_admin(&admin.caller, email, Some(request_id))
        .await
    {
        Ok(p) => Answer {
            status: StatusCode::CREATED,
            body: serde_json::to_value(provisioned_dto(p)).unwrap_or_default(),
            error: None,
        },
        Err(e) => {
            let e = ApiError::from(e);
            Answer {
                status: e.status,
                body: e.body(request_id),
                error: Some(e),
            }
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..0x7f).contains(&b)))
        .ok_or_else(|| ApiError::invalid_request("Idempotency-Key must be 1 to 255 visible ASCII characters"))?;
    Ok(Some(key.to_string()))
}

/// SHA-256 (hex) of the body's canonical JSON (object keys sorted, no insignificant whitespace), so the
/// same request with keys in another order or other spacing counts as the same request.
pub fn request_hash(body: &[u8]) -> String {
    fn canonical(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                    out.push(':');
                    canonical(&map[k.as_str()], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => canonical(&v, &mut text),
        Err(_) => text = String::from_utf8_lossy(body).into_owned(),
    }
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(digest)
}

async fn idempotent_provision(
    state: &AppState,
    admin: &AdminCaller,
    email: &str,
    request_id: &str,
    key: &str,
    body: &[u8],
) -> Response {
    let core = state.provisioner();
    let scope = admin.admin_id.to_string();
    let hash = request_hash(body);
    match core.idempotency_begin(&scope, key, &hash).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(IdempotencyBegin::Existing { request_hash, .. }) if request_hash != hash => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        )
        .into_response(),
        Ok(IdempotencyBegin::Existing { response: None, .. }) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )
        .into_response(),
        Ok(IdempotencyBegin::Existing {
            response: Some(stored), ..
        }) => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            let body: serde_json::Value = serde_json::from_str(&stored.body).unwrap_or_default();
            let mut res = with_location(status, body);
            res.headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            res
        }
        Ok(IdempotencyBegin::Started) => {
            let answer = provision_answer(state, admin, email, request_id).await;
            let s = answer.status.as_u16();
            // Definitive answers are remembered; throttling and server-side failures may succeed later.
            let definitive = s == 201 || ((400..500).contains(&s) && s != 429);
            if definitive {
                let stored = StoredResponse {
                    status: s,
                    body: answer.body.to_string(),
                };
                if let Err(e) = core.idempotency_complete(&scope, key, stored).await {
                    tracing::error!(error = %e, "could not store the idempotent response");
                }
            } else if let Err(e) = core.idempotency_abandon(&scope, key).await {
                tracing::error!(error = %e, "could not release the idempotency key");
            }
            answer.into_response()
        }
    }
}

/// One page of the admin list with invitation statuses, including unfinished (`pending`) and stuck
/// (`failed`) provisionings. Cursor-paginated: walking the pages shows every admin that exists throughout
/// the walk exactly once, whatever is added or removed meanwhile.
#[utoipa::path(
    get, path = "/api/admins", tag = "admins",
    params(AdminListParams),
    responses(
        (status = 200, description = "Oldest first; `next` when there is another page", body = AdminList),
        (status = 400, description = "`invalid_request`: bad limit, status, prefix or cursor", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_admins(
    State(state): State<AppState>,
    _admin: AdminCaller,
    params: Result<Query<AdminListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AdminList>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid_request(format!("bad query: {}", e.body_text())))?;
    let page = state.provisioner().list_admin_page(&params.to_query()?).await?;
    Ok(Json(AdminList {
        admins: page.admins.into_iter().map(admin_dto).collect(),
        next: page.next.map(|c| c.encode()),
    }))
}

/// One admin (or unfinished provisioning) by id.
#[utoipa::path(
    get, path = "/api/admins/{id}", tag = "admins",
    params(("id" = Uuid, Path, description = "`User.id`")),
    responses(
        (status = 200, description = "The admin", body = AdminDto),
        (status = 400, description = "`invalid_request`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_admin(
    State(state): State<AppState>,
    _admin: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<AdminDto>, ApiError> {
    let id = parse_admin_id(&id)?;
    Ok(Json(admin_dto(state.provisioner().get_admin_view(id).await?)))
}

/// Re-send the invitation with a new temporary password and a fresh expiry.
#[utoipa::path(
    post, path = "/api/admins/{id}/resend-invite", tag = "admins",
    params(("id" = Uuid, Path, description = "`User.id`")),
    responses(
        (status = 200, description = "Sent", body = ResendResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`already_active`", body = ErrorBody),
        (status = 429, description = "`resend_cooldown` (with `Retry-After`) or `rate_limited`", body = ErrorBody),
        (status = 502, description = "`identity_provider_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn resend_invite(
    State(state): State<AppState>,
    admin: AdminCaller,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<Json<ResendResponse>, ApiError> {
    let id = parse_admin_id(&id)?;
    let invite = state
        .provisioner()
        .resend_admin_invite_by_id(&admin.caller, id, Some(&request_id))
        .await?;
    Ok(Json(ResendResponse {
        invite: invite_dto(invite),
    }))
}

/// Revoke a pending invitation or remove an admin, in both systems.
#[utoipa::path(
    delete, path = "/api/admins/{id}", tag = "admins",
    params(("id" = Uuid, Path, description = "`User.id`")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden`, or `self_action_forbidden`: an admin cannot remove themselves", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`last_admin`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the caller's budget of changes per minute is spent (`Retry-After`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_admin(
    State(state): State<AppState>,
    admin: AdminCaller,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_admin_id(&id)?;
    state
        .provisioner()
        .remove_admin(&admin.caller, id, Some(&request_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Disable an admin in both systems: Cognito `AdminDisableUser` and status `disabled` in the database;
/// the admin can no longer log in and tokens they hold are refused at once. Idempotent.
#[utoipa::path(
    post, path = "/api/admins/{id}/disable", tag = "admins",
    params(("id" = Uuid, Path, description = "`User.id`")),
    responses(
        (status = 200, description = "Disabled (or already disabled)", body = AdminDto),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden`, or `self_action_forbidden`: an admin cannot disable themselves", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`last_admin` or `operation_in_progress`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the caller's budget of changes per minute is spent (`Retry-After`)", body = ErrorBody),
        (status = 502, description = "`identity_provider_unavailable`: nothing was changed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn disable_admin(
    State(state): State<AppState>,
    admin: AdminCaller,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<Json<AdminDto>, ApiError> {
    let id = parse_admin_id(&id)?;
    state
        .provisioner()
        .disable_admin(&admin.caller, id, Some(&request_id))
        .await?;
    Ok(Json(admin_dto(state.provisioner().get_admin_view(id).await?)))
}

/// Enable a disabled admin in both systems (Cognito `AdminEnableUser`, then the database). Idempotent.
#[utoipa::path(
    post, path = "/api/admins/{id}/enable", tag = "admins",
    params(("id" = Uuid, Path, description = "`User.id`")),
    responses(
        (status = 200, description = "Enabled (or was not disabled)", body = AdminDto),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`operation_in_progress`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the caller's budget of changes per minute is spent (`Retry-After`)", body = ErrorBody),
        (status = 502, description = "`identity_provider_unavailable`: nothing was changed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn enable_admin(
    State(state): State<AppState>,
    admin: AdminCaller,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<Json<AdminDto>, ApiError> {
    let id = parse_admin_id(&id)?;
    state
        .provisioner()
        .enable_admin(&admin.caller, id, Some(&request_id))
        .await?;
    Ok(Json(admin_dto(state.provisioner().get_admin_view(id).await?)))
}

/// Log in with e-mail and password (`USER_PASSWORD_AUTH`).
#[utoipa::path(
    post, path = "/api/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens, or `{\"challenge\":\"NEW_PASSWORD_REQUIRED\",\"session\",\"username\"}` at first login", body = LoginResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials` (also an expired temporary password)", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(client): ClientAddr,
    body: Bytes,
) -> Result<Json<LoginResponse>, ApiError> {
    let req: LoginRequest = parse_json(&body)?;
    check_len("email", &req.email, 1, MAX_USERNAME)?;
    check_len("password", &req.password, 1, MAX_PASSWORD)?;
    state.edge().limits.auth_attempt(&req.email, client)?;
    let outcome = state
        .provisioner()
        .login(&req.email, &Password::new(req.password), Some(&request_id))
        .await?;
    Ok(Json(match outcome {
        LoginOutcome::Tokens(t) => LoginResponse::Tokens(tokens_dto(&t)),
        LoginOutcome::NewPasswordRequired { session, username } => LoginResponse::Challenge(ChallengeResponse {
            challenge: "NEW_PASSWORD_REQUIRED".into(),
            session: session.expose().to_string(),
            username,
        }),
    }))
}

/// First login: replace the temporary password (answers Cognito's `NEW_PASSWORD_REQUIRED`).
#[utoipa::path(
    post, path = "/api/auth/new-password", tag = "auth",
    request_body = NewPasswordRequest,
    responses(
        (status = 200, description = "Password set; the admin is now active", body = TokensResponse),
        (status = 400, description = "`password_policy` or `invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: wrong or expired temporary password or session", body = ErrorBody),
        (status = 409, description = "`no_challenge`: the password was already changed", body = ErrorBody),
    )
)]
pub async fn new_password(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(client): ClientAddr,
    body: Bytes,
) -> Result<Json<TokensResponse>, ApiError> {
    let req: NewPasswordRequest = parse_json(&body)?;
    check_len("username", &req.username, 1, MAX_USERNAME)?;
    check_len("new_password", &req.new_password, 1, MAX_PASSWORD)?;
    if let Some(t) = &req.temporary_password {
        check_len("temporary_password", t, 1, MAX_PASSWORD)?;
    }
    if let Some(s) = &req.session {
        check_len("session", s, 1, MAX_SESSION)?;
    }
    state.edge().limits.auth_attempt(&req.username, client)?;
    let new = Password::new(req.new_password);
    let p = state.provisioner();
    let tokens = match (req.temporary_password, req.session) {
        (Some(temp), _) => {
            p.handle_new_password_challenge(&req.username, &TemporaryPassword::new(temp), &new, Some(&request_id))
                .await?
        }
        (None, Some(session)) => {
            p.complete_new_password(&req.username, &Secret::new(session), &new, Some(&request_id))
                .await?
        }
        (None, None) => {
            return Err(ApiError::invalid_request(
                "either `temporary_password` or `session` is required",
            ))
        }
    };
    Ok(Json(tokens_dto(&tokens)))
}

/// The audit log, newest first.
#[utoipa::path(
    get, path = "/api/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "Newest first", body = AuditList),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn audit(
    State(state): State<AppState>,
    _admin: AdminCaller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditList>, ApiError> {
    let Query(q) = query.map_err(|_| ApiError::invalid_request("limit must be a number from 1 to 1000"))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_request("limit must be a number from 1 to 1000"));
    }
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            admin_provisioner_core::pages::AuditCursor::decode(c)
                .map_err(|e| ApiError::invalid_request(e.to_string()))?,
        ),
    };
    let (events, next) = audit_page(&state, cursor, limit).await?;
    Ok(Json(AuditList {
        events,
        next: next.map(|c| c.encode()),
    }))
}

/// Audit events, newest first, with the acting admin's e-mail when known: the most recent `limit`.
pub async fn audit_events(state: &AppState, limit: i64) -> Result<Vec<AuditEventDto>, ApiError> {
    Ok(audit_page(state, None, limit).await?.0)
}

/// One page of audit events older than `cursor`, newest first, with the acting admin's e-mail (one query
/// with a join), and the cursor of the next page.
pub async fn audit_page(
    state: &AppState,
    cursor: Option<admin_provisioner_core::pages::AuditCursor>,
    limit: i64,
) -> Result<(Vec<AuditEventDto>, Option<admin_provisioner_core::pages::AuditCursor>), ApiError> {
    let mut rows = state
        .provisioner()
        .audit_page(cursor.map(|c| c.before_id), limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next = match rows.last() {
        Some((last, _)) if more => Some(admin_provisioner_core::pages::AuditCursor { before_id: last.id }),
        _ => None,
    };
    let events = rows
        .into_iter()
        .map(|(AuditEvent { id, entry }, actor_email)| AuditEventDto {
            id,
            at: entry.at,
            actor_email,
            actor: entry.actor.audit_name(),
            action: entry.action.as_str().to_string(),
            target: entry.target,
            outcome: entry.outcome,
            request_id: entry.request_id,
        })
        .collect();
    Ok((events, next))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthResponse)))]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok".into() })
}

/// Readiness: the database and the identity provider answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = ReadyResponse),
        (status = 503, description = "Not ready; says which dependency failed", body = ReadyResponse),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<ReadyResponse>) {
    let db = tokio::time::timeout(std::time::Duration::from_secs(5), state.app().store.ping()).await;
    let database = match db {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unavailable");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!("readiness: database did not answer within 5 s");
            "unavailable"
        }
    };
    let identity_provider = match state.app().check_identity_provider().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "readiness: identity provider unavailable");
            "unavailable"
        }
    };
    let ready = database == "ok" && identity_provider == "ok";
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(ReadyResponse {
            status: if ready { "ready" } else { "not_ready" }.into(),
            database: database.into(),
            identity_provider: identity_provider.into(),
        }),
    )
}

/// Prometheus metrics (OpenMetrics text format 1.0.0).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus metrics in the OpenMetrics text format", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let p = state.provisioner();
    let unfinished = tokio::time::timeout(std::time::Duration::from_secs(2), p.unfinished_sagas())
        .await
        .ok()
        .and_then(Result::ok);
    let body = state.metrics().render_with(unfinished.as_deref(), p.now());
    ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], body).into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi().merge_from(super::events::EventsDoc::openapi()))
}

/// The built-in emulator's signing keys (emulator mode only; 404 otherwise).
pub async fn emulator_jwks(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    match &state.app().emulator {
        Some(emu) => Ok(Json(emu.jwks_json())),
        None => Err(ApiError::not_found("the built-in Cognito emulator is not in use")),
    }
}

/// Unknown routes: 404 `not_found`.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// Known route, wrong method: 405 `method_not_allowed`.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept this method",
    )
}

// ---------------------------------------------------------------------------------------------------
// OpenAPI
// ---------------------------------------------------------------------------------------------------

/// The OpenAPI document of the API, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "admin-provisioner",
        description = "Adds a new admin to AWS Cognito and the application's SQL database at once. \
                       Errors are `{\"error\":{\"code\",\"message\",\"request_id\"}}`; every response carries `x-request-id`."
    ),
    paths(
        create_admin, list_admins, get_admin, resend_invite, delete_admin, disable_admin, enable_admin,
        login, new_password, audit, healthz, readyz, metrics, openapi_json
    ),
    components(schemas(
        CreateAdminRequest, LoginRequest, NewPasswordRequest, ProvisionedResponse, UserDto, AdminInfoDto,
        InviteDto, InviteStatusDto, UserStatusDto, AdminDto, AdminList, ResendResponse, TokensResponse,
        ChallengeResponse, LoginResponse, AuditEventDto, AuditList, ErrorBody, ErrorDetail, HealthResponse,
        ReadyResponse
    )),
    modifiers(&BearerAuth, &EdgeResponses, &ScimPaths),
    tags(
        (name = "admins", description = "Provision, list, re-invite and remove admins (active admins only)"),
        (name = "auth", description = "Login and the first-login password change"),
        (name = "audit", description = "Who did what"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
        (name = "scim", description = "SCIM 2.0 (RFC 7644) for identity providers, with a SCIM token"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

/// The SCIM 2.0 endpoints (`/scim/v2`, RFC 7644, [`crate::scim`]): `application/scim+json` bodies, the
/// `scim` bearer scheme (a token from `scim-token create` or the console, not a Cognito token) and the
/// SCIM error shape. Described here as data because their bodies are SCIM's own (RFC 7643) documents.
struct ScimPaths;

impl Modify for ScimPaths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use serde_json::json;
        let body = |description: &str, schema: &str| {
            json!({"description": description,
                   "content": {"application/scim+json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
        };
        let errors = |ok: (&str, serde_json::Value), more: &[(&str, &str)]| {
            let mut r = serde_json::Map::new();
            r.insert(ok.0.into(), ok.1);
            r.insert(
                "401".into(),
                body("Missing, unknown or revoked SCIM token", "ScimError"),
            );
            for (status, description) in more {
                r.insert((*status).into(), body(description, "ScimError"));
            }
            serde_json::Value::Object(r)
        };
        let id =
            json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}]);
        let op = |summary: &str, responses: serde_json::Value| json!({"tags": ["scim"], "summary": summary, "security": [{"scim": []}], "responses": responses});
        let with_body = |mut o: serde_json::Value, schema: &str| {
            o["requestBody"] = json!({"required": true, "content": {"application/scim+json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
            o
        };
        let user = || body("The User resource", "ScimUser");
        let paths = json!({
            "/scim/v2/Users": {
                "get": {
                    "tags": ["scim"], "summary": "List or filter Users (`filter`: userName/externalId/emails.value/id `eq`, with and/or)",
                    "security": [{"scim": []}],
                    "parameters": [
                        {"name": "filter", "in": "query", "required": false, "schema": {"type": "string"}},
                        {"name": "startIndex", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1}},
                        {"name": "count", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}}
                    ],
                    "responses": errors(("200", body("A ListResponse of Users", "ScimListResponse")), &[("400", "`invalidFilter`")])
                },
                "post": with_body(op("Provision an admin through the saga (userName is the e-mail)",
                    errors(("201", user()), &[("400", "`invalidValue`"), ("409", "`uniqueness`: the admin exists")])), "ScimUser")
            },
            "/scim/v2/Users/.search": {
                "post": with_body(op("Search Users (a SearchRequest body)",
                    errors(("200", body("A ListResponse of Users", "ScimListResponse")), &[("400", "`invalidFilter`")])), "ScimSearchRequest")
            },
            "/scim/v2/Users/{id}": {
                "parameters": id,
                "get": op("One User", errors(("200", user()), &[("404", "No such User")])),
                "put": with_body(op("Replace a User (`active: false` disables the admin in both systems)",
                    errors(("200", user()), &[("400", "`invalidValue`"), ("404", "No such User"), ("409", "Last active admin or a change in progress")])), "ScimUser"),
                "patch": with_body(op("PatchOp (add/replace/remove; `active` deactivates and reactivates)",
                    errors(("200", user()), &[("400", "`invalidValue`, `invalidPath` or `noTarget`"), ("404", "No such User"), ("409", "Last active admin or a change in progress")])), "ScimPatchOp"),
                "delete": op("Remove the admin from both systems (the removal saga)",
                    errors(("204", json!({"description": "Removed"})), &[("404", "No such User"), ("409", "Last active admin")]))
            },
            "/scim/v2/ServiceProviderConfig": {"get": op("What this service supports", errors(("200", body("ServiceProviderConfig", "ScimResource")), &[]))},
            "/scim/v2/Schemas": {"get": op("The User schema", errors(("200", body("A ListResponse of Schemas", "ScimListResponse")), &[]))},
            "/scim/v2/ResourceTypes": {"get": op("The User resource type", errors(("200", body("A ListResponse of ResourceTypes", "ScimListResponse")), &[]))}
        });
        // A shape mistake here would drop the SCIM paths: `tests/api.rs` checks they are all present.
        let Ok(paths) = serde_json::from_value::<std::collections::BTreeMap<String, utoipa::openapi::PathItem>>(paths)
        else {
            return;
        };
        openapi.paths.paths.extend(paths);
        let schemas = json!({
            "ScimError": {"type": "object", "required": ["schemas", "status"], "properties": {
                "schemas": {"type": "array", "items": {"type": "string", "enum": ["urn:ietf:params:scim:api:messages:2.0:Error"]}},
                "status": {"type": "string", "description": "The HTTP status, as a string"},
                "scimType": {"type": "string", "description": "uniqueness, invalidFilter, invalidValue, invalidPath, noTarget, …"},
                "detail": {"type": "string"}}},
            "ScimUser": {"type": "object", "description": "urn:ietf:params:scim:schemas:core:2.0:User (RFC 7643 §4.1)", "properties": {
                "schemas": {"type": "array", "items": {"type": "string"}}, "id": {"type": "string"},
                "externalId": {"type": "string"}, "userName": {"type": "string", "format": "email"},
                "active": {"type": "boolean"},
                "emails": {"type": "array", "items": {"type": "object", "properties": {"value": {"type": "string"}, "type": {"type": "string"}, "primary": {"type": "boolean"}}}},
                "meta": {"type": "object"}}, "additionalProperties": true},
            "ScimPatchOp": {"type": "object", "required": ["schemas", "Operations"], "properties": {
                "schemas": {"type": "array", "items": {"type": "string"}},
                "Operations": {"type": "array", "items": {"type": "object", "required": ["op"], "properties": {
                    "op": {"type": "string", "description": "add, replace or remove (any case)"}, "path": {"type": "string"}, "value": {}}}}}},
            "ScimSearchRequest": {"type": "object", "properties": {"schemas": {"type": "array", "items": {"type": "string"}},
                "filter": {"type": "string"}, "startIndex": {"type": "integer"}, "count": {"type": "integer"}}},
            "ScimListResponse": {"type": "object", "required": ["schemas", "totalResults", "Resources"], "properties": {
                "schemas": {"type": "array", "items": {"type": "string"}}, "totalResults": {"type": "integer"},
                "startIndex": {"type": "integer"}, "itemsPerPage": {"type": "integer"},
                "Resources": {"type": "array", "items": {"type": "object"}}}},
            "ScimResource": {"type": "object", "additionalProperties": true}
        });
        let components = openapi.components.get_or_insert_with(Default::default);
        if let Ok(schemas) = serde_json::from_value::<
            std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>,
        >(schemas)
        {
            components.schemas.extend(schemas);
        }
        components.add_security_scheme(
            "scim",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A SCIM token (`scim_…`) from `admin-provisioner scim-token create` or the console's SCIM tokens page; it grants /scim/v2 only",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds the edge's answers (see [`super::edge`]) to every operation: 408, 414, 421, 431 and 500 everywhere,
/// 413 and 415 where a body is taken, 429 on the throttled operations. All in the error envelope.
struct EdgeResponses;

impl Modify for EdgeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let envelope = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                (false, item.get.as_mut()),
                (true, item.post.as_mut()),
                (true, item.put.as_mut()),
                (true, item.patch.as_mut()),
                (false, item.delete.as_mut()),
            ];
            for (writes, op) in ops {
                let Some(op) = op else { continue };
                let r = &mut op.responses.responses;
                let mut add = |status: &str, description: &str| {
                    r.entry(status.to_string())
                        .or_insert_with(|| envelope(description).into());
                };
                add(
                    "408",
                    "`request_timeout`: the request took too long to arrive or to answer",
                );
                add("414", "`uri_too_long`: the request target is longer than 8 KiB");
                add("421", "`misdirected_request`: the `Host` is not in `ALLOWED_HOSTS`");
                add("431", "`headers_too_large`: the request headers are larger than 32 KiB");
                add("500", "`internal`: quote the request id to an operator");
                if path.starts_with("/api/") {
                    add("400", "`invalid_request`: malformed request");
                }
                if writes {
                    add("413", "`payload_too_large`: the body is larger than 64 KiB");
                    add("415", "`unsupported_media_type`: the body is not `application/json`");
                }
                if path.starts_with("/api/auth/") || path.contains("resend-invite") || path == "/api/admins" {
                    add("429", "`rate_limited` (with `Retry-After`)");
                }
            }
        }
        // `temporary_password` or `session`: at least one is required.
        if let Some(components) = openapi.components.as_mut() {
            use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema};
            use utoipa::openapi::RefOr;
            if let Some(RefOr::T(body)) = components.schemas.remove("NewPasswordRequest") {
                let either = AnyOfBuilder::new()
                    .item(ObjectBuilder::new().required("temporary_password"))
                    .item(ObjectBuilder::new().required("session"))
                    .build();
                let schema = AllOfBuilder::new().item(body).item(Schema::AnyOf(either)).build();
                components
                    .schemas
                    .insert("NewPasswordRequest".into(), Schema::AllOf(schema).into());
            }
        }
    }
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A Cognito ID or access token of the user pool (RS256, verified against its JWKS)",
                    ))
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_hash_ignores_key_order_and_spacing() {
        assert_eq!(
            request_hash(br#"{"email":"a@b.co","x":[1,2]}"#),
            request_hash(b"{ \"x\" : [1, 2],\n \"email\": \"a@b.co\" }")
        );
    }

    #[test]
    fn the_request_hash_differs_for_another_body() {
        assert_ne!(
            request_hash(br#"{"email":"a@b.co"}"#),
            request_hash(br#"{"email":"c@b.co"}"#)
        );
    }
}
