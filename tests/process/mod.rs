//! Process-level harness for the saga's guarantee: real `admin-provisioner` processes (the test build of
//! the binary, whose named crash points are armed by `ADMIN_PROVISIONER_CRASH_AT`) on a deployment of
//! their own, and checks of the result made from outside the processes: the database through the store
//! adapter, Cognito through the emulator's state file or moto through the AWS SDK.
//!
//! Used by `saga_crash_serve.rs`, `saga_crash_lifecycle.rs`, `saga_random_kills.rs` and `saga_replicas.rs`.
#![allow(dead_code)]

use admin_provisioner_cognito::testing::{MotoPool, MotoServer, PoolOptions};
use admin_provisioner_core::crash::CRASH_AT_ENV;
use admin_provisioner_core::identity::{IdentityProvider, IdpError, IdpUser};
use admin_provisioner_core::store::{SagaRecord, Store};
use admin_provisioner_emulator::{CognitoEmulator, EmulatorConfig};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The first admin of every deployment (signs in and provisions over HTTP).
pub const ROOT_EMAIL: &str = "root.admin@example.com";
/// The password the first admin ends up with.
pub const ROOT_PASSWORD: &str = "Correct-Horse-7";

/// `TEST_POSTGRES_URL` (default: the local trust-auth server).
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Which Cognito the deployment uses.
pub enum Cognito {
    /// The built-in emulator: a state file in the deployment's folder, shared by every process.
    Emulator,
    /// A moto pool of its own on the shared moto server.
    Moto {
        /// Keeps moto running.
        server: Arc<MotoServer>,
        /// The pool and an SDK-backed provider for it.
        pool: Box<MotoPool>,
    },
}

/// One deployment: a folder (SQLite file or nothing, emulator state, mailbox, process logs), a database
/// (SQLite, or a fresh PostgreSQL database dropped by [`Deployment::finish`]) and a Cognito.
pub struct Deployment {
    /// The folder.
    pub dir: tempfile::TempDir,
    /// The Cognito.
    pub cognito: Cognito,
    /// `DATABASE_URL` of every process.
    pub database_url: String,
    /// The PostgreSQL database created for this deployment.
    pg_database: Option<String>,
    /// `CALL_TIMEOUT_SECS`.
    pub call_timeout_secs: u64,
    /// `SAGA_LEASE_SECS`: the smallest the start-up check accepts for that timeout (4 attempts ×
    /// timeout + 6 × the 2 s largest backoff, plus one second).
    pub lease_secs: u64,
    /// Extra environment for every process.
    pub extra_env: Vec<(String, String)>,
}

/// A short label for assertion messages.
pub fn label(d: &Deployment) -> &'static str {
    match (&d.cognito, d.pg_database.is_some()) {
        (Cognito::Emulator, false) => "emulator+sqlite",
        (Cognito::Emulator, true) => "emulator+postgres",
        (Cognito::Moto { .. }, false) => "moto+sqlite",
        (Cognito::Moto { .. }, true) => "moto+postgres",
    }
}

fn lease_for(call_timeout_secs: u64) -> u64 {
    4 * call_timeout_secs + 12 + 1
}

impl Deployment {
    /// The built-in emulator and an SQLite file.
    pub fn emulator_sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}", dir.path().join("admin-provisioner.db").display());
        Self {
            dir,
            cognito: Cognito::Emulator,
            database_url,
            pg_database: None,
            call_timeout_secs: 1,
            lease_secs: lease_for(1),
            extra_env: Vec::new(),
        }
    }

    /// The built-in emulator and a fresh PostgreSQL database.
    pub async fn emulator_postgres() -> Self {
        use sqlx::{Connection, Executor};
        let admin = postgres_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("this test needs PostgreSQL at TEST_POSTGRES_URL={admin}: {e}"));
        let name = format!("ap_i7e_{}", uuid::Uuid::new_v4().simple());
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        conn.close().await.ok();
        let (head, _) = admin.rsplit_once('/').unwrap();
        Self {
            dir: tempfile::tempdir().unwrap(),
            cognito: Cognito::Emulator,
            database_url: format!("{head}/{name}"),
            pg_database: Some(name),
            call_timeout_secs: 2,
            lease_secs: lease_for(2),
            extra_env: Vec::new(),
        }
    }

    /// The PostgreSQL database of this deployment (`None` on SQLite).
    pub fn postgres_database(&self) -> Option<&str> {
        self.pg_database.as_deref()
    }

    /// A fresh moto pool and a fresh PostgreSQL database.
    pub async fn moto_postgres() -> Self {
        use sqlx::{Connection, Executor};
        let admin = postgres_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("this test needs PostgreSQL at TEST_POSTGRES_URL={admin}: {e}"));
        let name = format!("ap_i7p_{}", uuid::Uuid::new_v4().simple());
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        conn.close().await.ok();
        let (head, _) = admin.rsplit_once('/').unwrap();
        let server = MotoServer::shared().expect("moto_server is needed (MOTO_SERVER_BIN)");
        let pool = server.create_pool(PoolOptions::default()).await.unwrap();
        // moto on a loaded machine: 2 s per call rather than 1.
        Self {
            dir: tempfile::tempdir().unwrap(),
            cognito: Cognito::Moto {
                server,
                pool: Box::new(pool),
            },
            database_url: format!("{head}/{name}"),
            pg_database: Some(name),
            call_timeout_secs: 2,
            lease_secs: lease_for(2),
            extra_env: Vec::new(),
        }
    }

    /// True on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.pg_database.is_some()
    }

    /// A command for the binary with this deployment's environment (and nothing from the caller's).
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_admin-provisioner"));
        let d = self.dir.path();
        c.current_dir(d)
            .env_remove(CRASH_AT_ENV)
            .env_remove("COGNITO_USER_POOL_ID")
            .env_remove("COGNITO_CLIENT_ID")
            .env_remove("DATABASE_SCHEMA")
            .env_remove("WEBHOOK_URL")
            .env_remove("COGNITO_EMULATOR_LATENCY_MS")
            .env_remove("COGNITO_EMULATOR_RATE_LIMITS")
            .env("DATABASE_URL", &self.database_url)
            .env("COGNITO_EMULATOR_STATE", d.join("cognito-emulator.db"))
            .env("MAILBOX_DIR", d.join("mailbox"))
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("CALL_TIMEOUT_SECS", self.call_timeout_secs.to_string())
            .env("SAGA_LEASE_SECS", self.lease_secs.to_string())
            .env("RECOVERY_INTERVAL_MS", "250")
            .env("RECONCILE_INTERVAL_SECS", "0")
            .env("ADMIN_RATE_LIMIT_PER_MINUTE", "0")
            .env("AUTH_RATE_LIMIT_PER_MINUTE", "0")
            .env("SHUTDOWN_GRACE_SECS", "1")
            .env("RUST_LOG", "warn");
        if let Cognito::Moto { pool, .. } = &self.cognito {
            for (k, v) in pool.env_vars() {
                c.env(k, v);
            }
        }
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}: admin-provisioner {args:?} failed: {}",
            label(self),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `provision --email EMAIL` killed at crash point `point`: asserts that it died of SIGKILL there.
    pub fn provision_killed_at(&self, email: &str, point: &str) {
        let out = self
            .command()
            .args(["provision", "--email", email])
            .env(CRASH_AT_ENV, point)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{}: provision {email} was not killed at {point}: {:?} {stderr}",
            label(self),
            out.status
        );
        assert!(
            stderr.contains(&format!("crash point {point} reached")),
            "{}: {point}: {stderr}",
            label(self)
        );
    }

    /// Starts `serve` (stdout and stderr into a log file of the folder) and waits until it listens.
    pub fn serve(&self, env: &[(&str, &str)]) -> Server {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = self.dir.path().join(format!("serve-{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut c = self.command();
        c.arg("serve")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().unwrap();
        let mut server = Server {
            child,
            base_url: String::new(),
            log,
            exited: None,
        };
        let started = Instant::now();
        loop {
            let text = server.log_text();
            if let Some(rest) = text.split("listening on ").nth(1) {
                server.base_url = rest.split_whitespace().next().unwrap().to_string();
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("{}: serve exited before listening ({status}): {text}", label(self));
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{}: serve did not listen within 60 s: {text}",
                label(self)
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The deployment's database, opened from outside the processes.
    pub async fn store(&self) -> Arc<dyn Store> {
        admin_provisioner_store::connect(&self.database_url).await.unwrap()
    }

    /// The deployment's Cognito, opened from outside the processes: the emulator's state file, or moto
    /// through the AWS SDK.
    pub async fn idp(&self) -> Arc<dyn IdentityProvider> {
        match &self.cognito {
            Cognito::Emulator => Arc::new(
                CognitoEmulator::open(EmulatorConfig::file(
                    self.dir.path().join("cognito-emulator.db"),
                    self.dir.path().join("mailbox"),
                ))
                .await
                .unwrap(),
            ),
            Cognito::Moto { pool, .. } => Arc::new(pool.provider.clone()),
        }
    }

    /// Bootstraps [`ROOT_EMAIL`] with the CLI and gives them a known password ([`ROOT_PASSWORD`]): on the
    /// emulator by answering the first-login challenge with the temporary password from the mailbox, on
    /// moto (which sends no e-mail) by `AdminSetUserPassword` through the SDK.
    pub async fn bootstrap_root(&self) {
        self.cli(&["bootstrap-admin", "--email", ROOT_EMAIL]);
        if let Cognito::Moto { server, pool } = &self.cognito {
            server
                .sdk_client(&pool.provider.config().region)
                .admin_set_user_password()
                .user_pool_id(&pool.user_pool_id)
                .username(ROOT_EMAIL)
                .password(ROOT_PASSWORD)
                .permanent(true)
                .send()
                .await
                .unwrap();
        }
    }

    /// Signs the first admin in through `server`'s API; returns the ID token.
    pub async fn sign_in_root(&self, server: &Server) -> String {
        let client = reqwest::Client::new();
        let res = match &self.cognito {
            Cognito::Emulator if self.root_needs_new_password() => {
                let temp = admin_provisioner_emulator::mailbox::Mailbox::new(self.dir.path().join("mailbox"))
                    .latest_for(ROOT_EMAIL)
                    .unwrap()
                    .expect("an invitation for the first admin")
                    .temporary_password()
                    .expect("a temporary password")
                    .expose()
                    .to_string();
                client
                    .post(server.url("/api/auth/new-password"))
                    .json(&json!({"username": ROOT_EMAIL, "temporary_password": temp, "new_password": ROOT_PASSWORD}))
                    .send()
                    .await
                    .unwrap()
            }
            _ => client
                .post(server.url("/api/auth/login"))
                .json(&json!({"email": ROOT_EMAIL, "password": ROOT_PASSWORD}))
                .send()
                .await
                .unwrap(),
        };
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{}: sign-in failed: {status} {body}", label(self));
        body["id_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no tokens: {body}"))
            .to_string()
    }

    fn root_needs_new_password(&self) -> bool {
        let marker = self.dir.path().join(".root-activated");
        if marker.exists() {
            return false;
        }
        std::fs::write(marker, b"").unwrap();
        true
    }

    /// Drops the PostgreSQL database (if any).
    pub async fn finish(self) {
        use sqlx::{Connection, Executor};
        if let Some(name) = &self.pg_database {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                let _ = conn
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await;
            }
        }
    }
}

/// A running `serve` process, SIGKILLed when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Its stdout and stderr.
    pub log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Server {
    /// `base_url + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Everything it printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL and asserts that the process died of it (it was still running).
    pub fn kill9(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "serve had already exited before the kill: {}",
            self.log_text()
        );
        self.child.kill().unwrap(); // SIGKILL on Unix
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "serve did not die of SIGKILL: {status:?}");
        self.exited = Some(status);
    }

    /// Waits (at most `bound`) for the process to exit by itself; returns its status.
    pub fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = Some(status);
                return status;
            }
            assert!(
                started.elapsed() < bound,
                "serve still running after {bound:?}: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET /metrics`, the sum of the identity-provider calls counted for operation `op` (any result).
    pub async fn idp_calls(&self, op: &str) -> u64 {
        let text = reqwest::get(self.url("/metrics")).await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| {
                !l.starts_with('#') && l.contains("identity_provider_calls") && l.contains(&format!("\"{op}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `POST /api/admins {email}` with a bearer token: `Ok((status, body))`, or `Err` when no answer came
/// (the server died).
pub async fn post_admin(
    client: &reqwest::Client,
    base_url: &str,
    token: &str,
    email: &str,
) -> Result<(u16, Value), reqwest::Error> {
    let res = client
        .post(format!("{base_url}/api/admins"))
        .bearer_auth(token)
        .json(&json!({ "email": email }))
        .send()
        .await?;
    let status = res.status().as_u16();
    let body = res.json::<Value>().await?;
    Ok((status, body))
}

/// What the two systems say about the attempted e-mails.
#[derive(Debug, Default)]
pub struct Settled {
    /// E-mails in both systems, linked.
    pub both: BTreeSet<String>,
    /// E-mails in neither.
    pub neither: BTreeSet<String>,
}

async fn cognito_user(idp: &dyn IdentityProvider, username: &str) -> Option<IdpUser> {
    match idp.admin_get_user(username).await {
        Ok(u) => Some(u),
        Err(IdpError::UserNotFound) => None,
        Err(e) => panic!("AdminGetUser {username}: {e}"),
    }
}

/// Every Cognito user of the pool.
pub async fn all_cognito_users(idp: &dyn IdentityProvider) -> Vec<IdpUser> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = idp.list_users(token, 60).await.unwrap();
        out.extend(page.users);
        match page.next_token {
            Some(t) => token = Some(t),
            None => return out,
        }
    }
}

/// Waits (at most `bound`) until the saga log has no unfinished saga; panics with the leftovers.
pub async fn wait_no_unfinished(store: &dyn Store, bound: Duration, what: &str) {
    let started = Instant::now();
    loop {
        let left = store.list_unfinished().await.unwrap();
        if left.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < bound,
            "{what}: {} saga(s) still unfinished after {bound:?}: {:#?}",
            left.len(),
            left.iter()
                .map(|s| (s.id, s.email.clone(), s.state, s.owner.clone(), s.last_error.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The guarantee, checked from outside: each of `emails` is in both systems (linked: the record's
/// Cognito username and `sub` are the user's) or in neither; no Cognito user exists without a record
/// (no ghost, whatever its e-mail) and no record without its Cognito user; no saga is unfinished.
pub async fn assert_both_or_neither(
    store: &dyn Store,
    idp: &dyn IdentityProvider,
    emails: &[String],
    what: &str,
) -> Settled {
    let mut settled = Settled::default();
    let unfinished: Vec<SagaRecord> = store.list_unfinished().await.unwrap();
    assert!(
        unfinished.is_empty(),
        "{what}: unfinished sagas: {:?}",
        unfinished.iter().map(|s| (s.id, &s.email, s.state)).collect::<Vec<_>>()
    );
    for email in emails {
        let normalized = email.to_lowercase();
        let record = store.find_admin_by_email(&normalized).await.unwrap();
        let user = cognito_user(idp, &normalized).await;
        match (&record, &user) {
            (Some(r), Some(u)) => {
                assert_eq!(r.user.cognito_sub, u.sub, "{what}: {email}: record linked to another sub");
                assert_eq!(r.user.cognito_username, u.username, "{what}: {email}: username differs");
                settled.both.insert(normalized.clone());
            }
            (None, None) => {
                settled.neither.insert(normalized.clone());
            }
            _ => panic!(
                "{what}: {email} is not in both systems or neither: record {record:?}, Cognito user {user:?}; sagas {:?}",
                store.list_for_email(&normalized).await.unwrap()
            ),
        }
        for s in store.list_for_email(&normalized).await.unwrap() {
            assert!(s.state.is_terminal(), "{what}: {email}: saga {} is {:?}", s.id, s.state);
        }
    }
    // Ghosts and dangling records, whatever their e-mail.
    let users = all_cognito_users(idp).await;
    let mut subs = BTreeMap::new();
    for u in &users {
        let r = store.find_admin_by_cognito_sub(&u.sub).await.unwrap();
        assert!(
            r.is_some(),
            "{what}: ghost: Cognito user {} ({:?}) has no database record",
            u.username,
            u.email
        );
        subs.insert(u.sub.clone(), u.username.clone());
    }
    for r in store.list_admins().await.unwrap() {
        assert!(
            subs.contains_key(&r.user.cognito_sub),
            "{what}: record {} has no Cognito user",
            r.user.email
        );
    }
    settled
}

/// Runs every `(backend, crash point)` case on a thread of its own, each on a fresh deployment of its
/// backend (`emulator+sqlite` or `moto+postgres`, as [`label`] names them), and fails with the number of
/// failed cases. Returns how many ran.
pub fn run_crash_cases<F, Fut>(cases: Vec<(&'static str, &'static str)>, case: F) -> usize
where
    F: Fn(Deployment, &'static str) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(backend, point)| {
            std::thread::spawn(move || {
                block_on(async move {
                    let d = match backend {
                        "emulator+sqlite" => Deployment::emulator_sqlite(),
                        "moto+postgres" => Deployment::moto_postgres().await,
                        other => panic!("unknown backend {other}"),
                    };
                    case(d, point).await
                })
            })
        })
        .collect();
    let n = runs.len();
    let failures = runs.into_iter().filter_map(|r| r.join().err()).count();
    assert_eq!(failures, 0, "{failures} of {n} crash cases failed");
    n
}

/// Runs `f` on a fresh current-thread runtime (one per test thread).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
