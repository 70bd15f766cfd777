//! `doctor` and `serve` on the webhook and database settings (built-in emulator, SQLite).

use std::process::{Command, Output};

fn run(dir: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_admin-provisioner"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("COGNITO_USER_POOL_ID")
        .env_remove("WEBHOOK_URL")
        .env_remove("WEBHOOK_SECRET")
        .env("DATABASE_URL", format!("sqlite://{}", dir.join("db.sqlite").display()))
        .env("COGNITO_EMULATOR_STATE", dir.join("emulator.db"))
        .env("MAILBOX_DIR", dir.join("mailbox"))
        .env("BIND_ADDR", "127.0.0.1:0");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8G";

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn doctor_reports_the_database_and_that_webhooks_are_off() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["doctor"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("ok: database sqlite://"), "{stdout}");
    assert!(stdout.contains("webhooks off"), "{stdout}");
}

#[test]
fn doctor_warns_when_the_webhook_receiver_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/hooks?token=s3cret-token", closed_port());
    let out = run(
        dir.path(),
        &["doctor"],
        &[("WEBHOOK_URL", &url), ("WEBHOOK_SECRET", SECRET)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "a receiver that is down is a warning: {stdout}");
    assert!(stdout.contains("[warning] webhook_unreachable"), "{stdout}");
    assert!(
        !stdout.contains("s3cret-token"),
        "the URL's query never shows: {stdout}"
    );
}

#[test]
fn doctor_says_the_webhook_receiver_answers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 2048];
        let _ = stream.read(&mut buf);
        stream
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let out = run(
        dir.path(),
        &["doctor"],
        &[("WEBHOOK_URL", &url), ("WEBHOOK_SECRET", SECRET)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    server.join().unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("ok: webhook receiver {url} answers")),
        "{stdout}"
    );
}

#[test]
fn doctor_and_serve_refuse_a_webhook_url_without_a_valid_secret() {
    let dir = tempfile::tempdir().unwrap();
    for (secret, expected) in [
        (None, "WEBHOOK_SECRET is required"),
        (Some("whsec_bm90IGVub3VnaA=="), "24 to 64 random bytes"),
        (Some("not base64 at all!"), "whsec_ followed by base64"),
    ] {
        let mut vars = vec![("WEBHOOK_URL", "http://127.0.0.1:9/hooks")];
        if let Some(s) = secret {
            vars.push(("WEBHOOK_SECRET", s));
        }
        let doctor = run(dir.path(), &["doctor"], &vars);
        let stdout = String::from_utf8_lossy(&doctor.stdout);
        assert!(!doctor.status.success(), "{stdout}");
        assert!(
            stdout.contains("[blocking] webhook_config") && stdout.contains(expected),
            "{stdout}"
        );
        let serve = run(dir.path(), &["serve"], &vars);
        let stderr = String::from_utf8_lossy(&serve.stderr);
        assert!(!serve.status.success());
        assert!(stderr.contains(expected), "{stderr}");
        if let Some(s) = secret {
            assert!(!stderr.contains(s) && !stdout.contains(s), "the secret never shows");
        }
    }
}

#[test]
fn an_invalid_database_schema_is_a_one_line_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["bootstrap-admin", "--email", "a@example.com"],
        &[
            ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
            ("DATABASE_SCHEMA", "Bad-Name"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("DATABASE_SCHEMA \"Bad-Name\" is not a valid schema name"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
