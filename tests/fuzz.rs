//! Property tests of every parser of untrusted input at the HTTP edge: JSON bodies, Bearer headers, tokens,
//! `Host` values, idempotency bodies. Each takes arbitrary input and must answer with a value or a typed
//! error, never a panic. Case counts are fixed (see each `ProptestConfig`) so the run is bounded: about
//! ten seconds in total. (E-mail addresses are fuzzed in `crates/core/src/domain.rs`, cookies in
//! `src/http/console.rs`.)

use admin_provisioner::http::api::{request_hash, CreateAdminRequest, LoginRequest, NewPasswordRequest};
use admin_provisioner::http::auth::{bearer_token, verify_token, JwksCache};
use admin_provisioner::http::edge::host_allowed;
use admin_provisioner::http::error::parse_json;
use admin_provisioner_core::identity::TokenSettings;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use std::time::Duration;

/// JSON-ish text: mostly structural characters and field names, so many inputs get deep into serde.
fn jsonish() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,200}",
        r#"[{}\[\]":,0-9a-z_ \\]{0,200}"#,
        (any::<String>(), any::<String>(), any::<Option<String>>()).prop_map(|(a, b, c)| {
            serde_json::json!({"email": a, "password": b, "username": a, "new_password": b,
                               "temporary_password": c, "session": c})
            .to_string()
        }),
    ]
}

fn settings() -> TokenSettings {
    TokenSettings {
        issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_X".into(),
        client_id: "client".into(),
    }
}

/// Three base64url segments of arbitrary JSON-ish content: JWT-shaped garbage.
fn jwt_shaped() -> impl Strategy<Value = String> {
    (jsonish(), jsonish(), "[A-Za-z0-9_-]{0,64}")
        .prop_map(|(h, p, sig)| format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(h), URL_SAFE_NO_PAD.encode(p), sig))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn any_json_body_parses_or_is_a_400_that_never_echoes_it(body in jsonish()) {
        for result in [
            parse_json::<CreateAdminRequest>(body.as_bytes()).err(),
            parse_json::<LoginRequest>(body.as_bytes()).err(),
            parse_json::<NewPasswordRequest>(body.as_bytes()).err(),
        ].into_iter().flatten() {
            prop_assert_eq!(result.code, "invalid_request");
            if body.len() > 12 {
                prop_assert!(!result.message.contains(body.as_str()));
            }
        }
        let _ = request_hash(body.as_bytes());
    }

    #[test]
    fn any_authorization_header_is_parsed_without_panicking(raw in "[ -~]{0,200}") {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&raw) {
            h.insert(header::AUTHORIZATION, v);
        }
        if let Err(e) = bearer_token(&h) {
            prop_assert_eq!(e.code, "unauthorized");
        }
    }

    #[test]
    fn any_host_value_is_judged_without_panicking(raw in "\\PC{0,80}") {
        let allowed = vec!["localhost".to_string(), "[::1]".to_string(), "example.com:8443".to_string()];
        let _ = host_allowed(&allowed, &raw);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_token_is_refused_with_a_typed_error_and_never_panics(token in prop_oneof!["\\PC{0,300}", jwt_shaped()]) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let cache = JwksCache::new(Duration::from_secs(3600));
        let result = rt.block_on(verify_token(
            &token,
            &settings(),
            &cache,
            async { Ok(serde_json::json!({"keys": []})) },
            1_700_000_000,
        ));
        prop_assert!(result.is_err());
    }
}
