//! The HTTP service: the JSON API of the contract, the health and metrics endpoints, the OpenAPI
//! document, and the server-rendered web console.
//!
//! Everything here is a thin edge over [`Provisioner`]: handlers parse the request, identify the caller
//! ([`auth`]), call one provisioner operation with the request id (which the provisioner writes to the audit
//! log in the same transaction as the change), and turn the result or the domain [`Error`] into JSON
//! ([`error`]). The router is a plain function of an [`AppState`], so tests drive it in-process with
//! `tower::ServiceExt::oneshot`, and [`serve`] runs it on a socket with graceful shutdown.
//!
//! Promises:
//! * every response carries `x-request-id` (the client's, when it sent a sane one, else a new UUID), and
//!   every request is logged exactly once (method, path, status, latency, request id), never with a header,
//!   token or body;
//! * every error body is `{"error":{"code","message","request_id"}}`, with internal detail only in the log;
//! * `POST /api/admins` honours `Idempotency-Key` (same key and body: the first answer is replayed);
//! * the OpenAPI document is generated from the handlers' annotations, so it cannot drift from the routes.
//!
//! [`Provisioner`]: admin_provisioner_core::Provisioner
//! [`Error`]: admin_provisioner_core::Error

pub mod api;
pub mod auth;
pub mod console;
pub mod error;
pub mod events;
pub mod metrics;

pub use auth::{AdminCaller, JwksCache, VerifiedToken};
pub use error::ApiError;
pub use metrics::{metrics_observer, Metrics};

use crate::app::App;
use admin_provisioner_core::Provisioner;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

/// The request-id header, read from requests and set on every response.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Shared state of the service: the wired [`App`], the metrics registry, the JWKS cache. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    secure_cookies: Option<bool>,
}

struct Inner {
    app: App,
    metrics: Arc<Metrics>,
    jwks: JwksCache,
}

impl AppState {
    /// State over `app`, reporting to the process-wide [`metrics_observer`] registry (the one `serve`
    /// expects the app's provisioner to have been built with).
    pub fn new(app: App) -> Self {
        Self::with_metrics(app, metrics_observer())
    }

    /// State over `app` with its own metrics registry (tests: pass the same registry as `Hooks.observer`).
    pub fn with_metrics(app: App, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Arc::new(Inner {
                app,
                metrics,
                jwks: JwksCache::default(),
            }),
            secure_cookies: None,
        }
    }

    /// Forces the `Secure` flag of console cookies on or off. By default it is set when the request came
    /// over HTTPS (directly or, behind a proxy, `X-Forwarded-Proto: https`).
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = Some(secure);
        self
    }

    /// The wired application.
    pub fn app(&self) -> &App {
        &self.inner.app
    }

    /// The orchestrator.
    pub fn provisioner(&self) -> &Provisioner {
        &self.inner.app.provisioner
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }
}

/// The request id of the current request (extractor; never fails).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(error::current_request_id())))
    }
}

/// The whole service: API, health, metrics, OpenAPI, emulator JWKS and console.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(events::routes())
        .merge(console::routes())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` resolves, then stops accepting connections and waits
/// for in-flight requests to finish (graceful shutdown). Prints nothing; logs through `tracing`.
///
/// Build `app` with `Hooks { observer: Some(metrics_observer()), .. }` so that `/metrics` includes the
/// provisioner's measurements.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState::new(app);
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "HTTP service listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("HTTP service stopped");
    Ok(())
}

/// A client-sent request id is reused only when it is short and plain (no log injection).
fn acceptable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Middleware: request id, one log line per request, HTTP metrics, and security headers.
async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();

    let mut res = error::REQUEST_ID.scope(id.clone(), next.run(req)).await;

    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(X_REQUEST_ID.clone(), v);
    }
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    let status = res.status().as_u16();
    state.metrics().http_request(status);
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(%method, %path, status, latency_ms, request_id = %id, "request");
    } else {
        tracing::info!(%method, %path, status, latency_ms, request_id = %id, "request");
    }
    res
}
