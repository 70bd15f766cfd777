//! The JSON API of the contract, its DTOs and its OpenAPI document.
//!
//! Response types are defined here (not in the core) and converted from the core's types, so the wire
//! format is explicit and every one of them derives [`ToSchema`](utoipa::ToSchema): `/openapi.json` is
//! generated from these types and the `#[utoipa::path]` annotations on the handlers, and a test checks that
//! it lists every route of the contract.
//!
//! One file per resource: the DTOs in `dto.rs`; handlers in `admins.rs`, `auth.rs`, `audit.rs`
//! and `ops.rs` (health, readiness, metrics, this document, fallbacks); the document's modifiers in
//! `openapi.rs`. Everything public is re-exported here, so `crate::http::api::X` paths stay as they were.

use super::AppState;
use axum::routing::{get, post};
use axum::Router;
use utoipa::OpenApi;

mod admins;
mod audit;
mod auth;
mod dto;
mod openapi;
mod ops;

pub use admins::*;
pub use audit::*;
pub use auth::*;
pub use dto::*;
use openapi::{BearerAuth, EdgeResponses, ScimPaths};
pub use ops::*;

/// The API routes (plus health, metrics, OpenAPI and, in emulator mode, the emulator's JWKS).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admins", post(create_admin).get(list_admins))
        .route(
            "/api/admins/{id}",
            get(get_admin).delete(delete_admin).patch(change_admin),
        )
        .route("/api/admins/{id}/resend-invite", post(resend_invite))
        .route("/api/admins/{id}/disable", post(disable_admin))
        .route("/api/admins/{id}/enable", post(enable_admin))
        .route("/api/admins/{id}/reset-password", post(reset_admin_password))
        .route("/api/admins/{id}/reset-mfa", post(reset_admin_mfa))
        .route("/api/admins/{id}/sign-out", post(sign_out_admin))
        .route("/api/auth/login", post(login))
        .route("/api/auth/new-password", post(new_password))
        .route("/api/auth/respond", post(respond))
        .route("/api/auth/forgot-password", post(forgot_password))
        .route("/api/auth/confirm-forgot-password", post(confirm_forgot_password))
        .route("/api/auth/mfa/setup", post(mfa_setup))
        .route("/api/auth/mfa/verify", post(mfa_verify))
        .route("/api/audit", get(audit))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/emulator/.well-known/jwks.json", get(emulator_jwks))
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
        create_admin, list_admins, get_admin, change_admin, resend_invite, delete_admin, disable_admin, enable_admin,
        reset_admin_password, reset_admin_mfa, sign_out_admin,
        login, new_password, respond, forgot_password, confirm_forgot_password, mfa_setup, mfa_verify, audit, healthz, readyz, metrics, openapi_json
    ),
    components(schemas(
        CreateAdminRequest, ChangeAdminRequest, RoleDto, LoginRequest, NewPasswordRequest, ProvisionedResponse, UserDto, AdminInfoDto,
        InviteDto, InviteStatusDto, UserStatusDto, AdminDto, AdminList, ResendResponse, TokensResponse,
        ChallengeResponse, LoginResponse, RespondRequest, MfaSetupResponse, MfaVerifyRequest, ForgotPasswordRequest, ForgotPasswordResponse, ConfirmForgotPasswordRequest, AuditEventDto, AuditList, ErrorBody, ErrorDetail, HealthResponse,
        ReadyResponse
    )),
    modifiers(&BearerAuth, &EdgeResponses, &ScimPaths),
    tags(
        (name = "admins", description = "Provision, list, re-invite, change the role of and remove admins (active admins; writes need the role the permission table names: a viewer only reads, only an owner acts on owners)"),
        (name = "auth", description = "Sign-in (Cognito's challenge loop: new password, MFA setup, MFA code), password recovery with an e-mailed code, and authenticator enrolment"),
        (name = "audit", description = "Who did what"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
        (name = "scim", description = "SCIM 2.0 (RFC 7644) for identity providers, with a SCIM token"),
    )
)]
pub struct ApiDoc;
