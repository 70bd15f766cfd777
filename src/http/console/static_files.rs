//! The embedded `static/` files (`/static/{file}`) and their content-hash versions.

use super::Assets;
use crate::http::error::ApiError;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::Sha256;

/// A file of `static/`, embedded at compile time.
struct StaticFile {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const STATIC_FILES: [StaticFile; 2] = [
    StaticFile {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../../static/console.css"),
    },
    StaticFile {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../static/console.js"),
    },
];

/// The first 16 hex digits of the SHA-256 of each static file, computed once.
fn versions() -> &'static [String; 2] {
    static VERSIONS: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    VERSIONS.get_or_init(|| {
        STATIC_FILES.each_ref().map(|f| {
            use sha2::Digest;
            hex::encode(&Sha256::digest(f.body.as_bytes())[..8])
        })
    })
}

pub(super) fn assets() -> Assets {
    let v = versions();
    Assets { css: &v[0], js: &v[1] }
}

/// `GET /static/{file}`: an embedded file with a strong `ETag` (its content hash). A request with the
/// current `?v=` is cacheable for a year (`immutable`: a new build links a new `v`); any other for five
/// minutes; `If-None-Match` with the current tag is `304`.
pub(super) async fn static_file(Path(file): Path<String>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let Some(i) = STATIC_FILES.iter().position(|f| f.name == file) else {
        return ApiError::not_found("no such static file").into_response();
    };
    let (f, version) = (&STATIC_FILES[i], &versions()[i]);
    let etag = format!("\"{version}\"");
    let versioned = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == format!("v={version}")));
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, f.content_type)], f.body).into_response()
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    res
}
