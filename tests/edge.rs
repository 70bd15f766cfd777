//! Specification of the hardened HTTP edge (issue 8): what an outsider tried, and what they now get.
//!
//! One test per finding at least, each failing on the code before the fix: the emulator never listens
//! beyond loopback by accident, foreign `Host`s and non-JSON bodies are refused, sockets cannot be held
//! open, password guessing is throttled (by the service and by the emulator's Cognito-like lockout),
//! typed input never reaches a log line raw, authorisation needs the linked `sub`, state files are
//! private, odd addresses are refused or normalised, tokens from the future are refused, and every error
//! the edge produces is in the JSON envelope.

mod common;

use admin_provisioner::http::{self, ServeLimits};
use admin_provisioner_core::clock::ManualClock;
use admin_provisioner_core::domain::Password;
use admin_provisioner_core::identity::{AuthOutcome, CreateUserRequest, IdentityProvider, IdpError, MessageAction};
use admin_provisioner_emulator::{CognitoEmulator, EmulatorConfig};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn raw(method: Method, path: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(path)
}

// ---------------------------------------------------------------------------------------------------
// Finding 1: invitee takeover (bind address, Host allowlist, JSON only)
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn serve_in_emulator_mode_refuses_a_non_loopback_bind_addr() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.bind_addr = "0.0.0.0:0".into();

    let err = admin_provisioner::serve::run(config).await.unwrap_err();

    assert!(err.to_string().contains("EMULATOR_ALLOW_REMOTE"), "{err}");
}

#[tokio::test]
async fn serve_in_emulator_mode_accepts_a_non_loopback_bind_addr_only_with_the_explicit_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.bind_addr = "0.0.0.0:0".into();
    config.emulator_allow_remote = true;
    assert!(admin_provisioner::serve::check_bind_addr(&config).await.is_ok());
    config.bind_addr = "127.0.0.1:0".into();
    config.emulator_allow_remote = false;
    assert!(admin_provisioner::serve::check_bind_addr(&config).await.is_ok());
}

#[tokio::test]
async fn a_request_for_a_host_that_is_not_allowed_is_421_in_the_envelope() {
    let t = bare_app().await;

    let res = t
        .call(
            raw(Method::GET, "/console/mailbox")
                .header("host", "rebound.attacker.example:8080")
                .body(Body::empty())
                .unwrap(),
        )
        .await;

    assert_eq!(res.status, StatusCode::MISDIRECTED_REQUEST, "{}", res.text);
    assert_eq!(res.code(), "misdirected_request");
    assert!(!res.text.contains("temporary password"));
}

#[tokio::test]
async fn a_request_for_localhost_or_127_0_0_1_on_any_port_is_answered() {
    let t = bare_app().await;
    for host in ["localhost:8080", "127.0.0.1:41234", "LOCALHOST"] {
        let res = t
            .call(
                raw(Method::GET, "/healthz")
                    .header("host", host)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{host}: {}", res.text);
    }
}

#[tokio::test]
async fn a_malformed_host_is_400_invalid_request() {
    let t = bare_app().await;

    let res = t
        .call(
            raw(Method::GET, "/healthz")
                .header("host", "local host")
                .body(Body::empty())
                .unwrap(),
        )
        .await;

    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.code(), "invalid_request");
}

#[tokio::test]
async fn a_text_plain_body_to_the_json_api_is_415_unsupported_media_type() {
    let t = test_app().await;
    t.invite("victim@example.com").await;
    let temp = t.temp_password("victim@example.com");
    // What a cross-site `<form enctype="text/plain">` can send.
    let body = format!(
        r#"{{"username":"victim@example.com","temporary_password":"{temp}","new_password":"Attacker-Chosen-1","x":"="}}"#
    );

    let res = t
        .call(
            raw(Method::POST, "/api/auth/new-password")
                .header("content-type", "text/plain")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;

    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", res.text);
    assert_eq!(res.code(), "unsupported_media_type");
    // Nothing happened: the victim still holds the temporary password.
    let login = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": "victim@example.com", "password": temp}),
        )
        .await;
    assert_eq!(login.json()["challenge"], "NEW_PASSWORD_REQUIRED", "{}", login.text);
}

#[tokio::test]
async fn a_form_encoded_or_untyped_body_to_the_json_api_is_415() {
    let t = test_app().await;
    for content_type in [
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut b = raw(Method::POST, "/api/admins").header("authorization", format!("Bearer {}", t.token()));
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        let res = t
            .call(b.body(Body::from(r#"{"email":"x@example.com"}"#)).unwrap())
            .await;
        assert_eq!(
            res.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {}",
            res.text
        );
        assert_eq!(res.code(), "unsupported_media_type");
    }
    let res = t
        .call(
            raw(Method::POST, "/api/admins")
                .header("authorization", format!("Bearer {}", t.token()))
                .header("content-type", "application/json; charset=utf-8")
                .body(Body::from(r#"{"email":"typed@example.com"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
}

#[tokio::test]
async fn responses_carry_the_security_headers() {
    let t = bare_app().await;

    let res = t.get("/healthz", None).await;

    assert_eq!(res.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(res.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(res.header("referrer-policy").as_deref(), Some("no-referrer"));
}

// ---------------------------------------------------------------------------------------------------
// Finding 2: connection timeouts, connection cap, bounded shutdown
// ---------------------------------------------------------------------------------------------------

/// One full `GET /healthz` on a new socket; the status line, or an error.
async fn healthz_over_tcp(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// True when the server closes `s` (EOF or reset) within `within`.
async fn closed_by_server(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a 408 answer, then the close
        }
    }
}

#[tokio::test]
async fn idle_and_half_sent_sockets_are_closed_healthz_keeps_answering_and_shutdown_is_bounded() {
    let t = bare_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ServeLimits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 16,
        shutdown_grace: Duration::from_secs(2),
        ..ServeLimits::default()
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve_with(t.state.clone(), listener, limits, async {
        let _ = rx.await;
    }));

    // More idle sockets than the cap, and some that send half a request head and stop.
    let mut idle = Vec::new();
    for _ in 0..24 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let mut half = Vec::new();
    for _ in 0..8 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Le")
            .await
            .unwrap();
        half.push(s);
    }

    // The server hangs up on them after the header-read timeout ...
    for s in idle.iter_mut().take(16).chain(half.iter_mut()) {
        assert!(
            closed_by_server(s, Duration::from_secs(5)).await,
            "an idle or half-sent socket was kept open"
        );
    }
    // ... so /healthz answers although more sockets were opened than the cap allows.
    let status = tokio::time::timeout(Duration::from_secs(10), healthz_over_tcp(addr))
        .await
        .expect("/healthz did not answer")
        .unwrap();
    assert!(status.contains("200"), "{status}");

    // A half-sent request does not hold shutdown up beyond the grace period.
    let mut late = tokio::net::TcpStream::connect(addr).await.unwrap();
    late.write_all(b"GET /healthz HTTP/1.1\r\nHost: loc").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("shutdown was not bounded")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------------
// Finding 3: throttling
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_eleventh_login_for_one_email_within_a_minute_is_429_rate_limited_with_retry_after() {
    let t = bare_app().await;
    for i in 0..10 {
        let res = t
            .post(
                "/api/auth/login",
                None,
                json!({"email": ADMIN_EMAIL, "password": format!("Wrong-{i}")}),
            )
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "attempt {i}: {}", res.text);
    }

    let res = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": "  Root.Admin@Example.com ", "password": "Wrong-x"}),
        )
        .await;

    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.text);
    assert_eq!(res.code(), "rate_limited");
    let retry: u64 = res.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

#[tokio::test]
async fn many_emails_from_one_client_are_throttled_and_a_spoofed_forwarded_for_does_not_help() {
    let t = bare_app().await;
    let mut statuses = Vec::new();
    for i in 0..11 {
        let res = t
            .call(
                raw(Method::POST, "/api/auth/login")
                    .header("content-type", "application/json")
                    .header("x-forwarded-for", format!("198.51.100.{i}"))
                    .body(Body::from(
                        json!({"email": format!("guess{i}@example.com"), "password": "x"}).to_string(),
                    ))
                    .unwrap(),
            )
            .await;
        statuses.push(res.status);
    }

    assert!(
        statuses[..10].iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn new_password_attempts_are_throttled_per_email() {
    let t = test_app().await;
    t.invite("throttled@example.com").await;
    let mut last = None;
    for i in 0..11 {
        let res = t
            .post(
                "/api/auth/new-password",
                None,
                json!({"username": "throttled@example.com", "temporary_password": format!("Guess-{i}"), "new_password": NEW_PASSWORD}),
            )
            .await;
        last = Some(res);
    }
    let res = last.unwrap();
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.text);
    assert!(res.header("retry-after").is_some());
}

#[tokio::test]
async fn creations_are_throttled_per_calling_admin() {
    let t = test_app().await;
    let mut statuses = Vec::new();
    for _ in 0..31 {
        // An address that exists: the core spends the budget before it looks, so no admin is created
        // (a malformed address is refused before the budget: it costs nothing).
        let res = t
            .post("/api/admins", Some(t.token()), json!({"email": ADMIN_EMAIL}))
            .await;
        statuses.push(res.status);
    }
    assert!(
        statuses[..30].iter().all(|s| *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    assert_eq!(statuses[30], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_emulator_locks_a_user_out_after_five_failures_like_cognito() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new());
    let mut config = EmulatorConfig::in_memory(dir.path().join("mailbox"));
    config.clock = clock.clone();
    let emu = CognitoEmulator::open(config).await.unwrap();
    emu.admin_create_user(CreateUserRequest {
        username: "locked@example.com".into(),
        email: "locked@example.com".into(),
        temporary_password: Some(admin_provisioner_core::domain::TemporaryPassword::new("Temp-Pass-123")),
        message_action: Some(MessageAction::Suppress),
    })
    .await
    .unwrap();
    for _ in 0..5 {
        let e = emu
            .initiate_auth("locked@example.com", &Password::new("wrong"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, IdpError::NotAuthorized(ref m) if m.contains("Incorrect")),
            "{e:?}"
        );
    }

    let locked = emu
        .initiate_auth("locked@example.com", &Password::new("Temp-Pass-123"))
        .await
        .unwrap_err();

    assert!(
        matches!(locked, IdpError::NotAuthorized(ref m) if m == "Password attempts exceeded"),
        "{locked:?}"
    );
    clock.advance(chrono::Duration::seconds(2));
    let ok = emu
        .initiate_auth("locked@example.com", &Password::new("Temp-Pass-123"))
        .await
        .unwrap();
    assert!(matches!(ok, AuthOutcome::NewPasswordRequired { .. }));
}

// ---------------------------------------------------------------------------------------------------
// Finding 4: log injection
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_newline_or_escape_code_typed_as_the_email_never_reaches_the_log_raw() {
    let logs = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let t = test_app().await;
    tracing::callsite::rebuild_interest_cache();
    let forged = "x\nINFO login succeeded username=root.admin@example.com\u{1b}[2J";

    t.post("/api/auth/login", None, json!({"email": forged, "password": "x"}))
        .await;
    t.post(
        "/api/auth/new-password",
        None,
        json!({"username": forged, "temporary_password": "x", "new_password": NEW_PASSWORD}),
    )
    .await;

    let text = logs.text();
    assert!(text.contains("unparsed:"), "the attempt is not logged in a safe form");
    assert!(
        !text.contains("INFO login succeeded username=root"),
        "a forged line reached the log"
    );
    assert!(!text.contains('\u{1b}'), "an escape code reached the log");
}

// ---------------------------------------------------------------------------------------------------
// Finding 5: authorisation by `sub` only
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_recreated_cognito_user_with_the_admins_username_but_a_new_sub_is_403() {
    let t = test_app().await;
    let emu = t.emulator();
    // Outside the product: the admin's Cognito user is deleted and re-created under the same username.
    emu.admin_delete_user(ADMIN_EMAIL).await.unwrap();
    emu.admin_create_user(CreateUserRequest {
        username: ADMIN_EMAIL.into(),
        email: ADMIN_EMAIL.into(),
        temporary_password: Some(admin_provisioner_core::domain::TemporaryPassword::new("Temp-Pass-123")),
        message_action: Some(MessageAction::Suppress),
    })
    .await
    .unwrap();
    let token = match emu
        .initiate_auth(ADMIN_EMAIL, &Password::new("Temp-Pass-123"))
        .await
        .unwrap()
    {
        AuthOutcome::NewPasswordRequired { session, username } => emu
            .respond_to_new_password_challenge(&username, &session, &Password::new(NEW_PASSWORD))
            .await
            .unwrap()
            .id_token
            .expose()
            .to_string(),
        _ => panic!("expected NEW_PASSWORD_REQUIRED"),
    };

    let res = t.get("/api/admins", Some(&token)).await;

    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text);
    assert_eq!(res.code(), "forbidden");
}

// ---------------------------------------------------------------------------------------------------
// Finding 6: private files
// ---------------------------------------------------------------------------------------------------

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn the_app_database_and_the_emulator_state_are_created_readable_by_their_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let nested = dir.path().join("state");
    config.database_url = format!("sqlite://{}", dir.path().join("app.db").display());
    config.emulator_state = nested.join("emu").join("cognito-emulator.db");

    let _app = admin_provisioner::app::App::build(config.clone()).await.unwrap();

    assert_eq!(mode(&dir.path().join("app.db")), 0o600);
    assert_eq!(mode(&config.emulator_state), 0o600);
    assert_eq!(mode(&nested), 0o700);
    assert_eq!(mode(&nested.join("emu")), 0o700);
    for companion in ["app.db-wal", "app.db-shm"] {
        let p = dir.path().join(companion);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{companion}");
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn an_existing_world_readable_emulator_state_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cognito-emulator.db");
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    let _emu = CognitoEmulator::open(EmulatorConfig::file(&path, dir.path().join("mailbox")))
        .await
        .unwrap();

    assert_eq!(mode(&path), 0o600);
}

// ---------------------------------------------------------------------------------------------------
// Finding 7: addresses Cognito cannot take
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_email_longer_than_128_characters_is_400_invalid_email_before_any_cognito_call() {
    let t = test_app().await;
    let long = format!("{}@{}.example.com", "a".repeat(64), "b".repeat(60));
    assert!(long.len() > 128 && long.len() <= 254);

    let res = t.post("/api/admins", Some(t.token()), json!({ "email": long })).await;

    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text);
    assert_eq!(res.code(), "invalid_email");
}

#[tokio::test]
async fn an_email_with_a_bidi_override_or_zero_width_space_is_400_invalid_email() {
    let t = test_app().await;
    for email in ["ann\u{202E}moc.elpmaxe@example.com", "ad\u{200B}min@example.com"] {
        let res = t.post("/api/admins", Some(t.token()), json!({ "email": email })).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{email:?}: {}", res.text);
        assert_eq!(res.code(), "invalid_email");
    }
}

#[tokio::test]
async fn an_idn_domain_and_its_punycode_form_are_one_admin() {
    let t = test_app().await;
    let first = t
        .post("/api/admins", Some(t.token()), json!({"email": "ann@bücher.example"}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.json()["user"]["email_normalized"], "ann@xn--bcher-kva.example");

    let second = t
        .post(
            "/api/admins",
            Some(t.token()),
            json!({"email": "ANN@xn--bcher-kva.example"}),
        )
        .await;

    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.text);
    assert_eq!(second.code(), "admin_exists");
}

// ---------------------------------------------------------------------------------------------------
// Finding 8: tokens from the future
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_issued_in_the_future_beyond_the_leeway_is_401() {
    let t = test_app().await;
    let ahead = Arc::new(ManualClock::new());
    ahead.advance(chrono::Duration::minutes(10));
    let mut ec = EmulatorConfig::file(&t.app.config.emulator_state, t.dir.path().join("other-mailbox"));
    ec.clock = ahead;
    let emu = CognitoEmulator::open(ec).await.unwrap();
    let token = match emu
        .initiate_auth(ADMIN_EMAIL, &Password::new(NEW_PASSWORD))
        .await
        .unwrap()
    {
        AuthOutcome::Tokens(tokens) => tokens.id_token.expose().to_string(),
        _ => panic!("the admin is already active"),
    };

    let res = t.get("/api/admins", Some(&token)).await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text);
    assert!(
        res.json()["error"]["message"].as_str().unwrap().contains("future"),
        "{}",
        res.text
    );
}

// ---------------------------------------------------------------------------------------------------
// Finding 9: the schema, and every edge error in the envelope
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_openapi_document_declares_audit_limit_as_a_query_parameter_and_the_header_and_body_constraints() {
    let t = bare_app().await;
    let doc = t.get("/openapi.json", None).await.json();

    let audit_params = doc["paths"]["/api/audit"]["get"]["parameters"].as_array().unwrap();
    let limit = audit_params.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["in"], "query");
    assert_ne!(limit["required"], true);
    let create_params = doc["paths"]["/api/admins"]["post"]["parameters"].as_array().unwrap();
    let key = create_params.iter().find(|p| p["name"] == "Idempotency-Key").unwrap();
    assert_eq!(key["schema"]["maxLength"], 255);
    assert_eq!(key["schema"]["minLength"], 1);
    let np = &doc["components"]["schemas"]["NewPasswordRequest"]["allOf"][0]["properties"];
    assert_eq!(np["username"]["maxLength"], 128);
    assert_eq!(np["new_password"]["maxLength"], 256);
    let either = &doc["components"]["schemas"]["NewPasswordRequest"]["allOf"][1]["anyOf"];
    assert_eq!(either[0]["required"][0], "temporary_password");
    assert_eq!(either[1]["required"][0], "session");
    for status in ["413", "414", "415", "421", "431"] {
        assert!(
            doc["paths"]["/api/auth/login"]["post"]["responses"][status].is_object(),
            "{status} missing"
        );
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_in_the_envelope() {
    let t = bare_app().await;
    let big = json!({"email": "a@example.com", "password": "x".repeat(100 * 1024)}).to_string();

    let res = t
        .call(
            raw(Method::POST, "/api/auth/login")
                .header("content-type", "application/json")
                .body(Body::from(big))
                .unwrap(),
        )
        .await;

    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", res.text);
    assert_eq!(res.code(), "payload_too_large");
    assert!(!res.json()["error"]["request_id"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn a_long_uri_is_414_and_large_headers_are_431_in_the_envelope() {
    let t = bare_app().await;

    let uri = format!("/healthz?{}", "q".repeat(10 * 1024));
    let res = t.call(raw(Method::GET, &uri).body(Body::empty()).unwrap()).await;
    assert_eq!(res.status, StatusCode::URI_TOO_LONG, "{}", res.text);
    assert_eq!(res.code(), "uri_too_long");

    let res = t
        .call(
            raw(Method::GET, "/healthz")
                .header("x-junk", "j".repeat(40 * 1024))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "{}", res.text);
    assert_eq!(res.code(), "headers_too_large");
}

#[tokio::test]
async fn an_overlong_new_password_field_is_400_invalid_request_without_echoing_it() {
    let t = bare_app().await;
    let long = "P".repeat(300);

    let res = t
        .post(
            "/api/auth/new-password",
            None,
            json!({"username": "a@example.com", "temporary_password": long, "new_password": NEW_PASSWORD}),
        )
        .await;

    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text);
    assert_eq!(res.code(), "invalid_request");
    assert!(!res.text.contains(&long));
}

// ---------------------------------------------------------------------------------------------------
// Secrets: the whole flow at TRACE, every log line, error body and database byte captured
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_whole_flow_at_trace_leaves_no_secret_in_logs_error_bodies_or_the_database() {
    let logs = LogCapture::default();
    // Every span's open and close too, with all its fields: the widest view the log can give.
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    let t = test_app().await;
    let mut bodies = Vec::new();
    let mut secrets = vec![
        NEW_PASSWORD.to_string(),
        t.admin().id_token.clone(),
        t.admin().access_token.clone(),
        t.temp_password(ADMIN_EMAIL),
    ];

    // Invite, a wrong temporary password, a policy-breaking password, then first login by session.
    let id = t.invite("flow@example.com").await;
    let temp = t.temp_password("flow@example.com");
    secrets.push(temp.clone());
    let wrong = t
        .post(
            "/api/auth/new-password",
            None,
            json!({"username": "flow@example.com", "temporary_password": "Not-It-123", "new_password": NEW_PASSWORD}),
        )
        .await;
    bodies.push(wrong.text);
    let challenge = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": "flow@example.com", "password": temp}),
        )
        .await
        .json();
    let session = challenge["session"].as_str().unwrap().to_string();
    secrets.push(session.clone());
    let weak = t
        .post(
            "/api/auth/new-password",
            None,
            json!({"username": "flow@example.com", "session": session, "new_password": "weakpass"}),
        )
        .await;
    bodies.push(weak.text);
    let challenge = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": "flow@example.com", "password": temp}),
        )
        .await
        .json();
    let session = challenge["session"].as_str().unwrap().to_string();
    secrets.push(session.clone());
    let tokens = t
        .post(
            "/api/auth/new-password",
            None,
            json!({"username": "flow@example.com", "session": session, "new_password": "Another-Good-Pass-7"}),
        )
        .await
        .json();
    secrets.push("Another-Good-Pass-7".into());
    for k in ["id_token", "access_token", "refresh_token"] {
        secrets.push(tokens[k].as_str().unwrap().to_string());
    }
    // Wrong logins, a forged token, an expired session, resend and removal.
    bodies.push(
        t.post(
            "/api/auth/login",
            None,
            json!({"email": "flow@example.com", "password": temp}),
        )
        .await
        .text,
    );
    let forged = format!("{}x", tokens["id_token"].as_str().unwrap());
    bodies.push(t.get("/api/admins", Some(&forged)).await.text);
    bodies.push(
        t.post(
            "/api/auth/new-password",
            None,
            json!({"username": "flow@example.com", "session": session, "new_password": NEW_PASSWORD}),
        )
        .await
        .text,
    );
    let second = t.invite("second@example.com").await;
    t.clock.advance(chrono::Duration::seconds(120));
    let resent = t
        .post(
            &format!("/api/admins/{second}/resend-invite"),
            Some(t.token()),
            json!({}),
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.text);
    secrets.push(t.temp_password("second@example.com"));
    bodies.push(
        t.post(&format!("/api/admins/{id}/resend-invite"), Some(t.token()), json!({}))
            .await
            .text,
    );
    assert_eq!(
        t.delete(&format!("/api/admins/{id}"), Some(t.token())).await.status,
        StatusCode::NO_CONTENT
    );
    bodies.push(t.get("/api/audit", Some(t.token())).await.text);
    // The console: a wrong password, a sign-in, the admin list with a query string that must not be
    // logged, and a create through the form (its session cookie is a credential too).
    let form = |path: &str, cookie: Option<&str>, body: String| {
        let mut b = raw(Method::POST, path)
            .header("host", "localhost")
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header("cookie", c);
        }
        b.body(Body::from(body)).unwrap()
    };
    let admin_form = format!("email={}&password=", ADMIN_EMAIL.replace('@', "%40"));
    bodies.push(
        t.call(form("/login", None, format!("{admin_form}Wrong-Pass-99")))
            .await
            .text,
    );
    let signed_in = t
        .call(form("/login", None, format!("{admin_form}{NEW_PASSWORD}")))
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.text);
    let session = signed_in
        .headers
        .get_all("set-cookie")
        .iter()
        .find_map(|v| v.to_str().unwrap().strip_prefix("ap_session="))
        .map(|rest| rest.split(';').next().unwrap().to_string())
        .unwrap();
    secrets.push(session.clone());
    let cookie = format!("ap_session={session}");
    let page = t
        .call(
            raw(Method::GET, "/console?q=secret-query-text")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let marker = r#"name="csrf" value=""#;
    let start = page.text.find(marker).unwrap() + marker.len();
    let csrf = page.text[start..start + page.text[start..].find('"').unwrap()].to_string();
    let created = t
        .call(form(
            "/console/admins",
            Some(&cookie),
            format!("csrf={csrf}&email=console-flow%40example.com"),
        ))
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    secrets.push(t.temp_password("console-flow@example.com"));

    let log_text = logs.text();
    assert!(
        log_text.contains("InitiateAuth") && log_text.contains("close"),
        "spans were not captured"
    );
    // The trace layer's request spans are in the capture, with their path but never the query string.
    assert!(
        log_text.contains("request{method=POST path=/console/admins"),
        "the trace layer's spans were not captured"
    );
    assert!(
        log_text.contains("path=/console "),
        "the console page's span is missing"
    );
    assert!(
        !log_text.contains("secret-query-text"),
        "a query string reached the log"
    );
    let db_path = t.dir.path().join("admin-provisioner.db");
    let mut db = std::fs::read(&db_path).unwrap();
    for companion in ["admin-provisioner.db-wal", "admin-provisioner.db-shm"] {
        if let Ok(bytes) = std::fs::read(t.dir.path().join(companion)) {
            db.extend(bytes);
        }
    }
    let db_text = String::from_utf8_lossy(&db);
    for secret in &secrets {
        assert!(secret.len() >= 8, "a secret too short to search for");
        assert!(!log_text.contains(secret.as_str()), "a secret appears in the logs");
        assert!(
            !db_text.contains(secret.as_str()),
            "a secret appears in the database file"
        );
        for body in &bodies {
            assert!(
                !body.contains(secret.as_str()),
                "a secret appears in an error body: {body}"
            );
        }
    }
}
