//! `/api/auth`: login and the first-login password change.

use super::{
    check_len, tokens_dto, ChallengeResponse, ErrorBody, LoginRequest, LoginResponse, NewPasswordRequest,
    TokensResponse, MAX_PASSWORD, MAX_SESSION, MAX_USERNAME,
};
use crate::http::edge::ClientAddr;
use crate::http::error::{parse_json, ApiError};
use crate::http::{AppState, RequestId};
use admin_provisioner_core::domain::{Password, Secret, TemporaryPassword};
use admin_provisioner_core::LoginOutcome;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;

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
