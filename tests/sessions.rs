//! Sessions end when they should (issue 18, finding 7), over a real socket with the system clock: console
//! sign-out ends the admin's sessions on the server (a copied cookie and the admin's API tokens stop
//! working), a sign-in right after still works, a long-poll stops when its admin is disabled or signed
//! out, and a token issued before a disable stays refused after re-enable.
//!
//! Budget: each test signs in a few times and waits at most a few seconds (sign-out and enable each wait
//! up to one second for the clock to leave the session epoch's second); the file runs in about 10 s.

mod common;

use common::*;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A client that does not follow redirects (so the tests see them) and keeps no cookies.
fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Logs `email` in through the API; returns the tokens.
async fn api_login(c: &reqwest::Client, app: &SpawnedApp, email: &str, password: &str) -> Value {
    let res = c
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    assert!(tokens["id_token"].is_string(), "{tokens}");
    tokens
}

/// First login (temporary password → [`NEW_PASSWORD`]) through the API; returns the ID token.
async fn activate(c: &reqwest::Client, app: &SpawnedApp, email: &str) -> String {
    let temp = app.temp_password(email);
    let res = c
        .post(app.url("/api/auth/new-password"))
        .json(&json!({"username": email, "temporary_password": temp, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    tokens["id_token"].as_str().unwrap().to_string()
}

/// A server with one active admin ([`ADMIN_EMAIL`]); returns it with that admin's ID token.
async fn app_with_admin(c: &reqwest::Client) -> (SpawnedApp, String) {
    let app = spawn_app().await;
    app.app.provisioner.bootstrap_admin(ADMIN_EMAIL, None).await.unwrap();
    let token = activate(c, &app, ADMIN_EMAIL).await;
    (app, token)
}

/// Invites and activates `email` (as the admin holding `token`); returns the new admin's id and ID token.
async fn second_admin(c: &reqwest::Client, app: &SpawnedApp, token: &str, email: &str) -> (String, String) {
    let res = c
        .post(app.url("/api/admins"))
        .bearer_auth(token)
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (id, activate(c, app, email).await)
}

/// Signs `email` in through the console form; returns the `Cookie` header value of the session.
async fn console_sign_in(c: &reqwest::Client, app: &SpawnedApp, email: &str) -> String {
    let res = c
        .post(app.url("/login"))
        .form(&[("email", email), ("password", NEW_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/console");
    let session = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("ap_session="))
        .expect("a session cookie");
    session.split(';').next().unwrap().to_string()
}

/// Status and `Location` of `GET /console` with `cookie`.
async fn open_console(c: &reqwest::Client, app: &SpawnedApp, cookie: &str) -> (StatusCode, Option<String>) {
    let res = c.get(app.url("/console")).header(COOKIE, cookie).send().await.unwrap();
    let location = res.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_string());
    (res.status(), location)
}

/// Presses "Sign out" with the session `cookie` (the CSRF token read from the sign-out page).
async fn console_sign_out(c: &reqwest::Client, app: &SpawnedApp, cookie: &str) {
    let page = c
        .get(app.url("/logout"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field on the sign-out page")
        .to_string();
    let res = c
        .post(app.url("/logout"))
        .header(COOKIE, cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/login");
}

/// `GET /api/admins` with `token`: status and error code.
async fn api_call(c: &reqwest::Client, app: &SpawnedApp, token: &str) -> (StatusCode, String) {
    let res = c.get(app.url("/api/admins")).bearer_auth(token).send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or_default().to_string())
}

/// Waits until the system clock is early in a second, so that what follows (well under a second of work)
/// falls in one second unless something waits.
async fn start_of_a_second() {
    loop {
        let ms = chrono::Utc::now().timestamp_subsec_millis();
        if ms < 100 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(u64::from(1000 - ms) + 5)).await;
    }
}

#[tokio::test]
async fn after_console_sign_out_a_copied_session_cookie_and_the_admins_tokens_are_refused() {
    // Arrange: an admin signed in to the console and, separately, holding API tokens. All of it within
    // one second, so that a check by whole seconds alone would miss it.
    let c = client();
    let (app, _) = app_with_admin(&c).await;
    start_of_a_second().await;
    let api_tokens = api_login(&c, &app, ADMIN_EMAIL, NEW_PASSWORD).await;
    let cookie = console_sign_in(&c, &app, ADMIN_EMAIL).await;
    let copied = cookie.clone();
    assert_eq!(open_console(&c, &app, &copied).await.0, StatusCode::OK);

    // Act
    console_sign_out(&c, &app, &cookie).await;

    // Assert: the copy lands on the login page; the API refuses the ID and the access token alike.
    assert_eq!(
        open_console(&c, &app, &copied).await,
        (StatusCode::SEE_OTHER, Some("/login".to_string()))
    );
    for kind in ["id_token", "access_token"] {
        let (status, code) = api_call(&c, &app, api_tokens[kind].as_str().unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "session_ended"),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn signing_in_again_right_after_signing_out_works_in_the_console_and_the_api() {
    // Arrange: signed in early in a second, so that sign-out and the next sign-in would share it.
    let c = client();
    let (app, _) = app_with_admin(&c).await;
    start_of_a_second().await;
    let cookie = console_sign_in(&c, &app, ADMIN_EMAIL).await;
    console_sign_out(&c, &app, &cookie).await;

    // Act: sign in again at once, in the console and through the API.
    let again = console_sign_in(&c, &app, ADMIN_EMAIL).await;
    let tokens = api_login(&c, &app, ADMIN_EMAIL, NEW_PASSWORD).await;

    // Assert
    assert_eq!(open_console(&c, &app, &again).await.0, StatusCode::OK);
    assert_eq!(
        api_call(&c, &app, tokens["id_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
}

/// Starts `GET /api/events?after=<newest>&wait=20` with `token`; returns the pending answer.
async fn start_long_poll(
    c: &reqwest::Client,
    app: &SpawnedApp,
    token: &str,
) -> tokio::task::JoinHandle<(StatusCode, Value, Duration)> {
    let page: Value = c
        .get(app.url("/api/events?limit=1000"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after = page["next_after"].as_i64().unwrap();
    let req = c
        .get(app.url(&format!("/api/events?after={after}&wait=20")))
        .bearer_auth(token);
    let poll = tokio::spawn(async move {
        let started = Instant::now();
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.json::<Value>().await.unwrap(), started.elapsed())
    });
    // Let it reach its wait (it answers at once if anything is newer: nothing is).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the long-poll should be waiting");
    poll
}

#[tokio::test]
async fn a_long_poll_waiting_when_its_admin_is_disabled_answers_forbidden_not_the_later_events() {
    // Arrange: a second admin long-polls for events.
    let c = client();
    let (app, root) = app_with_admin(&c).await;
    let (bob_id, bob) = second_admin(&c, &app, &root, "bob@example.com").await;
    let poll = start_long_poll(&c, &app, &bob).await;

    // Act: the first admin disables them (which commits an `admin.disabled` event).
    let res = c
        .post(app.url(&format!("/api/admins/{bob_id}/disable")))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Assert: the poll ends with 403, not with the event, and soon.
    let (status, body, took) = poll.await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(body.get("events").is_none(), "{body}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
}

#[tokio::test]
async fn a_long_poll_waiting_when_its_admin_signs_out_answers_session_ended() {
    // Arrange: an admin long-polls with an API token and is also signed in to the console.
    let c = client();
    let (app, _) = app_with_admin(&c).await;
    let tokens = api_login(&c, &app, ADMIN_EMAIL, NEW_PASSWORD).await;
    let poll = start_long_poll(&c, &app, tokens["access_token"].as_str().unwrap()).await;
    let cookie = console_sign_in(&c, &app, ADMIN_EMAIL).await;

    // Act: sign-out (no event is committed: only the poll's own re-check can notice).
    console_sign_out(&c, &app, &cookie).await;

    // Assert: the poll ends with 401 `session_ended` within a few seconds, long before its 20 s wait.
    let (status, body, took) = poll.await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "session_ended");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
}

#[tokio::test]
async fn a_token_issued_before_a_disable_stays_refused_after_re_enable_while_a_fresh_sign_in_works() {
    // Arrange: a second admin holding tokens, disabled and enabled again at once (all within a second
    // or two, so that whole-second `iat`s sit next to the disable).
    let c = client();
    let (app, root) = app_with_admin(&c).await;
    let (bob_id, _) = second_admin(&c, &app, &root, "bob@example.com").await;
    start_of_a_second().await;
    let before = api_login(&c, &app, "bob@example.com", NEW_PASSWORD).await;
    for action in ["disable", "enable"] {
        let res = c
            .post(app.url(&format!("/api/admins/{bob_id}/{action}")))
            .bearer_auth(&root)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{action}");
    }

    // Act
    let after = api_login(&c, &app, "bob@example.com", NEW_PASSWORD).await;

    // Assert: the old tokens are refused for good, the fresh one works.
    for kind in ["id_token", "access_token"] {
        let (status, code) = api_call(&c, &app, before[kind].as_str().unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "session_ended"),
            "{kind}"
        );
    }
    assert_eq!(
        api_call(&c, &app, after["id_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn signing_out_of_the_console_leaves_other_admins_signed_in() {
    // Arrange
    let c = client();
    let (app, root) = app_with_admin(&c).await;
    let (_, bob) = second_admin(&c, &app, &root, "bob@example.com").await;
    let cookie = console_sign_in(&c, &app, ADMIN_EMAIL).await;

    // Act
    console_sign_out(&c, &app, &cookie).await;

    // Assert: the epoch is per admin.
    assert_eq!(api_call(&c, &app, &bob).await.0, StatusCode::OK);
}
