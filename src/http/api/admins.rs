//! `/api/admins`: provision (with `Idempotency-Key`), list, get, re-invite, remove, disable and enable.

use super::{
    admin_dto, invite_dto, parse_admin_id, provisioned_dto, AdminDto, AdminList, AdminListParams, ChangeAdminRequest,
    CreateAdminRequest, ErrorBody, ProvisionedResponse, ResendResponse,
};
use crate::http::auth::AdminCaller;
use crate::http::error::{parse_json, ApiError, REQUEST_ID};
use crate::http::{AppState, RequestId};
use admin_provisioner_core::domain::Role;
use admin_provisioner_core::store::{IdempotencyBegin, StoredResponse};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};

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
    role: Role,
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
            let answer = provision_answer(state, admin, email, role, request_id).await;
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
