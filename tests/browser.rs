//! The console in a real browser: headless Chromium driven by fantoccini through ChromeDriver.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`; `scripts/install-browser.sh` installs both. A
//! screenshot of the console is saved to `target/test-artifacts/console.png`; the MFA setup page's to
//! `mfa-setup.png`.

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(20);

/// ChromeDriver on a free port; killed (this child only) when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require_browser() {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: the browser test needs Chromium and ChromeDriver. Install them with scripts/install-browser.sh"
        );
    }
}

async fn start_driver() -> Driver {
    require_browser();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start chromedriver (see scripts/install-browser.sh)");
    let driver = Driver { child, port };
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start listening on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-proxy-server", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    // ChromeDriver is plain HTTP on loopback: no TLS stack needed.
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("cannot start headless Chromium through chromedriver")
}

/// Waits until the element at `css` exists and its text contains `needle`; returns the text.
async fn wait_for_text(c: &Client, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            if let Ok(text) = el.text().await {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
        }
        if Instant::now() > deadline {
            let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            panic!("no {css:?} containing {needle:?} on {url}; last text: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(c: &Client, css: &str, text: &str) {
    let el = c.wait().at_most(WAIT).for_element(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Reads `email`'s temporary password from the console's mailbox page.
async fn temporary_password_from_mailbox(c: &Client, app: &SpawnedApp, email: &str) -> String {
    c.goto(&app.url("/console/mailbox")).await.unwrap();
    let css = format!(r#"article.message[data-to="{email}"] .temp-password"#);
    let el = c.wait().at_most(WAIT).for_element(Locator::Css(&css)).await.unwrap();
    el.text().await.unwrap()
}

/// Signs in with the temporary password and chooses [`NEW_PASSWORD`]; ends on the console. With
/// `shots`, saves screenshots of the mailbox and the new-password form.
async fn first_sign_in(c: &Client, app: &SpawnedApp, email: &str, shots: bool) {
    let temp = temporary_password_from_mailbox(c, app, email).await;
    if shots {
        screenshot(c, "mailbox.png").await;
    }
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "#email", email).await;
    fill(c, "#password", &temp).await;
    click(c, "#sign-in").await;
    wait_for_text(c, "h1", "Choose a new password").await;
    if shots {
        screenshot(c, "new-password.png").await;
    }
    fill(c, "#new_password", NEW_PASSWORD).await;
    fill(c, "#confirm_password", NEW_PASSWORD).await;
    click(c, "#set-password").await;
    wait_for_text(c, "#flash", "Welcome").await;
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("test-artifacts")
}

/// Saves a PNG of the page to `target/test-artifacts/{name}`.
async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::create_dir_all(artifacts_dir()).unwrap();
    std::fs::write(artifacts_dir().join(name), &png).unwrap();
}

#[tokio::test]
async fn two_admins_sign_in_for_the_first_time_and_invite_through_the_console() {
    // Arrange: a server, the first admin bootstrapped as the CLI does, a headless browser.
    let app = spawn_app().await;
    app.app
        .provisioner
        .bootstrap_admin("first@example.com", Some("cli-bootstrap"))
        .await
        .unwrap();
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;

    // Act: the first admin signs in, sets a password and creates a second admin.
    first_sign_in(&c, &app, "first@example.com", false).await;
    fill(&c, "#new-email", "second@example.com").await;
    click(&c, "#create-admin button[type=submit]").await;
    let created = wait_for_text(&c, "#flash", "second@example.com").await;
    assert!(created.contains("invitation was sent"), "{created}");
    let status = wait_for_text(&c, r#"tr[data-email="second@example.com"] .badge"#, "invited").await;
    assert_eq!(status, "invited");
    screenshot(&c, "console.png").await;

    // … signs out, and the second admin does the same from their own e-mail.
    click(&c, ".who button[type=submit]").await;
    wait_for_text(&c, "#flash", "signed out").await;
    first_sign_in(&c, &app, "second@example.com", true).await;

    // Assert: both are active, and the audit log shows every step.
    wait_for_text(&c, r#"tr[data-email="second@example.com"] .badge"#, "active").await;
    wait_for_text(&c, r#"tr[data-email="first@example.com"] .badge"#, "active").await;
    c.goto(&app.url("/console/audit")).await.unwrap();
    let audit = wait_for_text(&c, "table.audit tbody", "bootstrap_admin").await;
    let lines: Vec<&str> = audit.lines().collect();
    assert_eq!(lines.len(), 4, "{audit}");
    assert!(
        lines[0].contains("first_login_completed") && lines[0].contains("second@example.com"),
        "{audit}"
    );
    assert!(
        lines[1].contains("create_admin") && lines[1].contains("second@example.com"),
        "{audit}"
    );
    assert!(
        lines[2].contains("first_login_completed") && lines[2].contains("first@example.com"),
        "{audit}"
    );
    assert!(
        lines[3].contains("bootstrap_admin") && lines[3].contains("first@example.com"),
        "{audit}"
    );

    c.close().await.unwrap();
    app.stop().await.unwrap();
}

#[tokio::test]
async fn revoking_an_invitation_asks_for_confirmation_first() {
    // Arrange: a signed-in admin with one pending invitation.
    let app = spawn_app().await;
    app.app
        .provisioner
        .bootstrap_admin("first@example.com", Some("cli-bootstrap"))
        .await
        .unwrap();
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    first_sign_in(&c, &app, "first@example.com", false).await;
    fill(&c, "#new-email", "doomed@example.com").await;
    click(&c, "#create-admin button[type=submit]").await;
    wait_for_text(&c, "#flash", "doomed@example.com").await;
    let revoke = r#"tr[data-email="doomed@example.com"] form[action$="/remove"] button"#;

    // Act: click Revoke, dismiss the dialog; click again and accept it.
    click(&c, revoke).await;
    let question = c.get_alert_text().await.unwrap();
    c.dismiss_alert().await.unwrap();
    let still_there = c.find(Locator::Css(revoke)).await.is_ok();
    click(&c, revoke).await;
    c.accept_alert().await.unwrap();

    // Assert
    assert!(
        question.contains("Revoke the invitation of doomed@example.com"),
        "{question}"
    );
    assert!(still_there, "dismissing the dialog must not submit the form");
    wait_for_text(&c, "#flash", "doomed@example.com was removed").await;
    assert!(c
        .find(Locator::Css(r#"tr[data-email="doomed@example.com"]"#))
        .await
        .is_err());

    c.close().await.unwrap();
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_failed_line_links_to_the_page_with_its_sagas_facts() {
    use admin_provisioner::app::Hooks;
    use admin_provisioner_core::faults::{FaultMode, FaultPlan};
    use admin_provisioner_core::identity::op;

    // Arrange: a signed-in admin; then Cognito creates the user but the answer is lost, and every undo
    // fails, so the next provisioning ends stuck.
    let faults = FaultPlan::new();
    let app = spawn_app_with(Hooks {
        faults: Some(faults.clone()),
        settings: Some(fast_settings()),
        ..Hooks::default()
    })
    .await;
    app.app
        .provisioner
        .bootstrap_admin("first@example.com", Some("cli-bootstrap"))
        .await
        .unwrap();
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;
    first_sign_in(&c, &app, "first@example.com", false).await;
    faults.fail(op::ADMIN_CREATE_USER, FaultMode::SucceedThenError, None);
    faults.fail(op::ADMIN_DELETE_USER, FaultMode::Error, None);
    faults.fail(op::ADMIN_GET_USER, FaultMode::Error, None);

    // Act: create the admin through the form, then follow the failed line's link.
    fill(&c, "#new-email", "stuck@example.com").await;
    click(&c, "#create-admin button[type=submit]").await;
    wait_for_text(&c, "#flash", "Provisioning failed").await;
    assert!(faults.fired(op::ADMIN_CREATE_USER) > 0, "the fault fired");
    wait_for_text(&c, r#"tr[data-email="stuck@example.com"] .badge"#, "failed").await;
    screenshot(&c, "console-failed.png").await;
    click(&c, r#"tr[data-email="stuck@example.com"] a.saga-link"#).await;

    // Assert: the saga's facts, from the saga log.
    let facts = wait_for_text(&c, "#saga-facts", "stuck@example.com").await;
    for fact in [
        "Saga id",
        "Step",
        "State",
        "Owner",
        "Lease",
        "Attempts",
        "Last error",
        "stuck",
    ] {
        assert!(facts.contains(fact), "{fact} missing in {facts}");
    }
    screenshot(&c, "saga.png").await;

    c.close().await.unwrap();
    app.stop().await.unwrap();
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn first_login_with_mfa_on_goes_from_the_invitation_to_the_console_through_the_authenticator_setup() {
    // Arrange: a pool with MFA on (`COGNITO_EMULATOR_MFA=on`), the first admin bootstrapped.
    let app = spawn_app_configured(admin_provisioner::app::Hooks::default(), |c| {
        c.cognito_emulator_mfa = "on".into()
    })
    .await;
    app.app
        .provisioner
        .bootstrap_admin("mfa@example.com", Some("cli-bootstrap"))
        .await
        .unwrap();
    let driver = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&driver, profile.path()).await;

    // Act: the temporary password from the mailbox, a new password, then the setup page: the QR code is
    // drawn by the product (inline SVG) and the key is shown as text; the test is the authenticator app, computing the code from that key.
    let temp = temporary_password_from_mailbox(&c, &app, "mfa@example.com").await;
    c.goto(&app.url("/login")).await.unwrap();
    fill(&c, "#email", "mfa@example.com").await;
    fill(&c, "#password", &temp).await;
    click(&c, "#sign-in").await;
    wait_for_text(&c, "h1", "Choose a new password").await;
    fill(&c, "#new_password", NEW_PASSWORD).await;
    fill(&c, "#confirm_password", NEW_PASSWORD).await;
    click(&c, "#set-password").await;
    wait_for_text(&c, "h1", "Set up your authenticator").await;
    let qr = c
        .find(Locator::Css("#mfa-qr svg"))
        .await
        .expect("the QR code is an inline SVG the product drew")
        .attr("viewBox")
        .await
        .unwrap();
    let secret = c
        .find(Locator::Css("#mfa-secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .trim()
        .to_string();
    screenshot(&c, "mfa-setup.png").await;
    let code = admin_provisioner_core::totp::code_at(&secret, unix_now()).unwrap();
    fill(&c, "#code", &code).await;
    click(&c, "#verify-code").await;
    wait_for_text(&c, r#"tr[data-email="mfa@example.com"] .badge"#, "active").await;

    // … signs out and in again: the password, then a code (of the next step: the one used is spent).
    click(&c, ".who button[type=submit]").await;
    wait_for_text(&c, "#flash", "signed out").await;
    c.goto(&app.url("/login")).await.unwrap();
    fill(&c, "#email", "mfa@example.com").await;
    fill(&c, "#password", NEW_PASSWORD).await;
    click(&c, "#sign-in").await;
    wait_for_text(&c, "h1", "Enter your authenticator code").await;
    let next = admin_provisioner_core::totp::code_at(&secret, unix_now() + 30).unwrap();
    fill(&c, "#code", &next).await;
    click(&c, "#verify-code").await;

    // Assert
    wait_for_text(&c, r#"tr[data-email="mfa@example.com"] .badge"#, "active").await;
    assert!(qr.is_some(), "an SVG QR code with a viewBox");
    assert!(secret.len() >= 16, "a base32 key: {secret}");
    let record = app
        .app
        .provisioner
        .admin_store()
        .find_admin_by_email("mfa@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(
        record.user.mfa_enrolled_at.is_some(),
        "the database records the enrolment"
    );

    c.close().await.unwrap();
    app.stop().await.unwrap();
}
