//! `admin-provisioner import FILE.csv` as an operator runs it: validation with line numbers, re-run safety,
//! throttling under a simulated Cognito quota, and a clean stop on SIGINT.

use admin_provisioner_core::store::ports::*;
use admin_provisioner_core::store::SagaLog;
use admin_provisioner_emulator::mailbox::Mailbox;
use admin_provisioner_store::SqliteStore;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_admin-provisioner"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("COGNITO_USER_POOL_ID")
            .env_remove("DATABASE_URL")
            .env_remove("COGNITO_EMULATOR_RATE_LIMITS")
            .env_remove("COGNITO_EMULATOR_LATENCY_MS")
            .env("MAILBOX_DIR", self.path("mailbox"))
            .env_remove("RUST_LOG");
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().unwrap()
    }

    fn write_csv(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn report(&self, name: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.path(name)).unwrap()).unwrap()
    }

    fn invitations(&self) -> Vec<String> {
        Mailbox::new(self.path("mailbox"))
            .messages()
            .unwrap()
            .into_iter()
            .map(|m| m.to.to_lowercase())
            .collect()
    }

    async fn store(&self) -> SqliteStore {
        let url = format!("sqlite://{}", self.path("admin-provisioner.db").display());
        SqliteStore::connect(&url).await.unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn outcomes(report: &Value) -> Vec<(u64, String, String)> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["email"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn rows_csv(n: usize, prefix: &str) -> String {
    let mut s = String::from("email,name\n");
    for i in 0..n {
        s.push_str(&format!("{prefix}{i:04}@example.com,Person {i}\n"));
    }
    s
}

#[tokio::test]
async fn bad_rows_are_reported_with_line_numbers_and_nothing_is_provisioned_for_them() {
    let env = Env::new();
    let csv = env.write_csv(
        "admins.csv",
        "Name,EMAIL,team\n\
         \"Ann, the first\",ann@example.com,a\n\
         Bob,not-an-email,b\n\
         Cid,,c\n\
         Dee,ANN@example.com,d\n\
         \"Eve\nwith a line break\",eve@example.com,e\n\
         Fay,fay@@example.com,f\n",
    );
    let out = env.run(&["import", csv.to_str().unwrap(), "--report", "report.json"], &[]);
    let all = text(&out);
    assert!(!out.status.success(), "bad rows make the exit status non-zero: {all}");
    for needle in ["line 3:", "line 4:", "line 5:", "line 8:", "the same admin as line 2"] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    let report = env.report("report.json");
    assert_eq!(
        outcomes(&report),
        vec![
            (2, "ann@example.com".into(), "provisioned".into()),
            (3, "not-an-email".into(), "invalid".into()),
            (4, "".into(), "invalid".into()),
            (5, "ANN@example.com".into(), "invalid".into()),
            (6, "eve@example.com".into(), "provisioned".into()),
            (8, "fay@@example.com".into(), "invalid".into()),
        ],
        "the quoted line break makes Fay's row line 8"
    );
    let store = env.store().await;
    let mut emails: Vec<String> = store
        .list_admins()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.user.email_normalized)
        .collect();
    emails.sort();
    assert_eq!(emails, vec!["ann@example.com", "eve@example.com"]);
    let mut mailed = env.invitations();
    mailed.sort();
    assert_eq!(
        mailed,
        vec!["ann@example.com", "eve@example.com"],
        "nobody else was e-mailed"
    );
}

#[test]
fn a_file_without_an_email_column_is_refused_before_anything_happens() {
    let env = Env::new();
    let csv = env.write_csv("x.csv", "name,mail\nAnn,ann@example.com\n");
    let out = env.run(&["import", csv.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no `email` column"), "{}", text(&out));
    assert!(
        !env.path("admin-provisioner.db").exists(),
        "nothing was opened or written"
    );
}

#[tokio::test]
async fn a_re_run_provisions_and_emails_nothing_new() {
    let env = Env::new();
    let csv = env.write_csv("admins.csv", &rows_csv(12, "rerun"));
    let first = env.run(&["import", csv.to_str().unwrap(), "--report", "first.json"], &[]);
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(env.report("first.json")["summary"]["provisioned"], 12);
    let mailed_before = env.invitations().len();
    assert_eq!(mailed_before, 12);

    let second = env.run(&["import", csv.to_str().unwrap(), "--report", "second.json"], &[]);
    assert!(second.status.success(), "{}", text(&second));
    let report = env.report("second.json");
    assert_eq!(report["summary"]["provisioned"], 0);
    assert_eq!(report["summary"]["skipped"], 12);
    assert_eq!(env.invitations().len(), mailed_before, "nobody was e-mailed again");
    assert_eq!(env.store().await.list_admins().await.unwrap().len(), 12);
}

#[tokio::test]
async fn throttled_rows_are_retried_and_none_is_lost_or_duplicated() {
    let env = Env::new();
    let n = 30;
    let csv = env.write_csv("admins.csv", &rows_csv(n, "quota"));
    // The client asks for 100/s; the emulated Cognito allows 10/s.
    let out = env.run(
        &[
            "import",
            csv.to_str().unwrap(),
            "--rate",
            "100",
            "--report",
            "report.json",
        ],
        &[("COGNITO_EMULATOR_RATE_LIMITS", "AdminCreateUser=10")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let report = env.report("report.json");
    assert!(
        report["summary"]["throttled"].as_u64().unwrap() > 0,
        "the quota really throttled the import: {report}"
    );
    assert_eq!(report["summary"]["provisioned"], n);
    assert_eq!(report["summary"]["failed"], 0);
    let admins = env.store().await.list_admins().await.unwrap();
    assert_eq!(admins.len(), n, "no row lost");
    let mut mailed = env.invitations();
    mailed.sort();
    mailed.dedup();
    assert_eq!(mailed.len(), n);
    assert_eq!(env.invitations().len(), n, "each admin e-mailed exactly once");
}

#[tokio::test]
async fn sigint_mid_import_stops_cleanly_and_leaves_no_unfinished_saga() {
    let env = Env::new();
    let n = 400;
    let csv = env.write_csv("admins.csv", &rows_csv(n, "sigint"));
    let child = env
        .command(
            &[
                "import",
                csv.to_str().unwrap(),
                "--rate",
                "40",
                "--report",
                "report.json",
            ],
            &[("COGNITO_EMULATOR_LATENCY_MS", "30")],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some rows are done, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Mailbox::new(env.path("mailbox")).recent(0).map(|(_, n)| n).unwrap_or(0) < 10 {
        assert!(Instant::now() < deadline, "the import never got going");
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "an interrupted import exits non-zero");
    assert!(text(&out).contains("interrupted"), "{}", text(&out));

    let report = env.report("report.json");
    assert_eq!(report["interrupted"], true);
    let provisioned = report["summary"]["provisioned"].as_u64().unwrap() as usize;
    let not_started = report["summary"]["not_started"].as_u64().unwrap() as usize;
    assert!(not_started > 0, "the stop came mid-import: {}", report["summary"]);
    assert_eq!(report["summary"]["failed"], 0);
    assert_eq!(provisioned + not_started, n);

    let store = env.store().await;
    assert_eq!(
        store.list_admins().await.unwrap().len(),
        provisioned,
        "the report says what was done"
    );
    assert!(
        store.list_unfinished().await.unwrap().is_empty(),
        "in-flight sagas were settled before the process left"
    );
    assert_eq!(env.invitations().len(), provisioned);

    // A second run finishes the rest and provisions nobody twice.
    let again = env.run(&["import", csv.to_str().unwrap(), "--report", "again.json"], &[]);
    assert!(again.status.success(), "{}", text(&again));
    let again = env.report("again.json");
    assert_eq!(again["summary"]["skipped"].as_u64().unwrap() as usize, provisioned);
    assert_eq!(again["summary"]["provisioned"].as_u64().unwrap() as usize, not_started);
    assert_eq!(env.invitations().len(), n);
}
