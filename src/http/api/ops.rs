//! Operations: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, the emulator's JWKS and the 404/405
//! fallbacks.

use super::{ApiDoc, HealthResponse, ReadyResponse};
use crate::http::error::ApiError;
use crate::http::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa::OpenApi;

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
    ([(header::CONTENT_TYPE, crate::http::metrics::CONTENT_TYPE)], body).into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi_document())
}

/// The whole OpenAPI document (the API, the events route and SCIM): what `GET /openapi.json` serves and
/// `admin-provisioner openapi` prints (the TypeScript client in `clients/typescript` is generated from it).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi().merge_from(crate::http::events::EventsDoc::openapi())
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
