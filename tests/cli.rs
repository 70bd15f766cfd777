//! The command line as a user runs it: exit codes, one-line errors, and `demo` running to the end.

use std::process::{Command, Output};

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
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn demo_runs_to_the_end_and_never_prints_secrets() {
    let env = Env::new();
    let out = env.run(&["demo"]);
    let text = stdout(&out);
    assert!(out.status.success(), "demo failed: {}\n{}", text, stderr(&out));
    for needle in [
        "1. The operator creates the very first admin",
        "Your username is alice@example.com and temporary password is ********.",
        "NEW_PASSWORD_REQUIRED",
        "refused (password_policy)",
        "Verified ID token claims",
        "token_use: \"id\"",
        "Create New Admin",
        "bob@example.com",
        "first_login_completed",
        "Demo finished",
    ] {
        assert!(text.contains(needle), "demo output lacks {needle:?}:\n{text}");
    }
    // Steps are numbered in order.
    let mut last = 0;
    for line in text.lines() {
        if let Some((n, _)) = line.split_once(". ") {
            if let Ok(n) = n.parse::<u32>() {
                assert_eq!(n, last + 1, "step numbers out of order at {line:?}");
                last = n;
            }
        }
    }
    assert!(last >= 9, "expected at least 9 steps, saw {last}");
    // No JWT (three base64url segments starting with eyJ) and no temporary password ever printed.
    assert!(!text.contains("eyJ"), "a token was printed");
    assert!(!text.contains("temporary password is ") || text.matches("temporary password is ********").count() >= 2);
}

#[test]
fn bootstrap_then_provision_then_resend_as_operator() {
    let env = Env::new();
    let out = env.run(&["bootstrap-admin", "--email", "Root@Example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("bootstrapped Root@Example.com"));

    let again = env.run(&["bootstrap-admin", "--email", "other@example.com"]);
    assert!(!again.status.success());
    let err = stderr(&again);
    assert_eq!(err.trim().lines().count(), 1, "error must be one line: {err}");
    assert!(err.contains("already exists"), "{err}");

    let prov = env.run(&["provision", "--email", "second@example.com"]);
    assert!(prov.status.success(), "{}", stderr(&prov));

    let dup = env.run(&["provision", "--email", "SECOND@example.com"]);
    assert!(!dup.status.success());
    assert!(stderr(&dup).contains("already exists"));

    let cooldown = env.run(&["resend-invite", "--email", "second@example.com"]);
    assert!(!cooldown.status.success());
    assert!(stderr(&cooldown).contains("try again in"), "{}", stderr(&cooldown));

    let mails = std::fs::read_dir(env.dir.path().join("mailbox")).unwrap().count();
    assert_eq!(mails, 2);
}

#[test]
fn malformed_email_is_a_one_line_error_and_writes_nothing() {
    let env = Env::new();
    let out = env.run(&["provision", "--email", "not-an-email"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("invalid e-mail address"), "{err}");
    assert!(
        !env.dir.path().join("mailbox").exists()
            || std::fs::read_dir(env.dir.path().join("mailbox")).unwrap().count() == 0
    );
}

#[test]
fn resend_to_unknown_admin_fails_clearly() {
    let env = Env::new();
    let out = env.run(&["resend-invite", "--email", "ghost@example.com"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no such admin"), "{}", stderr(&out));
}

#[test]
fn bad_database_url_is_a_one_line_error() {
    let env = Env::new();
    let out = Command::new(env!("CARGO_BIN_EXE_admin-provisioner"))
        .args(["provision", "--email", "a@example.com"])
        .current_dir(env.dir.path())
        .env("DATABASE_URL", "postgres://nobody:hunter2@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains("hunter2"), "the database password leaked: {err}");
}
