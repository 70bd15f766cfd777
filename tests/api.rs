//! Specification of the HTTP API (contract.md, "HTTP API"), driven in-process through the router.
//!
//! One behaviour per test, Arrange / Act / Assert. Each test has its own temporary database, emulator
//! state and mailbox (see `common`).

mod common;

use admin_provisioner::app::App;
use admin_provisioner::http::{self, AppState};
use admin_provisioner_core::domain::{Actor, Password, Secret, TemporaryPassword, Tokens, UserId};
use admin_provisioner_core::faults::FaultMode;
use admin_provisioner_core::identity::{
    op, AuthOutcome, CreateUserRequest, IdentityProvider, IdpError, IdpUser, MessageAction, TokenSettings, UserPage,
};
use admin_provisioner_core::store::{SagaKind, SagaRecord, SagaState};
use admin_provisioner_core::Provisioner;
use admin_provisioner_emulator::{CognitoEmulator, EmulatorConfig};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

/// An ID token for the first admin, signed with the pool's real key by a second emulator on the same
/// state file whose configuration `tweak` changes (issuer, app client, clock).
async fn tweaked_token(t: &TestApp, tweak: impl FnOnce(&mut EmulatorConfig)) -> String {
    let mut ec = EmulatorConfig::file(&t.app.config.emulator_state, t.dir.path().join("other-mailbox"));
    tweak(&mut ec);
    let emu = CognitoEmulator::open(ec).await.unwrap();
    match emu
        .initiate_auth(ADMIN_EMAIL, &Password::new(NEW_PASSWORD))
        .await
        .unwrap()
    {
        AuthOutcome::Tokens(tokens) => tokens.id_token.expose().to_string(),
        _ => panic!("the admin is already active"),
    }
}

/// Completes a first login directly in Cognito (bypassing the product), returning the tokens.
async fn cognito_first_login(emu: &CognitoEmulator, email: &str, temp: &str) -> Tokens {
    match emu.initiate_auth(email, &Password::new(temp)).await.unwrap() {
        AuthOutcome::NewPasswordRequired { session, username } => emu
            .respond_to_new_password_challenge(&username, &session, &Password::new(NEW_PASSWORD))
            .await
            .unwrap(),
        _ => panic!("expected NEW_PASSWORD_REQUIRED"),
    }
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn an_unknown_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn admin_line(t: &TestApp, token: &str, email: &str) -> Value {
    let list = t.get("/api/admins", Some(token)).await.json();
    list["admins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == email)
        .cloned()
        .unwrap_or_else(|| panic!("{email} not listed: {list}"))
}

// ---------------------------------------------------------------------------------------------------
// POST /api/admins
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_admin_answers_201_with_user_admin_info_and_invite() {
    let t = test_app().await;

    let res = t
        .post(
            "/api/admins",
            Some(t.token()),
            json!({"email": "New.Admin@Example.com"}),
        )
        .await;

    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let body = res.json();
    assert_eq!(body["user"]["email"], "New.Admin@Example.com");
    assert_eq!(body["user"]["email_normalized"], "new.admin@example.com");
    assert_eq!(body["user"]["status"], "invited");
    assert_eq!(body["admin_info"]["user_id"], body["user"]["id"]);
    assert_eq!(body["admin_info"]["invited_by"].as_str(), Some(t.admin().id.as_str()));
    assert_eq!(body["invite"]["status"], "invited");
    assert_eq!(body["invite"]["invites_sent"], 1);
    assert_eq!(t.invitations_to("new.admin@example.com"), 1);
}

#[tokio::test]
async fn create_admin_accepts_an_access_token() {
    let t = test_app().await;

    let res = t
        .post(
            "/api/admins",
            Some(&t.admin().access_token),
            json!({"email": "via.access@example.com"}),
        )
        .await;

    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
}

#[tokio::test]
async fn create_admin_with_a_malformed_email_is_400_invalid_email() {
    let t = test_app().await;

    let res = t
        .post("/api/admins", Some(t.token()), json!({"email": "not-an-email"}))
        .await;

    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.code(), "invalid_email");
}

#[tokio::test]
async fn create_admin_with_invalid_json_is_400_invalid_request() {
    let t = test_app().await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/admins")
        .header("authorization", format!("Bearer {}", t.token()))
        .header("content-type", "application/json")
        .body(Body::from("{\"email\": "))
        .unwrap();

    let res = t.call(req).await;

    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.code(), "invalid_request");
}

#[tokio::test]
async fn create_admin_without_the_email_field_is_400_invalid_request_naming_it() {
    let t = test_app().await;

    let res = t
        .post("/api/admins", Some(t.token()), json!({"mail": "a@example.com"}))
        .await;

    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.code(), "invalid_request");
    assert!(res.json()["error"]["message"].as_str().unwrap().contains("email"));
}

#[tokio::test]
async fn create_admin_for_an_existing_admin_is_409_admin_exists() {
    let t = test_app().await;
    t.invite("twice@example.com").await;

    let res = t
        .post("/api/admins", Some(t.token()), json!({"email": "TWICE@example.com"}))
        .await;

    assert_eq!(res.status, StatusCode::CONFLICT);
    assert_eq!(res.code(), "admin_exists");
}

#[tokio::test]
async fn create_admin_when_cognito_throttles_is_429_rate_limited() {
    let t = test_app().await;
    t.faults
        .fail_idp(op::ADMIN_CREATE_USER, FaultMode::Error, None, IdpError::TooManyRequests);

    let res = t
        .post("/api/admins", Some(t.token()), json!({"email": "slow@example.com"}))
        .await;

    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.code(), "rate_limited");
    assert!(res.header("retry-after").is_some());
}

#[tokio::test]
async fn create_admin_when_cognito_is_down_is_502_identity_provider_unavailable() {
    let t = test_app().await;
    t.faults.fail(op::ADMIN_CREATE_USER, FaultMode::Error, None);

    let res = t
        .post("/api/admins", Some(t.token()), json!({"email": "down@example.com"}))
        .await;

    assert_eq!(res.status, StatusCode::BAD_GATEWAY);
    assert_eq!(res.code(), "identity_provider_unavailable");
}

#[tokio::test]
async fn create_admin_failure_leaves_no_admin_behind() {
    let t = test_app().await;
    t.faults.fail(op::ADMIN_CREATE_USER, FaultMode::Error, None);
    t.post("/api/admins", Some(t.token()), json!({"email": "down@example.com"}))
        .await;
    t.faults.clear();

    let res = t.get("/api/admins", Some(t.token())).await;

    let emails: Vec<Value> = res.json()["admins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].clone())
        .collect();
    assert_eq!(emails, vec![json!(ADMIN_EMAIL)]);
}

// ---------------------------------------------------------------------------------------------------
// Authentication: 401 and 403
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_request_without_a_token_is_401_with_www_authenticate() {
    let t = test_app().await;

    let res = t.post("/api/admins", None, json!({"email": "x@example.com"})).await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.code(), "unauthorized");
    let challenge = res.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

#[tokio::test]
async fn a_garbage_token_is_401() {
    let t = test_app().await;

    let res = t.get("/api/admins", Some("not.a.jwt")).await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.code(), "unauthorized");
}

#[tokio::test]
async fn an_expired_token_is_401() {
    let t = test_app().await;
    let token = t.token().to_string();
    t.clock.advance(chrono::Duration::hours(2));

    let res = t.get("/api/admins", Some(&token)).await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.json()["error"]["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn a_token_from_another_issuer_is_401() {
    let t = test_app().await;
    let token = tweaked_token(&t, |ec| {
        ec.issuer = Some("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other0001".into())
    })
    .await;

    let res = t.get("/api/admins", Some(&token)).await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.json()["error"]["message"].as_str().unwrap().contains("issuer"));
}

#[tokio::test]
async fn an_id_token_for_another_app_client_is_401() {
    let t = test_app().await;
    let token = tweaked_token(&t, |ec| ec.client_id = "0therappclient0000000000zz".into()).await;

    let res = t.get("/api/admins", Some(&token)).await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.json()["error"]["message"].as_str().unwrap().contains("aud"));
}

#[tokio::test]
async fn a_token_that_expired_by_its_own_clock_is_401() {
    let t = test_app().await;
    let token = tweaked_token(&t, |ec| {
        let past = admin_provisioner_core::clock::ManualClock::new();
        past.advance(chrono::Duration::hours(-2));
        ec.clock = Arc::new(past);
    })
    .await;

    let res = t.get("/api/admins", Some(&token)).await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_hs256_token_with_the_pools_kid_is_401() {
    let t = test_app().await;
    let real = t.token();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = jsonwebtoken::decode_header(real).unwrap().kid;
    let jwks = t.get("/emulator/.well-known/jwks.json", None).await.json();
    let secret = jwks["keys"][0]["n"].as_str().unwrap().as_bytes().to_vec();
    let forged = jsonwebtoken::encode(
        &header,
        &claims_of(real),
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap();

    let res = t.get("/api/admins", Some(&forged)).await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.json()["error"]["message"].as_str().unwrap().contains("RS256"));
}

#[tokio::test]
async fn a_valid_token_of_a_user_who_is_not_an_admin_is_403_forbidden() {
    let t = test_app().await;
    let emu = t.emulator();
    emu.admin_create_user(CreateUserRequest {
        username: "outsider@example.com".into(),
        email: "outsider@example.com".into(),
        temporary_password: Some(TemporaryPassword::new("Temp#Pass12")),
        message_action: Some(MessageAction::Suppress),
    })
    .await
    .unwrap();
    let tokens = cognito_first_login(&emu, "outsider@example.com", "Temp#Pass12").await;

    let res = t.get("/api/admins", Some(tokens.id_token.expose())).await;

    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.code(), "forbidden");
}

/// The first login happened in Cognito but not through the product (or its activation write was lost):
/// the token proves the password change, so the first request marks the admin active instead of a 403
/// (issue 18, finding 8; the reconciler applies the same rule).
#[tokio::test]
async fn an_invited_admin_who_completed_first_login_elsewhere_is_activated_by_their_first_request() {
    let t = test_app().await;
    t.invite("invitee@example.com").await;
    let temp = t.temp_password("invitee@example.com");
    let tokens = cognito_first_login(&t.emulator(), "invitee@example.com", &temp).await;

    let res = t
        .post(
            "/api/admins",
            Some(tokens.id_token.expose()),
            json!({"email": "z@example.com"}),
        )
        .await;

    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.text);
    assert_eq!(
        admin_line(&t, t.token(), "invitee@example.com").await["status"],
        "active"
    );
}

// ---------------------------------------------------------------------------------------------------
// GET /api/admins and /api/admins/{id}
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_shows_active_and_invited_admins() {
    let t = test_app().await;
    t.invite("second@example.com").await;

    let res = t.get("/api/admins", Some(t.token())).await;

    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(admin_line(&t, t.token(), ADMIN_EMAIL).await["status"], "active");
    let second = admin_line(&t, t.token(), "second@example.com").await;
    assert_eq!(second["status"], "invited");
    assert_eq!(second["invite"]["invites_sent"], 1);
}

#[tokio::test]
async fn list_shows_expired_after_the_invite_validity() {
    let t = test_app().await;
    t.invite("late@example.com").await;
    t.clock
        .advance(chrono::Duration::days(7) + chrono::Duration::minutes(1));
    let token = t.login(ADMIN_EMAIL, NEW_PASSWORD).await;

    let line = admin_line(&t, &token, "late@example.com").await;

    assert_eq!(line["status"], "expired");
    assert_eq!(line["invite"]["status"], "expired");
}

#[tokio::test]
async fn list_shows_an_unfinished_provisioning_as_pending() {
    let t = test_app().await;
    let now = t.app.provisioner.now();
    let user_id = UserId::new();
    t.app
        .store
        .begin(SagaRecord {
            id: uuid::Uuid::new_v4(),
            kind: SagaKind::Provision,
            actor: Actor::Operator,
            email: "halfway@example.com".into(),
            email_normalized: "halfway@example.com".into(),
            user_id,
            cognito_username: "halfway@example.com".into(),
            cognito_sub: None,
            identity_created_by_saga: false,
            invite_delivered: true,
            state: SagaState::IdentityCreating,
            attempts: 0,
            last_error: None,
            request_id: None,
            started_at: now,
            updated_at: now,
            owner: None,
            lease_expires_at: None,
            scim: None,
            role: None,
        })
        .await
        .unwrap();

    let line = admin_line(&t, t.token(), "halfway@example.com").await;

    assert_eq!(line["status"], "pending");
    assert_eq!(line["id"], user_id.to_string());
}

#[tokio::test]
async fn list_without_a_token_is_401() {
    let t = test_app().await;

    let res = t.get("/api/admins", None).await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn get_admin_by_id_is_200() {
    let t = test_app().await;
    let id = t.invite("one@example.com").await;

    let res = t.get(&format!("/api/admins/{id}"), Some(t.token())).await;

    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["email"], "one@example.com");
    assert_eq!(res.json()["status"], "invited");
}

#[tokio::test]
async fn get_unknown_admin_is_404_not_found() {
    let t = test_app().await;

    let res = t
        .get(&format!("/api/admins/{}", an_unknown_id()), Some(t.token()))
        .await;

    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.code(), "not_found");
}

#[tokio::test]
async fn get_admin_with_a_non_uuid_id_is_400_invalid_request() {
    let t = test_app().await;

    let res = t.get("/api/admins/42", Some(t.token())).await;

    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.code(), "invalid_request");
}

// ---------------------------------------------------------------------------------------------------
// POST /api/admins/{id}/resend-invite
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn resend_after_the_cooldown_is_200_with_a_new_invite() {
    let t = test_app().await;
    let id = t.invite("again@example.com").await;
    let first_password = t.temp_password("again@example.com");
    t.clock.advance(chrono::Duration::seconds(61));

    let res = t
        .post(&format!("/api/admins/{id}/resend-invite"), Some(t.token()), json!({}))
        .await;

    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["invite"]["invites_sent"], 2);
    assert_eq!(t.invitations_to("again@example.com"), 2);
    assert_ne!(t.temp_password("again@example.com"), first_password);
}

#[tokio::test]
async fn resend_within_the_cooldown_is_429_resend_cooldown_with_retry_after() {
    let t = test_app().await;
    let id = t.invite("eager@example.com").await;

    let res = t
        .post(&format!("/api/admins/{id}/resend-invite"), Some(t.token()), json!({}))
        .await;

    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.code(), "resend_cooldown");
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

#[tokio::test]
async fn resend_to_an_active_admin_is_409_already_active() {
    let t = test_app().await;

    let res = t
        .post(
            &format!("/api/admins/{}/resend-invite", t.admin().id),
            Some(t.token()),
            json!({}),
        )
        .await;

    assert_eq!(res.status, StatusCode::CONFLICT);
    assert_eq!(res.code(), "already_active");
}

#[tokio::test]
async fn resend_to_an_unknown_admin_is_404() {
    let t = test_app().await;

    let res = t
        .post(
            &format!("/api/admins/{}/resend-invite", an_unknown_id()),
            Some(t.token()),
            json!({}),
        )
        .await;

    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.code(), "not_found");
}

// ---------------------------------------------------------------------------------------------------
// DELETE /api/admins/{id}
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn delete_an_invited_admin_is_204_and_removes_them() {
    let t = test_app().await;
    let id = t.invite("gone@example.com").await;

    let res = t.delete(&format!("/api/admins/{id}"), Some(t.token())).await;

    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.text.is_empty());
    let after = t.get(&format!("/api/admins/{id}"), Some(t.token())).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
    let cognito = t.emulator().admin_get_user("gone@example.com").await;
    assert_eq!(cognito.unwrap_err(), IdpError::UserNotFound);
}

#[tokio::test]
async fn delete_an_active_admin_is_204_and_removes_them_from_both_systems() {
    let t = test_app().await;
    let id = t.invite("leaver@example.com").await;
    let leaver = t.activate("leaver@example.com").await;

    let res = t.delete(&format!("/api/admins/{id}"), Some(t.token())).await;

    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get("/api/admins", Some(&leaver.id_token)).await.status,
        StatusCode::FORBIDDEN
    );
    let cognito = t.emulator().admin_get_user("leaver@example.com").await;
    assert_eq!(cognito.unwrap_err(), IdpError::UserNotFound);
}

#[tokio::test]
async fn delete_of_oneself_is_403_and_the_last_active_admin_stays_for_every_caller() {
    let t = test_app().await;

    // Through the API the last active admin can only be the caller: self-protection answers.
    let res = t
        .delete(&format!("/api/admins/{}", t.admin().id), Some(t.token()))
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.code(), "self_action_forbidden");

    // The operator (CLI) and SCIM are not the admin: the last-admin guard answers them.
    let id = admin_provisioner_core::domain::UserId(t.admin().id.parse().unwrap());
    let err = t
        .app
        .provisioner
        .remove_admin(&admin_provisioner_core::Caller::Operator, id, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "last_admin");
    assert!(t.app.provisioner.get_admin_view(id).await.is_ok());
}

#[tokio::test]
async fn delete_an_unknown_admin_is_404() {
    let t = test_app().await;

    let res = t
        .delete(&format!("/api/admins/{}", an_unknown_id()), Some(t.token()))
        .await;

    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.code(), "not_found");
}

// ---------------------------------------------------------------------------------------------------
// POST /api/auth/login and /api/auth/new-password
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_of_an_active_admin_returns_tokens() {
    let t = test_app().await;

    let res = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": NEW_PASSWORD}),
        )
        .await;

    assert_eq!(res.status, StatusCode::OK);
    let body = res.json();
    for field in ["id_token", "access_token", "refresh_token"] {
        assert!(body[field].as_str().is_some_and(|s| !s.is_empty()), "{field}");
    }
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(claims_of(body["id_token"].as_str().unwrap())["token_use"], "id");
}

#[tokio::test]
async fn login_with_the_temporary_password_returns_the_new_password_challenge() {
    let t = test_app().await;
    t.invite("first.time@example.com").await;
    let temp = t.temp_password("first.time@example.com");

    let res = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": "first.time@example.com", "password": temp}),
        )
        .await;

    assert_eq!(res.status, StatusCode::OK);
    let body = res.json();
    assert_eq!(body["challenge"], "NEW_PASSWORD_REQUIRED");
    assert!(body["session"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(body["username"], "first.time@example.com");
    assert!(body.get("id_token").is_none());
}

#[tokio::test]
async fn login_with_a_wrong_password_is_401_invalid_credentials() {
    let t = test_app().await;

    let res = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": "Wrong-Pass-9"}),
        )
        .await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.code(), "invalid_credentials");
}

#[tokio::test]
async fn new_password_with_the_temporary_password_returns_tokens_and_activates() {
    let t = test_app().await;
    t.invite("newbie@example.com").await;
    let temp = t.temp_password("newbie@example.com");

    let res = t
        .post(
            "/api/auth/new-password",
            None,
            json!({"username": "newbie@example.com", "temporary_password": temp, "new_password": NEW_PASSWORD}),
        )
        .await;

    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let token = res.json()["id_token"].as_str().unwrap().to_string();
    assert_eq!(t.get("/api/admins", Some(&token)).await.status, StatusCode::OK);
    assert_eq!(
        admin_line(&t, t.token(), "newbie@example.com").await["status"],
        "active"
    );
}

#[tokio::test]
async fn new_password_with_the_challenge_session_returns_tokens() {
    let t = test_app().await;
    t.invite("session.user@example.com").await;
    let temp = t.temp_password("session.user@example.com");
    let challenge = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": "session.user@example.com", "password": temp}),
        )
        .await
        .json();

    let res = t
        .post(
            "/api/auth/new-password",
            None,
            json!({"username": challenge["username"], "session": challenge["session"], "new_password": NEW_PASSWORD}),
        )
        .await;

    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert!(res.json()["id_token"].as_str().is_some());
}

#[tokio::test]
async fn new_password_that_breaks_the_policy_is_400_password_policy() {
    let t = test_app().await;
    t.invite("weak@example.com").await;
    let temp = t.temp_password("weak@example.com");

    let res = t
        .post(
            "/api/auth/new-password",
            None,
            json!({"username": "weak@example.com", "temporary_password": temp, "new_password": "password"}),
        )
        .await;

    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.code(), "password_policy");
}

#[tokio::test]
async fn new_password_with_a_wrong_temporary_password_is_401() {
    let t = test_app().await;
    t.invite("wrongtemp@example.com").await;

    let res = t
        .post(
            "/api/auth/new-password",
            None,
            json!({"username": "wrongtemp@example.com", "temporary_password": "Nope-Nope-1", "new_password": NEW_PASSWORD}),
        )
        .await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.code(), "invalid_credentials");
}

#[tokio::test]
async fn new_password_without_temporary_password_or_session_is_400_invalid_request() {
    let t = test_app().await;

    let res = t
        .post(
            "/api/auth/new-password",
            None,
            json!({"username": "a@example.com", "new_password": NEW_PASSWORD}),
        )
        .await;

    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.code(), "invalid_request");
}

// ---------------------------------------------------------------------------------------------------
// GET /api/audit
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn audit_lists_events_newest_first_with_actor_action_target_outcome_and_request_id() {
    let t = test_app().await;
    let create = t
        .call(
            Request::builder()
                .method(Method::POST)
                .uri("/api/admins")
                .header("authorization", format!("Bearer {}", t.token()))
                .header("content-type", "application/json")
                .header("x-request-id", "req-create-1")
                .body(Body::from(json!({"email": "audited@example.com"}).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(create.status, StatusCode::CREATED);

    let res = t.get("/api/audit", Some(t.token())).await;

    assert_eq!(res.status, StatusCode::OK);
    let events = res.json()["events"].as_array().unwrap().clone();
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        vec!["create_admin", "first_login_completed", "bootstrap_admin"]
    );
    let newest = &events[0];
    assert_eq!(newest["actor"], t.admin().id);
    assert_eq!(newest["actor_email"], ADMIN_EMAIL);
    assert_eq!(newest["target"], "audited@example.com");
    assert_eq!(newest["outcome"], "success");
    assert_eq!(newest["request_id"], "req-create-1");
    assert!(newest["at"].as_str().is_some());
    assert_eq!(events[2]["actor"], "operator");
}

#[tokio::test]
async fn audit_records_a_failed_provisioning() {
    let t = test_app().await;
    t.faults.fail(op::ADMIN_CREATE_USER, FaultMode::Error, None);
    t.post("/api/admins", Some(t.token()), json!({"email": "down@example.com"}))
        .await;

    let res = t.get("/api/audit", Some(t.token())).await;

    let newest = &res.json()["events"][0];
    assert_eq!(newest["action"], "create_admin");
    assert_eq!(newest["outcome"], "failure: identity_provider_unavailable");
}

#[tokio::test]
async fn audit_without_a_token_is_401() {
    let t = test_app().await;

    let res = t.get("/api/audit", None).await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn audit_with_a_valid_token_of_a_user_who_is_not_an_admin_is_403_forbidden() {
    let t = test_app().await;
    let emu = t.emulator();
    emu.admin_create_user(CreateUserRequest {
        username: "outsider@example.com".into(),
        email: "outsider@example.com".into(),
        temporary_password: Some(TemporaryPassword::new("Temp#Pass12")),
        message_action: Some(MessageAction::Suppress),
    })
    .await
    .unwrap();
    let tokens = cognito_first_login(&emu, "outsider@example.com", "Temp#Pass12").await;

    let res = t.get("/api/audit", Some(tokens.id_token.expose())).await;

    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text);
    assert_eq!(res.code(), "forbidden");
    assert!(res.json()["events"].is_null(), "no audit events leak: {}", res.text);
}

// ---------------------------------------------------------------------------------------------------
// Idempotency-Key
// ---------------------------------------------------------------------------------------------------

fn create_with_key(token: &str, key: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/admins")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn a_retried_create_with_the_same_idempotency_key_replays_the_first_answer() {
    let t = test_app().await;
    let first = t
        .call(create_with_key(
            t.token(),
            "key-1",
            json!({"email": "once@example.com"}),
        ))
        .await;

    let second = t
        .call(create_with_key(
            t.token(),
            "key-1",
            json!({"email": "once@example.com"}),
        ))
        .await;

    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, first.status);
    assert_eq!(second.json(), first.json());
    assert_eq!(second.header("idempotent-replayed").as_deref(), Some("true"));
    assert!(first.header("idempotent-replayed").is_none());
}

#[tokio::test]
async fn a_retried_create_with_the_same_idempotency_key_creates_one_admin_and_one_email() {
    let t = test_app().await;
    t.call(create_with_key(
        t.token(),
        "key-2",
        json!({"email": "single@example.com"}),
    ))
    .await;

    t.call(create_with_key(
        t.token(),
        "key-2",
        json!({"email": "single@example.com"}),
    ))
    .await;

    let list = t.get("/api/admins", Some(t.token())).await.json();
    let matching = list["admins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["email"] == "single@example.com")
        .count();
    assert_eq!(matching, 1);
    assert_eq!(t.invitations_to("single@example.com"), 1);
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_422() {
    let t = test_app().await;
    t.call(create_with_key(
        t.token(),
        "key-3",
        json!({"email": "first@example.com"}),
    ))
    .await;

    let res = t
        .call(create_with_key(
            t.token(),
            "key-3",
            json!({"email": "other@example.com"}),
        ))
        .await;

    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.code(), "idempotency_key_reused");
}

#[tokio::test]
async fn a_create_whose_idempotency_key_is_still_in_progress_is_409() {
    let t = test_app().await;
    let body = json!({"email": "busy@example.com"});
    let hash = http::api::request_hash(body.to_string().as_bytes());
    // The first request's claim, as if it were still running.
    t.app
        .provisioner
        .admin_store()
        .idempotency_begin(&t.admin().id, "key-busy", &hash)
        .await
        .unwrap();

    let res = t.call(create_with_key(t.token(), "key-busy", body)).await;

    assert_eq!(res.status, StatusCode::CONFLICT);
    assert_eq!(res.code(), "idempotency_in_progress");
    assert_eq!(t.invitations_to("busy@example.com"), 0);
}

#[tokio::test]
async fn a_definitive_error_is_replayed_for_the_same_idempotency_key() {
    let t = test_app().await;
    let first = t
        .call(create_with_key(t.token(), "key-4", json!({"email": "broken"})))
        .await;

    let second = t
        .call(create_with_key(t.token(), "key-4", json!({"email": "broken"})))
        .await;

    assert_eq!(first.code(), "invalid_email");
    assert_eq!(second.status, StatusCode::BAD_REQUEST);
    assert_eq!(second.json(), first.json());
}

#[tokio::test]
async fn a_server_side_failure_releases_the_idempotency_key_for_a_retry() {
    let t = test_app().await;
    t.faults.fail(op::ADMIN_CREATE_USER, FaultMode::Error, None);
    let first = t
        .call(create_with_key(
            t.token(),
            "key-5",
            json!({"email": "retry@example.com"}),
        ))
        .await;
    t.faults.clear();

    let second = t
        .call(create_with_key(
            t.token(),
            "key-5",
            json!({"email": "retry@example.com"}),
        ))
        .await;

    assert_eq!(first.status, StatusCode::BAD_GATEWAY);
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
}

// ---------------------------------------------------------------------------------------------------
// Request ids, errors and secrets
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_response_carries_a_generated_request_id() {
    let t = test_app().await;

    let res = t.get("/healthz", None).await;

    let id = res.header("x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
}

#[tokio::test]
async fn a_client_request_id_is_echoed_in_the_header_and_the_error_body() {
    let t = test_app().await;
    let req = Request::builder()
        .uri("/api/admins")
        .header("x-request-id", "client-chosen-42")
        .body(Body::empty())
        .unwrap();

    let res = t.call(req).await;

    assert_eq!(res.header("x-request-id").as_deref(), Some("client-chosen-42"));
    assert_eq!(res.json()["error"]["request_id"], "client-chosen-42");
}

#[tokio::test]
async fn an_unknown_route_is_404_in_the_error_envelope() {
    let t = test_app().await;

    let res = t.get("/api/nothing-here", None).await;

    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.code(), "not_found");
    assert_eq!(
        res.json()["error"]["request_id"].as_str(),
        res.header("x-request-id").as_deref()
    );
}

#[tokio::test]
async fn no_token_or_password_appears_in_any_error_body() {
    let t = test_app().await;
    t.invite("secretive@example.com").await;
    let temp = t.temp_password("secretive@example.com");
    let token = t.token().to_string();
    let mut bodies = Vec::new();
    bodies.push(
        t.post(
            "/api/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": "Wrong-Secret-9"}),
        )
        .await,
    );
    bodies.push(
        t.post(
            "/api/auth/new-password",
            None,
            json!({"username": "secretive@example.com", "temporary_password": temp, "new_password": "weakling"}),
        )
        .await,
    );
    bodies.push(
        t.post(
            "/api/auth/new-password",
            None,
            json!({"username": "secretive@example.com", "temporary_password": 12345678, "new_password": "Weak-But-Ok-1"}),
        )
        .await,
    );
    bodies.push(
        t.post(
            "/api/auth/new-password",
            None,
            json!({"username": "secretive@example.com", "temporary_password": "Guess-Guess-1", "new_password": "Weak-But-Ok-1"}),
        )
        .await,
    );
    t.clock.advance(chrono::Duration::hours(2));

    bodies.push(t.get("/api/admins", Some(&token)).await);

    for res in &bodies {
        assert!(res.status.is_client_error(), "{}: {}", res.status, res.text);
        for secret in [
            temp.as_str(),
            token.as_str(),
            "Wrong-Secret-9",
            "weakling",
            "12345678",
            "Guess-Guess-1",
            "Weak-But-Ok-1",
        ] {
            assert!(!res.text.contains(secret), "a secret leaked into {}", res.text);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Operations: healthz, readyz, metrics, openapi, JWKS
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn healthz_is_200() {
    let t = bare_app().await;

    let res = t.get("/healthz", None).await;

    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["status"], "ok");
}

#[tokio::test]
async fn readyz_is_200_when_database_and_identity_provider_answer() {
    let t = bare_app().await;

    let res = t.get("/readyz", None).await;

    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.json(),
        json!({"status": "ready", "database": "ok", "identity_provider": "ok"})
    );
}

/// An identity provider that answers everything except `ping`.
struct Unreachable(Arc<dyn IdentityProvider>);

#[async_trait::async_trait]
impl IdentityProvider for Unreachable {
    fn kind(&self) -> &'static str {
        "emulator"
    }
    fn token_settings(&self) -> TokenSettings {
        self.0.token_settings()
    }
    async fn admin_create_user(&self, req: CreateUserRequest) -> Result<IdpUser, IdpError> {
        self.0.admin_create_user(req).await
    }
    async fn admin_get_user(&self, username: &str) -> Result<IdpUser, IdpError> {
        self.0.admin_get_user(username).await
    }
    async fn admin_delete_user(&self, username: &str) -> Result<(), IdpError> {
        self.0.admin_delete_user(username).await
    }
    async fn admin_disable_user(&self, username: &str) -> Result<(), IdpError> {
        self.0.admin_disable_user(username).await
    }
    async fn admin_enable_user(&self, username: &str) -> Result<(), IdpError> {
        self.0.admin_enable_user(username).await
    }
    async fn list_users(&self, token: Option<String>, limit: u32) -> Result<UserPage, IdpError> {
        self.0.list_users(token, limit).await
    }
    async fn create_group(&self, name: &str, description: &str) -> Result<(), IdpError> {
        self.0.create_group(name, description).await
    }
    async fn get_group(&self, name: &str) -> Result<admin_provisioner_core::identity::IdpGroup, IdpError> {
        self.0.get_group(name).await
    }
    async fn admin_add_user_to_group(&self, username: &str, group: &str) -> Result<(), IdpError> {
        self.0.admin_add_user_to_group(username, group).await
    }
    async fn admin_remove_user_from_group(&self, username: &str, group: &str) -> Result<(), IdpError> {
        self.0.admin_remove_user_from_group(username, group).await
    }
    async fn admin_list_groups_for_user(&self, username: &str) -> Result<Vec<String>, IdpError> {
        self.0.admin_list_groups_for_user(username).await
    }
    async fn initiate_auth(&self, username: &str, password: &Password) -> Result<AuthOutcome, IdpError> {
        self.0.initiate_auth(username, password).await
    }
    async fn respond_to_auth_challenge(
        &self,
        username: &str,
        session: &Secret,
        answer: &admin_provisioner_core::identity::ChallengeAnswer,
    ) -> Result<AuthOutcome, IdpError> {
        self.0.respond_to_auth_challenge(username, session, answer).await
    }
    async fn associate_software_token(
        &self,
        auth: &admin_provisioner_core::identity::MfaAuth,
    ) -> Result<admin_provisioner_core::identity::SoftwareTokenAssociation, IdpError> {
        self.0.associate_software_token(auth).await
    }
    async fn verify_software_token(
        &self,
        auth: &admin_provisioner_core::identity::MfaAuth,
        code: &Secret,
    ) -> Result<Option<Secret>, IdpError> {
        self.0.verify_software_token(auth, code).await
    }
    async fn forgot_password(&self, username: &str) -> Result<(), IdpError> {
        self.0.forgot_password(username).await
    }
    async fn confirm_forgot_password(
        &self,
        username: &str,
        code: &Secret,
        password: &Password,
    ) -> Result<(), IdpError> {
        self.0.confirm_forgot_password(username, code, password).await
    }
    async fn admin_reset_user_password(&self, username: &str) -> Result<(), IdpError> {
        self.0.admin_reset_user_password(username).await
    }
    async fn admin_user_global_sign_out(&self, username: &str) -> Result<(), IdpError> {
        self.0.admin_user_global_sign_out(username).await
    }
    async fn admin_set_user_mfa_preference(&self, username: &str, enabled: bool) -> Result<(), IdpError> {
        self.0.admin_set_user_mfa_preference(username, enabled).await
    }
    async fn set_user_mfa_preference(&self, access_token: &Secret, enabled: bool) -> Result<(), IdpError> {
        self.0.set_user_mfa_preference(access_token, enabled).await
    }
    async fn jwks(&self) -> Result<Value, IdpError> {
        self.0.jwks().await
    }
    async fn ping(&self) -> Result<(), IdpError> {
        Err(IdpError::Unavailable("connection refused".into()))
    }
}

#[tokio::test]
async fn readyz_is_503_naming_the_identity_provider_when_it_does_not_answer() {
    let t = bare_app().await;
    let idp: Arc<dyn IdentityProvider> = Arc::new(Unreachable(t.app.provisioner.identity_provider().clone()));
    let provisioner = Provisioner::new(
        idp,
        t.app.store.clone(),
        t.clock.clone(),
        t.app.provisioner.settings().clone(),
    );
    let app = App {
        provisioner,
        ..t.app.clone()
    };
    let router = http::router(AppState::with_metrics(app, t.metrics.clone()));
    let req = Request::builder().uri("/readyz").body(Body::empty()).unwrap();

    let res = tower::ServiceExt::oneshot(router, req).await.unwrap();

    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["identity_provider"], "unavailable");
}

#[tokio::test]
async fn metrics_count_provisionings_cognito_calls_and_http_statuses() {
    let t = test_app().await;
    t.invite("counted@example.com").await;
    t.get("/api/admins", None).await;

    let res = t.get("/metrics", None).await;

    assert_eq!(res.status, StatusCode::OK);
    assert!(res
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let text = res.text;
    assert!(
        text.contains("admin_provisioner_provisions_total{outcome=\"created\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("admin_provisioner_saga_duration_seconds_count 2\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE admin_provisioner_saga_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(
            "admin_provisioner_identity_provider_calls_total{operation=\"AdminCreateUser\",result=\"ok\"} 2\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("admin_provisioner_http_requests_total{status=\"201\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("admin_provisioner_http_requests_total{status=\"401\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn openapi_lists_every_path_and_method_of_the_contract() {
    let t = bare_app().await;

    let res = t.get("/openapi.json", None).await;

    assert_eq!(res.status, StatusCode::OK);
    let doc = res.json();
    let expected = [
        ("/api/admins", "post"),
        ("/api/admins", "get"),
        ("/api/admins/{id}", "get"),
        ("/api/admins/{id}", "delete"),
        ("/api/admins/{id}/resend-invite", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/new-password", "post"),
        ("/api/audit", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ];
    for (path, method) in expected {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // The SCIM endpoints, with their own token scheme, media type and error shape.
    assert!(doc["components"]["securitySchemes"]["scim"].is_object());
    assert!(doc["components"]["schemas"]["ScimError"]["properties"]["scimType"].is_object());
    for (path, method) in [
        ("/scim/v2/Users", "get"),
        ("/scim/v2/Users", "post"),
        ("/scim/v2/Users/.search", "post"),
        ("/scim/v2/Users/{id}", "get"),
        ("/scim/v2/Users/{id}", "put"),
        ("/scim/v2/Users/{id}", "patch"),
        ("/scim/v2/Users/{id}", "delete"),
        ("/scim/v2/ServiceProviderConfig", "get"),
        ("/scim/v2/Schemas", "get"),
        ("/scim/v2/ResourceTypes", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(op["security"][0]["scim"], json!([]), "{path} {method}");
        assert!(
            op["responses"]["401"]["content"]["application/scim+json"].is_object(),
            "{path} {method}: {op}"
        );
    }
}

#[tokio::test]
async fn the_openapi_command_prints_the_served_document_without_connecting_anywhere() {
    let t = bare_app().await;
    let served = t.get("/openapi.json", None).await.json();
    let dir = tempfile::tempdir().unwrap();

    // No database, Cognito or mailbox settings that could work: the command must not need them.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_admin-provisioner"))
        .arg("openapi")
        .current_dir(dir.path())
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("COGNITO_USER_POOL_ID", "us-east-1_unreachable")
        .env("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "http://127.0.0.1:1")
        .output()
        .unwrap();

    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, served, "`openapi` and GET /openapi.json differ");
    assert!(printed["paths"]["/api/admins"]["post"].is_object());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "`openapi` wrote files in its working folder"
    );
}

#[tokio::test]
async fn the_emulator_jwks_is_served_and_verifies_the_tokens() {
    let t = test_app().await;

    let res = t.get("/emulator/.well-known/jwks.json", None).await;

    assert_eq!(res.status, StatusCode::OK);
    let kid = jsonwebtoken::decode_header(t.token()).unwrap().kid.unwrap();
    assert_eq!(res.json()["keys"][0]["kid"], kid);
    assert_eq!(res.json()["keys"][0]["alg"], "RS256");
}

// ---------------------------------------------------------------------------------------------------
// Console (server-rendered HTML): session cookie, CSRF, secrets
// ---------------------------------------------------------------------------------------------------

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn form_post(path: &str, cookie: Option<&str>) -> axum::http::request::Builder {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    b
}

async fn submit(t: &TestApp, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Res {
    t.call(form_post(path, cookie).body(Body::from(form_body(fields))).unwrap())
        .await
}

fn set_cookies(res: &Res) -> Vec<String> {
    res.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn cookie_value(res: &Res, name: &str) -> Option<String> {
    set_cookies(res).iter().find_map(|c| {
        c.strip_prefix(&format!("{name}="))
            .map(|rest| rest.split(';').next().unwrap().to_string())
    })
}

/// Signs the first admin in through the console form; returns the `Cookie` header value and the page's
/// CSRF token.
async fn console_session(t: &TestApp) -> (String, String) {
    let res = submit(t, "/login", None, &[("email", ADMIN_EMAIL), ("password", NEW_PASSWORD)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let cookie = format!("ap_session={}", cookie_value(&res, "ap_session").unwrap());
    let page = t
        .call(
            Request::builder()
                .uri("/console")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let marker = r#"name="csrf" value=""#;
    let start = page.text.find(marker).expect("a CSRF field") + marker.len();
    let csrf = page.text[start..start + page.text[start..].find('"').unwrap()].to_string();
    (cookie, csrf)
}

#[tokio::test]
async fn console_sign_in_sets_an_http_only_same_site_strict_session_cookie() {
    let t = test_app().await;

    let res = submit(
        &t,
        "/login",
        None,
        &[("email", ADMIN_EMAIL), ("password", NEW_PASSWORD)],
    )
    .await;

    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.header("location").as_deref(), Some("/console"));
    let session = set_cookies(&res)
        .into_iter()
        .find(|c| c.starts_with("ap_session="))
        .unwrap();
    assert!(session.contains("; HttpOnly"), "{session}");
    assert!(session.contains("; SameSite=Strict"), "{session}");
    assert!(session.contains("; Path=/;"), "{session}");
    assert!(!session.contains("Secure"), "plain http must not set Secure: {session}");
}

#[tokio::test]
async fn console_session_cookie_is_secure_behind_https() {
    let t = test_app().await;
    let req = form_post("/login", None)
        .header("x-forwarded-proto", "https")
        .body(Body::from(form_body(&[
            ("email", ADMIN_EMAIL),
            ("password", NEW_PASSWORD),
        ])))
        .unwrap();

    let res = t.call(req).await;

    let session = set_cookies(&res)
        .into_iter()
        .find(|c| c.starts_with("ap_session="))
        .unwrap();
    assert!(session.contains("; Secure"), "{session}");
}

#[tokio::test]
async fn console_without_a_session_redirects_to_login() {
    let t = test_app().await;

    let res = t.get("/console", None).await;

    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.header("location").as_deref(), Some("/login"));
}

#[tokio::test]
async fn console_lists_admins_without_putting_the_token_in_the_page() {
    let t = test_app().await;
    t.invite("listed@example.com").await;
    let (cookie, _) = console_session(&t).await;
    let token = cookie.trim_start_matches("ap_session=").to_string();

    let res = t
        .call(
            Request::builder()
                .uri("/console")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;

    assert_eq!(res.status, StatusCode::OK);
    assert!(res.text.contains("listed@example.com"));
    assert!(res.text.contains("Create New Admin"));
    assert!(!res.text.contains(&token));
    assert!(!res.text.contains(t.token()));
}

#[tokio::test]
async fn console_create_with_the_csrf_token_provisions_and_flashes_success() {
    let t = test_app().await;
    let (cookie, csrf) = console_session(&t).await;

    let res = submit(
        &t,
        "/console/admins",
        Some(&cookie),
        &[("csrf", &csrf), ("email", "form@example.com")],
    )
    .await;

    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let flash = cookie_value(&res, "ap_flash").unwrap();
    let page = t
        .call(
            Request::builder()
                .uri("/console")
                .header("cookie", format!("{cookie}; ap_flash={flash}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(page.text.contains("form@example.com was created"), "{}", page.text);
    assert_eq!(t.invitations_to("form@example.com"), 1);
}

#[tokio::test]
async fn console_post_without_the_csrf_token_is_403_csrf() {
    let t = test_app().await;
    let (cookie, _) = console_session(&t).await;

    let res = submit(
        &t,
        "/console/admins",
        Some(&cookie),
        &[("csrf", "00ff"), ("email", "forged@example.com")],
    )
    .await;

    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.text.contains("<code>csrf</code>"), "{}", res.text);
    assert_eq!(t.invitations_to("forged@example.com"), 0);
}

#[tokio::test]
async fn console_post_from_another_origin_is_403_csrf() {
    let t = test_app().await;
    let (cookie, csrf) = console_session(&t).await;
    let req = form_post("/console/admins", Some(&cookie))
        .header("origin", "https://evil.example")
        .body(Body::from(form_body(&[
            ("csrf", &csrf),
            ("email", "crosssite@example.com"),
        ])))
        .unwrap();

    let res = t.call(req).await;

    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(t.invitations_to("crosssite@example.com"), 0);
}

#[tokio::test]
async fn console_first_sign_in_shows_the_policy_and_keeps_the_challenge_session_out_of_the_page() {
    let t = test_app().await;
    t.invite("fresh@example.com").await;
    let temp = t.temp_password("fresh@example.com");

    let res = submit(
        &t,
        "/login",
        None,
        &[("email", "fresh@example.com"), ("password", &temp)],
    )
    .await;

    assert_eq!(res.status, StatusCode::OK);
    assert!(res.text.contains("Choose a new password"));
    assert!(res.text.contains("at least 8 characters"));
    let challenge = set_cookies(&res)
        .into_iter()
        .find(|c| c.starts_with("ap_challenge="))
        .unwrap();
    assert!(
        challenge.contains("; HttpOnly") && challenge.contains("; SameSite=Strict"),
        "{challenge}"
    );
    // The cookie is encrypted under the app's cookie key: open it with that key to find the session.
    let raw = cookie_value(&res, "ap_challenge").unwrap();
    let mut h = axum::http::HeaderMap::new();
    h.insert("cookie", format!("ap_challenge={raw}").parse().unwrap());
    let jar = axum_extra::extract::cookie::PrivateCookieJar::from_headers(&h, t.state.cookie_key().clone());
    let decoded: Value = serde_json::from_str(jar.get("ap_challenge").unwrap().value()).unwrap();
    let session = decoded["s"].as_str().unwrap();
    assert!(session.len() > 20);
    assert!(!raw.contains(session), "the challenge cookie is encrypted");
    assert!(!res.text.contains(session));
    assert!(!res.text.contains(&temp));
}

#[tokio::test]
async fn console_new_password_that_breaks_the_policy_shows_cognitos_reason() {
    let t = test_app().await;
    t.invite("policy@example.com").await;
    let temp = t.temp_password("policy@example.com");
    let login = submit(
        &t,
        "/login",
        None,
        &[("email", "policy@example.com"), ("password", &temp)],
    )
    .await;
    let cookie = format!("ap_challenge={}", cookie_value(&login, "ap_challenge").unwrap());

    let res = submit(
        &t,
        "/login/new-password",
        Some(&cookie),
        &[("new_password", "alllowercase"), ("confirm_password", "alllowercase")],
    )
    .await;

    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.text.contains("Cognito refused this password"), "{}", res.text);
    assert!(res.text.contains("Choose a new password"));
}

#[tokio::test]
async fn console_sign_in_with_a_wrong_password_explains_in_words() {
    let t = test_app().await;

    let res = submit(
        &t,
        "/login",
        None,
        &[("email", ADMIN_EMAIL), ("password", "Not-My-Pass-1")],
    )
    .await;

    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.text.contains("Wrong e-mail or password"), "{}", res.text);
    assert!(!res.text.contains("Not-My-Pass-1"));
}

#[tokio::test]
async fn console_mailbox_shows_the_invitation_with_its_temporary_password() {
    let t = test_app().await;
    t.invite("inbox@example.com").await;
    let temp = t.temp_password("inbox@example.com");

    let res = t.get("/console/mailbox", None).await;

    assert_eq!(res.status, StatusCode::OK);
    assert!(res.text.contains("Local stand-in for the recipients"));
    assert!(res.text.contains(r#"data-to="inbox@example.com""#));
    assert!(res
        .text
        .contains(&temp.replace('&', "&#38;").replace('<', "&#60;").replace('>', "&#62;")));
}

#[tokio::test]
async fn console_sign_out_without_the_csrf_token_is_403_csrf() {
    let t = test_app().await;
    let (cookie, _) = console_session(&t).await;

    let res = submit(&t, "/logout", Some(&cookie), &[]).await;

    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(cookie_value(&res, "ap_session").is_none());
}

#[tokio::test]
async fn console_sign_out_with_the_csrf_token_clears_the_session_cookie() {
    let t = test_app().await;
    let (cookie, csrf) = console_session(&t).await;

    let res = submit(&t, "/logout", Some(&cookie), &[("csrf", &csrf)]).await;

    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.header("location").as_deref(), Some("/login"));
    let cleared = set_cookies(&res)
        .into_iter()
        .find(|c| c.starts_with("ap_session="))
        .unwrap();
    assert!(
        cleared.starts_with("ap_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

// ---------------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn requests_are_logged_once_with_their_request_id_and_without_any_secret() {
    let logs = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let t = test_app().await;
    t.invite("logged@example.com").await;
    let temp = t.temp_password("logged@example.com");
    let challenge = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": "logged@example.com", "password": temp}),
        )
        .await
        .json();
    let session = challenge["session"].as_str().unwrap().to_string();
    let tokens = t
        .post(
            "/api/auth/new-password",
            None,
            json!({"username": "logged@example.com", "session": session, "new_password": NEW_PASSWORD}),
        )
        .await
        .json();
    let req = Request::builder()
        .uri("/api/admins")
        .header("authorization", format!("Bearer {}", t.token()))
        .header("x-request-id", "log-me-1")
        .body(Body::empty())
        .unwrap();
    // Tests run on parallel threads of one process: a callsite first hit on another thread (no
    // subscriber there) while this test's subscriber was being registered can stay cached as "never
    // enabled". Recompute the interest now that every callsite involved has been registered.
    tracing::callsite::rebuild_interest_cache();

    t.call(req).await;

    let text = logs.text();
    // The trace layer's span prefixes every line logged while the request runs; the request itself is
    // logged once, by the span's `response` event.
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("request_id=log-me-1") && l.contains(" response "))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    for field in ["method=GET", "path=/api/admins", "status=200", "latency_ms="] {
        assert!(lines[0].contains(field), "{field} missing in {}", lines[0]);
    }
    let secrets = [
        temp.as_str(),
        session.as_str(),
        NEW_PASSWORD,
        t.token(),
        tokens["id_token"].as_str().unwrap(),
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
    ];
    for secret in secrets {
        assert!(!text.contains(secret), "a secret appears in the logs");
    }
}
