//! Password recovery, admin resets and sign-out everywhere (issue 20), from outside: real
//! `admin-provisioner serve` processes (`tests/process`) on the built-in emulator + SQLite and on moto +
//! PostgreSQL, driven over HTTP; the results are read back from the mailbox, the database and Cognito.
//!
//! moto 5.2.5 (`moto/cognitoidp/models.py`) differs from Cognito here, and the moto tests assert only
//! what both do:
//! * `ForgotPassword` sends no e-mail: the code comes back in the response header
//!   `x-moto-forgot-password-confirmation-code` (`moto-confirmation-code:NNNNNN`), and
//!   `ConfirmForgotPassword` checks only codes that start with that prefix: any six digits are accepted,
//!   so a wrong code cannot be tested on moto. It does not check the password policy there either and
//!   leaves the user's status as it was.
//! * An unknown user gets `200` with a made-up destination from `ForgotPassword`, as Cognito with
//!   `PreventUserExistenceErrors=ENABLED`.
//! * `AdminResetUserPassword` sets `RESET_REQUIRED`, but `InitiateAuth` with `USER_PASSWORD_AUTH` still
//!   signs the user in with the old password (Cognito answers `PasswordResetRequiredException`, the
//!   product's `409 password_reset_required`, tested on the emulator); moto asserts the status only.
//! * `AdminUserGlobalSignOut` revokes the user's refresh tokens in moto too (tested on both).

mod process;

use admin_provisioner_emulator::mailbox::Mailbox;
use process::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const NEW_PASSWORD: &str = "Brand-New-Pass-42";

async fn post(server: &Server, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(server.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json::<Value>().await.unwrap_or(Value::Null))
}

/// Waits (up to 10 s) until `email` has received `n` reset mails.
async fn wait_reset_mails(d: &Deployment, email: &str, n: usize) {
    let started = Instant::now();
    while reset_mails_to(d, email) < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{email} received {} reset mails, not {n}",
            reset_mails_to(d, email)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reset_mails_to(d, email), n, "{email}: more reset mails than requests");
}

/// After `sent` reset mails to `email` have arrived: one more `forgot-password`, and the code it mails.
async fn fresh_code(d: &Deployment, server: &Server, email: &str, sent: usize) -> String {
    wait_reset_mails(d, email, sent).await;
    let (status, body) = post(server, "/api/auth/forgot-password", None, json!({"email": email})).await;
    assert_eq!(status, 202, "{body}");
    wait_reset_mails(d, email, sent + 1).await;
    Mailbox::new(d.dir.path().join("mailbox"))
        .latest_for(email)
        .unwrap()
        .and_then(|m| m.reset_code())
        .expect("a reset code in the newest message")
}

fn reset_mails_to(d: &Deployment, email: &str) -> usize {
    Mailbox::new(d.dir.path().join("mailbox"))
        .messages()
        .unwrap()
        .iter()
        .filter(|m| m.to.eq_ignore_ascii_case(email) && m.reset_code().is_some())
        .count()
}

async fn login(server: &Server, email: &str, password: &str) -> (u16, Value) {
    post(
        server,
        "/api/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await
}

/// Known and unknown addresses: the same status and body; returns the median answer times (known,
/// unknown) over `n` requests each.
async fn forgot_known_and_unknown(server: &Server, known: &str, unknown: &str, n: usize) -> (Duration, Duration) {
    let mut times = (Vec::new(), Vec::new());
    for i in 0..n {
        for (email, out) in [(known, &mut times.0), (unknown, &mut times.1)] {
            let started = Instant::now();
            let (status, body) = post(server, "/api/auth/forgot-password", None, json!({"email": email})).await;
            out.push(started.elapsed());
            assert_eq!(status, 202, "#{i} {email}: {body}");
            assert_eq!(body["status"], "accepted", "{body}");
            let (_, other) = post(
                server,
                "/api/auth/forgot-password",
                None,
                json!({"email": if email == known { unknown } else { known }}),
            )
            .await;
            assert_eq!(body, other, "known and unknown addresses get the same body");
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    (median(&mut times.0), median(&mut times.1))
}

#[tokio::test]
async fn forgot_password_on_the_emulator_mails_a_code_that_sets_a_new_password() {
    let d = Deployment::emulator_sqlite();
    d.bootstrap_root().await;
    let server = d.serve(&[]);
    d.sign_in_root(&server).await;

    // No enumeration: the same status and body, known or not; only the known address gets mail.
    let (known, unknown) = forgot_known_and_unknown(&server, ROOT_EMAIL, "nobody@example.com", 5).await;
    eprintln!("forgot-password median answer: known {known:?}, unknown {unknown:?}");
    assert_eq!(reset_mails_to(&d, "nobody@example.com"), 0);

    // Malformed input: 400 before Cognito is asked.
    let (status, body) = post(
        &server,
        "/api/auth/forgot-password",
        None,
        json!({"email": "not-an-email"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_email")),
        "{body}"
    );
    let (status, body) = post(
        &server,
        "/api/auth/confirm-forgot-password",
        None,
        json!({"email": ROOT_EMAIL, "code": "12ab", "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );

    // Every request of the burst mailed a code (each replacing the one before); once they are all in,
    // one more request gives the code that counts.
    let code = fresh_code(&d, &server, ROOT_EMAIL, 10).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, body) = post(
        &server,
        "/api/auth/confirm-forgot-password",
        None,
        json!({"email": ROOT_EMAIL, "code": wrong, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_reset_code")),
        "{body}"
    );
    assert!(!body.to_string().contains(&code), "no code in an error body");
    // An unknown address is a wrong code too.
    let (status, body) = post(
        &server,
        "/api/auth/confirm-forgot-password",
        None,
        json!({"email": "nobody@example.com", "code": code, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_reset_code")),
        "{body}"
    );
    // The policy applies; the code stays usable.
    let (status, body) = post(
        &server,
        "/api/auth/confirm-forgot-password",
        None,
        json!({"email": ROOT_EMAIL, "code": code, "new_password": "weak"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("password_policy")),
        "{body}"
    );
    let (status, body) = post(
        &server,
        "/api/auth/confirm-forgot-password",
        None,
        json!({"email": ROOT_EMAIL, "code": code, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Used once.
    let (status, body) = post(
        &server,
        "/api/auth/confirm-forgot-password",
        None,
        json!({"email": ROOT_EMAIL, "code": code, "new_password": "Another-Pass-43"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_reset_code")),
        "{body}"
    );

    let (status, body) = login(&server, ROOT_EMAIL, ROOT_PASSWORD).await;
    assert_eq!(status, 401, "the old password no longer works: {body}");
    let (status, body) = login(&server, ROOT_EMAIL, NEW_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id_token"].is_string(), "{body}");
    let log = server.log_text();
    assert!(!log.contains(&code), "the code is never logged");
    assert!(!log.contains(NEW_PASSWORD), "the password is never logged");
}

#[tokio::test]
async fn forgot_password_is_rate_limited_per_address() {
    let d = Deployment::emulator_sqlite();
    d.bootstrap_root().await;
    let server = d.serve(&[("AUTH_RATE_LIMIT_PER_MINUTE", "3")]);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, _) = post(
            &server,
            "/api/auth/forgot-password",
            None,
            json!({"email": "x@example.com"}),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(&statuses[..3], &[202, 202, 202], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn forgot_password_on_moto_and_postgres() {
    let d = Deployment::moto_postgres().await;
    d.bootstrap_root().await;
    let server = d.serve(&[]);
    d.sign_in_root(&server).await;
    let (known, unknown) = forgot_known_and_unknown(&server, ROOT_EMAIL, "nobody@example.com", 3).await;
    eprintln!("moto forgot-password median answer: known {known:?}, unknown {unknown:?}");
    // moto accepts any code that does not start with its own prefix (see the module docs).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = post(
        &server,
        "/api/auth/confirm-forgot-password",
        None,
        json!({"email": ROOT_EMAIL, "code": "123456", "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = login(&server, ROOT_EMAIL, ROOT_PASSWORD).await;
    assert_eq!(status, 401, "the old password no longer works: {body}");
    let (status, body) = login(&server, ROOT_EMAIL, NEW_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    drop(server);
    d.finish().await;
}

// ------------------------------------------------------------------------------------------------
// Resets and sign-out by another admin
// ------------------------------------------------------------------------------------------------

const VICTIM: &str = "victim.admin@example.com";
const VICTIM_PASSWORD: &str = "Victim-Pass-77";

async fn get(server: &Server, path: &str, token: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json::<Value>().await.unwrap_or(Value::Null))
}

/// Provisions `email` with `role` through the API and gives them [`VICTIM_PASSWORD`]; returns (id, tokens
/// of their first sign-in).
async fn active_admin(d: &Deployment, server: &Server, root: &str, email: &str, role: &str) -> (String, Value) {
    let (status, body) = post(server, "/api/admins", Some(root), json!({"email": email, "role": role})).await;
    assert_eq!(status, 201, "{body}");
    let id = body["user"]["id"].as_str().unwrap().to_string();
    match &d.cognito {
        Cognito::Emulator => {
            let temp = Mailbox::new(d.dir.path().join("mailbox"))
                .latest_for(email)
                .unwrap()
                .and_then(|m| m.temporary_password())
                .expect("an invitation")
                .expose()
                .to_string();
            let (status, tokens) = post(
                server,
                "/api/auth/new-password",
                None,
                json!({"username": email, "temporary_password": temp, "new_password": VICTIM_PASSWORD}),
            )
            .await;
            assert_eq!(status, 200, "{tokens}");
            (id, tokens)
        }
        Cognito::Moto { server: moto, pool } => {
            // moto sends no invitation: the password is set through the SDK, then a sign-in.
            moto.sdk_client(&pool.provider.config().region)
                .admin_set_user_password()
                .user_pool_id(&pool.user_pool_id)
                .username(email)
                .password(VICTIM_PASSWORD)
                .permanent(true)
                .send()
                .await
                .unwrap();
            let (status, tokens) = login(server, email, VICTIM_PASSWORD).await;
            assert_eq!(status, 200, "{tokens}");
            (id, tokens)
        }
    }
}

/// Whether Cognito still accepts `refresh_token` (`REFRESH_TOKEN_AUTH`): the emulator's state file, or
/// moto through the SDK.
async fn refresh_works(d: &Deployment, refresh_token: &str) -> bool {
    match &d.cognito {
        Cognito::Emulator => {
            let emu =
                admin_provisioner_emulator::CognitoEmulator::open(admin_provisioner_emulator::EmulatorConfig::file(
                    d.dir.path().join("cognito-emulator.db"),
                    d.dir.path().join("mailbox"),
                ))
                .await
                .unwrap();
            emu.refresh_tokens(&admin_provisioner_core::domain::Secret::new(refresh_token))
                .await
                .is_ok()
        }
        Cognito::Moto { pool, .. } => pool.refresh(refresh_token).await.is_ok(),
    }
}

async fn event_types(server: &Server, root: &str) -> Vec<String> {
    let (status, body) = get(server, "/api/events?limit=1000", root).await;
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn audit_actions(server: &Server, root: &str) -> Vec<(String, String)> {
    let (status, body) = get(server, "/api/audit?limit=1000", root).await;
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Sign-out everywhere, then a password reset, on one deployment: the victim's token and refresh token
/// are refused after each, the reset is `409 password_reset_required` at sign-in (moto: a
/// `NEW_PASSWORD_REQUIRED` challenge, see the module docs), audited, with its event.
async fn sign_out_and_reset_password(d: &Deployment) {
    d.bootstrap_root().await;
    let server = d.serve(&[]);
    let root = d.sign_in_root(&server).await;
    let (id, tokens) = active_admin(d, &server, &root, VICTIM, "admin").await;
    let token = tokens["id_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(get(&server, "/api/admins", &token).await.0, 200);
    assert!(
        refresh_works(d, &refresh).await,
        "the refresh token works before sign-out"
    );

    // Nobody signs themselves out this way.
    let (status, body) = get(&server, "/api/admins", &root).await;
    assert_eq!(status, 200, "{body}");
    let root_id = body["admins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == ROOT_EMAIL)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = post(
        &server,
        &format!("/api/admins/{root_id}/sign-out"),
        Some(&root),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("self_action_forbidden")),
        "{body}"
    );

    let (status, body) = post(&server, &format!("/api/admins/{id}/sign-out"), Some(&root), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&server, "/api/admins", &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("session_ended")),
        "{body}"
    );
    assert!(
        !refresh_works(d, &refresh).await,
        "Cognito refuses the refresh token after sign-out"
    );

    // A new sign-in works; then the password reset.
    let (status, tokens) = login(&server, VICTIM, VICTIM_PASSWORD).await;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["id_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let (status, body) = post(
        &server,
        &format!("/api/admins/{id}/reset-password"),
        Some(&root),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&server, "/api/admins", &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("session_ended")),
        "{body}"
    );
    assert!(
        !refresh_works(d, &refresh).await,
        "Cognito refuses the refresh token after a reset"
    );
    let (status, body) = login(&server, VICTIM, VICTIM_PASSWORD).await;
    match &d.cognito {
        Cognito::Emulator => {
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (409, Some("password_reset_required")),
                "{body}"
            );
            // The e-mailed code sets a new password.
            let code = Mailbox::new(d.dir.path().join("mailbox"))
                .latest_for(VICTIM)
                .unwrap()
                .and_then(|m| m.reset_code())
                .expect("the reset mailed a code");
            let (status, body) = post(
                &server,
                "/api/auth/confirm-forgot-password",
                None,
                json!({"email": VICTIM, "code": code, "new_password": NEW_PASSWORD}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let (status, body) = login(&server, VICTIM, NEW_PASSWORD).await;
            assert_eq!(status, 200, "{body}");
        }
        Cognito::Moto { pool, .. } => {
            // moto 5.2.5 still signs a RESET_REQUIRED user in with the old password on
            // USER_PASSWORD_AUTH (Cognito answers PasswordResetRequiredException): only the status is
            // asserted.
            use admin_provisioner_core::identity::IdentityProvider;
            assert_eq!(status, 200, "{body}");
            let user = pool.provider.admin_get_user(VICTIM).await.unwrap();
            assert_eq!(user.status.as_cognito(), "RESET_REQUIRED");
        }
    }
    let events = event_types(&server, &root).await;
    assert_eq!(
        events.iter().filter(|e| *e == "admin.password_reset").count(),
        1,
        "{events:?}"
    );
    let audit = audit_actions(&server, &root).await;
    assert!(
        audit.contains(&("reset_password".into(), "success".into())),
        "{audit:?}"
    );
    assert!(
        audit.contains(&("sign_out_admin".into(), "success".into())),
        "{audit:?}"
    );
    let log = server.log_text();
    assert!(!log.contains(&refresh), "no refresh token in the log");
    drop(server);
}

#[tokio::test]
async fn sign_out_and_password_reset_by_another_admin_on_the_emulator() {
    let d = Deployment::emulator_sqlite();
    sign_out_and_reset_password(&d).await;
    d.finish().await;
}

#[tokio::test]
async fn sign_out_and_password_reset_by_another_admin_on_moto_and_postgres() {
    let d = Deployment::moto_postgres().await;
    sign_out_and_reset_password(&d).await;
    d.finish().await;
}

#[tokio::test]
async fn a_viewer_may_not_reset_or_sign_out_and_an_invited_admin_has_no_password_to_reset() {
    let d = Deployment::emulator_sqlite();
    d.bootstrap_root().await;
    let server = d.serve(&[]);
    let root = d.sign_in_root(&server).await;
    let (victim, _) = active_admin(&d, &server, &root, VICTIM, "admin").await;
    let (_, viewer) = active_admin(&d, &server, &root, "viewer.admin@example.com", "viewer").await;
    let viewer = viewer["id_token"].as_str().unwrap().to_string();
    for verb in ["reset-password", "reset-mfa", "sign-out"] {
        let (status, body) = post(
            &server,
            &format!("/api/admins/{victim}/{verb}"),
            Some(&viewer),
            json!({}),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{verb}: {body}"
        );
    }
    let (status, body) = post(
        &server,
        "/api/admins",
        Some(&root),
        json!({"email": "invited@example.com"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let invited = body["user"]["id"].as_str().unwrap().to_string();
    let (status, body) = post(
        &server,
        &format!("/api/admins/{invited}/reset-password"),
        Some(&root),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_active")),
        "{body}"
    );
    let events = event_types(&server, &root).await;
    assert!(!events.iter().any(|e| e == "admin.password_reset"), "{events:?}");
}

/// An admin who enrolled an authenticator (emulator, `COGNITO_EMULATOR_MFA=optional`) is asked for a
/// code at sign-in; after another admin's MFA reset they are signed out, their enrolment is cleared in the
/// database, the event `admin.mfa_reset` is written and the next sign-in asks for no code.
#[tokio::test]
async fn mfa_reset_by_another_admin_clears_the_authenticator() {
    let d = Deployment::emulator_sqlite();
    d.bootstrap_root().await;
    let server = d.serve(&[("COGNITO_EMULATOR_MFA", "optional")]);
    let root = d.sign_in_root(&server).await;
    let (id, tokens) = active_admin(&d, &server, &root, VICTIM, "admin").await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let client = reqwest::Client::new();
    let setup: Value = client
        .post(server.url("/api/auth/mfa/setup"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = setup["secret_code"].as_str().expect("a secret").to_string();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let code = admin_provisioner_core::totp::code_at(&secret, now()).unwrap();
    let res = client
        .post(server.url("/api/auth/mfa/verify"))
        .bearer_auth(&access)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204, "{}", res.text().await.unwrap());
    let (status, body) = login(&server, VICTIM, VICTIM_PASSWORD).await;
    assert_eq!(
        (status, body["challenge"].as_str()),
        (200, Some("SOFTWARE_TOKEN_MFA")),
        "{body}"
    );

    let (status, body) = post(&server, &format!("/api/admins/{id}/reset-mfa"), Some(&root), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&server, "/api/admins", tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("session_ended")),
        "{body}"
    );
    let record = d.store().await.find_admin_by_email(VICTIM).await.unwrap().unwrap();
    assert_eq!(record.user.id.to_string(), id);
    assert_eq!(record.user.mfa_enrolled_at, None);
    let (status, body) = login(&server, VICTIM, VICTIM_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id_token"].is_string(), "no code asked after the reset: {body}");
    let events = event_types(&server, &root).await;
    assert_eq!(
        events.iter().filter(|e| *e == "admin.mfa_reset").count(),
        1,
        "{events:?}"
    );
    let audit = audit_actions(&server, &root).await;
    assert!(audit.contains(&("reset_mfa".into(), "success".into())), "{audit:?}");
}

// ------------------------------------------------------------------------------------------------
// The console's recovery pages
// ------------------------------------------------------------------------------------------------

async fn form(
    server: &Server,
    path: &str,
    fields: &[(&str, &str)],
    origin: Option<&str>,
) -> (u16, String, Option<String>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.post(server.url(path)).form(fields);
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_string());
    (status, res.text().await.unwrap(), location)
}

/// `/login/forgot` answers the same page for a known and an unknown address (only the address typed
/// differs), refuses a cross-site form, and `/login/reset` with the mailed code sets the password and
/// leads back to the sign-in page; a sign-in after an admin's reset shows the reset page.
#[tokio::test]
async fn console_recovery_pages_on_the_emulator() {
    let d = Deployment::emulator_sqlite();
    d.bootstrap_root().await;
    let server = d.serve(&[]);
    let root = d.sign_in_root(&server).await;
    let page = reqwest::get(server.url("/login/forgot")).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("action=\"/login/forgot\""));
    let login_page = reqwest::get(server.url("/login")).await.unwrap().text().await.unwrap();
    assert!(
        login_page.contains("href=\"/login/forgot\""),
        "the sign-in page links to recovery"
    );

    let (status, known, _) = form(&server, "/login/forgot", &[("email", ROOT_EMAIL)], None).await;
    assert_eq!(status, 202);
    let (status, unknown, _) = form(&server, "/login/forgot", &[("email", "nobody@example.com")], None).await;
    assert_eq!(status, 202);
    assert_eq!(
        known.replace(ROOT_EMAIL, "E"),
        unknown.replace("nobody@example.com", "E"),
        "known and unknown addresses get the same page"
    );
    let (status, _, _) = form(
        &server,
        "/login/forgot",
        &[("email", ROOT_EMAIL)],
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(status, 403, "a cross-site form is refused");

    let code = fresh_code(&d, &server, ROOT_EMAIL, 1).await;
    let (status, page, _) = form(
        &server,
        "/login/reset",
        &[
            ("email", ROOT_EMAIL),
            ("code", &code),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", "Different-1!"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 400, "{page}");
    let (status, _, location) = form(
        &server,
        "/login/reset",
        &[
            ("email", ROOT_EMAIL),
            ("code", &code),
            ("new_password", NEW_PASSWORD),
            ("confirm_password", NEW_PASSWORD),
        ],
        None,
    )
    .await;
    assert_eq!((status, location.as_deref()), (303, Some("/login")));
    let (status, _) = login(&server, ROOT_EMAIL, NEW_PASSWORD).await;
    assert_eq!(status, 200);

    // An admin's reset: the console's sign-in leads to the code page.
    let (id, _) = active_admin(&d, &server, &root, VICTIM, "admin").await;
    let root = login(&server, ROOT_EMAIL, NEW_PASSWORD).await.1["id_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = post(
        &server,
        &format!("/api/admins/{id}/reset-password"),
        Some(&root),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, page, _) = form(
        &server,
        "/login",
        &[("email", VICTIM), ("password", VICTIM_PASSWORD)],
        None,
    )
    .await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("action=\"/login/reset\""), "{page}");
    assert!(page.contains("An admin reset your password"), "{page}");
}
