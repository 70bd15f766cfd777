//! `/api/auth`: sign-in as Cognito's challenge loop (login, respond, the first-login password change) and
//! the enrolment of an authenticator by a signed-in admin.

use super::{
    check_len, login_dto, ChallengeResponse, ConfirmForgotPasswordRequest, ErrorBody, ForgotPasswordRequest,
    ForgotPasswordResponse, LoginRequest, LoginResponse, MfaSetupResponse, MfaVerifyRequest, NewPasswordRequest,
    RespondRequest, MAX_PASSWORD, MAX_SESSION, MAX_USERNAME,
};
use crate::http::auth::bearer_token;
use crate::http::edge::ClientAddr;
use crate::http::error::{parse_json, ApiError};
use crate::http::{AppState, RequestId};
use admin_provisioner_core::domain::{Password, Secret, TemporaryPassword};
use admin_provisioner_core::identity::{challenge, ChallengeAnswer};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;

/// What `POST /api/auth/forgot-password` answers, for every address.
pub const FORGOT_PASSWORD_MESSAGE: &str =
    "If an account exists for this address, a password reset code is on its way to it. Enter it with a new password.";

/// A password-reset code: six digits.
fn check_reset_code(code: &str) -> Result<Secret, ApiError> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid_request(
            "`code` must be the six digits from the e-mail",
        ));
    }
    Ok(Secret::new(code))
}

/// Ask for a password-reset code by e-mail (Cognito `ForgotPassword`). The answer is the same for every
/// well-formed address, known or not, and does not wait for Cognito.
#[utoipa::path(
    post, path = "/api/auth/forgot-password", tag = "auth",
    request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "Accepted (for any address): if the account exists and may reset its password, a six-digit code is e-mailed", body = ForgotPasswordResponse),
        (status = 400, description = "`invalid_email` or `invalid_request`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    )
)]
pub async fn forgot_password(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(client): ClientAddr,
    body: Bytes,
) -> Result<(axum::http::StatusCode, Json<ForgotPasswordResponse>), ApiError> {
    let req: ForgotPasswordRequest = parse_json(&body)?;
    check_len("email", &req.email, 1, MAX_USERNAME)?;
    state.edge().limits.auth_attempt(&req.email, client)?;
    state
        .provisioner()
        .forgot_password(&req.email, Some(&request_id))
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(ForgotPasswordResponse {
            status: "accepted".into(),
            message: FORGOT_PASSWORD_MESSAGE.into(),
        }),
    ))
}

/// Set a new password with the e-mailed code (Cognito `ConfirmForgotPassword`): after
/// `/api/auth/forgot-password`, or after an admin reset the password (`password_reset_required`).
#[utoipa::path(
    post, path = "/api/auth/confirm-forgot-password", tag = "auth",
    request_body = ConfirmForgotPasswordRequest,
    responses(
        (status = 200, description = "Password set: sign in with it", body = ForgotPasswordResponse),
        (status = 400, description = "`invalid_reset_code` (wrong, expired or used-up code; ask for a new one), `password_policy`, `invalid_email` or `invalid_request`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 502, description = "`identity_provider_unavailable`", body = ErrorBody),
    )
)]
pub async fn confirm_forgot_password(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(client): ClientAddr,
    body: Bytes,
) -> Result<Json<ForgotPasswordResponse>, ApiError> {
    let req: ConfirmForgotPasswordRequest = parse_json(&body)?;
    check_len("email", &req.email, 1, MAX_USERNAME)?;
    check_len("new_password", &req.new_password, 1, MAX_PASSWORD)?;
    let code = check_reset_code(&req.code)?;
    state.edge().limits.auth_attempt(&req.email, client)?;
    state
        .provisioner()
        .confirm_forgot_password(&req.email, &code, &Password::new(req.new_password), Some(&request_id))
        .await?;
    Ok(Json(ForgotPasswordResponse {
        status: "password_set".into(),
        message: "Your new password is set: sign in with it.".into(),
    }))
}

/// An authenticator code: six digits.
fn check_code(code: &str) -> Result<Secret, ApiError> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid_request(
            "`code` must be the six digits the authenticator app shows",
        ));
    }
    Ok(Secret::new(code))
}

/// Log in with e-mail and password (`USER_PASSWORD_AUTH`).
#[utoipa::path(
    post, path = "/api/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens, or the next challenge `{\"challenge\",\"session\",\"username\"}`: `NEW_PASSWORD_REQUIRED` at first login, `MFA_SETUP` (pool with MFA on, no authenticator yet) or `SOFTWARE_TOKEN_MFA`; answer with `POST /api/auth/respond`", body = LoginResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials` (also an expired temporary password)", body = ErrorBody),
        (status = 409, description = "`password_reset_required`: an admin reset the password; set a new one with the e-mailed code (`POST /api/auth/confirm-forgot-password`)", body = ErrorBody),
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
    Ok(Json(login_dto(&outcome)))
}

/// Answer a sign-in challenge: `NEW_PASSWORD_REQUIRED` (`new_password`), `MFA_SETUP` (first without
/// `code`: the answer carries `secret_code` and `otpauth_uri` and a new `session`; then with the first
/// `code`) or `SOFTWARE_TOKEN_MFA` (`code`).
#[utoipa::path(
    post, path = "/api/auth/respond", tag = "auth",
    request_body = RespondRequest,
    responses(
        (status = 200, description = "Tokens, or the next challenge (for `MFA_SETUP` without `code`: the same challenge with `secret_code` and `otpauth_uri`)", body = LoginResponse),
        (status = 400, description = "`invalid_request` (unknown challenge, missing answer, a code that is not six digits) or `password_policy`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: unknown, used or expired (3 minutes) session; `invalid_mfa_code`: wrong code, or a code already used", body = ErrorBody),
    )
)]
pub async fn respond(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(client): ClientAddr,
    body: Bytes,
) -> Result<Json<LoginResponse>, ApiError> {
    let req: RespondRequest = parse_json(&body)?;
    check_len("username", &req.username, 1, MAX_USERNAME)?;
    check_len("session", &req.session, 1, MAX_SESSION)?;
    state.edge().limits.auth_attempt(&req.username, client)?;
    let p = state.provisioner();
    let session = Secret::new(req.session);
    let username = req.username;
    let outcome = match (req.challenge.as_str(), req.new_password, req.code) {
        (challenge::NEW_PASSWORD_REQUIRED, Some(new_password), None) => {
            check_len("new_password", &new_password, 1, MAX_PASSWORD)?;
            let answer = ChallengeAnswer::NewPassword(Password::new(new_password));
            p.respond_to_challenge(&username, &session, &answer, Some(&request_id))
                .await?
        }
        (challenge::SOFTWARE_TOKEN_MFA, None, Some(code)) => {
            let answer = ChallengeAnswer::SoftwareTokenMfa(check_code(&code)?);
            p.respond_to_challenge(&username, &session, &answer, Some(&request_id))
                .await?
        }
        (challenge::MFA_SETUP, None, None) => {
            let enrolment = p.begin_mfa_in_challenge(&username, &session).await?;
            let session = enrolment
                .session
                .ok_or_else(|| ApiError::from(admin_provisioner_core::Error::IdentityProviderError(
                    "AssociateSoftwareToken answered no session".into(),
                )))?;
            return Ok(Json(LoginResponse::Challenge(ChallengeResponse {
                challenge: challenge::MFA_SETUP.into(),
                session: session.expose().to_string(),
                username,
                secret_code: Some(enrolment.secret_code.expose().to_string()),
                otpauth_uri: Some(enrolment.otpauth_uri.expose().to_string()),
            })));
        }
        (challenge::MFA_SETUP, None, Some(code)) => {
            p.verify_mfa_in_challenge(&username, &session, &check_code(&code)?, Some(&request_id))
                .await?
        }
        (challenge::NEW_PASSWORD_REQUIRED | challenge::SOFTWARE_TOKEN_MFA | challenge::MFA_SETUP, _, _) => {
            return Err(ApiError::invalid_request(
                "NEW_PASSWORD_REQUIRED takes `new_password`; SOFTWARE_TOKEN_MFA takes `code`; MFA_SETUP takes no answer, then `code`",
            ))
        }
        _ => {
            return Err(ApiError::invalid_request(
                "`challenge` must be NEW_PASSWORD_REQUIRED, MFA_SETUP or SOFTWARE_TOKEN_MFA",
            ))
        }
    };
    Ok(Json(login_dto(&outcome)))
}

/// Start enrolling an authenticator, signed in (with `REQUIRE_MFA`, the one thing an admin without one
/// may do besides `/mfa/verify`). Needs the **access** token (`AssociateSoftwareToken`).
#[utoipa::path(
    post, path = "/api/auth/mfa/setup", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The secret to enrol (shown once)", body = MfaSetupResponse),
        (status = 401, description = "`unauthorized` (not an access token, or expired) or `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an active admin", body = ErrorBody),
    )
)]
pub async fn mfa_setup(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<MfaSetupResponse>, ApiError> {
    let token = bearer_token(&headers)?;
    let caller = state.verify(token).await?.caller();
    let enrolment = state
        .provisioner()
        .begin_mfa_enrolment(&caller, &Secret::new(token))
        .await?;
    Ok(Json(MfaSetupResponse {
        secret_code: enrolment.secret_code.expose().to_string(),
        otpauth_uri: enrolment.otpauth_uri.expose().to_string(),
    }))
}

/// Finish enrolling: the authenticator's first code (`VerifySoftwareToken`, then `SetUserMFAPreference`
/// with the software token enabled and preferred). From now on every sign-in asks for a code
/// (`SOFTWARE_TOKEN_MFA`) and `mfa_enrollment_required` no longer answers.
#[utoipa::path(
    post, path = "/api/auth/mfa/verify", tag = "auth",
    security(("bearer" = [])),
    request_body = MfaVerifyRequest,
    responses(
        (status = 204, description = "Enrolled"),
        (status = 400, description = "`invalid_request` (not six digits, or no setup started)", body = ErrorBody),
        (status = 401, description = "`invalid_mfa_code`, `unauthorized` or `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an active admin", body = ErrorBody),
    )
)]
pub async fn mfa_verify(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::http::StatusCode, ApiError> {
    let req: MfaVerifyRequest = parse_json(&body)?;
    let code = check_code(&req.code)?;
    let token = bearer_token(&headers)?;
    let caller = state.verify(token).await?.caller();
    state
        .provisioner()
        .complete_mfa_enrolment(&caller, &Secret::new(token), &code, Some(&request_id))
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// First login: replace the temporary password (answers Cognito's `NEW_PASSWORD_REQUIRED`).
#[utoipa::path(
    post, path = "/api/auth/new-password", tag = "auth",
    request_body = NewPasswordRequest,
    responses(
        (status = 200, description = "Password set; the admin is now active. Tokens, or the next challenge (`MFA_SETUP` in a pool with MFA on)", body = LoginResponse),
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
) -> Result<Json<LoginResponse>, ApiError> {
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
    Ok(Json(login_dto(&tokens)))
}
