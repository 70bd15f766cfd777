//! The HTTP error type, the request id, and the JSON body parser.
//!
//! Every error leaves the service as `{"error":{"code","message","request_id"}}` with the status its code
//! stands for. The request id is the one in the `x-request-id` response header and in the request's log
//! line, so a person can quote it and an operator can find the log. Internal and database errors are
//! logged with their detail and shown as a generic sentence; no message ever carries a token, password or
//! session (domain messages never contain one, and JSON parse errors are rewritten so that a value sent
//! in the body is never echoed back).

use admin_provisioner_core::Error;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

tokio::task_local! {
    /// The id of the request being handled (set by the request middleware for the whole handler future).
    pub(crate) static REQUEST_ID: String;
}

/// The current request id, or an empty string outside a request.
pub(crate) fn current_request_id() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_default()
}

/// An error answer of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// A sentence for people; never a secret.
    pub message: String,
    /// `Retry-After` seconds, for 429.
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate` value, for 401.
    pub www_authenticate: Option<String>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            www_authenticate: None,
        }
    }

    /// 400 `invalid_request`: the request is malformed (bad JSON, missing field, bad id, bad header).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401 `unauthorized` with `WWW-Authenticate: Bearer … error="invalid_token"`.
    pub fn unauthorized(description: &str) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", description.to_string());
        e.www_authenticate = Some(format!(
            "Bearer realm=\"admin-provisioner\", error=\"invalid_token\", error_description=\"{}\"",
            description.replace(['"', '\\'], "'")
        ));
        e
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal`: logged with its detail, shown as a generic sentence.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; quote the request id to an operator",
        )
    }

    /// The JSON error envelope for `request_id`.
    pub fn body(&self, request_id: &str) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": self.message, "request_id": request_id}})
    }

    /// The response, with the envelope carrying `request_id`.
    pub fn to_response(&self, request_id: &str) -> Response {
        let mut res = (self.status, axum::Json(self.body(request_id))).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(v) = self
            .www_authenticate
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        res
    }
}

impl From<Error> for ApiError {
    /// The JSON rendering of the core's one mapping (status, code, message, `Retry-After`).
    fn from(e: Error) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut out = Self::new(status, e.code(), e.public_message());
        out.retry_after = e.retry_after_secs();
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.to_response(&current_request_id())
    }
}

/// Parses a JSON request body into `T`, answering 400 `invalid_request` with a message that names the
/// problem (not valid JSON, a missing field) but never repeats a value from the body.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request(
            "the request body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice::<T>(body).map_err(|e| {
        use serde_json::error::Category;
        let msg = match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => "the request body is not valid JSON".to_string(),
            Category::Data => {
                let text = e.to_string();
                match backticked_after(&text, "missing field `") {
                    Some(field) => format!("the field `{field}` is missing"),
                    None => match backticked_after(&text, "unknown field `") {
                        Some(field) => format!("the field `{field}` is not expected here"),
                        None => "a field of the JSON body has the wrong type (strings are expected)".to_string(),
                    },
                }
            }
        };
        ApiError::invalid_request(msg)
    })
}

/// The name between `prefix` and the next backtick, when it looks like a field name.
fn backticked_after(text: &str, prefix: &str) -> Option<String> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let name = &rest[..rest.find('`')?];
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        .then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
    }

    #[test]
    fn a_definitive_database_refusal_is_a_500_internal_that_names_no_sql() {
        let e = ApiError::from(Error::from(admin_provisioner_core::store::StoreError::Other(
            "CHECK constraint failed: admin_info".into(),
        )));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        let body = e.body("req-1").to_string();
        assert!(body.contains("\"internal\""), "{body}");
        assert!(!body.contains("CHECK") && !body.contains("admin_info"), "{body}");
    }

    #[test]
    fn a_wrongly_typed_value_is_not_echoed() {
        let err = parse_json::<Login>(br#"{"email":"a@b.co","password":98765432}"#).unwrap_err();
        assert!(!err.message.contains("98765432"), "{}", err.message);
        assert_eq!(err.code, "invalid_request");
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse_json::<Login>(br#"{"email":"a@b.co"}"#).unwrap_err();
        assert_eq!(err.message, "the field `password` is missing");
    }
}
