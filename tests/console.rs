//! The console's edge on maintained crates: askama pages, embedded static files with caching headers,
//! cookies in `axum-extra`'s private jar under `CONSOLE_COOKIE_KEY`, and the page a `failed` line links
//! to (the saga's facts, read from the saga log only).

mod common;

use admin_provisioner::http::{self, AppState, Metrics};
use admin_provisioner_core::faults::FaultMode;
use admin_provisioner_core::identity::op;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum_extra::extract::cookie::{Cookie, Key, PrivateCookieJar};
use base64::Engine;
use common::*;
use serde_json::json;
use tower::ServiceExt;

/// A fixed 64-byte key, base64.
fn configured_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([42u8; 64])
}

async fn call(router: &axum::Router, req: Request<Body>) -> Res {
    use http_body_util::BodyExt;
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Res {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri(path).header("host", "localhost");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    b.body(Body::empty()).unwrap()
}

fn set_cookie_value(res: &Res, name: &str) -> Option<String> {
    res.headers.get_all("set-cookie").iter().find_map(|v| {
        v.to_str()
            .unwrap()
            .strip_prefix(&format!("{name}="))
            .map(|rest| rest.split(';').next().unwrap().to_string())
    })
}

/// Signs the first admin in through the console form on `router`; returns the `Cookie` header value.
async fn sign_in(router: &axum::Router) -> String {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header("host", "localhost")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "email={}&password={NEW_PASSWORD}",
            ADMIN_EMAIL.replace('@', "%40")
        )))
        .unwrap();
    let res = call(router, req).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    format!("ap_session={}", set_cookie_value(&res, "ap_session").unwrap())
}

fn redirects_to_login(res: &Res) -> bool {
    res.status == StatusCode::SEE_OTHER && res.header("location").as_deref() == Some("/login")
}

#[tokio::test]
async fn the_session_cookie_is_encrypted_and_a_tampered_one_is_refused() {
    let t = test_app().await;
    let cookie = sign_in(&t.router).await;
    assert_eq!(
        call(&t.router, get("/console", Some(&cookie))).await.status,
        StatusCode::OK
    );
    let value = cookie.trim_start_matches("ap_session=");
    // The value is not the token: no JWT segments in it.
    assert!(!value.starts_with("eyJ"), "{value}");

    // Flip one character in the middle of the ciphertext.
    let mut bytes = value.as_bytes().to_vec();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = format!("ap_session={}", String::from_utf8(bytes).unwrap());
    let res = call(&t.router, get("/console", Some(&tampered))).await;
    assert!(redirects_to_login(&res), "{:?} {}", res.status, res.text);

    // The old plaintext form (a valid ID token as the cookie value) is refused too.
    let plain = format!("ap_session={}", t.token());
    let res = call(&t.router, get("/console", Some(&plain))).await;
    assert!(redirects_to_login(&res), "{:?}", res.status);
}

#[tokio::test]
async fn a_session_cookie_made_under_another_key_is_refused() {
    let t = test_app().await;
    // A valid ID token, encrypted under a key this server does not have.
    let jar = PrivateCookieJar::new(Key::generate()).add(Cookie::new("ap_session", t.token().to_string()));
    let foreign = jar.get("ap_session").unwrap();
    assert_eq!(foreign.value(), t.token());
    let header = set_cookie_header(jar);
    let res = call(&t.router, get("/console", Some(&header))).await;
    assert!(redirects_to_login(&res), "{:?} {}", res.status, res.text);
}

/// The `Cookie` header a browser would send back for the cookies `jar` sets.
fn set_cookie_header(jar: PrivateCookieJar) -> String {
    use axum::response::IntoResponse;
    let res = (jar, ()).into_response();
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn replicas_with_one_configured_key_accept_each_others_sessions_and_csrf_tokens() {
    let key = configured_key();
    let t = test_app_with(|c| c.console_cookie_key = Some(key.clone())).await;
    // A second replica: another state (its own key material, read from the same configuration).
    let replica = http::router(AppState::with_metrics(t.app.clone(), Metrics::new()));
    let cookie = sign_in(&t.router).await;

    let page = call(&replica, get("/console", Some(&cookie))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let marker = r#"name="csrf" value=""#;
    let start = page.text.find(marker).unwrap() + marker.len();
    let csrf = &page.text[start..start + page.text[start..].find('"').unwrap()];
    let req = Request::builder()
        .method(Method::POST)
        .uri("/console/admins")
        .header("host", "localhost")
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}&email=replica%40example.com")))
        .unwrap();
    let res = call(&t.router, req).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    assert_eq!(t.invitations_to("replica@example.com"), 1);

    // Without a configured key each replica draws its own: the other's session is not accepted.
    let u = test_app().await;
    let other = http::router(AppState::with_metrics(u.app.clone(), Metrics::new()));
    let cookie = sign_in(&u.router).await;
    assert!(redirects_to_login(&call(&other, get("/console", Some(&cookie))).await));
}

#[tokio::test]
async fn serve_refuses_a_malformed_console_cookie_key_without_echoing_it() {
    for bad in ["c2hvcnQ=", "not base64 or hex!"] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        config.console_cookie_key = Some(bad.into());

        let err = admin_provisioner::serve::run(config).await.unwrap_err().to_string();

        assert!(err.contains("CONSOLE_COOKIE_KEY"), "{err}");
        assert!(!err.contains(bad), "the key appears in the error: {err}");
    }
}

#[tokio::test]
async fn static_files_are_embedded_versioned_cached_and_revalidated() {
    let t = test_app().await;
    let login = call(&t.router, get("/login", None)).await;
    let csp = login.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    // No inline script or style: the CSP would block them.
    assert!(!login.text.contains("<script>") && !login.text.contains("style="));
    let start = login.text.find("/static/console.css?v=").unwrap();
    let href = &login.text[start..start + login.text[start..].find('"').unwrap()];

    let css = call(&t.router, get(href, None)).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert!(css.text.contains(".badge.failed"));
    assert_eq!(
        css.header("cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    let etag = css.header("etag").unwrap();
    assert!(href.ends_with(etag.trim_matches('"')), "{href} {etag}");

    let plain = call(&t.router, get("/static/console.js", None)).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.header("content-type").unwrap().starts_with("text/javascript"));
    assert_eq!(plain.header("cache-control").as_deref(), Some("public, max-age=300"));

    let again = Request::builder()
        .uri("/static/console.css")
        .header("if-none-match", &etag)
        .body(Body::empty())
        .unwrap();
    let res = call(&t.router, again).await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);
    assert!(res.text.is_empty());

    let missing = call(&t.router, get("/static/nope.js", None)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "not_found");
}

#[tokio::test]
async fn a_failed_line_links_to_the_sagas_facts_which_show_while_cognito_is_unreachable() {
    let t = test_app().await;
    let cookie = sign_in(&t.router).await;
    // The Cognito user is created but the answer is lost, and every undo fails: the saga ends stuck.
    t.faults.fail(op::ADMIN_CREATE_USER, FaultMode::SucceedThenError, None);
    t.faults.fail(op::ADMIN_DELETE_USER, FaultMode::Error, None);
    t.faults.fail(op::ADMIN_GET_USER, FaultMode::Error, None);
    let res = t
        .post("/api/admins", Some(t.token()), json!({"email": "stuck@example.com"}))
        .await;
    assert!(t.faults.fired(op::ADMIN_CREATE_USER) > 0, "the fault fired");
    assert_eq!(res.code(), "saga_stuck", "{}", res.text);

    let list = call(&t.router, get("/console?status=failed", Some(&cookie))).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(list.text.contains(r#"data-email="stuck@example.com""#), "{}", list.text);
    let start = list.text.find(r#"href="/console/sagas/"#).expect("a link to the saga") + 6;
    let href = list.text[start..start + list.text[start..].find('"').unwrap()].to_string();

    // Cognito is now unreachable for every call: the page reads the saga log only.
    for operation in [op::ADMIN_GET_USER, op::LIST_USERS, op::INITIATE_AUTH] {
        t.faults.fail(operation, FaultMode::Error, None);
    }
    // Identity-provider operations are Cognito's CamelCase names; store operations are `saga.*`/`store.*`.
    let cognito_calls = || {
        t.faults
            .call_log()
            .iter()
            .filter(|c| c.starts_with(|ch: char| ch.is_ascii_uppercase()))
            .count()
    };
    let calls_before = cognito_calls();
    let page = call(&t.router, get(&href, Some(&cookie))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(cognito_calls(), calls_before, "no Cognito call");
    let saga_id = href.trim_start_matches("/console/sagas/");
    let saga = t
        .app
        .provisioner
        .saga_log()
        .get(saga_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    for fact in [
        saga_id.to_string(),
        "stuck@example.com".to_string(),
        "stuck".to_string(),
        format!("<dt>Attempts</dt><dd>{}</dd>", saga.attempts),
        "Step".to_string(),
        "Owner".to_string(),
        "Lease".to_string(),
    ] {
        assert!(page.text.contains(&fact), "{fact} missing in {}", page.text);
    }
    let last_error = saga.last_error.clone().expect("a stuck saga has a last error");
    let escaped = last_error
        .replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;");
    assert!(page.text.contains(&escaped), "{last_error} missing in {}", page.text);

    // An unknown or malformed id is a 404 page; without a session, the login.
    let unknown = call(
        &t.router,
        get(&format!("/console/sagas/{}", uuid::Uuid::new_v4()), Some(&cookie)),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        call(&t.router, get("/console/sagas/not-a-uuid", Some(&cookie)))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(redirects_to_login(&call(&t.router, get(&href, None)).await));
}
