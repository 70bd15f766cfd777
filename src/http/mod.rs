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
//!   every request runs in a `tower-http` trace span and is logged exactly once (method, path, status,
//!   latency, request id), never with a header, query string, token or body;
//! * the [`edge`] checks run before any handler: `Host` allowlist (421), JSON-only API bodies (415), URI,
//!   header and body size limits (414, 431, 413), a request timeout (408), and the security headers
//!   `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`;
//! * [`serve`] bounds every connection: a header-read timeout (which is also the keep-alive idle timeout),
//!   a body deadline (408), a cap on simultaneous connections overall and per client address answered
//!   with a fast 503 ([`admission`]), and a graceful shutdown that waits at most a grace period;
//! * every error body is `{"error":{"code","message","request_id"}}`, with internal detail only in the log;
//! * `POST /api/admins` honours `Idempotency-Key` (same key and body: the first answer is replayed);
//! * the OpenAPI document is generated from the handlers' annotations, so it cannot drift from the routes.
//!
//! [`Provisioner`]: admin_provisioner_core::Provisioner
//! [`Error`]: admin_provisioner_core::Error

pub mod admission;
pub mod api;
pub mod auth;
pub mod console;
pub mod cookies;
pub mod edge;
pub mod error;
pub mod events;
pub mod metrics;

pub use auth::{AdminCaller, JwksCache, VerifiedToken};
pub use error::ApiError;
pub use metrics::{metrics_observer, Metrics};

use crate::app::App;
use admin_provisioner_core::Provisioner;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

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
    edge: edge::Edge,
    cookie_key: axum_extra::extract::cookie::Key,
}

impl AppState {
    /// State over `app`, reporting to the process-wide [`metrics_observer`] registry (the one `serve`
    /// expects the app's provisioner to have been built with).
    pub fn new(app: App) -> Self {
        Self::with_metrics(app, metrics_observer())
    }

    /// State over `app` with its own metrics registry (tests: pass the same registry as `Hooks.observer`).
    ///
    /// The console's cookie key is `CONSOLE_COOKIE_KEY` ([`cookies`]); when it is unset — or malformed,
    /// which `serve` refuses before it gets here ([`cookies::key_from`]) — a random one.
    pub fn with_metrics(app: App, metrics: Arc<Metrics>) -> Self {
        let edge = edge::Edge::from_config(&app.config);
        let cookie_key = match cookies::key_from(app.config.console_cookie_key.as_deref()) {
            Ok((key, _)) => key,
            Err(e) => {
                tracing::error!(error = %e, "console cookie key refused; using a random one");
                axum_extra::extract::cookie::Key::generate()
            }
        };
        Self {
            inner: Arc::new(Inner {
                app,
                metrics,
                jwks: JwksCache::default(),
                edge,
                cookie_key,
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

    /// The key of the console's private cookie jar and CSRF tokens.
    pub fn cookie_key(&self) -> &axum_extra::extract::cookie::Key {
        &self.inner.cookie_key
    }

    /// The edge settings and throttles.
    pub fn edge(&self) -> &edge::Edge {
        &self.inner.edge
    }
}

impl axum::extract::FromRef<AppState> for axum_extra::extract::cookie::Key {
    fn from_ref(state: &AppState) -> Self {
        state.cookie_key().clone()
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

/// The whole service: API, health, metrics, OpenAPI, emulator JWKS and console, behind the [`edge`].
pub fn router(state: AppState) -> Router {
    use axum::http::header;
    use tower_http::set_header::SetResponseHeaderLayer;
    let request_timeout = Duration::from_secs(state.app().config.request_timeout_secs.max(1));
    Router::new()
        .merge(api::routes())
        .merge(events::routes())
        .merge(console::routes())
        .merge(crate::scim::routes())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(edge::MAX_BODY_BYTES))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(request_timeout))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge::body_deadline))
        .layer(axum::middleware::from_fn(edge::json_only))
        .layer(axum::middleware::from_fn(edge::size_limits))
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge::host_guard))
        .layer(axum::middleware::from_fn(edge::envelope_bare_errors))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(axum::middleware::from_fn(request_context))
        .layer(trace_layer(state.metrics().clone()))
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(
            X_REQUEST_ID.clone(),
        ))
        .layer(tower_http::request_id::SetRequestIdLayer::new(
            X_REQUEST_ID.clone(),
            tower_http::request_id::MakeRequestUuid,
        ))
        .layer(axum::middleware::map_request(drop_unacceptable_request_id))
        .with_state(state)
}

/// Connection limits of [`serve_with`].
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Time a client has to send a request's headers; also how long an idle keep-alive connection waits
    /// for its next request.
    pub header_read_timeout: Duration,
    /// Most simultaneous connections; a connection beyond them is answered `503 too_many_connections` at
    /// once and closed ([`admission`]).
    pub max_connections: usize,
    /// Most simultaneous connections from one client address (0 = no per-address limit); one more is
    /// answered `503 too_many_connections` at once and closed ([`admission`]).
    pub max_connections_per_client: usize,
    /// How long graceful shutdown waits for in-flight requests before closing their connections.
    pub shutdown_grace: Duration,
}

impl Default for ServeLimits {
    /// The configuration's defaults.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 512,
            max_connections_per_client: 64,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl ServeLimits {
    /// The limits configured in `config` (`HEADER_READ_TIMEOUT_SECS`, `MAX_CONNECTIONS`,
    /// `MAX_CONNECTIONS_PER_CLIENT`, `SHUTDOWN_GRACE_SECS`).
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs.max(1)),
            max_connections: config.max_connections.max(1),
            max_connections_per_client: config.max_connections_per_client,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        }
    }
}

/// Serves [`router`] on `listener` until `shutdown` resolves, then stops accepting connections and waits
/// for in-flight requests to finish (graceful shutdown, bounded by `SHUTDOWN_GRACE_SECS`). Prints nothing;
/// logs through `tracing`. Connection limits come from the app's configuration ([`ServeLimits`]).
///
/// Build `app` with `Hooks { observer: Some(metrics_observer()), .. }` so that `/metrics` includes the
/// provisioner's measurements.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let limits = ServeLimits::from_config(&app.config);
    serve_with(AppState::new(app), listener, limits, shutdown).await
}

/// [`serve`] with an explicit state and limits. Every socket is accepted at once; one within the limits
/// ([`admission`]) gets a hyper HTTP/1.1 connection with the header-read timeout, one beyond them the
/// fast `503 too_many_connections` and a close, so nothing ever waits in the listen backlog. At shutdown
/// the listener closes, idle connections close at once, busy ones finish their request, and whatever is
/// still open after the grace period is dropped.
pub async fn serve_with(
    state: AppState,
    listener: tokio::net::TcpListener,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        max_connections = limits.max_connections,
        max_connections_per_client = limits.max_connections_per_client,
        "HTTP service listening"
    );
    let router = router(state);
    let admission = admission::Admission::new(limits.max_connections, limits.max_connections_per_client);
    let lingering = Arc::new(tokio::sync::Semaphore::new(admission::MAX_LINGERING_REFUSALS));
    // HTTP/1.1 only: hyper's header-read timer starts as soon as a connection waits for a request head,
    // so it also closes sockets that never send a byte, and idle keep-alive connections.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(edge::MAX_URI_BYTES + edge::MAX_HEADER_BYTES + 16 * 1024);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning (`serve` raises the soft
                    // RLIMIT_NOFILE to the hard limit at start, and the caps normally keep this away).
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                // Answered at once; without a lingering permit the socket is simply closed.
                if let Ok(permit) = lingering.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        admission::refuse(stream, refusal).await;
                        drop(permit);
                    });
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req.map(axum::body::Body::new)
            });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    match tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("HTTP service stopped"),
        Err(_) => tracing::warn!(
            grace_secs = limits.shutdown_grace.as_secs(),
            "HTTP service stopped; connections still open after the grace period were closed"
        ),
    }
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

/// Request mapper: a client-sent `x-request-id` that is not short and plain is dropped, so that
/// `tower-http`'s `SetRequestId` replaces it with a new UUID (and `PropagateRequestId` echoes that one).
async fn drop_unacceptable_request_id(mut req: Request) -> Request {
    let acceptable = req
        .headers()
        .get(&X_REQUEST_ID)
        .map(|v| v.to_str().is_ok_and(acceptable_request_id));
    if acceptable == Some(false) {
        req.headers_mut().remove(&X_REQUEST_ID);
    }
    req
}

/// Middleware: the request id as task-local (for error bodies) and as the [`RequestId`] extractor.
async fn request_context(mut req: Request, next: Next) -> Response {
    let id = request_id_of(req.headers());
    req.extensions_mut().insert(RequestId(id.clone()));
    error::REQUEST_ID.scope(id, next.run(req)).await
}

/// The request id `SetRequestIdLayer` put on the request (a fresh UUID should it be missing).
fn request_id_of(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The service's trace layer, generic over its `on_response` callback.
type TraceLayer<OnResponse> = tower_http::trace::TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&Request) -> tracing::Span,
    (),
    OnResponse,
    (),
    (),
    (),
>;

/// The `request` span of one request.
fn request_span(req: &Request) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id_of(req.headers()),
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

/// `tower-http`'s [`TraceLayer`](tower_http::trace::TraceLayer) as the service uses it: one `request`
/// span per request with `method`, `path` (never the query string, which may carry a cursor or a filter
/// typed by someone), `request_id`, and — recorded when the answer is ready — `status` and `latency_ms`;
/// one `response` event per request at `INFO` (`ERROR` for a 5xx), which also counts the answer in
/// [`Metrics`]. Headers and bodies are never recorded.
fn trace_layer(metrics: Arc<Metrics>) -> TraceLayer<impl Fn(&Response, Duration, &tracing::Span) + Clone> {
    tower_http::trace::TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request) -> tracing::Span)
        .on_request(())
        .on_response(move |res: &Response, latency: Duration, span: &tracing::Span| {
            let status = res.status().as_u16();
            let latency_ms = latency.as_secs_f64() * 1000.0;
            span.record("status", status);
            span.record("latency_ms", latency_ms);
            metrics.http_request(status);
            if status >= 500 {
                tracing::error!(status, latency_ms, "response");
            } else {
                tracing::info!(status, latency_ms, "response");
            }
        })
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}
