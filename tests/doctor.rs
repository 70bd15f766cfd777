//! `admin-provisioner doctor` and start-up validation against moto pools.

use admin_provisioner::app::App;
use admin_provisioner::config::Config;
use admin_provisioner::http::auth::TokenError;
use admin_provisioner::http::AppState;
use admin_provisioner_cognito::testing::{MotoPool, MotoServer, PoolOptions};
use admin_provisioner_core::domain::{Password, TemporaryPassword, Tokens};
use admin_provisioner_core::identity::{AuthOutcome, CreateUserRequest, IdentityProvider, IdpUser, MessageAction};
use std::process::{Command, Output};

fn run_with(vars: &[(String, String)], args: &[&str], dir: &std::path::Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_admin-provisioner"));
    cmd.args(args).current_dir(dir).env_remove("RUST_LOG");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.env("DATABASE_URL", format!("sqlite://{}", dir.join("db.sqlite").display()));
    cmd.output().unwrap()
}

#[tokio::test]
async fn doctor_reports_every_problem_of_a_misconfigured_pool() {
    let moto = MotoServer::shared().unwrap();
    let pool = moto.create_pool(PoolOptions::misconfigured()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run_with(&pool.env_vars(), &["doctor"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "doctor must fail on a blocking problem:\n{stdout}"
    );
    assert!(stderr.contains("3 blocking problem(s)"), "{stderr}");
    // One finding per problem of `PoolOptions::misconfigured()`, printed as `[severity] code: message`
    // (codes and severities: crates/cognito/src/doctor.rs).
    let findings: Vec<(&str, &str)> = stdout
        .lines()
        .filter_map(|line| {
            let (severity, rest) = line.strip_prefix('[')?.split_once("] ")?;
            let (code, _message) = rest.split_once(": ")?;
            Some((severity, code))
        })
        .collect();
    let expected = [
        // The app client lacks ALLOW_USER_PASSWORD_AUTH.
        ("blocking", "user_password_auth_disabled"),
        // TemporaryPasswordValidityDays=3 but INVITE_VALIDITY_DAYS is 7 (the default).
        ("blocking", "temporary_password_validity_mismatch"),
        // The invitation e-mail has {username} but not {####}.
        ("blocking", "invite_template_missing_placeholder"),
        // EmailSendingAccount=COGNITO_DEFAULT.
        ("warning", "cognito_default_email_sender"),
        // UsernameConfiguration.CaseSensitive=true.
        ("warning", "usernames_case_sensitive"),
        // AllowAdminCreateUserOnly=false.
        ("warning", "self_sign_up_allowed"),
    ];
    for (severity, code) in expected {
        let reported: Vec<&str> = findings.iter().filter(|(_, c)| *c == code).map(|(s, _)| *s).collect();
        assert_eq!(
            reported,
            vec![severity],
            "doctor must report `{code}` once, as {severity}:\n{stdout}"
        );
    }
    let mut codes: Vec<&str> = findings.iter().map(|(_, c)| *c).collect();
    codes.sort_unstable();
    let mut expected_codes: Vec<&str> = expected.iter().map(|(_, c)| *c).collect();
    expected_codes.sort_unstable();
    assert_eq!(codes, expected_codes, "unexpected findings:\n{stdout}");
    // The database is fine (SQLite in the temporary folder): only the pool's problems are reported.
    assert!(!stdout.contains("database_unreachable"), "{stdout}");
}

#[tokio::test]
async fn doctor_passes_a_well_configured_pool() {
    let moto = MotoServer::shared().unwrap();
    let pool = moto.create_pool(PoolOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run_with(&pool.env_vars(), &["doctor"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("[blocking]"), "{stdout}");
}

#[tokio::test]
async fn doctor_flags_invite_validity_mismatch() {
    let moto = MotoServer::shared().unwrap();
    let pool = moto.create_pool(PoolOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut vars = pool.env_vars();
    vars.push(("INVITE_VALIDITY_DAYS".into(), "3".into()));
    let out = run_with(&vars, &["doctor"], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("TemporaryPasswordValidityDays"));
}

/// The product's wiring (`Config` → `App` → `AppState`) pointed at `pool`, as `serve` would build it from
/// `pool.env_vars()`, with its database in `dir`.
async fn product_state_for(pool: &MotoPool, dir: &std::path::Path) -> AppState {
    let vars: std::collections::HashMap<String, String> = pool.env_vars().into_iter().collect();
    let mut config = Config::embedded_in(dir);
    config.cognito_user_pool_id = Some(vars["COGNITO_USER_POOL_ID"].clone());
    config.cognito_client_id = Some(vars["COGNITO_CLIENT_ID"].clone());
    config.cognito_client_secret = vars.get("COGNITO_CLIENT_SECRET").cloned();
    config.cognito_endpoint_url = Some(vars["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"].clone());
    config.cognito_jwks_url = Some(vars["COGNITO_JWKS_URL"].clone());
    config.aws_region = vars["AWS_REGION"].clone();
    // No AWS credentials are needed here: building the adapter calls nothing, and token verification only
    // downloads the JWKS over plain HTTP (from moto). Every Cognito API call below goes through
    // `pool.provider`, which has moto's static test credentials.
    let app = App::build(config).await.unwrap();
    assert!(
        app.emulator.is_none(),
        "the app must use the AWS adapter, not the built-in emulator"
    );
    AppState::new(app)
}

/// Creates `username` in `pool` with a known temporary password and completes the first login
/// (InitiateAuth USER_PASSWORD_AUTH → NEW_PASSWORD_REQUIRED → RespondToAuthChallenge), all in moto.
async fn moto_first_login(pool: &MotoPool, username: &str) -> (IdpUser, Tokens) {
    let temp = "Temp#Pass12";
    let user = pool
        .provider
        .admin_create_user(CreateUserRequest {
            username: username.into(),
            email: username.into(),
            temporary_password: Some(TemporaryPassword::new(temp)),
            message_action: Some(MessageAction::Suppress),
        })
        .await
        .unwrap();
    let tokens = match pool
        .provider
        .initiate_auth(username, &Password::new(temp))
        .await
        .unwrap()
    {
        AuthOutcome::NewPasswordRequired { session, username } => pool
            .provider
            .respond_to_new_password_challenge(&username, &session, &Password::new("Correct-Horse-7"))
            .await
            .unwrap(),
        _ => panic!("a new user must be asked for a new password"),
    };
    (user, tokens)
}

/// The product's own token verifier (`AppState::verify`: JWKS from `COGNITO_JWKS_URL`, issuer, audience,
/// `token_use`, expiry) accepts the ID and access tokens moto signs for the configured pool, and refuses
/// those of another pool.
#[tokio::test]
async fn the_product_verifier_accepts_moto_tokens_of_its_pool_and_refuses_another_pools() {
    let moto = MotoServer::shared().unwrap();
    let pool = moto.create_pool(PoolOptions::default()).await.unwrap();
    let other_pool = moto.create_pool(PoolOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = product_state_for(&pool, dir.path()).await;

    let (user, tokens) = moto_first_login(&pool, "verified@example.com").await;
    let (_, foreign) = moto_first_login(&other_pool, "verified@example.com").await;

    let id = state
        .verify(tokens.id_token.expose())
        .await
        .unwrap_or_else(|e| panic!("moto's ID token was refused: {e:?}"));
    assert_eq!(id.sub, user.sub);
    assert_eq!(id.username, user.username);
    let access = state
        .verify(tokens.access_token.expose())
        .await
        .unwrap_or_else(|e| panic!("moto's access token was refused: {e:?}"));
    assert_eq!(access.sub, user.sub);
    assert_eq!(access.username, user.username);

    // moto signs every pool's tokens with the same key (kid "dummy"), so only the issuer (the pool id)
    // tells them apart: the verifier must check it.
    for (kind, token) in [("ID", &foreign.id_token), ("access", &foreign.access_token)] {
        match state.verify(token.expose()).await {
            Err(TokenError::Invalid(why)) => {
                assert!(
                    why.contains("issuer"),
                    "{kind} token of another pool refused for {why:?}"
                )
            }
            other => panic!("the {kind} token of another pool must be refused as invalid, got {other:?}"),
        }
    }
}

#[test]
fn malformed_pool_id_is_a_one_line_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let vars = vec![
        ("COGNITO_USER_POOL_ID".to_string(), "not a pool".to_string()),
        ("COGNITO_CLIENT_ID".to_string(), "abc".to_string()),
    ];
    let out = run_with(&vars, &["provision", "--email", "a@example.com"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("COGNITO_USER_POOL_ID"), "{err}");
}

#[test]
fn missing_client_id_is_a_one_line_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let vars = vec![("COGNITO_USER_POOL_ID".to_string(), "us-east-1_AbCdEf123".to_string())];
    let out = run_with(&vars, &["provision", "--email", "a@example.com"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("COGNITO_CLIENT_ID is required"), "{err}");
}

#[test]
fn unreachable_cognito_endpoint_is_a_one_line_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let vars = vec![
        ("COGNITO_USER_POOL_ID".to_string(), "us-east-1_AbCdEf123".to_string()),
        ("COGNITO_CLIENT_ID".to_string(), "abc".to_string()),
        (
            "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER".to_string(),
            "http://127.0.0.1:1".to_string(),
        ),
        ("AWS_ACCESS_KEY_ID".to_string(), "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "test".to_string()),
        ("CALL_TIMEOUT_SECS".to_string(), "2".to_string()),
    ];
    let out = run_with(&vars, &["provision", "--email", "a@example.com"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("unreachable") || err.contains("did not answer"), "{err}");
}

/// The production pairing end to end through the binary: AWS SDK adapter (against moto) + PostgreSQL.
#[tokio::test]
async fn provision_and_resend_against_moto_and_postgres() {
    use sqlx::{Connection, Executor};
    let admin_url =
        std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("ap_cli_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL is needed for this test");
    conn.execute(format!("CREATE DATABASE {db}").as_str()).await.unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let db_url = format!("{base}/{db}");

    let moto = MotoServer::shared().unwrap();
    let pool = moto.create_pool(PoolOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut vars = pool.env_vars();
    vars.push(("RESEND_COOLDOWN_SECS".into(), "0".into()));
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_admin-provisioner"));
        cmd.args(args).current_dir(dir.path()).env_remove("RUST_LOG");
        for (k, v) in &vars {
            cmd.env(k, v);
        }
        cmd.env("DATABASE_URL", &db_url).output().unwrap()
    };

    let out = run(&["bootstrap-admin", "--email", "Pat@Example.com"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["provision", "--email", "quinn@example.com"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["resend-invite", "--email", "quinn@example.com"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dup = run(&["provision", "--email", "QUINN@example.com"]);
    assert!(!dup.status.success());

    // Both systems agree.
    let cognito = pool.provider.admin_get_user("quinn@example.com").await.unwrap();
    let store = admin_provisioner_store::connect(&db_url).await.unwrap();
    let record = store.find_admin_by_email("quinn@example.com").await.unwrap().unwrap();
    assert_eq!(record.user.cognito_username, cognito.username);
    assert_eq!(record.admin_info.invites_sent, 2);
    assert_eq!(store.list_admins().await.unwrap().len(), 2);
    drop(store);
    conn.execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
        .await
        .ok();
}

/// `COGNITO_ROLE_GROUPS=true`: the doctor names each missing role group (a warning: `serve` creates
/// them, given the IAM actions it lists), and says so once they exist.
#[tokio::test]
async fn doctor_reports_missing_role_groups_and_the_iam_actions() {
    let moto = MotoServer::shared().unwrap();
    let pool = moto.create_pool(PoolOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut vars = pool.env_vars();
    vars.push(("COGNITO_ROLE_GROUPS".into(), "true".into()));
    let out = run_with(&vars, &["doctor"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "warnings only: {stdout}");
    let missing: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("[warning] role_group_missing:"))
        .collect();
    assert_eq!(missing.len(), 3, "{stdout}");
    for role in ["owner", "admin", "viewer"] {
        assert!(
            missing
                .iter()
                .any(|l| l.contains(&format!("admin-provisioner-{role} does not exist"))),
            "{stdout}"
        );
    }
    for action in [
        "cognito-idp:CreateGroup",
        "cognito-idp:GetGroup",
        "cognito-idp:AdminAddUserToGroup",
        "cognito-idp:AdminRemoveUserFromGroup",
        "cognito-idp:AdminListGroupsForUser",
    ] {
        assert!(missing[0].contains(action), "{}", missing[0]);
    }
    for role in ["owner", "admin", "viewer"] {
        pool.provider
            .create_group(&format!("admin-provisioner-{role}"), "")
            .await
            .unwrap();
    }
    let out = run_with(&vars, &["doctor"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("role_group_missing"), "{stdout}");
    assert!(
        stdout.contains(
            "ok: role groups admin-provisioner-viewer, admin-provisioner-admin, admin-provisioner-owner exist"
        ),
        "{stdout}"
    );
}
