//! `admin-provisioner reconcile` as an operator runs it: exit status 0 / 2 / 1, the table, `--json`
//! (JSON Lines: one object per finding, then a summary), `--repair`; and the reconciler's metrics.

use admin_provisioner_core::domain::Password;
use admin_provisioner_core::identity::{CreateUserRequest, IdentityProvider, MessageAction};
use admin_provisioner_emulator::{CognitoEmulator, EmulatorConfig};
use std::process::{Command, Output};

mod common;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_admin-provisioner"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("COGNITO_USER_POOL_ID")
            .env_remove("DATABASE_URL")
            .env("MAILBOX_DIR", self.dir.path().join("mailbox"))
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }
    /// The emulator's state file, opened outside the product (a Cognito admin's console).
    async fn cognito(&self) -> CognitoEmulator {
        CognitoEmulator::open(EmulatorConfig::file(
            self.dir.path().join("cognito-emulator.db"),
            self.dir.path().join("mailbox"),
        ))
        .await
        .unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn reconcile_exits_0_when_clean_2_with_drift_and_repair_fixes_the_safe_drift() {
    let env = Env::new();
    let boot = env.run(&["bootstrap-admin", "--email", "root@example.com"]);
    assert!(boot.status.success(), "{}", String::from_utf8_lossy(&boot.stderr));

    // Clean: exit 0.
    let clean = env.run(&["reconcile"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert!(stdout(&clean).contains("needs attention 0"), "{}", stdout(&clean));

    // By hand in Cognito: the invitee set a permanent password (CONFIRMED; the database says invited),
    // and someone created an unrelated user (foreign: information, not drift).
    {
        let cognito = env.cognito().await;
        cognito
            .admin_set_user_password("root@example.com", &Password::new("Perm4nent!pass"), true)
            .await
            .unwrap();
        cognito
            .admin_create_user(CreateUserRequest {
                username: "someone@example.com".into(),
                email: "someone@example.com".into(),
                temporary_password: None,
                message_action: Some(MessageAction::Suppress),
            })
            .await
            .unwrap();
    }

    let table = env.run(&["reconcile"]);
    let text = stdout(&table);
    assert_eq!(table.status.code(), Some(2), "{text}");
    assert!(text.contains("status_confirmed_not_recorded"), "{text}");
    assert!(text.contains("foreign_user"), "{text}");
    assert!(text.contains("reconcile --repair"), "{text}");

    let json = env.run(&["reconcile", "--json"]);
    assert_eq!(json.status.code(), Some(2));
    let lines: Vec<serde_json::Value> = stdout(&json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let (summary, findings) = lines.split_last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["needs_attention"], 1);
    assert_eq!(summary["counts"]["foreign"], 1);
    assert_eq!(findings.len(), 2);
    assert!(findings.iter().all(|f| f["type"] == "finding"));
    let status = findings.iter().find(|f| f["kind"] == "status").unwrap();
    assert_eq!(status["code"], "status_confirmed_not_recorded");
    assert_eq!(status["email"], "root@example.com");
    assert_eq!(status["repair"]["state"], "available");

    let repair = env.run(&["reconcile", "--repair"]);
    assert_eq!(repair.status.code(), Some(0), "{}", stdout(&repair));
    assert!(stdout(&repair).contains("REPAIRED"), "{}", stdout(&repair));

    let after = env.run(&["reconcile"]);
    assert_eq!(after.status.code(), Some(0), "{}", stdout(&after));
    assert!(
        stdout(&after).contains("foreign_user"),
        "the foreign user is still listed"
    );
}

#[test]
fn reconcile_exits_1_when_the_database_cannot_be_reached() {
    let env = Env::new();
    let out = Command::new(env!("CARGO_BIN_EXE_admin-provisioner"))
        .args(["reconcile", "--database-url", "postgres://nobody@127.0.0.1:1/none"])
        .current_dir(env.dir.path())
        .env_remove("COGNITO_USER_POOL_ID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.trim().lines().count() == 1, "{err}");
}

/// One test for both views of the last run: they share this process's last report.
#[tokio::test]
async fn metrics_and_the_console_drift_page_show_the_last_run() {
    use admin_provisioner_core::reconcile::{DriftKind, Finding, Repair, Report};
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};

    let mut report = Report::default();
    report.summary.counts.insert("orphan".into(), 1);
    report.summary.counts.insert("foreign".into(), 5);
    report.summary.needs_attention = 1;
    report.summary.finished_at = Some(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    report.findings.push(Finding {
        kind: DriftKind::Orphan,
        code: "orphan_cognito_user_missing".into(),
        email: Some("gone<b>@example.com".into()),
        admin_id: None,
        db_cognito_username: None,
        db_cognito_sub: None,
        db_status: None,
        cognito_username: None,
        cognito_sub: None,
        cognito_status: None,
        cognito_enabled: None,
        message: "the Cognito user is gone".into(),
        fix: "remove the admin".into(),
        repair: Repair::Manual,
    });
    admin_provisioner::reconcile::record(&report);

    let text = admin_provisioner::http::Metrics::new().render();
    for line in [
        "admin_provisioner_reconcile_findings{kind=\"orphan\"} 1\n",
        "admin_provisioner_reconcile_findings{kind=\"foreign\"} 5\n",
        "admin_provisioner_reconcile_needs_attention 1\n",
        "admin_provisioner_reconcile_last_run_timestamp_seconds 1800000000\n",
        "admin_provisioner_reconcile_runs_total{result=\"ok\"} ",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }

    let t = common::test_app().await;
    let login = t
        .call(
            Request::builder()
                .method(Method::POST)
                .uri("/login")
                .header("host", "localhost")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "email={}&password={}",
                    common::ADMIN_EMAIL.replace('@', "%40"),
                    common::NEW_PASSWORD
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.text);
    let session = login
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("ap_session="))
        .unwrap();
    let cookie = session.split(';').next().unwrap().to_string();
    let page = t
        .call(
            Request::builder()
                .uri("/console/drift")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("1 finding(s) need attention"), "{}", page.text);
    assert!(page.text.contains("orphan_cognito_user_missing"));
    assert!(page.text.contains("gone&#60;b&#62;@example.com"), "escaped");
    assert!(page.text.contains(r#"href="/console/drift" aria-current="page""#));
    assert_eq!(
        t.get("/console/drift", None).await.status,
        StatusCode::SEE_OTHER,
        "needs a session"
    );
}

/// With `COGNITO_ROLE_GROUPS=true`: an admin taken out of its role's group by hand (and put in another
/// role's) is `role_group_mismatch` (exit 2); `--repair` puts the groups back as the database says
/// (exit 0) and leaves a group of another name alone.
#[tokio::test]
async fn role_group_drift_is_reported_and_repaired() {
    let env = Env::new();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_admin-provisioner"))
            .args(args)
            .current_dir(env.dir.path())
            .env_remove("COGNITO_USER_POOL_ID")
            .env_remove("DATABASE_URL")
            .env("MAILBOX_DIR", env.dir.path().join("mailbox"))
            .env("COGNITO_ROLE_GROUPS", "true")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let boot = run(&["bootstrap-admin", "--email", "root@example.com"]);
    assert!(boot.status.success(), "{}", String::from_utf8_lossy(&boot.stderr));
    let clean = run(&["reconcile"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    {
        let cognito = env.cognito().await;
        assert_eq!(
            cognito.admin_list_groups_for_user("root@example.com").await.unwrap(),
            ["admin-provisioner-owner"]
        );
        cognito
            .admin_remove_user_from_group("root@example.com", "admin-provisioner-owner")
            .await
            .unwrap();
        cognito.create_group("admin-provisioner-viewer", "").await.unwrap();
        cognito
            .admin_add_user_to_group("root@example.com", "admin-provisioner-viewer")
            .await
            .unwrap();
        cognito.create_group("ops", "someone else's").await.unwrap();
        cognito
            .admin_add_user_to_group("root@example.com", "ops")
            .await
            .unwrap();
    }
    let found = run(&["reconcile", "--json"]);
    assert_eq!(found.status.code(), Some(2), "{}", stdout(&found));
    let lines: Vec<serde_json::Value> = stdout(&found)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finding = lines
        .iter()
        .find(|l| l["kind"] == "role_group_mismatch")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(finding["code"], "role_group_mismatch");
    assert_eq!(finding["email"], "root@example.com");
    assert_eq!(finding["repair"]["state"], "available");
    assert_eq!(lines.last().unwrap()["counts"]["role_group_mismatch"], 1);

    let repaired = run(&["reconcile", "--repair"]);
    assert_eq!(repaired.status.code(), Some(0), "{}", stdout(&repaired));
    assert!(
        stdout(&repaired).contains("role_group_mismatch"),
        "{}",
        stdout(&repaired)
    );
    let cognito = env.cognito().await;
    assert_eq!(
        cognito.admin_list_groups_for_user("root@example.com").await.unwrap(),
        ["admin-provisioner-owner", "ops"]
    );
    let again = run(&["reconcile"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}
