//! The built-in Cognito emulator's wire endpoint from outside, with clients no one here wrote: real
//! `admin-provisioner emulator` and `serve` processes, and
//! * the product's own AWS SDK adapter (`COGNITO_USER_POOL_ID` + `AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER`:
//!   `bootstrap-admin` and `doctor` against the emulator process, the same code path as production);
//! * a Node script with `@aws-sdk/client-cognito-identity-provider` and `aws-jwt-verify`
//!   (`tests/node-cognito`, pinned, `npm ci`) signing that admin in with the temporary password from the
//!   mailbox and verifying the ID token against the JWKS;
//! * boto3 (`tests/support/cognito_boto3.py`) and the AWS CLI (PyPI `awscli`, pinned in scripts/test.sh);
//! * a restart of the emulator process keeps users, passwords and the signing key, and an enrolled
//!   authenticator's secret and its last used code;
//! * `serve` serves the endpoint too; a non-loopback address is refused without `EMULATOR_ALLOW_REMOTE`.
//!
//! Needs Python with boto3 and awscli (`WEBHOOK_TEST_PYTHON`, else `.venv/bin/python3`; the `aws` script
//! beside it) and Node.js ≥ 18 with npm.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const POOL_ID: &str = "us-east-1_LocalEmu1";
const CLIENT_ID: &str = "7f3k9emulatorlocal0client1";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_admin-provisioner"));
    for var in [
        "COGNITO_USER_POOL_ID",
        "COGNITO_CLIENT_ID",
        "COGNITO_ISSUER",
        "COGNITO_JWKS_URL",
        "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
        "AWS_ENDPOINT_URL",
        "DATABASE_URL",
        "EMULATOR_ALLOW_REMOTE",
        "COGNITO_EMULATOR_ADDR",
    ] {
        c.env_remove(var);
    }
    c.env("RUST_LOG", "warn");
    c
}

/// A running `admin-provisioner emulator` (killed on drop) and where it answers.
struct Emulator {
    child: Child,
    endpoint: String,
    issuer: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the child's stdout until the `cognito:` and `issuer` lines (at most 30 s).
fn read_announcement(child: &mut Child) -> (String, String) {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut endpoint, mut issuer) = (None, None);
    let mut seen = Vec::new();
    while endpoint.is_none() || issuer.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no endpoint and issuer announced; stdout so far: {seen:#?}"));
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("cognito:") {
            endpoint = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(rest) = trimmed.strip_prefix("issuer ") {
            issuer = rest.split_whitespace().next().map(str::to_string);
        }
        seen.push(line);
    }
    (endpoint.unwrap(), issuer.unwrap())
}

fn start_emulator(dir: &Path) -> Emulator {
    start_emulator_with_mfa(dir, "off")
}

/// [`start_emulator`] with the pool's `MfaConfiguration` (`COGNITO_EMULATOR_MFA`).
fn start_emulator_with_mfa(dir: &Path, mfa: &str) -> Emulator {
    let mut child = bin()
        .arg("emulator")
        .env("COGNITO_EMULATOR_MFA", mfa)
        .current_dir(dir)
        .env("COGNITO_EMULATOR_ADDR", "127.0.0.1:0")
        .env("COGNITO_EMULATOR_STATE", dir.join("cognito-emulator.db"))
        .env("MAILBOX_DIR", dir.join("mailbox"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting admin-provisioner emulator");
    let (endpoint, issuer) = read_announcement(&mut child);
    Emulator {
        child,
        endpoint,
        issuer,
    }
}

/// A raw JSON call to the wire endpoint (the SigV4 header is accepted unchecked).
fn call(endpoint: &str, op: &str, body: Value) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{endpoint}/"))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("AWSCognitoIdentityProviderService.{op}"))
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/cognito-idp/aws4_request, SignedHeaders=host, Signature=00",
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    })
}

fn get_json(url: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}

fn python() -> PathBuf {
    std::env::var("WEBHOOK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3"))
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The environment that points the product's AWS adapter at the emulator process.
fn adapter_env(c: &mut Command, emu: &Emulator, dir: &Path) {
    c.env("COGNITO_USER_POOL_ID", POOL_ID)
        .env("COGNITO_CLIENT_ID", CLIENT_ID)
        .env("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", &emu.endpoint)
        .env("COGNITO_ISSUER", &emu.issuer)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_REGION", "us-east-1")
        .env("DATABASE_URL", format!("sqlite://{}", dir.join("app.db").display()));
}

#[test]
fn the_products_aws_adapter_and_a_node_application_sign_a_new_admin_in_against_the_emulator() {
    // Arrange: the emulator alone, and the product on its AWS SDK adapter pointed at it.
    let dir = tempfile::tempdir().unwrap();
    let emu = start_emulator(dir.path());

    // Act 1: the product invites its first admin through Cognito's API (the emulator delivers the mail).
    let mut bootstrap = bin();
    bootstrap
        .args(["bootstrap-admin", "--email", "ann@example.com"])
        .current_dir(dir.path());
    adapter_env(&mut bootstrap, &emu, dir.path());
    let out = bootstrap.output().unwrap();
    assert!(out.status.success(), "bootstrap-admin over the wire: {}", text(&out));
    let mut doctor = bin();
    doctor.arg("doctor").current_dir(dir.path());
    adapter_env(&mut doctor, &emu, dir.path());
    let doctor_out = doctor.output().unwrap();

    // Act 2: a Node application signs the invitee in with the temporary password from the mailbox.
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node-cognito");
    if !node_dir.join("node_modules").is_dir() {
        let ci = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&node_dir)
            .output()
            .expect("npm (Node.js) is needed for this test");
        assert!(ci.status.success(), "npm ci: {}", text(&ci));
    }
    let node = Command::new("node")
        .arg("signin.mjs")
        .current_dir(&node_dir)
        .env("COGNITO_ENDPOINT", &emu.endpoint)
        .env("COGNITO_USER_POOL_ID", POOL_ID)
        .env("COGNITO_CLIENT_ID", CLIENT_ID)
        .env("COGNITO_ISSUER", &emu.issuer)
        .env("MAILBOX_DIR", dir.path().join("mailbox"))
        .env("ADMIN_EMAIL", "ann@example.com")
        .env("NEW_PASSWORD", "N0de#Password!")
        .output()
        .unwrap();

    // Assert
    assert!(
        doctor_out.status.success(),
        "doctor finds nothing blocking in the emulator's pool: {}",
        text(&doctor_out)
    );
    assert!(node.status.success(), "node signin.mjs: {}", text(&node));
    let claims: Value = serde_json::from_slice(
        node.stdout
            .split(|b| *b == b'\n')
            .find(|l| l.starts_with(b"{"))
            .expect("one JSON line"),
    )
    .unwrap();
    assert_eq!(claims["username"], "ann@example.com");
    assert_eq!(claims["getUser"], "ann@example.com");
    assert_eq!(claims["iss"], emu.issuer.as_str());
    assert_eq!(claims["aud"], CLIENT_ID);
    assert!(
        emu.issuer.starts_with(&emu.endpoint),
        "iss = http://<address>/<pool id>"
    );
    let (status, user) = call(
        &emu.endpoint,
        "AdminGetUser",
        json!({"UserPoolId": POOL_ID, "Username": "ann@example.com"}),
    );
    assert_eq!((status, user["UserStatus"].as_str()), (200, Some("CONFIRMED")));
}

#[test]
fn boto3_and_the_aws_cli_use_the_emulator() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let emu = start_emulator(dir.path());
    let python = python();
    let aws = python.with_file_name("aws");

    // Act
    let boto = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/cognito_boto3.py"))
        .args([&emu.endpoint, POOL_ID, CLIENT_ID])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    let cli = |args: &[&str]| {
        Command::new(&aws)
            .args([
                "cognito-idp",
                "--endpoint-url",
                &emu.endpoint,
                "--region",
                "us-east-1",
                "--output",
                "json",
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_CONFIG_FILE", dir.path().join("no-aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("no-aws-credentials"))
            .output()
            .unwrap_or_else(|e| panic!("{} (pip install awscli, see scripts/test.sh): {e}", aws.display()))
    };
    let created = cli(&[
        "admin-create-user",
        "--user-pool-id",
        POOL_ID,
        "--username",
        "cli@example.com",
        "--user-attributes",
        "Name=email,Value=cli@example.com",
        "--message-action",
        "SUPPRESS",
    ]);
    let listed = cli(&[
        "list-users",
        "--user-pool-id",
        POOL_ID,
        "--filter",
        "email = \"cli@example.com\"",
    ]);
    let described = cli(&["describe-user-pool", "--user-pool-id", POOL_ID]);
    let missing = cli(&[
        "admin-get-user",
        "--user-pool-id",
        POOL_ID,
        "--username",
        "nobody@example.com",
    ]);

    // Assert
    assert!(boto.status.success(), "boto3: {}", text(&boto));
    assert_eq!(String::from_utf8_lossy(&boto.stdout).trim(), "ok");
    assert!(created.status.success(), "aws admin-create-user: {}", text(&created));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["User"]["UserStatus"], "FORCE_CHANGE_PASSWORD");
    assert!(listed.status.success(), "aws list-users: {}", text(&listed));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["Users"].as_array().map(Vec::len), Some(1), "{listed}");
    assert!(
        described.status.success(),
        "aws describe-user-pool: {}",
        text(&described)
    );
    let described: Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(described["UserPool"]["Id"], POOL_ID);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("UserNotFoundException"),
        "the CLI names Cognito's error: {}",
        text(&missing)
    );
}

#[test]
fn a_restart_of_the_emulator_process_keeps_users_passwords_and_keys() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let emu = start_emulator(dir.path());
    let (status, _) = call(
        &emu.endpoint,
        "AdminCreateUser",
        json!({"UserPoolId": POOL_ID, "Username": "kim@example.com", "MessageAction": "SUPPRESS",
               "UserAttributes": [{"Name": "email", "Value": "kim@example.com"}]}),
    );
    assert_eq!(status, 200);
    let (status, _) = call(
        &emu.endpoint,
        "AdminSetUserPassword",
        json!({"UserPoolId": POOL_ID, "Username": "kim@example.com", "Password": "K1m#Password", "Permanent": true}),
    );
    assert_eq!(status, 200);
    let login = json!({"ClientId": CLIENT_ID, "AuthFlow": "USER_PASSWORD_AUTH",
                       "AuthParameters": {"USERNAME": "kim@example.com", "PASSWORD": "K1m#Password"}});
    let (_, before) = call(&emu.endpoint, "InitiateAuth", login.clone());
    let jwks_before = get_json(&format!("{}/.well-known/jwks.json", emu.issuer));

    // Act: kill the process (no graceful shutdown) and start a new one on the same state.
    drop(emu);
    let emu = start_emulator(dir.path());

    // Assert
    let (status, after) = call(&emu.endpoint, "InitiateAuth", login);
    assert_eq!(status, 200, "the password survives: {after}");
    let refresh = before["AuthenticationResult"]["RefreshToken"].as_str().unwrap();
    let (status, refreshed) = call(
        &emu.endpoint,
        "InitiateAuth",
        json!({"ClientId": CLIENT_ID, "AuthFlow": "REFRESH_TOKEN_AUTH", "AuthParameters": {"REFRESH_TOKEN": refresh}}),
    );
    assert_eq!(status, 200, "the refresh token survives: {refreshed}");
    let jwks_after = get_json(&format!("{}/.well-known/jwks.json", emu.issuer));
    assert_eq!(jwks_before, jwks_after, "the signing key survives");
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_restart_of_the_emulator_process_keeps_the_mfa_secret_and_the_used_code() {
    // Arrange: an admin with a permanent password enrols a software token over the wire
    // (AssociateSoftwareToken, VerifySoftwareToken, SetUserMFAPreference) in a pool with MFA optional.
    let dir = tempfile::tempdir().unwrap();
    let emu = start_emulator_with_mfa(dir.path(), "optional");
    let (status, created) = call(
        &emu.endpoint,
        "AdminCreateUser",
        json!({"UserPoolId": POOL_ID, "Username": "mia@example.com", "MessageAction": "SUPPRESS",
               "UserAttributes": [{"Name": "email", "Value": "mia@example.com"}]}),
    );
    assert_eq!(status, 200, "{created}");
    let (status, _) = call(
        &emu.endpoint,
        "AdminSetUserPassword",
        json!({"UserPoolId": POOL_ID, "Username": "mia@example.com", "Password": "M1a#Password", "Permanent": true}),
    );
    assert_eq!(status, 200);
    let login = json!({"ClientId": CLIENT_ID, "AuthFlow": "USER_PASSWORD_AUTH",
                       "AuthParameters": {"USERNAME": "mia@example.com", "PASSWORD": "M1a#Password"}});
    let (status, signed_in) = call(&emu.endpoint, "InitiateAuth", login.clone());
    assert_eq!(status, 200, "{signed_in}");
    let access = signed_in["AuthenticationResult"]["AccessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, associated) = call(&emu.endpoint, "AssociateSoftwareToken", json!({"AccessToken": access}));
    assert_eq!(status, 200, "{associated}");
    let secret = associated["SecretCode"].as_str().unwrap().to_string();
    let now = unix_now();
    let enrol_code = admin_provisioner_core::totp::code_at(&secret, now).unwrap();
    let (status, verified) = call(
        &emu.endpoint,
        "VerifySoftwareToken",
        json!({"AccessToken": access, "UserCode": enrol_code}),
    );
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["Status"], "SUCCESS");
    let (status, preferred) = call(
        &emu.endpoint,
        "SetUserMFAPreference",
        json!({"AccessToken": access, "SoftwareTokenMfaSettings": {"Enabled": true, "PreferredMfa": true}}),
    );
    assert_eq!(status, 200, "{preferred}");

    // Act: kill the process (no graceful shutdown) and start a new one on the same state.
    drop(emu);
    let emu = start_emulator_with_mfa(dir.path(), "optional");
    let (status, challenged) = call(&emu.endpoint, "InitiateAuth", login.clone());
    let answer = |session: &str, code: &str| {
        json!({"ClientId": CLIENT_ID, "ChallengeName": "SOFTWARE_TOKEN_MFA", "Session": session,
               "ChallengeResponses": {"USERNAME": "mia@example.com", "SOFTWARE_TOKEN_MFA_CODE": code}})
    };
    let session = challenged["Session"].as_str().unwrap_or_default().to_string();
    // The code used at enrolment is spent: the restarted emulator still knows it.
    let (replayed_status, replayed) = call(&emu.endpoint, "RespondToAuthChallenge", answer(&session, &enrol_code));
    let (status2, challenged2) = call(&emu.endpoint, "InitiateAuth", login);
    let session2 = challenged2["Session"].as_str().unwrap_or_default().to_string();
    // The next step's code (accepted one step either side of now) from the secret handed out before.
    let next_code = admin_provisioner_core::totp::code_at(&secret, now + 30).unwrap();
    let (answered_status, answered) = call(&emu.endpoint, "RespondToAuthChallenge", answer(&session2, &next_code));

    // Assert
    assert_eq!(status, 200, "{challenged}");
    assert_eq!(
        challenged["ChallengeName"], "SOFTWARE_TOKEN_MFA",
        "the enrolment survives: {challenged}"
    );
    assert_eq!(replayed_status, 400, "{replayed}");
    assert_eq!(replayed["__type"], "CodeMismatchException", "{replayed}");
    assert_eq!(status2, 200, "{challenged2}");
    assert_eq!(answered_status, 200, "the secret survives: {answered}");
    assert!(answered["AuthenticationResult"]["IdToken"].is_string(), "{answered}");
}

#[test]
fn serve_serves_the_endpoint_and_a_remote_address_is_refused() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();

    // Act
    let mut serve = bin()
        .arg("serve")
        .current_dir(dir.path())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("COGNITO_EMULATOR_ADDR", "127.0.0.1:0")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("app.db").display()),
        )
        .env("COGNITO_EMULATOR_STATE", dir.path().join("cognito-emulator.db"))
        .env("MAILBOX_DIR", dir.path().join("mailbox"))
        .env("RECONCILE_INTERVAL_SECS", "0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (endpoint, issuer) = read_announcement(&mut serve);
    let listed = call(&endpoint, "ListUsers", json!({"UserPoolId": POOL_ID}));
    let discovery = get_json(&format!("{issuer}/.well-known/openid-configuration"));
    let _ = serve.kill();
    let _ = serve.wait();
    let remote = bin()
        .arg("emulator")
        .current_dir(dir.path())
        .env("COGNITO_EMULATOR_ADDR", "0.0.0.0:0")
        .env("COGNITO_EMULATOR_STATE", dir.path().join("other.db"))
        .output()
        .unwrap();

    // Assert
    assert_eq!(listed.0, 200, "{listed:?}");
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(issuer, format!("{endpoint}/{POOL_ID}"));
    assert!(!remote.status.success());
    assert!(
        String::from_utf8_lossy(&remote.stderr).contains("EMULATOR_ALLOW_REMOTE"),
        "{}",
        text(&remote)
    );
}

/// Recovery on the wire, Cognito's shapes: `ForgotPassword` answers `CodeDeliveryDetails` alike for a
/// known and an unknown user (existence errors prevented), the mailed code works with
/// `ConfirmForgotPassword` (a wrong one is `CodeMismatchException`), `AdminResetUserPassword` makes
/// `InitiateAuth` answer `PasswordResetRequiredException`, `AdminUserGlobalSignOut` makes the refresh
/// token `NotAuthorizedException`, and `AdminSetUserMFAPreference` answers `{}`.
#[test]
fn recovery_reset_and_global_sign_out_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start_emulator(dir.path());
    let user = "lee@example.com";
    call(
        &emu.endpoint,
        "AdminCreateUser",
        json!({"UserPoolId": POOL_ID, "Username": user, "MessageAction": "SUPPRESS",
               "UserAttributes": [{"Name": "email", "Value": user}, {"Name": "email_verified", "Value": "true"}]}),
    );
    let (status, _) = call(
        &emu.endpoint,
        "AdminSetUserPassword",
        json!({"UserPoolId": POOL_ID, "Username": user, "Password": "L33#Password", "Permanent": true}),
    );
    assert_eq!(status, 200);

    let (status, known) = call(
        &emu.endpoint,
        "ForgotPassword",
        json!({"ClientId": CLIENT_ID, "Username": user}),
    );
    assert_eq!(status, 200, "{known}");
    assert_eq!(known["CodeDeliveryDetails"]["DeliveryMedium"], "EMAIL");
    assert_eq!(known["CodeDeliveryDetails"]["Destination"], "l***@e***");
    let (status, unknown) = call(
        &emu.endpoint,
        "ForgotPassword",
        json!({"ClientId": CLIENT_ID, "Username": "lou@example.com"}),
    );
    assert_eq!((status, &unknown), (200, &known), "the same answer for an unknown user");
    let code = admin_provisioner_emulator::mailbox::Mailbox::new(dir.path().join("mailbox"))
        .latest_for(user)
        .unwrap()
        .and_then(|m| m.reset_code())
        .expect("a mailed code");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let confirm = |code: &str| {
        call(
            &emu.endpoint,
            "ConfirmForgotPassword",
            json!({"ClientId": CLIENT_ID, "Username": user, "ConfirmationCode": code, "Password": "N3w#Password"}),
        )
    };
    let (status, err) = confirm(wrong);
    assert_eq!(
        (status, err["__type"].as_str()),
        (400, Some("CodeMismatchException")),
        "{err}"
    );
    let (status, ok) = confirm(&code);
    assert_eq!((status, ok), (200, json!({})));

    let login = json!({"ClientId": CLIENT_ID, "AuthFlow": "USER_PASSWORD_AUTH",
                       "AuthParameters": {"USERNAME": user, "PASSWORD": "N3w#Password"}});
    let (status, tokens) = call(&emu.endpoint, "InitiateAuth", login.clone());
    assert_eq!(status, 200, "{tokens}");
    let refresh = tokens["AuthenticationResult"]["RefreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = call(
        &emu.endpoint,
        "AdminUserGlobalSignOut",
        json!({"UserPoolId": POOL_ID, "Username": user}),
    );
    assert_eq!(status, 200);
    let (status, err) = call(
        &emu.endpoint,
        "InitiateAuth",
        json!({"ClientId": CLIENT_ID, "AuthFlow": "REFRESH_TOKEN_AUTH", "AuthParameters": {"REFRESH_TOKEN": refresh}}),
    );
    assert_eq!(
        (status, err["__type"].as_str()),
        (400, Some("NotAuthorizedException")),
        "{err}"
    );

    let (status, _) = call(
        &emu.endpoint,
        "AdminSetUserMFAPreference",
        json!({"UserPoolId": POOL_ID, "Username": user, "SoftwareTokenMfaSettings": {"Enabled": false, "PreferredMfa": false}}),
    );
    assert_eq!(status, 200);
    let (status, _) = call(
        &emu.endpoint,
        "AdminResetUserPassword",
        json!({"UserPoolId": POOL_ID, "Username": user}),
    );
    assert_eq!(status, 200);
    let (status, err) = call(&emu.endpoint, "InitiateAuth", login);
    assert_eq!(
        (status, err["__type"].as_str()),
        (400, Some("PasswordResetRequiredException")),
        "{err}"
    );
}
