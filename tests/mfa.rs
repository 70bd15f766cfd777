//! Sign-in as Cognito's challenge loop with software-token MFA (issue 20), through the HTTP API on the
//! built-in emulator and SQLite, on a manual clock (codes are computed from the secret the API shows, at
//! the clock's time, with `admin_provisioner_core::totp`).
//!
//! * `COGNITO_EMULATOR_MFA=on`: first login → `NEW_PASSWORD_REQUIRED` → `MFA_SETUP` (secret + URI) →
//!   code → tokens; later sign-ins → `SOFTWARE_TOKEN_MFA`; a wrong code, a replayed code and an expired
//!   challenge session each get their documented answer.
//! * `COGNITO_EMULATOR_MFA=optional` + `REQUIRE_MFA=true`: `403 mfa_enrollment_required` until the
//!   admin enrols through `/api/auth/mfa/setup` and `/api/auth/mfa/verify`.

mod common;

use admin_provisioner_core::clock::Clock;
use admin_provisioner_core::totp;
use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

fn code(t: &TestApp, secret: &str) -> String {
    totp::code_at(secret, u64::try_from(t.clock.now().timestamp()).unwrap()).unwrap()
}

/// The step after the current one: a code of it is accepted (±1 step) and differs from the current.
fn next_step(t: &TestApp) {
    t.clock.advance(chrono::Duration::seconds(30));
}

async fn respond(t: &TestApp, body: Value) -> Res {
    t.post("/api/auth/respond", None, body).await
}

async fn mfa_enrolled_at(t: &TestApp, email: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    t.app
        .provisioner
        .admin_store()
        .find_admin_by_email(email)
        .await
        .unwrap()
        .unwrap()
        .user
        .mfa_enrolled_at
}

/// First login on an MFA=ON pool up to `MFA_SETUP`'s secret: (session, username, secret).
async fn first_login_to_mfa_setup(t: &TestApp, email: &str) -> (String, String, String) {
    let temp = t.temp_password(email);
    let res = t
        .post("/api/auth/login", None, json!({"email": email, "password": temp}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let ch = res.json();
    assert_eq!(ch["challenge"], "NEW_PASSWORD_REQUIRED", "{ch}");
    let res = respond(
        t,
        json!({"challenge": "NEW_PASSWORD_REQUIRED", "username": ch["username"], "session": ch["session"],
               "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let ch = res.json();
    assert_eq!(
        ch["challenge"], "MFA_SETUP",
        "a new password on an MFA=ON pool leads to MFA_SETUP: {ch}"
    );
    assert!(ch.get("id_token").is_none());
    let res = respond(
        t,
        json!({"challenge": "MFA_SETUP", "username": ch["username"], "session": ch["session"]}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let setup = res.json();
    let secret = setup["secret_code"].as_str().unwrap().to_string();
    let uri = setup["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/admin-provisioner:"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert_ne!(
        setup["session"], ch["session"],
        "each MFA_SETUP step hands out a new session"
    );
    (
        setup["session"].as_str().unwrap().to_string(),
        setup["username"].as_str().unwrap().to_string(),
        secret,
    )
}

#[tokio::test]
async fn mfa_on_first_login_enrols_then_every_sign_in_asks_for_a_code_once() {
    let t = bare_app_with(|c| {
        c.cognito_emulator_mfa = "on".into();
        // More sign-in steps than the default per-address budget of 10 a minute.
        c.auth_rate_limit_per_minute = 100;
    })
    .await;
    t.app.provisioner.bootstrap_admin(ADMIN_EMAIL, None).await.unwrap();
    let (session, username, secret) = first_login_to_mfa_setup(&t, ADMIN_EMAIL).await;

    // A wrong code: 401 invalid_mfa_code, nothing enrolled.
    let wrong = if code(&t, &secret) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let res = respond(
        &t,
        json!({"challenge": "MFA_SETUP", "username": username, "session": session, "code": wrong}),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text);
    assert_eq!(res.code(), "invalid_mfa_code");
    assert_eq!(mfa_enrolled_at(&t, ADMIN_EMAIL).await, None);
    // Not six digits: 400 before Cognito is asked.
    let res = respond(
        &t,
        json!({"challenge": "MFA_SETUP", "username": username, "session": session, "code": "12ab"}),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text);

    // The right code: tokens; the admin is active and the enrolment is recorded.
    let setup_code = code(&t, &secret);
    let res = respond(
        &t,
        json!({"challenge": "MFA_SETUP", "username": username, "session": session, "code": setup_code}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let id_token = res.json()["id_token"].as_str().unwrap().to_string();
    assert!(mfa_enrolled_at(&t, ADMIN_EMAIL).await.is_some());
    assert_eq!(t.get("/api/admins", Some(&id_token)).await.status, StatusCode::OK);

    // Next sign-in: SOFTWARE_TOKEN_MFA. The code used at setup is refused (a code works once).
    let res = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": NEW_PASSWORD}),
        )
        .await;
    let ch = res.json();
    assert_eq!(ch["challenge"], "SOFTWARE_TOKEN_MFA", "{ch}");
    let answer = |code: &str| json!({"challenge": "SOFTWARE_TOKEN_MFA", "username": ch["username"], "session": ch["session"], "code": code});
    let res = respond(&t, answer(&setup_code)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text);
    assert_eq!(res.code(), "invalid_mfa_code", "a replayed code is refused");
    // The refusal leaves the challenge open: the next step's code signs in.
    next_step(&t);
    let fresh = code(&t, &secret);
    let res = respond(&t, answer(&fresh)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert!(res.json()["id_token"].is_string());
    // The same session again: it was used up.
    let res = respond(&t, answer(&fresh)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text);

    // Replay of the code that just signed in, on a new challenge: refused.
    let res = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": NEW_PASSWORD}),
        )
        .await;
    let ch2 = res.json();
    assert_eq!(ch2["challenge"], "SOFTWARE_TOKEN_MFA", "{ch2}");
    let res = respond(
        &t,
        json!({"challenge": "SOFTWARE_TOKEN_MFA", "username": ch2["username"], "session": ch2["session"], "code": fresh}),
    )
    .await;
    assert_eq!(res.code(), "invalid_mfa_code", "{}", res.text);
}

#[tokio::test]
async fn an_expired_mfa_challenge_session_is_invalid_credentials() {
    let t = bare_app_with(|c| c.cognito_emulator_mfa = "on".into()).await;
    t.app.provisioner.bootstrap_admin(ADMIN_EMAIL, None).await.unwrap();
    let (session, username, secret) = first_login_to_mfa_setup(&t, ADMIN_EMAIL).await;
    // Three minutes and a second later the MFA_SETUP session is gone, even with the right code.
    t.clock.advance(chrono::Duration::seconds(181));
    let res = respond(
        &t,
        json!({"challenge": "MFA_SETUP", "username": username, "session": session, "code": code(&t, &secret)}),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text);
    assert_eq!(res.code(), "invalid_credentials");
    // A made-up session for SOFTWARE_TOKEN_MFA: the same answer.
    let res = respond(
        &t,
        json!({"challenge": "SOFTWARE_TOKEN_MFA", "username": username, "session": "made-up", "code": "123456"}),
    )
    .await;
    assert_eq!(res.code(), "invalid_credentials", "{}", res.text);
    // An unknown challenge name or a missing answer: 400.
    let res = respond(
        &t,
        json!({"challenge": "SMS_MFA", "username": username, "session": "s"}),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text);
    let res = respond(
        &t,
        json!({"challenge": "SOFTWARE_TOKEN_MFA", "username": username, "session": "s"}),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text);
}

#[tokio::test]
async fn require_mfa_refuses_everything_but_enrolment_until_an_authenticator_is_verified() {
    let t = bare_app_with(|c| {
        c.cognito_emulator_mfa = "optional".into();
        c.require_mfa = true;
    })
    .await;
    t.app.provisioner.bootstrap_admin(ADMIN_EMAIL, None).await.unwrap();
    let admin = t.activate(ADMIN_EMAIL).await;
    let res = t.get("/api/admins", Some(&admin.id_token)).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text);
    assert_eq!(res.code(), "mfa_enrollment_required");
    let res = t
        .post("/api/admins", Some(&admin.id_token), json!({"email": "x@example.com"}))
        .await;
    assert_eq!(res.code(), "mfa_enrollment_required", "{}", res.text);

    // Enrolment needs the access token (AssociateSoftwareToken); the ID token is refused.
    let res = t.post("/api/auth/mfa/setup", Some(&admin.id_token), json!({})).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text);
    let res = t
        .post("/api/auth/mfa/setup", Some(&admin.access_token), json!({}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let secret = res.json()["secret_code"].as_str().unwrap().to_string();
    assert!(res.json()["otpauth_uri"].as_str().unwrap().contains(&secret));

    let res = t
        .post(
            "/api/auth/mfa/verify",
            Some(&admin.access_token),
            json!({"code": "000000"}),
        )
        .await;
    if code(&t, &secret) != "000000" {
        assert_eq!(res.code(), "invalid_mfa_code", "{}", res.text);
    }
    assert_eq!(mfa_enrolled_at(&t, ADMIN_EMAIL).await, None);
    let res = t
        .post(
            "/api/auth/mfa/verify",
            Some(&admin.access_token),
            json!({"code": code(&t, &secret)}),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    assert!(mfa_enrolled_at(&t, ADMIN_EMAIL).await.is_some());
    assert_eq!(t.get("/api/admins", Some(&admin.id_token)).await.status, StatusCode::OK);

    // The pool is OPTIONAL: with the preference set, sign-in now asks for a code.
    next_step(&t);
    let res = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": NEW_PASSWORD}),
        )
        .await;
    let ch = res.json();
    assert_eq!(ch["challenge"], "SOFTWARE_TOKEN_MFA", "{ch}");
    let res = respond(
        &t,
        json!({"challenge": "SOFTWARE_TOKEN_MFA", "username": ch["username"], "session": ch["session"],
               "code": code(&t, &secret)}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
}

#[tokio::test]
async fn without_mfa_the_sign_in_is_unchanged() {
    let t = test_app().await;
    let res = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": NEW_PASSWORD}),
        )
        .await;
    assert!(res.json()["id_token"].is_string(), "{}", res.text);
    assert_eq!(mfa_enrolled_at(&t, ADMIN_EMAIL).await, None);
    assert_eq!(t.get("/api/admins", Some(t.token())).await.status, StatusCode::OK);
}

/// An MFA reset by another admin (here the operator) on an MFA=ON pool: the enrolment is cleared in
/// both systems, so the next sign-in asks for a new authenticator (`MFA_SETUP`), not a code.
#[tokio::test]
async fn after_an_mfa_reset_the_next_sign_in_enrols_again() {
    let t = bare_app_with(|c| {
        c.cognito_emulator_mfa = "on".into();
        c.auth_rate_limit_per_minute = 100;
    })
    .await;
    let admin = t.app.provisioner.bootstrap_admin(ADMIN_EMAIL, None).await.unwrap();
    let (session, username, secret) = first_login_to_mfa_setup(&t, ADMIN_EMAIL).await;
    let res = respond(
        &t,
        json!({"challenge": "MFA_SETUP", "username": username, "session": session, "code": code(&t, &secret)}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert!(mfa_enrolled_at(&t, ADMIN_EMAIL).await.is_some());

    t.app
        .provisioner
        .reset_admin_mfa(&admin_provisioner_core::Caller::Operator, admin.user.id, None)
        .await
        .unwrap();
    assert_eq!(mfa_enrolled_at(&t, ADMIN_EMAIL).await, None);
    let res = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["challenge"], "MFA_SETUP", "{}", res.text);
}
