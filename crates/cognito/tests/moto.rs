//! The Cognito adapter against a local moto server (never AWS).
//!
//! Needs `moto_server`: `python3 -m venv .venv && .venv/bin/pip install 'moto[server]'` in the workspace
//! root (or `MOTO_SERVER_BIN`). Without it these tests fail and say so.
//!
//! Moto is not Cognito. Where it differs (see `shared/docs/cognito-facts.md`), the tests assert only what
//! real Cognito also guarantees and say why. Not tested here because moto does not do it: a
//! `TemporaryPassword` that breaks the password policy (AWS answers InvalidPassword, moto accepts it; the
//! policy is enforced by moto on the new password, which `first_login` checks).

use admin_provisioner_cognito::doctor::{self, Severity};
use admin_provisioner_cognito::testing::{MotoPool, MotoServer, PoolOptions};
use admin_provisioner_core::domain::{Password, TemporaryPassword};
use admin_provisioner_core::identity::{
    AuthOutcome, CreateUserRequest, IdentityProvider, IdpError, IdpUserStatus, MessageAction,
};
use std::sync::Arc;

const TEMP: &str = "Temp#Pass1234";
const NEW: &str = "New#Pass56789";

async fn pool(options: PoolOptions) -> (Arc<MotoServer>, MotoPool) {
    let moto = MotoServer::shared().unwrap_or_else(|e| panic!("{e:#}"));
    let pool = moto
        .create_pool(options)
        .await
        .unwrap_or_else(|e| panic!("creating a moto pool: {e:#}"));
    (moto, pool)
}

fn invite(username: &str) -> CreateUserRequest {
    CreateUserRequest {
        username: username.to_string(),
        email: username.to_string(),
        temporary_password: Some(TemporaryPassword::new(TEMP)),
        message_action: None,
    }
}

#[tokio::test]
async fn create_get_list_delete_and_their_errors() {
    let (_moto, pool) = pool(PoolOptions::default()).await;
    let idp = &pool.provider;

    let user = idp.admin_create_user(invite("ann@example.com")).await.unwrap();
    assert_eq!(user.username, "ann@example.com");
    assert_eq!(user.email.as_deref(), Some("ann@example.com"));
    assert_eq!(user.sub.len(), 36, "sub is a UUID: {}", user.sub);
    assert_eq!(user.status, IdpUserStatus::ForceChangePassword);
    assert!(user.enabled);
    assert!(user.created_at.timestamp() > 1_600_000_000);

    let dup = idp.admin_create_user(invite("ann@example.com")).await.unwrap_err();
    assert_eq!(dup, IdpError::UsernameExists);
    assert!(!dup.is_transient());

    let got = idp.admin_get_user("ann@example.com").await.unwrap();
    assert_eq!(
        (got.username.as_str(), got.sub.as_str()),
        (user.username.as_str(), user.sub.as_str())
    );
    assert_eq!(got.status, IdpUserStatus::ForceChangePassword);

    idp.ping().await.unwrap();
    let page = idp.list_users(None, 60).await.unwrap();
    assert!(page.users.iter().any(|u| u.sub == user.sub));

    idp.admin_delete_user("ann@example.com").await.unwrap();
    assert_eq!(
        idp.admin_get_user("ann@example.com").await.unwrap_err(),
        IdpError::UserNotFound
    );
    assert_eq!(
        idp.admin_delete_user("ann@example.com").await.unwrap_err(),
        IdpError::UserNotFound
    );
}

#[tokio::test]
async fn list_users_pages() {
    let (_moto, pool) = pool(PoolOptions::default()).await;
    let idp = &pool.provider;
    for i in 0..3 {
        idp.admin_create_user(invite(&format!("user{i}@example.com")))
            .await
            .unwrap();
    }
    let first = idp.list_users(None, 2).await.unwrap();
    assert_eq!(first.users.len(), 2);
    let token = first.next_token.clone().expect("a second page");
    let second = idp.list_users(Some(token), 2).await.unwrap();
    assert_eq!(second.users.len(), 1);
    assert!(second.next_token.is_none());
    let mut all: Vec<String> = first
        .users
        .iter()
        .chain(&second.users)
        .map(|u| u.username.clone())
        .collect();
    all.sort();
    assert_eq!(all, ["user0@example.com", "user1@example.com", "user2@example.com"]);
}

/// First login: temporary password → NEW_PASSWORD_REQUIRED → new password → tokens whose RS256 signature
/// verifies against the pool's JWKS.
async fn first_login(pool: &MotoPool) {
    let idp = &pool.provider;
    let user = idp.admin_create_user(invite("bob@example.com")).await.unwrap();

    let wrong = idp
        .initiate_auth("bob@example.com", &Password::new("Wrong#Pass123"))
        .await
        .unwrap_err();
    assert!(matches!(wrong, IdpError::NotAuthorized(_)), "{wrong:?}");
    assert!(!wrong.to_string().contains("Wrong#Pass123"));

    let (session, challenge_user) = match idp
        .initiate_auth("bob@example.com", &Password::new(TEMP))
        .await
        .unwrap()
    {
        AuthOutcome::NewPasswordRequired { session, username } => (session, username),
        _ => panic!("a new user must change the temporary password first"),
    };
    // AWS returns USER_ID_FOR_SRP (the username); moto returns USERNAME. Both are the user's username here.
    assert_eq!(challenge_user, user.username);

    let weak = idp
        .respond_to_new_password_challenge(&challenge_user, &session, &Password::new("weak"))
        .await
        .unwrap_err();
    assert!(matches!(weak, IdpError::InvalidPassword(_)), "{weak:?}");

    let tokens = idp
        .respond_to_new_password_challenge(&challenge_user, &session, &Password::new(NEW))
        .await
        .unwrap();
    assert!(tokens.expires_in > 0);
    assert!(!tokens.refresh_token.expose().is_empty());
    assert_eq!(
        idp.admin_get_user("bob@example.com").await.unwrap().status,
        IdpUserStatus::Confirmed
    );

    // Verify the ID token: RS256, key chosen by kid from the JWKS, iss, aud, exp, token_use.
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(idp.jwks().await.unwrap()).unwrap();
    let id_token = tokens.id_token.expose();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("the token's key is in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let settings = idp.token_settings();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[settings.issuer.as_str()]);
    validation.set_audience(&[settings.client_id.as_str()]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["token_use"], "id");
    assert_eq!(claims["sub"], user.sub.as_str());
    assert_eq!(claims["cognito:username"], user.username.as_str());

    // A tampered token must not verify.
    let mut tampered = id_token.to_string();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    assert!(jsonwebtoken::decode::<serde_json::Value>(&tampered, &key, &validation).is_err());

    // From now on the new password logs in directly.
    match idp.initiate_auth("bob@example.com", &Password::new(NEW)).await.unwrap() {
        AuthOutcome::Tokens(t) => assert!(!t.access_token.expose().is_empty()),
        other => panic!("expected tokens, got {other:?}"),
    }
}

#[tokio::test]
async fn first_login_and_token_verification() {
    let (_moto, pool) = pool(PoolOptions::default()).await;
    assert!(pool.provider.config().client_secret.is_none());
    first_login(&pool).await;
}

#[tokio::test]
async fn first_login_with_a_client_secret() {
    // SECRET_HASH is sent with InitiateAuth and RespondToAuthChallenge. (Moto does not verify it on
    // USER_PASSWORD_AUTH; the hash itself is checked by the known-answer unit test.)
    let (_moto, pool) = pool(PoolOptions {
        generate_secret: true,
        ..PoolOptions::default()
    })
    .await;
    assert!(pool.client_secret.is_some());
    first_login(&pool).await;
}

#[tokio::test]
async fn email_as_username_pool_returns_a_uuid_username_and_resend_works() {
    let (_moto, pool) = pool(PoolOptions::email_as_username()).await;
    let idp = &pool.provider;
    let user = idp.admin_create_user(invite("carol@example.com")).await.unwrap();
    // In e-mail-as-username pools Cognito's Username is a UUID (= sub), not the e-mail.
    assert_ne!(user.username, "carol@example.com");
    assert_eq!(user.username, user.sub);
    assert_eq!(user.email.as_deref(), Some("carol@example.com"));
    assert_eq!(idp.admin_get_user(&user.username).await.unwrap().sub, user.sub);
    // The e-mail alias also finds the user.
    assert_eq!(
        idp.admin_get_user("carol@example.com").await.unwrap().status,
        IdpUserStatus::ForceChangePassword
    );

    // RESEND. Real Cognito keeps the same user (same Username and sub) and sets a new temporary password;
    // moto instead creates a replacement user (new sub, attributes dropped, no password). So assert only
    // what both guarantee: the call succeeds and the user is (still) waiting for first login.
    let resent = idp
        .admin_create_user(CreateUserRequest {
            username: "carol@example.com".into(),
            email: "carol@example.com".into(),
            temporary_password: None,
            message_action: Some(MessageAction::Resend),
        })
        .await
        .unwrap();
    assert_eq!(resent.status, IdpUserStatus::ForceChangePassword);
    assert!(!resent.sub.is_empty());

    // RESEND to someone who does not exist: UserNotFound (Cognito and moto agree).
    let missing = idp
        .admin_create_user(CreateUserRequest {
            username: "nobody@example.com".into(),
            email: "nobody@example.com".into(),
            temporary_password: None,
            message_action: Some(MessageAction::Resend),
        })
        .await
        .unwrap_err();
    assert_eq!(missing, IdpError::UserNotFound);
}

#[tokio::test]
async fn doctor_reports_a_misconfigured_pool() {
    let (_moto, pool) = pool(PoolOptions::misconfigured()).await;
    let findings = doctor::check(&pool.provider, 7).await.unwrap();
    let has = |code: &str, severity: Severity| findings.iter().any(|f| f.code == code && f.severity == severity);
    for (code, severity) in [
        ("user_password_auth_disabled", Severity::Blocking),
        ("temporary_password_validity_mismatch", Severity::Blocking),
        ("invite_template_missing_placeholder", Severity::Blocking),
        ("cognito_default_email_sender", Severity::Warning),
        ("usernames_case_sensitive", Severity::Warning),
        ("self_sign_up_allowed", Severity::Warning),
    ] {
        assert!(has(code, severity), "missing {code} in {findings:#?}");
    }
    let mismatch = findings
        .iter()
        .find(|f| f.code == "temporary_password_validity_mismatch")
        .unwrap();
    assert!(
        mismatch.message.contains('3') && mismatch.message.contains('7'),
        "{}",
        mismatch.message
    );
    let template = findings
        .iter()
        .find(|f| f.code == "invite_template_missing_placeholder")
        .unwrap();
    assert!(template.message.contains("{####}"), "{}", template.message);
    for f in &findings {
        assert!(!f.message.contains('\n'), "one line: {f}");
    }
}

#[tokio::test]
async fn doctor_finds_nothing_blocking_on_a_good_pool() {
    let (_moto, pool) = pool(PoolOptions::default()).await;
    let findings = doctor::check(&pool.provider, 7).await.unwrap();
    assert!(!doctor::has_blocking(&findings), "{findings:#?}");
    // Asking for another invite validity than the pool's is caught.
    let findings = doctor::check(&pool.provider, 5).await.unwrap();
    assert!(findings
        .iter()
        .any(|f| f.code == "temporary_password_validity_mismatch"));
}

#[tokio::test]
async fn missing_pool_is_resource_not_found() {
    let (moto, pool) = pool(PoolOptions::default()).await;
    let mut config = pool.provider.config().clone();
    config.user_pool_id = "us-east-1_DoesNotExist".into();
    let idp = admin_provisioner_cognito::CognitoIdentityProvider::from_client(moto.sdk_client("us-east-1"), config);
    let e = idp.admin_get_user("x@example.com").await.unwrap_err();
    assert!(matches!(e, IdpError::ResourceNotFound(_)), "{e:?}");
    assert!(matches!(idp.ping().await.unwrap_err(), IdpError::ResourceNotFound(_)));
    let findings = doctor::check(&idp, 7).await.unwrap();
    assert_eq!(
        findings.iter().map(|f| f.code).collect::<Vec<_>>(),
        ["user_pool_not_found"]
    );
}

#[tokio::test]
async fn a_bad_session_is_refused_without_echoing_it() {
    let (_moto, pool) = pool(PoolOptions::default()).await;
    let idp = &pool.provider;
    idp.admin_create_user(invite("dave@example.com")).await.unwrap();
    let bogus = admin_provisioner_core::domain::Secret::new("bogus-session-0123456789");
    let e = idp
        .respond_to_new_password_challenge("dave@example.com", &bogus, &Password::new(NEW))
        .await
        .unwrap_err();
    // AWS answers NotAuthorized ("Invalid session for the user"); moto answers ResourceNotFound with the
    // session as the message. Assert what matters for both: refused, permanent, and the session is not
    // repeated in the error.
    assert!(
        matches!(e, IdpError::NotAuthorized(_) | IdpError::ResourceNotFound(_)),
        "{e:?}"
    );
    assert!(!e.is_transient());
    assert!(!e.to_string().contains("bogus-session-0123456789"), "{e}");
}

/// `AdminDisableUser` / `AdminEnableUser` through the SDK adapter: moto's `AdminGetUser` shows the
/// `Enabled` flag, and moto (like Cognito) refuses `InitiateAuth` for a disabled user with
/// `NotAuthorizedException: User is disabled.` (it checks before the password, so even the right one is
/// refused). A missing user is the port's `UserNotFound` for both calls.
#[tokio::test]
async fn disable_and_enable_a_user() {
    let (_moto, pool) = pool(PoolOptions::default()).await;
    let idp = &pool.provider;
    idp.admin_create_user(invite("dora@example.com")).await.unwrap();

    idp.admin_disable_user("dora@example.com").await.unwrap();
    assert!(!idp.admin_get_user("dora@example.com").await.unwrap().enabled);
    let refused = idp
        .initiate_auth("dora@example.com", &Password::new(TEMP))
        .await
        .unwrap_err();
    assert!(matches!(refused, IdpError::NotAuthorized(_)), "{refused:?}");
    assert!(!refused.to_string().contains(TEMP));
    // Disabling twice is not an error (Cognito answers success too).
    idp.admin_disable_user("dora@example.com").await.unwrap();

    idp.admin_enable_user("dora@example.com").await.unwrap();
    assert!(idp.admin_get_user("dora@example.com").await.unwrap().enabled);
    match idp
        .initiate_auth("dora@example.com", &Password::new(TEMP))
        .await
        .unwrap()
    {
        AuthOutcome::NewPasswordRequired { .. } => {}
        other => panic!("an enabled new user gets the new-password challenge, got {other:?}"),
    }

    assert_eq!(
        idp.admin_disable_user("nobody@example.com").await.unwrap_err(),
        IdpError::UserNotFound
    );
    assert_eq!(
        idp.admin_enable_user("nobody@example.com").await.unwrap_err(),
        IdpError::UserNotFound
    );
}

/// Software-token MFA on a pool with `MfaConfiguration=ON`, through the adapter, on moto.
///
/// moto checks TOTP codes only when `MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP=true` (the harness starts
/// `moto_server` with it), against one fixed secret for every user (`asdfasdfasdf`, shorter than
/// Cognito's 160 bits), in the current 30-second step only (no ±1 step), and it does not refuse a code
/// used before: the replay rule is tested on the emulator (`tests/mfa.rs`). The codes here are computed
/// from the secret `AssociateSoftwareToken` answered, as an authenticator app would.
#[tokio::test]
async fn mfa_on_pool_walks_new_password_mfa_setup_then_software_token_mfa() {
    use admin_provisioner_core::domain::Secret;
    use admin_provisioner_core::identity::{ChallengeAnswer, MfaAuth};
    use aws_sdk_cognitoidentityprovider::types::{SoftwareTokenMfaConfigType, UserPoolMfaType};
    let (moto, pool) = pool(PoolOptions::default()).await;
    moto.sdk_client(admin_provisioner_cognito::DEFAULT_REGION)
        .set_user_pool_mfa_config()
        .user_pool_id(&pool.user_pool_id)
        .software_token_mfa_configuration(SoftwareTokenMfaConfigType::builder().enabled(true).build())
        .mfa_configuration(UserPoolMfaType::On)
        .send()
        .await
        .unwrap();
    // The doctor accepts MFA=ON with software tokens.
    let findings = doctor::check(&pool.provider, 7).await.unwrap();
    assert!(!findings.iter().any(|f| f.code.starts_with("mfa")), "{findings:?}");
    let idp = &pool.provider;
    idp.admin_create_user(invite("mia@example.com")).await.unwrap();
    let now_code = |secret: &Secret| {
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
        Secret::new(admin_provisioner_core::totp::code_at(secret.expose(), now).unwrap())
    };

    let (session, user) = match idp
        .initiate_auth("mia@example.com", &Password::new(TEMP))
        .await
        .unwrap()
    {
        AuthOutcome::NewPasswordRequired { session, username } => (session, username),
        other => panic!("expected NEW_PASSWORD_REQUIRED, got {:?}", other.challenge_name()),
    };
    let session = match idp
        .respond_to_auth_challenge(&user, &session, &ChallengeAnswer::NewPassword(Password::new(NEW)))
        .await
        .unwrap()
    {
        AuthOutcome::MfaSetup { session, .. } => session,
        other => panic!("expected MFA_SETUP, got {:?}", other.challenge_name()),
    };
    let assoc = idp.associate_software_token(&MfaAuth::Session(session)).await.unwrap();
    let session = assoc
        .session
        .expect("AssociateSoftwareToken with a session answers one");
    let wrong = idp
        .verify_software_token(&MfaAuth::Session(session.clone()), &Secret::new("000000"))
        .await;
    if now_code(&assoc.secret_code).expose() != "000000" {
        assert!(matches!(wrong, Err(IdpError::CodeMismatch(_))), "{wrong:?}");
    }
    let next = idp
        .verify_software_token(&MfaAuth::Session(session), &now_code(&assoc.secret_code))
        .await
        .unwrap()
        .expect("a session to complete MFA_SETUP with");
    match idp
        .respond_to_auth_challenge(&user, &next, &ChallengeAnswer::MfaSetup)
        .await
        .unwrap()
    {
        AuthOutcome::Tokens(t) => assert!(!t.access_token.expose().is_empty()),
        other => panic!("expected tokens, got {:?}", other.challenge_name()),
    }

    // Every later sign-in asks for a code.
    let (session, user) = match idp.initiate_auth("mia@example.com", &Password::new(NEW)).await.unwrap() {
        AuthOutcome::SoftwareTokenMfa { session, username } => (session, username),
        other => panic!("expected SOFTWARE_TOKEN_MFA, got {:?}", other.challenge_name()),
    };
    let wrong = idp
        .respond_to_auth_challenge(
            &user,
            &session,
            &ChallengeAnswer::SoftwareTokenMfa(Secret::new("000000")),
        )
        .await;
    if now_code(&assoc.secret_code).expose() != "000000" {
        assert!(matches!(wrong, Err(IdpError::CodeMismatch(_))), "{wrong:?}");
    }
    let (session, user) = match idp.initiate_auth("mia@example.com", &Password::new(NEW)).await.unwrap() {
        AuthOutcome::SoftwareTokenMfa { session, username } => (session, username),
        other => panic!("expected SOFTWARE_TOKEN_MFA, got {:?}", other.challenge_name()),
    };
    let tokens = match idp
        .respond_to_auth_challenge(
            &user,
            &session,
            &ChallengeAnswer::SoftwareTokenMfa(now_code(&assoc.secret_code)),
        )
        .await
        .unwrap()
    {
        AuthOutcome::Tokens(t) => t,
        other => panic!("expected tokens, got {:?}", other.challenge_name()),
    };

    // Enrolment with an access token (REQUIRE_MFA's path) and SetUserMFAPreference.
    let assoc = idp
        .associate_software_token(&MfaAuth::AccessToken(tokens.access_token.clone()))
        .await
        .unwrap();
    assert!(assoc.session.is_none());
    idp.verify_software_token(
        &MfaAuth::AccessToken(tokens.access_token.clone()),
        &now_code(&assoc.secret_code),
    )
    .await
    .unwrap();
    idp.set_user_mfa_preference(&tokens.access_token, true).await.unwrap();
    // A made-up access token is refused.
    assert!(matches!(
        idp.associate_software_token(&MfaAuth::AccessToken(Secret::new("nope")))
            .await,
        Err(IdpError::NotAuthorized(_))
    ));
}

/// A confirmed user with password [`NEW`] and a refresh token, through the first-login challenge.
async fn confirmed_user(pool: &MotoPool, username: &str) -> admin_provisioner_core::domain::Tokens {
    let idp = &pool.provider;
    idp.admin_create_user(invite(username)).await.unwrap();
    let AuthOutcome::NewPasswordRequired { session, username: u } =
        idp.initiate_auth(username, &Password::new(TEMP)).await.unwrap()
    else {
        panic!("a new user must change the temporary password first")
    };
    idp.respond_to_new_password_challenge(&u, &session, &Password::new(NEW))
        .await
        .unwrap()
}

/// moto 5.2.5's `ForgotPassword` answers an unknown user like a known one (as Cognito with
/// `PreventUserExistenceErrors=ENABLED`); it e-mails nothing (the code comes back in the header
/// `x-moto-forgot-password-confirmation-code`) and its `ConfirmForgotPassword` checks only codes starting
/// with `moto-confirmation-code:`, so any six digits set the password there; a wrong code is tested on the
/// emulator instead.
#[tokio::test]
async fn forgot_password_and_confirm_set_a_new_password() {
    let (_moto, pool) = pool(PoolOptions::default()).await;
    let idp = &pool.provider;
    confirmed_user(&pool, "fay@example.com").await;
    idp.forgot_password("fay@example.com").await.unwrap();
    idp.forgot_password("nobody@example.com").await.unwrap();
    idp.confirm_forgot_password(
        "fay@example.com",
        &admin_provisioner_core::domain::Secret::new("123456"),
        &Password::new("Reset#Pass999"),
    )
    .await
    .unwrap();
    let old = idp
        .initiate_auth("fay@example.com", &Password::new(NEW))
        .await
        .unwrap_err();
    assert!(matches!(old, IdpError::NotAuthorized(_)), "{old:?}");
    assert!(matches!(
        idp.initiate_auth("fay@example.com", &Password::new("Reset#Pass999"))
            .await
            .unwrap(),
        AuthOutcome::Tokens(_)
    ));
}

/// `AdminResetUserPassword` puts the user in `RESET_REQUIRED` (moto and Cognito). Cognito's next
/// `InitiateAuth` answers `PasswordResetRequiredException`; moto 5.2.5 still answers tokens for the old
/// password on `USER_PASSWORD_AUTH` (and a `NEW_PASSWORD_REQUIRED` challenge on `ADMIN_USER_PASSWORD_AUTH`),
/// so only the status is asserted here; the sign-in refusal is tested on the emulator.
#[tokio::test]
async fn admin_reset_user_password_requires_a_reset() {
    let (_moto, pool) = pool(PoolOptions::default()).await;
    let idp = &pool.provider;
    confirmed_user(&pool, "gus@example.com").await;
    idp.admin_reset_user_password("gus@example.com").await.unwrap();
    assert_eq!(
        idp.admin_get_user("gus@example.com").await.unwrap().status,
        IdpUserStatus::Other("RESET_REQUIRED".into())
    );
    assert_eq!(
        idp.admin_reset_user_password("nobody@example.com").await.unwrap_err(),
        IdpError::UserNotFound
    );
}

/// After `AdminUserGlobalSignOut` moto refuses the user's refresh token (`NotAuthorizedException`), as
/// Cognito does; `AdminSetUserMFAPreference` answers for an existing user and `UserNotFound` otherwise.
#[tokio::test]
async fn global_sign_out_revokes_refresh_tokens_and_mfa_preference_is_cleared() {
    let (_moto, pool) = pool(PoolOptions::default()).await;
    let idp = &pool.provider;
    let tokens = confirmed_user(&pool, "hal@example.com").await;
    let token = tokens.refresh_token.expose().to_string();
    pool.refresh(&token)
        .await
        .expect("the refresh token works before sign-out");
    idp.admin_user_global_sign_out("hal@example.com").await.unwrap();
    assert_eq!(pool.refresh(&token).await, Err("NotAuthorizedException".to_string()));
    idp.admin_set_user_mfa_preference("hal@example.com", false)
        .await
        .unwrap();
    assert_eq!(
        idp.admin_user_global_sign_out("nobody@example.com").await.unwrap_err(),
        IdpError::UserNotFound
    );
}

/// The group calls on moto: create (GroupExists after), get, add (twice), list, remove (twice), the
/// errors for a missing group or user; and a member's ID and access tokens carry `cognito:groups`.
///
/// Moto differences: its `ResourceNotFoundException` message for a missing group is the group's name
/// (Cognito says "Group not found."), so only the kind is asserted; it does not validate group names.
#[tokio::test]
async fn groups_and_cognito_groups_in_tokens() {
    let (_moto, pool) = pool(PoolOptions::default()).await;
    let idp = &pool.provider;
    idp.admin_create_user(invite("gus@example.com")).await.unwrap();
    assert!(matches!(
        idp.get_group("admin-provisioner-viewer").await,
        Err(IdpError::ResourceNotFound(_))
    ));
    assert!(matches!(
        idp.admin_add_user_to_group("gus@example.com", "admin-provisioner-viewer")
            .await,
        Err(IdpError::ResourceNotFound(_))
    ));
    idp.create_group("admin-provisioner-viewer", "viewers").await.unwrap();
    assert!(matches!(
        idp.create_group("admin-provisioner-viewer", "again").await,
        Err(IdpError::GroupExists(_))
    ));
    let g = idp.get_group("admin-provisioner-viewer").await.unwrap();
    assert_eq!(g.description.as_deref(), Some("viewers"));
    assert_eq!(
        idp.admin_add_user_to_group("nobody@example.com", "admin-provisioner-viewer")
            .await,
        Err(IdpError::UserNotFound)
    );
    idp.create_group("other-team", "not ours").await.unwrap();
    for _ in 0..2 {
        idp.admin_add_user_to_group("gus@example.com", "admin-provisioner-viewer")
            .await
            .unwrap();
    }
    idp.admin_add_user_to_group("gus@example.com", "other-team")
        .await
        .unwrap();
    assert_eq!(
        idp.admin_list_groups_for_user("gus@example.com").await.unwrap(),
        ["admin-provisioner-viewer", "other-team"]
    );

    let (session, user) = match idp
        .initiate_auth("gus@example.com", &Password::new(TEMP))
        .await
        .unwrap()
    {
        AuthOutcome::NewPasswordRequired { session, username } => (session, username),
        other => panic!("{other:?}"),
    };
    let tokens = idp
        .respond_to_new_password_challenge(&user, &session, &Password::new(NEW))
        .await
        .unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(idp.jwks().await.unwrap()).unwrap();
    let settings = idp.token_settings();
    let claims = |token: &str, audience: bool| {
        let header = jsonwebtoken::decode_header(token).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_issuer(&[settings.issuer.as_str()]);
        if audience {
            v.set_audience(&[settings.client_id.as_str()]);
        } else {
            v.validate_aud = false;
        }
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
            .unwrap()
            .claims
    };
    let mut groups: Vec<String> =
        serde_json::from_value(claims(tokens.id_token.expose(), true)["cognito:groups"].clone()).unwrap();
    groups.sort();
    assert_eq!(groups, ["admin-provisioner-viewer", "other-team"]);
    let mut groups: Vec<String> =
        serde_json::from_value(claims(tokens.access_token.expose(), false)["cognito:groups"].clone()).unwrap();
    groups.sort();
    assert_eq!(groups, ["admin-provisioner-viewer", "other-team"]);

    for _ in 0..2 {
        idp.admin_remove_user_from_group("gus@example.com", "admin-provisioner-viewer")
            .await
            .unwrap();
    }
    assert_eq!(
        idp.admin_list_groups_for_user("gus@example.com").await.unwrap(),
        ["other-team"]
    );
    assert_eq!(
        idp.admin_list_groups_for_user("nobody@example.com").await,
        Err(IdpError::UserNotFound)
    );
}
