//! Shared helpers for the HTTP specifications (`api.rs`, `e2e.rs`, `browser.rs`).
//!
//! Every app lives in its own temporary folder: an SQLite database, the built-in Cognito emulator's state
//! file and its mailbox. [`test_app`] also bootstraps a first admin the way the CLI does, reads the
//! temporary password from the mailbox, completes the first login through the API and keeps the tokens,
//! so each test starts from "an active admin is signed in".
#![allow(dead_code)]

use admin_provisioner::app::{App, Hooks};
use admin_provisioner::config::Config;
use admin_provisioner::http::{self, AppState, Metrics};
use admin_provisioner_core::clock::ManualClock;
use admin_provisioner_core::faults::FaultPlan;
use admin_provisioner_core::ProvisionerSettings;
use admin_provisioner_emulator::CognitoEmulator;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// The password every test admin chooses at first login (meets Cognito's default policy).
pub const NEW_PASSWORD: &str = "Correct-Horse-7";
/// The first admin's e-mail.
pub const ADMIN_EMAIL: &str = "root.admin@example.com";

/// Configuration for an app in `dir`, built directly (not from the environment).
pub fn test_config(dir: &Path) -> Config {
    Config::embedded_in(dir)
}

/// Saga settings that keep injected faults quick: short backoff, few attempts.
pub fn fast_settings() -> ProvisionerSettings {
    ProvisionerSettings {
        invite_validity_days: 7,
        call_timeout: Duration::from_secs(5),
        max_attempts: 2,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        resend_cooldown: Duration::from_secs(60),
        ..ProvisionerSettings::default()
    }
}

/// A signed-in admin.
#[derive(Clone, Debug)]
pub struct Admin {
    /// `User.id`.
    pub id: String,
    /// E-mail.
    pub email: String,
    /// Their own password.
    pub password: String,
    /// Cognito ID token.
    pub id_token: String,
    /// Cognito access token.
    pub access_token: String,
}

/// An app served in-process.
pub struct TestApp {
    /// The wired app.
    pub app: App,
    /// The HTTP state.
    pub state: AppState,
    /// The router under test.
    pub router: Router,
    /// The app's clock (also the emulator's).
    pub clock: Arc<ManualClock>,
    /// Faults injected around Cognito and the store.
    pub faults: Arc<FaultPlan>,
    /// This app's metrics registry.
    pub metrics: Arc<Metrics>,
    /// The first admin, when bootstrapped.
    pub admin: Option<Admin>,
    /// The temporary folder (kept alive with the app).
    pub dir: tempfile::TempDir,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Res {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub text: String,
}

impl Res {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
    /// `error.code` of an error envelope.
    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_string()
    }
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

/// A request with an optional Bearer token and JSON body.
pub fn request(method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// An app with no admin yet.
pub async fn bare_app() -> TestApp {
    bare_app_with(|_| {}).await
}

/// An app with no admin yet, its configuration adjusted by `adjust` first.
pub async fn bare_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new());
    let faults = FaultPlan::new();
    let metrics = Metrics::new();
    let mut config = test_config(dir.path());
    adjust(&mut config);
    let hooks = Hooks {
        clock: Some(clock.clone()),
        faults: Some(faults.clone()),
        // The per-actor budget of mutating operations is configuration (`ADMIN_RATE_LIMIT_PER_MINUTE`).
        settings: Some(ProvisionerSettings {
            admin_actions_per_minute: config.admin_rate_limit_per_minute,
            require_mfa: config.require_mfa,
            ..fast_settings()
        }),
        observer: Some(metrics.clone()),
    };
    let app = App::build_with(config, hooks).await.unwrap();
    let state = AppState::with_metrics(app.clone(), metrics.clone());
    let router = http::router(state.clone());
    TestApp {
        app,
        state,
        router,
        clock,
        faults,
        metrics,
        admin: None,
        dir,
    }
}

/// An app whose first admin ([`ADMIN_EMAIL`]) was bootstrapped (as the CLI does) and has completed first
/// login; [`TestApp::token`] is their ID token.
pub async fn test_app() -> TestApp {
    test_app_with(|_| {}).await
}

/// [`test_app`] with its configuration adjusted by `adjust` first.
pub async fn test_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut t = bare_app_with(adjust).await;
    t.app
        .provisioner
        .bootstrap_admin(ADMIN_EMAIL, Some("test-bootstrap"))
        .await
        .unwrap();
    let admin = t.activate(ADMIN_EMAIL).await;
    t.admin = Some(admin);
    t
}

impl TestApp {
    /// Sends one request through the router.
    pub async fn call(&self, req: Request<Body>) -> Res {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Res {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// `GET path` with a token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Res {
        self.call(request(Method::GET, path, token, None)).await
    }

    /// `POST path` with a token and a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.call(request(Method::POST, path, token, Some(body))).await
    }

    /// `DELETE path` with a token.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Res {
        self.call(request(Method::DELETE, path, token, None)).await
    }

    /// The first admin.
    pub fn admin(&self) -> &Admin {
        self.admin.as_ref().expect("test_app() bootstraps an admin")
    }

    /// The first admin's ID token.
    pub fn token(&self) -> &str {
        &self.admin().id_token
    }

    /// The built-in emulator (un-faulted).
    pub fn emulator(&self) -> Arc<CognitoEmulator> {
        self.app.emulator.clone().expect("tests use the built-in emulator")
    }

    /// The latest temporary password e-mailed to `email`.
    pub fn temp_password(&self, email: &str) -> String {
        temp_password_in(&self.app.config.mailbox_dir, email)
    }

    /// How many invitations were e-mailed to `email`.
    pub fn invitations_to(&self, email: &str) -> usize {
        admin_provisioner_emulator::mailbox::Mailbox::new(&self.app.config.mailbox_dir)
            .messages()
            .unwrap()
            .iter()
            .filter(|m| m.to.eq_ignore_ascii_case(email))
            .count()
    }

    /// Provisions `email` through the API as the first admin; returns the new admin's id.
    pub async fn invite(&self, email: &str) -> String {
        let res = self
            .post("/api/admins", Some(self.token()), json!({ "email": email }))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        res.json()["user"]["id"].as_str().unwrap().to_string()
    }

    /// Completes `email`'s first login through the API (temporary password from the mailbox →
    /// [`NEW_PASSWORD`]) and returns them signed in.
    pub async fn activate(&self, email: &str) -> Admin {
        let temp = self.temp_password(email);
        let res = self
            .post(
                "/api/auth/new-password",
                None,
                json!({"username": email, "temporary_password": temp, "new_password": NEW_PASSWORD}),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        let tokens = res.json();
        let record = self
            .app
            .provisioner
            .admin_store()
            .find_admin_by_email(&email.to_lowercase())
            .await
            .unwrap()
            .expect("an admin record");
        Admin {
            id: record.user.id.to_string(),
            email: email.to_string(),
            password: NEW_PASSWORD.to_string(),
            id_token: tokens["id_token"].as_str().unwrap().to_string(),
            access_token: tokens["access_token"].as_str().unwrap().to_string(),
        }
    }

    /// Logs `email` in through the API with `password`; returns the ID token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let res = self
            .post("/api/auth/login", None, json!({"email": email, "password": password}))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        res.json()["id_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no tokens: {}", res.text))
            .to_string()
    }
}

/// The latest temporary password e-mailed to `email` in the mailbox folder `dir`.
pub fn temp_password_in(dir: &Path, email: &str) -> String {
    admin_provisioner_emulator::mailbox::Mailbox::new(dir)
        .latest_for(email)
        .unwrap()
        .unwrap_or_else(|| panic!("no invitation for {email}"))
        .temporary_password()
        .expect("an invitation line")
        .expose()
        .to_string()
}

/// An app served on a real socket (127.0.0.1, a free port) with [`http::serve`].
pub struct SpawnedApp {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The listening address.
    pub addr: std::net::SocketAddr,
    /// The wired app (same database and emulator as the server).
    pub app: App,
    /// The temporary folder.
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Builds an app (system clock, metrics observer as `serve` expects) and serves it on a free port.
pub async fn spawn_app() -> SpawnedApp {
    spawn_app_with(Hooks::default()).await
}

/// Like [`spawn_app`], with test hooks (faults, saga settings); the observer defaults to the process-wide
/// [`http::metrics_observer`] registry, as `serve` expects.
pub async fn spawn_app_with(hooks: Hooks) -> SpawnedApp {
    spawn_app_configured(hooks, |_| {}).await
}

/// Like [`spawn_app_with`], with the configuration adjusted first (e.g. `COGNITO_EMULATOR_MFA=on`).
pub async fn spawn_app_configured(hooks: Hooks, adjust: impl FnOnce(&mut Config)) -> SpawnedApp {
    let dir = tempfile::tempdir().unwrap();
    let observer = hooks.observer.clone().unwrap_or_else(|| http::metrics_observer());
    let hooks = Hooks {
        observer: Some(observer),
        ..hooks
    };
    let mut config = test_config(dir.path());
    adjust(&mut config);
    let app = App::build_with(config, hooks).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base_url = format!("http://{addr}");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(app.clone(), listener, async {
        let _ = rx.await;
    }));
    SpawnedApp {
        base_url,
        addr,
        app,
        dir,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl SpawnedApp {
    /// `base_url + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The latest temporary password e-mailed to `email`.
    pub fn temp_password(&self, email: &str) -> String {
        temp_password_in(&self.app.config.mailbox_dir, email)
    }

    /// Signals graceful shutdown without waiting (the shutdown future given to `serve` resolves).
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// True once `serve` has returned.
    pub fn server_finished(&self) -> bool {
        self.server.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Signals graceful shutdown (unless already signalled) and waits for the server to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(h) => h.await?,
            None => Ok(()),
        }
    }
}

/// Collects everything written by a tracing subscriber (`.with_writer(capture.clone())`).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl LogCapture {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
