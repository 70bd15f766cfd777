//! `admin-provisioner doctor` and start-up validation against moto pools.

use admin_provisioner_cognito::testing::{MotoServer, PoolOptions};
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
    assert!(stderr.contains("blocking problem"), "{stderr}");
    for needle in [
        "USER_PASSWORD_AUTH",
        "TemporaryPasswordValidityDays",
        "{####}",
        "50",
        "case",
    ] {
        assert!(stdout.contains(needle), "doctor output lacks {needle:?}:\n{stdout}");
    }
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
    use admin_provisioner_core::identity::IdentityProvider;
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
