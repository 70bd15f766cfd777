//! `/api/admins`: provision (with `Idempotency-Key`), list, get, re-invite, remove, disable and enable.

use super::{
    admin_dto, invite_dto, parse_admin_id, provisioned_dto, AdminDto, AdminList, AdminListParams, ChangeAdminRequest,
    CreateAdminRequest, ErrorBody, ProvisionedResponse, ResendResponse,
};
use crate::http::auth::AdminCaller;
use crate::http::error::{parse_json, ApiError, REQUEST_ID};
use crate::http::{AppState, RequestId};
use admin_provisioner_core::domain::Role;
use admin_provisioner_core::provisioner::idempotency::Idempotent;
use admin_provisioner_core::store::StoredResponse;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The header that makes `POST /api/admins` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a replayed idempotent answer.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

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
        (status = 403, description = "`forbidden`: not an active admin, or the caller's role may not create this role (a viewer creates nobody; only an owner creates an owner)", body = ErrorBody),
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
    let role = request.role.map(Role::from).unwrap_or_default();
    // Run to completion even if the client goes away: the saga and the idempotency record must not be
    // abandoned half-way by a dropped connection.
    let work = REQUEST_ID.scope(request_id.clone(), async move {
        match key {
            None => provision_answer(&state, &admin, &request.email, role, &request_id)
                .await
                .into_response(),
            Some(key) => idempotent_provision(&state, &admin, &request.email, role, &request_id, &key, &body).await,
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

async fn provision_answer(state: &AppState, admin: &AdminCaller, email: &str, role: Role, request_id: &str) -> Answer {
    match state
        .provisioner()
        .provision_admin_with_role(&admin.caller, email, role, Some(request_id))
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

pub use admin_provisioner_core::provisioner::idempotency::request_hash;

async fn idempotent_provision(
    state: &AppState,
    admin: &AdminCaller,
    email: &str,
    role: Role,
    request_id: &str,
    key: &str,
    body: &[u8],
) -> Response {
    let scope = admin.admin_id.to_string();
    // The fresh answer keeps its headers (`Location`, `Retry-After`); the core keeps its status and body.
    let mut fresh: Option<Answer> = None;
    let outcome = state
        .provisioner()
        .run_idempotently(&scope, key, &request_hash(body), || async {
            let answer = provision_answer(state, admin, email, role, request_id).await;
            let stored = StoredResponse {
                status: answer.status.as_u16(),
                body: answer.body.to_string(),
            };
            fresh = Some(answer);
            stored
        })
        .await;
    match outcome {
        Err(e) => ApiError::from(e).into_response(),
        Ok(Idempotent::Fresh(_)) => match fresh {
            Some(answer) => answer.into_response(),
            None => ApiError::internal("the idempotent answer was lost").into_response(),
        },
        Ok(Idempotent::Replayed(stored)) => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            let body: serde_json::Value = serde_json::from_str(&stored.body).unwrap_or_default();
            let mut res = with_location(status, body);
            res.headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            res
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

/// Change an admin's role (the `change_role` saga; event `admin.role_changed`). Idempotent: the same
/// role again changes nothing.
#[utoipa::path(
    patch, path = "/api/admins/{id}", tag = "admins",
    params(("id" = Uuid, Path, description = "`User.id`")),
    request_body = ChangeAdminRequest,
    responses(
        (status = 200, description = "The admin with the new role", body = AdminDto),
        (status = 400, description = "`invalid_request`: not a UUID, or a body without a known role", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the caller's role may not (a viewer changes nothing; only an owner promotes to, demotes from or changes an owner); `self_action_forbidden`: one's own role", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`last_owner`: the last active owner cannot be demoted; `operation_in_progress`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the caller's budget of changes per minute is spent (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn change_admin(
    State(state): State<AppState>,
    admin: AdminCaller,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<AdminDto>, ApiError> {
    let id = parse_admin_id(&id)?;
    let request: ChangeAdminRequest = parse_json(&body)?;
    state
        .provisioner()
        .change_role(&admin.caller, id, request.role.into(), Some(&request_id))
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

/// Reset an admin's password (the `reset_password` saga): Cognito `AdminResetUserPassword` e-mails them a
/// code and their next sign-in answers `409 password_reset_required` until they set a new password with it
/// (`POST /api/auth/confirm-forgot-password`); they are signed out everywhere (`AdminUserGlobalSignOut` and
/// the database's session epoch). Audited; event `admin.password_reset`.
#[utoipa::path(
    post, path = "/api/admins/{id}/reset-password", tag = "admins",
    params(("id" = Uuid, Path, description = "`User.id`")),
    responses(
        (status = 200, description = "Reset; a code is on its way to the admin", body = AdminDto),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden` (a viewer; an admin acting on an owner), or `self_action_forbidden`: use forgot-password for your own", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_active`: no password yet (resend the invitation) or disabled; `operation_in_progress`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the caller's budget of changes per minute is spent (`Retry-After`)", body = ErrorBody),
        (status = 500, description = "`saga_stuck`: Cognito reset the password; recovery finishes the rest", body = ErrorBody),
        (status = 502, description = "`identity_provider_unavailable`: nothing was changed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn reset_admin_password(
    State(state): State<AppState>,
    admin: AdminCaller,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<Json<AdminDto>, ApiError> {
    let id = parse_admin_id(&id)?;
    state
        .provisioner()
        .reset_admin_password(&admin.caller, id, Some(&request_id))
        .await?;
    Ok(Json(admin_dto(state.provisioner().get_admin_view(id).await?)))
}

/// Clear an admin's authenticator, for a lost device (the `reset_mfa` saga): Cognito
/// `AdminSetUserMFAPreference` with the software token off, `mfa_enrolled_at` cleared; their next sign-in
/// enrols a new one. They are signed out everywhere. Audited; event `admin.mfa_reset`.
#[utoipa::path(
    post, path = "/api/admins/{id}/reset-mfa", tag = "admins",
    params(("id" = Uuid, Path, description = "`User.id`")),
    responses(
        (status = 200, description = "Authenticator cleared", body = AdminDto),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden` (a viewer; an admin acting on an owner), or `self_action_forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`operation_in_progress`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ErrorBody),
        (status = 500, description = "`saga_stuck`: Cognito cleared the authenticator; recovery finishes the rest", body = ErrorBody),
        (status = 502, description = "`identity_provider_unavailable`: nothing was changed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn reset_admin_mfa(
    State(state): State<AppState>,
    admin: AdminCaller,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<Json<AdminDto>, ApiError> {
    let id = parse_admin_id(&id)?;
    state
        .provisioner()
        .reset_admin_mfa(&admin.caller, id, Some(&request_id))
        .await?;
    Ok(Json(admin_dto(state.provisioner().get_admin_view(id).await?)))
}

/// Sign an admin out everywhere: every console session and token they hold is refused from their next
/// request (`401 session_ended`), and Cognito refuses their refresh tokens (`AdminUserGlobalSignOut`).
/// Audited (`sign_out_admin`). Idempotent.
#[utoipa::path(
    post, path = "/api/admins/{id}/sign-out", tag = "admins",
    params(("id" = Uuid, Path, description = "`User.id`")),
    responses(
        (status = 200, description = "Signed out", body = AdminDto),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden` (a viewer; an admin acting on an owner), or `self_action_forbidden`: sign yourself out with logout", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ErrorBody),
        (status = 502, description = "`identity_provider_unavailable`: the database sessions ended; repeat for Cognito's refresh tokens", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn sign_out_admin(
    State(state): State<AppState>,
    admin: AdminCaller,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Result<Json<AdminDto>, ApiError> {
    let id = parse_admin_id(&id)?;
    state
        .provisioner()
        .sign_out_admin(&admin.caller, id, Some(&request_id))
        .await?;
    Ok(Json(admin_dto(state.provisioner().get_admin_view(id).await?)))
}
