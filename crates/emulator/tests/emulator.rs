//! Behaviour of the built-in Cognito emulator, one rule per test.

use admin_provisioner_core::clock::ManualClock;
use admin_provisioner_core::domain::{Password, Secret, TemporaryPassword, Tokens};
use admin_provisioner_core::identity::{
    AuthOutcome, CreateUserRequest, IdentityProvider, IdpError, IdpUserStatus, MessageAction,
};
use admin_provisioner_emulator::mailbox::Mailbox;
use admin_provisioner_emulator::{CognitoEmulator, EmulatorConfig, DEFAULT_CLIENT_ID};
use chrono::Duration;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::sync::Arc;
use tempfile::TempDir;

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_LocalEmu1";
const TEMP: &str = "Temp0rary!pw";
const NEW: &str = "N3w-Password!";

struct Env {
    emu: CognitoEmulator,
    clock: Arc<ManualClock>,
    dir: TempDir,
}

impl Env {
    fn mailbox(&self) -> Mailbox {
        self.emu.mailbox()
    }
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new());
    let config = EmulatorConfig {
        clock: clock.clone(),
        ..EmulatorConfig::in_memory(dir.path().join("mailbox"))
    };
    let emu = CognitoEmulator::open(config).await.unwrap();
    Env { emu, clock, dir }
}

fn create(username: &str, password: Option<&str>, action: Option<MessageAction>) -> CreateUserRequest {
    CreateUserRequest {
        username: username.to_string(),
        email: username.to_string(),
        temporary_password: password.map(TemporaryPassword::new),
        message_action: action,
    }
}

fn resend(username: &str) -> CreateUserRequest {
    create(username, None, Some(MessageAction::Resend))
}

async fn login(emu: &CognitoEmulator, username: &str, password: &str) -> Result<AuthOutcome, IdpError> {
    emu.initiate_auth(username, &Password::new(password)).await
}

async fn challenge(emu: &CognitoEmulator, username: &str, password: &str) -> (Secret, String) {
    match login(emu, username, password).await.unwrap() {
        AuthOutcome::NewPasswordRequired { session, username } => (session, username),
        _ => panic!("expected NEW_PASSWORD_REQUIRED"),
    }
}

fn not_authorized(result: Result<impl std::fmt::Debug, IdpError>) -> String {
    match result {
        Err(IdpError::NotAuthorized(m)) => m,
        other => panic!("expected NotAuthorized, got {other:?}"),
    }
}

/// Creates `username` with [`TEMP`] and completes first login with [`NEW`].
async fn confirmed(emu: &CognitoEmulator, username: &str) -> Tokens {
    emu.admin_create_user(create(username, Some(TEMP), Some(MessageAction::Suppress)))
        .await
        .unwrap();
    let (session, user) = challenge(emu, username, TEMP).await;
    emu.respond_to_new_password_challenge(&user, &session, &Password::new(NEW))
        .await
        .unwrap()
}

/// Verifies a token against the emulator's JWKS and returns its claims.
fn verify(emu: &CognitoEmulator, token: &str, audience: Option<&str>) -> Value {
    let header = decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let jwks: JwkSet = serde_json::from_value(emu.jwks_json()).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid in header"))
        .expect("kid in JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISSUER]);
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    decode::<Value>(token, &key, &validation)
        .expect("token verifies")
        .claims
}

fn assert_invalid_password(result: Result<impl std::fmt::Debug, IdpError>, why: &str) {
    match result {
        Err(IdpError::InvalidPassword(m)) => {
            assert_eq!(m, format!("Password did not conform with policy: {why}"))
        }
        other => panic!("expected InvalidPassword({why}), got {other:?}"),
    }
}

// ---------------------------------------------------------------- AdminCreateUser

#[tokio::test]
async fn create_returns_cognito_shape() {
    let env = env().await;
    let user = env
        .emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    assert_eq!(user.username, "ann@example.com");
    assert_eq!(user.email.as_deref(), Some("ann@example.com"));
    assert!(uuid::Uuid::parse_str(&user.sub).is_ok(), "sub is a UUID: {}", user.sub);
    assert_eq!(user.status, IdpUserStatus::ForceChangePassword);
    assert!(user.enabled);
    assert_eq!(user.created_at, user.last_modified_at);
    assert!(
        (user.created_at - admin_provisioner_core::clock::Clock::now(&*env.clock))
            .num_seconds()
            .abs()
            < 1
    );
    assert_eq!(env.emu.admin_get_user("ann@example.com").await.unwrap(), user);
}

#[tokio::test]
async fn duplicate_username_is_username_exists() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", None, None))
        .await
        .unwrap();
    let again = env.emu.admin_create_user(create("ann@example.com", None, None)).await;
    assert_eq!(again.unwrap_err(), IdpError::UsernameExists);
}

#[tokio::test]
async fn duplicate_username_in_other_case_is_username_exists() {
    let env = env().await;
    env.emu
        .admin_create_user(create("Ann@Example.com", None, None))
        .await
        .unwrap();
    let again = env.emu.admin_create_user(create("ann@example.COM", None, None)).await;
    assert_eq!(again.unwrap_err(), IdpError::UsernameExists);
}

#[tokio::test]
async fn usernames_are_looked_up_case_insensitively_but_kept_as_given() {
    let env = env().await;
    env.emu
        .admin_create_user(create("Ann@Example.com", None, None))
        .await
        .unwrap();
    let user = env.emu.admin_get_user("ann@example.com").await.unwrap();
    assert_eq!(user.username, "Ann@Example.com");
}

#[tokio::test]
async fn temporary_password_shorter_than_8_is_invalid_password() {
    let env = env().await;
    let r = env
        .emu
        .admin_create_user(create("a@x.com", Some("Ab1!xyz"), None))
        .await;
    assert_invalid_password(r, "Password not long enough");
}

#[tokio::test]
async fn temporary_password_without_uppercase_is_invalid_password() {
    let env = env().await;
    let r = env
        .emu
        .admin_create_user(create("a@x.com", Some("ab1!xyzw"), None))
        .await;
    assert_invalid_password(r, "Password must have uppercase characters");
}

#[tokio::test]
async fn temporary_password_without_lowercase_is_invalid_password() {
    let env = env().await;
    let r = env
        .emu
        .admin_create_user(create("a@x.com", Some("AB1!XYZW"), None))
        .await;
    assert_invalid_password(r, "Password must have lowercase characters");
}

#[tokio::test]
async fn temporary_password_without_digit_is_invalid_password() {
    let env = env().await;
    let r = env
        .emu
        .admin_create_user(create("a@x.com", Some("Abc!xyzw"), None))
        .await;
    assert_invalid_password(r, "Password must have numeric characters");
}

#[tokio::test]
async fn temporary_password_without_symbol_is_invalid_password() {
    let env = env().await;
    let r = env
        .emu
        .admin_create_user(create("a@x.com", Some("Abc1xyzw"), None))
        .await;
    assert_invalid_password(r, "Password must have symbol characters");
}

#[tokio::test]
async fn rejected_temporary_password_creates_no_user() {
    let env = env().await;
    let _ = env.emu.admin_create_user(create("a@x.com", Some("short"), None)).await;
    assert_eq!(
        env.emu.admin_get_user("a@x.com").await.unwrap_err(),
        IdpError::UserNotFound
    );
    assert!(env.mailbox().messages().unwrap().is_empty());
}

#[tokio::test]
async fn missing_email_is_invalid_parameter() {
    let env = env().await;
    let mut req = create("someone", None, None);
    req.email = String::new();
    assert!(matches!(
        env.emu.admin_create_user(req).await,
        Err(IdpError::InvalidParameter(_))
    ));
}

#[tokio::test]
async fn invitation_email_carries_cognitos_default_line_and_the_temporary_password() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let messages = env.mailbox().messages().unwrap();
    assert_eq!(messages.len(), 1);
    let msg = &messages[0];
    assert!(msg.path.starts_with(env.dir.path().join("mailbox")));
    assert_eq!(msg.path.extension().unwrap(), "eml");
    assert_eq!(msg.to, "ann@example.com");
    assert_eq!(msg.from, "no-reply@verificationemail.com");
    assert_eq!(msg.subject, "Your temporary password");
    assert!(
        chrono::DateTime::parse_from_rfc2822(&msg.date).is_ok(),
        "Date: {}",
        msg.date
    );
    assert!(msg
        .body
        .lines()
        .any(|l| l == format!("Your username is ann@example.com and temporary password is {TEMP}.")));
    assert_eq!(msg.temporary_password().unwrap().expose(), TEMP);
    assert_eq!(msg.username().as_deref(), Some("ann@example.com"));
    assert!(!msg.masked_body().contains(TEMP));

    let raw = std::fs::read_to_string(&msg.path).unwrap();
    assert!(raw.contains("MIME-Version: 1.0\r\n"));
    assert!(raw.contains("Content-Type: text/plain; charset=UTF-8\r\n"));
    assert!(raw.contains("Message-ID: <"));
    assert!(!raw.replace("\r\n", "").contains('\n'), "CRLF line endings only");
}

#[tokio::test]
async fn generated_temporary_password_is_emailed_and_works() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", None, None))
        .await
        .unwrap();
    let msg = env
        .mailbox()
        .latest_for("ANN@example.com")
        .unwrap()
        .expect("invitation");
    let password = msg.temporary_password().unwrap();
    assert!(password.expose().len() >= 8);
    let outcome = login(&env.emu, "ann@example.com", password.expose()).await.unwrap();
    assert!(matches!(outcome, AuthOutcome::NewPasswordRequired { .. }));
}

#[tokio::test]
async fn suppress_sends_no_email() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), Some(MessageAction::Suppress)))
        .await
        .unwrap();
    assert!(env.mailbox().messages().unwrap().is_empty());
    assert!(env.emu.admin_get_user("ann@example.com").await.is_ok());
}

#[tokio::test]
async fn undeliverable_invitation_is_code_delivery_failure_but_the_user_exists() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_folder = dir.path().join("mailbox");
    std::fs::write(&not_a_folder, "a file where the mailbox folder should be").unwrap();
    let emu = CognitoEmulator::open(EmulatorConfig::in_memory(&not_a_folder))
        .await
        .unwrap();
    let r = emu.admin_create_user(create("ann@example.com", Some(TEMP), None)).await;
    assert!(matches!(r, Err(IdpError::CodeDeliveryFailure(_))), "{r:?}");
    let user = emu.admin_get_user("ann@example.com").await.unwrap();
    assert_eq!(user.status, IdpUserStatus::ForceChangePassword);
}

// ---------------------------------------------------------------- AdminGetUser / AdminDeleteUser

#[tokio::test]
async fn get_missing_user_is_user_not_found() {
    let env = env().await;
    assert_eq!(
        env.emu.admin_get_user("nobody@example.com").await.unwrap_err(),
        IdpError::UserNotFound
    );
}

#[tokio::test]
async fn delete_missing_user_is_user_not_found() {
    let env = env().await;
    assert_eq!(
        env.emu.admin_delete_user("nobody@example.com").await.unwrap_err(),
        IdpError::UserNotFound
    );
}

#[tokio::test]
async fn delete_removes_the_user_and_its_sessions() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let (session, username) = challenge(&env.emu, "ann@example.com", TEMP).await;
    env.emu.admin_delete_user("ANN@example.com").await.unwrap();
    assert_eq!(
        env.emu.admin_get_user("ann@example.com").await.unwrap_err(),
        IdpError::UserNotFound
    );
    // Recreated under the same name, the old session must not work for the new user.
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let r = env
        .emu
        .respond_to_new_password_challenge(&username, &session, &Password::new(NEW))
        .await;
    assert_eq!(not_authorized(r), "Invalid session for the user, session is expired.");
}

// ---------------------------------------------------------------- ListUsers

#[tokio::test]
async fn list_users_paginates_in_a_stable_order() {
    let env = env().await;
    for i in 0..5 {
        env.emu
            .admin_create_user(create(
                &format!("user{i}@example.com"),
                None,
                Some(MessageAction::Suppress),
            ))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = env.emu.list_users(token, 2).await.unwrap();
        assert!(page.users.len() <= 2);
        seen.extend(page.users.into_iter().map(|u| u.username));
        pages += 1;
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..5).map(|i| format!("user{i}@example.com")).collect::<Vec<_>>());
    let all = env.emu.list_users(None, 60).await.unwrap();
    assert_eq!(all.users.len(), 5);
    assert!(all.next_token.is_none());
}

#[tokio::test]
async fn list_users_limit_above_60_is_invalid_parameter() {
    let env = env().await;
    assert!(matches!(
        env.emu.list_users(None, 61).await,
        Err(IdpError::InvalidParameter(_))
    ));
    assert!(matches!(
        env.emu.list_users(None, 0).await,
        Err(IdpError::InvalidParameter(_))
    ));
}

#[tokio::test]
async fn list_users_bad_token_is_invalid_parameter() {
    let env = env().await;
    let r = env.emu.list_users(Some("definitely-not-a-token".into()), 10).await;
    assert!(matches!(r, Err(IdpError::InvalidParameter(_))));
}

// ---------------------------------------------------------------- InitiateAuth

#[tokio::test]
async fn login_with_temporary_password_requires_new_password() {
    let env = env().await;
    env.emu
        .admin_create_user(create("Ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    match login(&env.emu, "ann@example.com", TEMP).await.unwrap() {
        AuthOutcome::NewPasswordRequired { session, username } => {
            assert_eq!(username, "Ann@example.com");
            assert!(session.expose().len() >= 32);
        }
        _ => panic!("a FORCE_CHANGE_PASSWORD user must not get tokens"),
    }
}

#[tokio::test]
async fn wrong_password_is_not_authorized() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let m = not_authorized(login(&env.emu, "ann@example.com", "Wr0ng!pass").await);
    assert_eq!(m, "Incorrect username or password.");
}

#[tokio::test]
async fn unknown_user_gets_the_same_answer_as_a_wrong_password() {
    let env = env().await;
    let m = not_authorized(login(&env.emu, "nobody@example.com", TEMP).await);
    assert_eq!(m, "Incorrect username or password.");
}

#[tokio::test]
async fn disabled_user_is_not_authorized() {
    let env = env().await;
    confirmed(&env.emu, "ann@example.com").await;
    env.emu.admin_disable_user("ann@example.com").await.unwrap();
    assert!(!env.emu.admin_get_user("ann@example.com").await.unwrap().enabled);
    assert_eq!(
        not_authorized(login(&env.emu, "ann@example.com", NEW).await),
        "User is disabled."
    );
    env.emu.admin_enable_user("ann@example.com").await.unwrap();
    assert!(matches!(
        login(&env.emu, "ann@example.com", NEW).await,
        Ok(AuthOutcome::Tokens(_))
    ));
}

#[tokio::test]
async fn temporary_password_works_until_invite_validity_days_pass() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    env.clock.advance(Duration::days(7) - Duration::seconds(1));
    assert!(matches!(
        login(&env.emu, "ann@example.com", TEMP).await,
        Ok(AuthOutcome::NewPasswordRequired { .. })
    ));
}

#[tokio::test]
async fn temporary_password_expires_after_invite_validity_days() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    env.clock.advance(Duration::days(7) + Duration::seconds(1));
    let m = not_authorized(login(&env.emu, "ann@example.com", TEMP).await);
    assert_eq!(
        m,
        "Temporary password has expired and must be reset by an administrator."
    );
    // A wrong password after expiry still says only "incorrect".
    let m = not_authorized(login(&env.emu, "ann@example.com", "Wr0ng!pass").await);
    assert_eq!(m, "Incorrect username or password.");
}

#[tokio::test]
async fn invite_validity_days_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new());
    let config = EmulatorConfig {
        clock: clock.clone(),
        invite_validity_days: 1,
        ..EmulatorConfig::in_memory(dir.path())
    };
    let emu = CognitoEmulator::open(config).await.unwrap();
    emu.admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    clock.advance(Duration::days(1) + Duration::seconds(1));
    let m = not_authorized(login(&emu, "ann@example.com", TEMP).await);
    assert!(m.starts_with("Temporary password has expired"));
}

// ---------------------------------------------------------------- RESEND

#[tokio::test]
async fn resend_keeps_the_user_and_replaces_the_temporary_password() {
    let env = env().await;
    let first = env
        .emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    env.clock.advance(Duration::hours(1));
    let again = env.emu.admin_create_user(resend("ANN@example.com")).await.unwrap();
    assert_eq!(again.sub, first.sub);
    assert_eq!(again.username, first.username);
    assert_eq!(again.created_at, first.created_at);
    assert_eq!(again.status, IdpUserStatus::ForceChangePassword);
    assert!(again.last_modified_at > first.last_modified_at);

    let messages = env.mailbox().messages().unwrap();
    assert_eq!(messages.len(), 2, "a second invitation is delivered");
    let new_password = messages[1].temporary_password().unwrap();
    assert_ne!(new_password.expose(), TEMP);
    assert_eq!(
        env.mailbox().latest_for("ann@example.com").unwrap().unwrap().path,
        messages[1].path
    );

    assert_eq!(
        not_authorized(login(&env.emu, "ann@example.com", TEMP).await),
        "Incorrect username or password.",
        "the old temporary password stops working"
    );
    assert!(matches!(
        login(&env.emu, "ann@example.com", new_password.expose()).await,
        Ok(AuthOutcome::NewPasswordRequired { .. })
    ));
}

#[tokio::test]
async fn resend_resets_the_temporary_password_expiry() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    env.clock.advance(Duration::days(8));
    assert!(
        not_authorized(login(&env.emu, "ann@example.com", TEMP).await).starts_with("Temporary password has expired")
    );
    env.emu.admin_create_user(resend("ann@example.com")).await.unwrap();
    env.clock.advance(Duration::days(6));
    let password = env
        .mailbox()
        .latest_for("ann@example.com")
        .unwrap()
        .unwrap()
        .temporary_password()
        .unwrap();
    assert!(matches!(
        login(&env.emu, "ann@example.com", password.expose()).await,
        Ok(AuthOutcome::NewPasswordRequired { .. })
    ));
    env.clock.advance(Duration::days(1) + Duration::seconds(1));
    assert!(
        not_authorized(login(&env.emu, "ann@example.com", password.expose()).await)
            .starts_with("Temporary password has expired")
    );
}

#[tokio::test]
async fn resend_with_a_given_password_uses_it() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let mut req = resend("ann@example.com");
    req.temporary_password = Some(TemporaryPassword::new("An0ther!one"));
    env.emu.admin_create_user(req).await.unwrap();
    assert!(matches!(
        login(&env.emu, "ann@example.com", "An0ther!one").await,
        Ok(AuthOutcome::NewPasswordRequired { .. })
    ));
}

#[tokio::test]
async fn resend_to_missing_user_is_user_not_found() {
    let env = env().await;
    assert_eq!(
        env.emu
            .admin_create_user(resend("nobody@example.com"))
            .await
            .unwrap_err(),
        IdpError::UserNotFound
    );
    assert!(env.mailbox().messages().unwrap().is_empty());
}

#[tokio::test]
async fn resend_to_confirmed_user_is_unsupported_user_state() {
    let env = env().await;
    confirmed(&env.emu, "ann@example.com").await;
    match env.emu.admin_create_user(resend("ann@example.com")).await {
        Err(IdpError::UnsupportedUserState(m)) => assert!(m.contains("FORCE_CHANGE_PASSWORD"), "{m}"),
        other => panic!("expected UnsupportedUserState, got {other:?}"),
    }
    assert!(matches!(
        login(&env.emu, "ann@example.com", NEW).await,
        Ok(AuthOutcome::Tokens(_))
    ));
}

// ---------------------------------------------------------------- RespondToAuthChallenge

#[tokio::test]
async fn session_is_valid_within_three_minutes() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let (session, username) = challenge(&env.emu, "ann@example.com", TEMP).await;
    env.clock.advance(Duration::seconds(179));
    assert!(env
        .emu
        .respond_to_new_password_challenge(&username, &session, &Password::new(NEW))
        .await
        .is_ok());
}

#[tokio::test]
async fn session_expires_after_three_minutes() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let (session, username) = challenge(&env.emu, "ann@example.com", TEMP).await;
    env.clock.advance(Duration::seconds(181));
    let r = env
        .emu
        .respond_to_new_password_challenge(&username, &session, &Password::new(NEW))
        .await;
    assert_eq!(not_authorized(r), "Invalid session for the user, session is expired.");
    assert_eq!(
        env.emu.admin_get_user("ann@example.com").await.unwrap().status,
        IdpUserStatus::ForceChangePassword
    );
}

#[tokio::test]
async fn session_is_single_use() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let (session, username) = challenge(&env.emu, "ann@example.com", TEMP).await;
    env.emu
        .respond_to_new_password_challenge(&username, &session, &Password::new(NEW))
        .await
        .unwrap();
    let r = env
        .emu
        .respond_to_new_password_challenge(&username, &session, &Password::new("Other-Pass1!"))
        .await;
    assert_eq!(not_authorized(r), "Invalid session for the user, session is expired.");
    assert!(matches!(
        login(&env.emu, "ann@example.com", NEW).await,
        Ok(AuthOutcome::Tokens(_))
    ));
}

#[tokio::test]
async fn unknown_session_is_not_authorized() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let r = env
        .emu
        .respond_to_new_password_challenge("ann@example.com", &Secret::new("made-up"), &Password::new(NEW))
        .await;
    assert_eq!(not_authorized(r), "Invalid session for the user, session is expired.");
}

#[tokio::test]
async fn session_of_another_user_is_not_authorized() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    env.emu
        .admin_create_user(create("bob@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let (anns_session, _) = challenge(&env.emu, "ann@example.com", TEMP).await;
    let r = env
        .emu
        .respond_to_new_password_challenge("bob@example.com", &anns_session, &Password::new(NEW))
        .await;
    assert_eq!(not_authorized(r), "Invalid session for the user, session is expired.");
    assert_eq!(
        env.emu.admin_get_user("bob@example.com").await.unwrap().status,
        IdpUserStatus::ForceChangePassword
    );
}

#[tokio::test]
async fn new_password_breaking_policy_is_invalid_password_and_the_session_stays_usable() {
    let env = env().await;
    env.emu
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let (session, username) = challenge(&env.emu, "ann@example.com", TEMP).await;
    let r = env
        .emu
        .respond_to_new_password_challenge(&username, &session, &Password::new("weakpass"))
        .await;
    assert_invalid_password(r, "Password must have uppercase characters");
    assert!(env
        .emu
        .respond_to_new_password_challenge(&username, &session, &Password::new(NEW))
        .await
        .is_ok());
}

#[tokio::test]
async fn completing_the_challenge_confirms_the_user_and_returns_verifiable_tokens() {
    let env = env().await;
    let created = env
        .emu
        .admin_create_user(create("Ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let (session, username) = challenge(&env.emu, "ann@example.com", TEMP).await;
    let tokens = env
        .emu
        .respond_to_new_password_challenge(&username, &session, &Password::new(NEW))
        .await
        .unwrap();
    assert_eq!(
        env.emu.admin_get_user("ann@example.com").await.unwrap().status,
        IdpUserStatus::Confirmed
    );
    assert_eq!(tokens.expires_in, 3600);
    assert!(!tokens.refresh_token.expose().is_empty());

    let now = admin_provisioner_core::clock::Clock::now(&*env.clock).timestamp();
    let id = verify(&env.emu, tokens.id_token.expose(), Some(DEFAULT_CLIENT_ID));
    assert_eq!(id["sub"], created.sub.as_str());
    assert_eq!(id["email"], "Ann@example.com");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["iss"], ISSUER);
    assert_eq!(id["aud"], DEFAULT_CLIENT_ID);
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["cognito:username"], "Ann@example.com");
    assert_eq!(id["iat"], now);
    assert_eq!(id["auth_time"], now);
    assert_eq!(id["exp"], now + 3600);
    assert!(id["jti"].is_string());
    assert!(id["origin_jti"].is_string());

    let access = verify(&env.emu, tokens.access_token.expose(), None);
    assert_eq!(access["sub"], created.sub.as_str());
    assert_eq!(access["iss"], ISSUER);
    assert_eq!(access["client_id"], DEFAULT_CLIENT_ID);
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["scope"], "aws.cognito.signin.user.admin");
    assert_eq!(access["username"], "Ann@example.com");
    assert_eq!(access["exp"], now + 3600);
    assert!(access.get("aud").is_none(), "access tokens carry no aud");
    assert_ne!(access["jti"], id["jti"]);
    assert_eq!(access["origin_jti"], id["origin_jti"]);

    // The temporary password no longer works; the new one does.
    assert_eq!(
        not_authorized(login(&env.emu, "ann@example.com", TEMP).await),
        "Incorrect username or password."
    );
}

#[tokio::test]
async fn confirmed_login_returns_tokens_directly() {
    let env = env().await;
    confirmed(&env.emu, "ann@example.com").await;
    env.clock.advance(Duration::days(30));
    match login(&env.emu, "ann@example.com", NEW).await.unwrap() {
        AuthOutcome::Tokens(tokens) => {
            let claims = verify(&env.emu, tokens.id_token.expose(), Some(DEFAULT_CLIENT_ID));
            assert_eq!(claims["token_use"], "id");
        }
        _ => panic!("a CONFIRMED user gets tokens"),
    }
}

// ---------------------------------------------------------------- configuration, JWKS, persistence

#[tokio::test]
async fn jwks_and_token_settings_describe_the_signer() {
    let env = env().await;
    let jwks = env.emu.jwks_json();
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["e"], "AQAB");
    assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(env.emu.jwks().await.unwrap(), jwks);
    let settings = env.emu.token_settings();
    assert_eq!(settings.issuer, ISSUER);
    assert_eq!(settings.client_id, DEFAULT_CLIENT_ID);
    assert_eq!(env.emu.kind(), "emulator");
    env.emu.ping().await.unwrap();
}

#[tokio::test]
async fn a_configured_issuer_is_used_in_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmulatorConfig {
        issuer: Some("http://127.0.0.1:8080/emulator".into()),
        client_id: "abcdefghijklmnopqrstuvwxyz".into(),
        ..EmulatorConfig::in_memory(dir.path())
    };
    let emu = CognitoEmulator::open(config).await.unwrap();
    assert_eq!(emu.token_settings().issuer, "http://127.0.0.1:8080/emulator");
    let tokens = confirmed(&emu, "ann@example.com").await;
    let payload = tokens.id_token.expose().split('.').nth(1).unwrap().to_string();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], "http://127.0.0.1:8080/emulator");
    assert_eq!(claims["aud"], "abcdefghijklmnopqrstuvwxyz");
}

#[tokio::test]
async fn state_survives_reopening_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").join("cognito.sqlite");
    let mail = dir.path().join("mail");
    let clock = Arc::new(ManualClock::new());
    let config = || EmulatorConfig {
        clock: clock.clone(),
        ..EmulatorConfig::file(&state, &mail)
    };

    let first = CognitoEmulator::open(config()).await.unwrap();
    let created = first
        .admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let tokens = confirmed(&first, "bob@example.com").await;
    let jwks_before = first.jwks_json();
    drop(first);

    let second = CognitoEmulator::open(config()).await.unwrap();
    assert_eq!(second.jwks_json(), jwks_before, "same key and kid after a restart");
    assert_eq!(second.admin_get_user("ANN@example.com").await.unwrap(), created);
    verify(&second, tokens.id_token.expose(), Some(DEFAULT_CLIENT_ID));
    assert!(matches!(
        login(&second, "ann@example.com", TEMP).await,
        Ok(AuthOutcome::NewPasswordRequired { .. })
    ));
    assert!(matches!(
        login(&second, "bob@example.com", NEW).await,
        Ok(AuthOutcome::Tokens(_))
    ));
}

#[tokio::test]
async fn two_instances_on_one_file_see_each_others_users() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("cognito.sqlite");
    let mail = dir.path().join("mail");
    let clock = Arc::new(ManualClock::new());
    let config = || EmulatorConfig {
        clock: clock.clone(),
        ..EmulatorConfig::file(&state, &mail)
    };
    let server = CognitoEmulator::open(config()).await.unwrap();
    let cli = CognitoEmulator::open(config()).await.unwrap();
    assert_eq!(server.jwks_json(), cli.jwks_json());

    cli.admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    assert!(server.admin_get_user("ann@example.com").await.is_ok());
    assert_eq!(
        server
            .admin_create_user(create("ann@example.com", None, None))
            .await
            .unwrap_err(),
        IdpError::UsernameExists
    );

    // A challenge started in one process can be answered in the other.
    let (session, username) = challenge(&server, "ann@example.com", TEMP).await;
    let tokens = cli
        .respond_to_new_password_challenge(&username, &session, &Password::new(NEW))
        .await
        .unwrap();
    verify(&server, tokens.access_token.expose(), None);
    assert_eq!(
        server.admin_get_user("ann@example.com").await.unwrap().status,
        IdpUserStatus::Confirmed
    );

    server.admin_delete_user("ann@example.com").await.unwrap();
    assert_eq!(
        cli.admin_get_user("ann@example.com").await.unwrap_err(),
        IdpError::UserNotFound
    );
}

#[tokio::test]
async fn passwords_are_never_stored_in_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("cognito.sqlite");
    let emu = CognitoEmulator::open(EmulatorConfig::file(&state, dir.path().join("mail")))
        .await
        .unwrap();
    emu.admin_create_user(create("ann@example.com", Some(TEMP), Some(MessageAction::Suppress)))
        .await
        .unwrap();
    emu.admin_create_user(create("bob@example.com", Some(TEMP), Some(MessageAction::Suppress)))
        .await
        .unwrap();
    let (session, username) = challenge(&emu, "bob@example.com", TEMP).await;
    let session_text = session.expose().to_string();
    emu.respond_to_new_password_challenge(&username, &session, &Password::new(NEW))
        .await
        .unwrap();
    let (_pending, _) = challenge(&emu, "ann@example.com", TEMP).await;

    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("cognito.sqlite")
        {
            stored.extend(std::fs::read(path).unwrap());
        }
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains("ann@example.com"), "sanity: the state is readable");
    assert!(!stored.contains(TEMP));
    assert!(!stored.contains(NEW));
    assert!(!stored.contains(&session_text));
}

#[tokio::test]
async fn concurrent_creates_of_one_username_from_two_instances_make_exactly_one_user() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("cognito.sqlite");
    let mail = dir.path().join("mail");
    let a = CognitoEmulator::open(EmulatorConfig::file(&state, &mail))
        .await
        .unwrap();
    let b = CognitoEmulator::open(EmulatorConfig::file(&state, &mail))
        .await
        .unwrap();
    let (ra, rb) = tokio::join!(
        a.admin_create_user(create("ann@example.com", None, None)),
        b.admin_create_user(create("ANN@example.com", None, None)),
    );
    assert_eq!(
        [ra.is_ok(), rb.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{ra:?} / {rb:?}"
    );
    assert!([&ra, &rb].iter().any(|r| matches!(r, Err(IdpError::UsernameExists))));
    assert_eq!(a.list_users(None, 60).await.unwrap().users.len(), 1);
    assert_eq!(Mailbox::new(&mail).messages().unwrap().len(), 1);
}

#[tokio::test]
async fn a_session_answered_twice_at_once_succeeds_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("cognito.sqlite");
    let mail = dir.path().join("mail");
    let a = CognitoEmulator::open(EmulatorConfig::file(&state, &mail))
        .await
        .unwrap();
    let b = CognitoEmulator::open(EmulatorConfig::file(&state, &mail))
        .await
        .unwrap();
    a.admin_create_user(create("ann@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let (session, username) = challenge(&a, "ann@example.com", TEMP).await;
    let (first, second) = (Password::new(NEW), Password::new("Other-Pass1!"));
    let (ra, rb) = tokio::join!(
        a.respond_to_new_password_challenge(&username, &session, &first),
        b.respond_to_new_password_challenge(&username, &session, &second),
    );
    assert_eq!(
        [ra.is_ok(), rb.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{ra:?} / {rb:?}"
    );
}

// ---- password recovery, admin reset, global sign-out ----

fn latest_code(env: &Env, username: &str) -> String {
    env.mailbox()
        .latest_for(username)
        .unwrap()
        .and_then(|m| m.reset_code())
        .expect("a reset code was mailed")
}

#[tokio::test]
async fn forgot_password_mails_a_six_digit_code_that_sets_the_password_once() {
    let env = env().await;
    confirmed(&env.emu, "ann@example.com").await;
    env.emu.forgot_password("ann@example.com").await.unwrap();
    let msg = env.mailbox().latest_for("ann@example.com").unwrap().unwrap();
    assert!(msg.body.contains("Your password reset code is "), "{}", msg.body);
    let code = latest_code(&env, "ann@example.com");
    assert_eq!(code.len(), 6);
    assert!(!msg.masked_body().contains(&code), "the code is masked for display");

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let e = env
        .emu
        .confirm_forgot_password("ann@example.com", &Secret::new(wrong), &Password::new("Other-Pass1!"))
        .await
        .unwrap_err();
    assert!(matches!(e, IdpError::CodeMismatch(_)), "{e:?}");
    let e = env
        .emu
        .confirm_forgot_password("ann@example.com", &Secret::new(&code), &Password::new("weak"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, IdpError::InvalidPassword(_)),
        "a policy failure keeps the code: {e:?}"
    );
    env.emu
        .confirm_forgot_password("ann@example.com", &Secret::new(&code), &Password::new("Other-Pass1!"))
        .await
        .unwrap();
    assert!(login(&env.emu, "ann@example.com", NEW).await.is_err());
    assert!(matches!(
        login(&env.emu, "ann@example.com", "Other-Pass1!").await.unwrap(),
        AuthOutcome::Tokens(_)
    ));
    let reused = env
        .emu
        .confirm_forgot_password("ann@example.com", &Secret::new(&code), &Password::new("Third-Pass1!"))
        .await
        .unwrap_err();
    assert!(
        matches!(reused, IdpError::CodeMismatch(_)),
        "a code works once: {reused:?}"
    );
}

#[tokio::test]
async fn forgot_password_reveals_nothing_about_unknown_users_and_codes_expire() {
    let env = env().await;
    env.emu.forgot_password("nobody@example.com").await.unwrap();
    assert!(env.mailbox().latest_for("nobody@example.com").unwrap().is_none());
    let e = env
        .emu
        .confirm_forgot_password(
            "nobody@example.com",
            &Secret::new("123456"),
            &Password::new("Other-Pass1!"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, IdpError::CodeMismatch(_)), "{e:?}");

    confirmed(&env.emu, "bea@example.com").await;
    env.emu.forgot_password("bea@example.com").await.unwrap();
    let code = latest_code(&env, "bea@example.com");
    env.clock.advance(Duration::seconds(
        admin_provisioner_emulator::RESET_CODE_VALIDITY_SECONDS,
    ));
    let e = env
        .emu
        .confirm_forgot_password("bea@example.com", &Secret::new(&code), &Password::new("Other-Pass1!"))
        .await
        .unwrap_err();
    assert!(matches!(e, IdpError::CodeMismatch(_)), "an expired code: {e:?}");
}

#[tokio::test]
async fn wrong_codes_use_up_the_code() {
    let env = env().await;
    confirmed(&env.emu, "cy@example.com").await;
    env.emu.forgot_password("cy@example.com").await.unwrap();
    let code = latest_code(&env, "cy@example.com");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..admin_provisioner_emulator::RESET_CODE_MAX_ATTEMPTS {
        let _ = env
            .emu
            .confirm_forgot_password("cy@example.com", &Secret::new(wrong), &Password::new("Other-Pass1!"))
            .await;
    }
    let e = env
        .emu
        .confirm_forgot_password("cy@example.com", &Secret::new(&code), &Password::new("Other-Pass1!"))
        .await
        .unwrap_err();
    assert!(matches!(e, IdpError::CodeMismatch(_)), "{e:?}");
}

#[tokio::test]
async fn admin_reset_requires_a_reset_and_refuses_users_without_a_password() {
    let env = env().await;
    confirmed(&env.emu, "dan@example.com").await;
    env.emu.admin_reset_user_password("dan@example.com").await.unwrap();
    assert_eq!(
        env.emu.admin_get_user("dan@example.com").await.unwrap().status,
        IdpUserStatus::Other("RESET_REQUIRED".into())
    );
    let e = login(&env.emu, "dan@example.com", NEW).await.unwrap_err();
    assert!(matches!(e, IdpError::PasswordResetRequired(_)), "{e:?}");
    let code = latest_code(&env, "dan@example.com");
    env.emu
        .confirm_forgot_password("dan@example.com", &Secret::new(&code), &Password::new("Other-Pass1!"))
        .await
        .unwrap();
    assert_eq!(
        env.emu.admin_get_user("dan@example.com").await.unwrap().status,
        IdpUserStatus::Confirmed
    );

    env.emu
        .admin_create_user(create("eve@example.com", Some(TEMP), None))
        .await
        .unwrap();
    let e = env.emu.admin_reset_user_password("eve@example.com").await.unwrap_err();
    assert!(
        matches!(e, IdpError::NotAuthorized(_)),
        "no password to reset yet: {e:?}"
    );
    assert_eq!(
        env.emu
            .admin_reset_user_password("nobody@example.com")
            .await
            .unwrap_err(),
        IdpError::UserNotFound
    );
}

#[tokio::test]
async fn admin_global_sign_out_revokes_refresh_tokens() {
    let env = env().await;
    let tokens = confirmed(&env.emu, "fay@example.com").await;
    env.emu.refresh_tokens(&tokens.refresh_token).await.unwrap();
    IdentityProvider::admin_user_global_sign_out(&env.emu, "fay@example.com")
        .await
        .unwrap();
    let e = env.emu.refresh_tokens(&tokens.refresh_token).await.unwrap_err();
    assert!(matches!(e, IdpError::NotAuthorized(_)), "{e:?}");
}

// ------------------------------------------------------------------------------------------ groups

/// Groups: created once (`GroupExists` after), a missing group or user named in the error, adding twice
/// and removing a non-member succeed, and both tokens carry `cognito:groups` (absent without groups).
#[tokio::test]
async fn groups_follow_cognitos_rules_and_tokens_carry_them() {
    let e = env().await;
    let tokens = confirmed(&e.emu, "ann@example.com").await;
    let claims = verify(&e.emu, tokens.id_token.expose(), Some(DEFAULT_CLIENT_ID));
    assert!(claims.get("cognito:groups").is_none(), "{claims}");

    assert_eq!(
        e.emu.get_group("team-b").await.unwrap_err(),
        IdpError::ResourceNotFound("Group not found.".into())
    );
    assert!(matches!(
        e.emu.admin_add_user_to_group("ann@example.com", "team-b").await,
        Err(IdpError::ResourceNotFound(_))
    ));
    e.emu.create_group("team-b", "B").await.unwrap();
    e.emu.create_group("team-a", "").await.unwrap();
    assert!(matches!(
        e.emu.create_group("team-b", "again").await,
        Err(IdpError::GroupExists(_))
    ));
    assert!(matches!(
        e.emu.create_group("has space", "").await,
        Err(IdpError::InvalidParameter(_))
    ));
    assert_eq!(
        e.emu.get_group("team-b").await.unwrap().description.as_deref(),
        Some("B")
    );
    assert_eq!(
        e.emu.admin_add_user_to_group("nobody@example.com", "team-b").await,
        Err(IdpError::UserNotFound)
    );
    for _ in 0..2 {
        e.emu
            .admin_add_user_to_group("ann@example.com", "team-b")
            .await
            .unwrap();
    }
    // Usernames are case-insensitive.
    e.emu
        .admin_add_user_to_group("ANN@example.com", "team-a")
        .await
        .unwrap();
    assert_eq!(
        e.emu.admin_list_groups_for_user("ann@example.com").await.unwrap(),
        ["team-a", "team-b"]
    );
    let tokens = match login(&e.emu, "ann@example.com", NEW).await.unwrap() {
        AuthOutcome::Tokens(t) => t,
        other => panic!("{other:?}"),
    };
    let id = verify(&e.emu, tokens.id_token.expose(), Some(DEFAULT_CLIENT_ID));
    assert_eq!(id["cognito:groups"], serde_json::json!(["team-a", "team-b"]));
    let access = verify(&e.emu, tokens.access_token.expose(), None);
    assert_eq!(access["cognito:groups"], serde_json::json!(["team-a", "team-b"]));

    e.emu
        .admin_remove_user_from_group("ann@example.com", "team-a")
        .await
        .unwrap();
    e.emu
        .admin_remove_user_from_group("ann@example.com", "team-a")
        .await
        .unwrap();
    assert_eq!(
        e.emu.admin_list_groups_for_user("ann@example.com").await.unwrap(),
        ["team-b"]
    );
    // Deleting the user ends its memberships; a new user of the same name starts with none.
    e.emu.admin_delete_user("ann@example.com").await.unwrap();
    assert_eq!(
        e.emu.admin_list_groups_for_user("ann@example.com").await,
        Err(IdpError::UserNotFound)
    );
    confirmed(&e.emu, "ann@example.com").await;
    assert!(e
        .emu
        .admin_list_groups_for_user("ann@example.com")
        .await
        .unwrap()
        .is_empty());
}

/// Groups and memberships live in the state file: a new process on the same file sees them.
#[tokio::test]
async fn groups_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("emu.db");
    let open = || CognitoEmulator::open(EmulatorConfig::file(&state, dir.path().join("mailbox")));
    let emu = open().await.unwrap();
    emu.admin_create_user(create("bo@example.com", Some(TEMP), Some(MessageAction::Suppress)))
        .await
        .unwrap();
    emu.create_group("admin-provisioner-viewer", "v").await.unwrap();
    emu.admin_add_user_to_group("bo@example.com", "admin-provisioner-viewer")
        .await
        .unwrap();
    drop(emu);
    let emu = open().await.unwrap();
    assert_eq!(
        emu.get_group("admin-provisioner-viewer").await.unwrap().name,
        "admin-provisioner-viewer"
    );
    assert_eq!(
        emu.admin_list_groups_for_user("bo@example.com").await.unwrap(),
        ["admin-provisioner-viewer"]
    );
}
