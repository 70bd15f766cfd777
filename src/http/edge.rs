//! The hardened edge: what every request passes before a handler sees it, and the throttles handlers use.
//!
//! * **Host allowlist** ([`host_guard`]): a request whose `Host` is not in `ALLOWED_HOSTS` is answered
//!   `421 misdirected_request` (a malformed `Host` is `400 invalid_request`). A web page on another
//!   origin that reaches this port by DNS rebinding sends its own name as `Host`, so it never gets an
//!   answer. A request without any `Host` (HTTP/1.0, in-process tests) is answered: a browser always
//!   sends one.
//! * **JSON only** ([`json_only`]): a `POST`, `PUT`, `PATCH` or `DELETE` to `/api/…` that carries a body or a
//!   `Content-Type` must be `application/json` (`415 unsupported_media_type`), so a cross-site HTML form
//!   (which can only send `text/plain`, `multipart/form-data` or `application/x-www-form-urlencoded`)
//!   cannot reach the API.
//! * **Size limits in the envelope** ([`size_limits`], [`envelope_bare_errors`]): a URI longer than
//!   [`MAX_URI_BYTES`] is `414 uri_too_long`, headers larger than [`MAX_HEADER_BYTES`] in total are
//!   `431 headers_too_large`, a body over [`MAX_BODY_BYTES`] is `413 payload_too_large`; every other bare
//!   error a layer or extractor produces (a 408 timeout, a 405, …) is rewritten into the JSON envelope.
//! * **Body deadline** ([`body_deadline`]): a request body must arrive in full within
//!   `BODY_READ_TIMEOUT_SECS` of its headers; a body still incomplete then is answered
//!   `408 request_timeout` with `Connection: close`, so a client trickling a byte at a time holds its
//!   connection seconds, not the whole request timeout. (tower-http's `RequestBodyTimeoutLayer` bounds the
//!   wait for each frame only, which one byte every few seconds resets.)
//! * **Rate limits** ([`RateLimits`]): `governor`'s keyed GCRA limiters. Login and new-password attempts
//!   are limited per e-mail (its parsed, normalised form, or a hash when it does not parse) and per client
//!   address; creations and resends per calling admin. An exhausted limit is `429 rate_limited` with
//!   `Retry-After`.
//! * **Client address** ([`ClientAddr`]): the TCP peer, or — only when `TRUSTED_PROXY_HEADER` names a
//!   header — the right-most address in that header (the one the trusted proxy appended). Headers a
//!   client can set are never trusted otherwise.

use super::error::ApiError;
use super::AppState;
use crate::config::Config;
use admin_provisioner_core::domain::loggable_username;
use axum::body::HttpBody;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Longest request target (path and query) answered; longer is `414 uri_too_long`.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest total size of the request headers answered; larger is `431 headers_too_large`.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Largest request body accepted; larger is `413 payload_too_large`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Edge settings derived from the [`Config`] once.
pub struct Edge {
    /// Allowed `Host` names (lower-case, an entry without a port matches any port); `None` = any.
    pub allowed_hosts: Option<Vec<String>>,
    /// Header (lower-case) carrying the client address, set by a trusted proxy.
    pub trusted_proxy_header: Option<header::HeaderName>,
    /// The throttles.
    pub limits: RateLimits,
    /// Time a request body has to arrive in full, from the end of its headers ([`body_deadline`]).
    pub body_read_timeout: Duration,
}

impl Edge {
    /// The edge for `config`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            allowed_hosts: config.host_allowlist(),
            trusted_proxy_header: config
                .trusted_proxy_header
                .as_deref()
                .and_then(|h| header::HeaderName::from_bytes(h.trim().as_bytes()).ok()),
            limits: RateLimits::new(config.auth_rate_limit_per_minute),
            body_read_timeout: Duration::from_secs(config.body_read_timeout_secs.max(1)),
        }
    }

    /// The client address of a request (see the module docs); `None` when neither the peer nor a trusted
    /// header is known (in-process calls).
    pub fn client_addr(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        if let Some(name) = &self.trusted_proxy_header {
            let forwarded = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| parse_forwarded_addr(a.trim()))
                .next_back();
            if forwarded.is_some() {
                return forwarded;
            }
        }
        peer.map(|p| p.ip())
    }
}

/// One address of an `X-Forwarded-For`-style header: an IP, an `IP:port`, or a `[v6]:port`.
fn parse_forwarded_addr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The client address of the current request (extractor; never fails). `None` for in-process calls.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<IpAddr>);

impl axum::extract::FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        Ok(ClientAddr(state.edge().client_addr(&parts.headers, peer)))
    }
}

/// The keyed limiters (see the module docs).
pub struct RateLimits {
    auth_by_email: Option<DefaultKeyedRateLimiter<String>>,
    auth_by_client: Option<DefaultKeyedRateLimiter<String>>,
}

/// Keys kept before stale ones are dropped (bounded memory under a flood of distinct e-mails).
const MAX_KEYS: usize = 50_000;

fn keyed(per_minute: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    NonZeroU32::new(per_minute).map(|n| governor::RateLimiter::keyed(Quota::per_minute(n)))
}

impl RateLimits {
    /// Limits of `auth_per_minute` login/new-password attempts per e-mail and per client address (0 =
    /// unlimited). Mutating operations on admins and SCIM tokens are limited per actor by the core
    /// (`Provisioner::permit`), the same on every surface.
    pub fn new(auth_per_minute: u32) -> Self {
        Self {
            auth_by_email: keyed(auth_per_minute),
            auth_by_client: keyed(auth_per_minute),
        }
    }

    fn check(limiter: &Option<DefaultKeyedRateLimiter<String>>, key: String) -> Result<(), ApiError> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
        }
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many attempts; try again in {} seconds", secs.max(1)),
            );
            e.retry_after = Some(secs.max(1));
            e
        })
    }

    /// One login or new-password attempt for the typed `username` from `client`: 429 `rate_limited` when
    /// either the address or the e-mail has used up its attempts. The e-mail key is its normalised form
    /// (or a hash), so case and spacing variants share one budget.
    pub fn auth_attempt(&self, username: &str, client: Option<IpAddr>) -> Result<(), ApiError> {
        let client_key = client.map_or_else(|| "in-process".to_string(), |ip| ip.to_string());
        Self::check(&self.auth_by_client, client_key)?;
        let user_key = loggable_username(username.trim());
        let user_key = if user_key.starts_with("unparsed:") {
            user_key
        } else {
            user_key.to_lowercase()
        };
        Self::check(&self.auth_by_email, user_key)
    }
}

/// The host part of a `Host` value (lower-case, without the port), and the whole value lower-cased.
fn host_parts(value: &str) -> Option<(String, String)> {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty()
        || v.bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b)))
    {
        return None;
    }
    let host = if let Some(rest) = v.strip_prefix('[') {
        let end = rest.find(']')?;
        let after = &rest[end + 1..];
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        format!("[{}]", &rest[..end])
    } else {
        match v.split_once(':') {
            Some((h, port)) if !port.contains(':') => h.to_string(),
            Some(_) => return None,
            None => v.clone(),
        }
    };
    Some((host, v))
}

/// The verdict on a `Host` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostCheck {
    /// In the allowlist.
    Allowed,
    /// Well-formed but not in the allowlist (421).
    Refused,
    /// Not a host name, IP literal or `host:port` (400).
    Malformed,
}

/// Whether a `Host` value is allowed by `allowed` (entries with a port match exactly; without, any port).
pub fn host_allowed(allowed: &[String], value: &str) -> HostCheck {
    match host_parts(value) {
        None => HostCheck::Malformed,
        Some((host, whole)) if allowed.iter().any(|a| *a == whole || *a == host) => HostCheck::Allowed,
        Some(_) => HostCheck::Refused,
    }
}

/// Middleware: the `Host` allowlist (module docs).
pub async fn host_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(allowed) = &state.edge().allowed_hosts {
        let host = req
            .headers()
            .get(header::HOST)
            .map(|v| v.to_str().map(str::to_string))
            .or_else(|| req.uri().authority().map(|a| Ok(a.as_str().to_string())));
        match host {
            None => {}
            Some(Err(_)) => return ApiError::invalid_request("the Host header is malformed").into_response(),
            Some(Ok(h)) => match host_allowed(allowed, &h) {
                HostCheck::Allowed => {}
                HostCheck::Refused => {
                    tracing::warn!(host = %loggable_username(&h), "request for a host that is not allowed");
                    return ApiError::new(
                        StatusCode::MISDIRECTED_REQUEST,
                        "misdirected_request",
                        "this server does not answer for that host name (see ALLOWED_HOSTS)",
                    )
                    .into_response();
                }
                HostCheck::Malformed => {
                    return ApiError::invalid_request("the Host header is malformed").into_response()
                }
            },
        }
    }
    next.run(req).await
}

/// Whether a `Content-Type` value is JSON (`application/json`, any parameters).
fn is_json(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// True for `application/scim+json` (RFC 7644 §3.1), with or without parameters.
fn is_scim_json(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(crate::scim::SCIM_JSON))
}

/// Middleware: the JSON API takes only `application/json` bodies (module docs); the SCIM endpoints
/// (`/scim/`) take `application/scim+json` or `application/json`, and answer 415 in the SCIM error shape.
pub async fn json_only(req: Request, next: Next) -> Response {
    let writes = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if writes && req.uri().path().starts_with("/scim/") {
        let headers = req.headers();
        let has_body = headers.contains_key(header::TRANSFER_ENCODING)
            || headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() != "0");
        let ok = match headers.get(header::CONTENT_TYPE) {
            Some(v) => v.to_str().is_ok_and(|v| is_json(v) || is_scim_json(v)),
            None => !has_body && !body_is_nonempty(&req),
        };
        if !ok {
            return crate::scim::ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "the request body must be JSON, sent with `Content-Type: application/scim+json` or `application/json`",
            )
            .into_response();
        }
    }
    if writes && req.uri().path().starts_with("/api/") {
        let headers = req.headers();
        let has_body = headers.contains_key(header::TRANSFER_ENCODING)
            || headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() != "0");
        let content_type = headers.get(header::CONTENT_TYPE);
        let ok = match content_type {
            Some(v) => v.to_str().is_ok_and(is_json),
            None => !has_body && !body_is_nonempty(&req),
        };
        if !ok {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON, sent with `Content-Type: application/json`",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// True when an in-process body is known to be non-empty (no `Content-Length` header was set).
fn body_is_nonempty(req: &Request) -> bool {
    let hint = req.body().size_hint();
    hint.lower() > 0
}

/// A request body that records when it is over: its last frame was read, it failed (the client went
/// away), or the handler dropped it unread (then the client no longer holds the handler up).
struct TrackedBody {
    inner: axum::body::Body,
    over: Arc<AtomicBool>,
}

impl TrackedBody {
    fn finish(&self) {
        self.over.store(true, Ordering::Release);
    }
}

impl HttpBody for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.finish(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Middleware: the body deadline (module docs). A request whose body is still arriving
/// `BODY_READ_TIMEOUT_SECS` after its headers is answered `408 request_timeout` with
/// `Connection: close`; the handler, still waiting for that body, is dropped before it did anything.
/// A request without a body, or whose body is over in time, is not affected.
pub async fn body_deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let timeout = state.edge().body_read_timeout;
    let over = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        axum::body::Body::new(TrackedBody {
            inner,
            over: over.clone(),
        })
    });
    let run = next.run(req);
    let mut run = std::pin::pin!(run);
    tokio::select! {
        res = &mut run => return res,
        () = tokio::time::sleep(timeout) => {}
    }
    if over.load(Ordering::Acquire) {
        return run.await;
    }
    tracing::warn!(
        timeout_secs = timeout.as_secs(),
        "request body did not arrive in time; answering 408 and closing the connection"
    );
    let mut res = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request body did not arrive within {} seconds (BODY_READ_TIMEOUT_SECS)",
            timeout.as_secs()
        ),
    )
    .into_response();
    res.headers_mut()
        .insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    res
}

/// Middleware: URI and header size limits in the envelope (module docs).
pub async fn size_limits(req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if header_bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request headers are larger than {MAX_HEADER_BYTES} bytes"),
        )
        .into_response();
    }
    next.run(req).await
}

/// Middleware: an error answer that is not JSON (and not a console HTML page or redirect) is rewritten
/// into the envelope, with a code by status; its original text is dropped (it may quote the request).
pub async fn envelope_bare_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if is_json(content_type) || is_scim_json(content_type) || content_type.starts_with("text/html") {
        return res;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request took too long to arrive or to answer".to_string(),
        ),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request target is too long".to_string()),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "the request headers are too large".to_string())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the request body must be JSON, sent with `Content-Type: application/json`".to_string(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not accept this method".to_string(),
        ),
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint".to_string()),
        s if s.is_server_error() => (
            "internal",
            "an internal error occurred; quote the request id to an operator".to_string(),
        ),
        _ => ("invalid_request", "the request is malformed".to_string()),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(v) = res.headers().get(header::RETRY_AFTER) {
        out.headers_mut().insert(header::RETRY_AFTER, v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec![
            "localhost".into(),
            "127.0.0.1".into(),
            "[::1]".into(),
            "admin.example.com:8443".into(),
        ]
    }

    #[test]
    fn the_host_allowlist_matches_names_with_any_port_and_pinned_ports_exactly() {
        let a = allowed();
        assert_eq!(host_allowed(&a, "localhost:8080"), HostCheck::Allowed);
        assert_eq!(host_allowed(&a, "LOCALHOST"), HostCheck::Allowed);
        assert_eq!(host_allowed(&a, "[::1]:8080"), HostCheck::Allowed);
        assert_eq!(host_allowed(&a, "admin.example.com:8443"), HostCheck::Allowed);
        assert_eq!(host_allowed(&a, "admin.example.com:80"), HostCheck::Refused);
        assert_eq!(host_allowed(&a, "evil.example:8080"), HostCheck::Refused);
        assert_eq!(host_allowed(&a, "localhost.evil.example"), HostCheck::Refused);
        assert_eq!(host_allowed(&a, "a b"), HostCheck::Malformed);
        assert_eq!(host_allowed(&a, "localhost:80:80"), HostCheck::Malformed);
    }

    #[test]
    fn the_client_address_comes_from_the_trusted_header_only_when_configured() {
        let mut config = Config::embedded_in(std::path::Path::new("/tmp"));
        let peer: SocketAddr = "10.0.0.9:5555".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 203.0.113.7".parse().unwrap());
        let edge = Edge::from_config(&config);
        assert_eq!(edge.client_addr(&headers, Some(peer)), Some(peer.ip()));
        config.trusted_proxy_header = Some("X-Forwarded-For".into());
        let edge = Edge::from_config(&config);
        assert_eq!(
            edge.client_addr(&headers, Some(peer)),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(edge.client_addr(&HeaderMap::new(), Some(peer)), Some(peer.ip()));
    }

    #[test]
    fn the_sixth_attempt_within_a_minute_is_rate_limited_with_retry_after() {
        let limits = RateLimits::new(5);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..5 {
            limits.auth_attempt(&format!("user{i}@example.com"), Some(ip)).unwrap();
        }
        let e = limits.auth_attempt("other@example.com", Some(ip)).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.code, "rate_limited");
        assert!(
            e.retry_after.is_some_and(|s| (1..=12).contains(&s)),
            "{:?}",
            e.retry_after
        );
    }

    #[test]
    fn case_and_spacing_variants_of_one_email_share_its_budget() {
        let limits = RateLimits::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        limits.auth_attempt("Ann@Example.com", Some(a)).unwrap();
        limits.auth_attempt(" ann@example.COM ", Some(b)).unwrap();
        assert_eq!(
            limits.auth_attempt("ann@example.com", Some(c)).unwrap_err().code,
            "rate_limited"
        );
    }
}
