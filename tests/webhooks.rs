//! Webhooks end to end: `admin-provisioner serve` as a real process delivering to a receiver written
//! in Python that verifies every request with the `standardwebhooks` library (PyPI, installed into
//! `.venv` by `scripts/test.sh`; `WEBHOOK_TEST_PYTHON` overrides the interpreter). The events come from
//! CLI runs against the same SQLite file, as an operator would produce them.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8G";

fn python() -> PathBuf {
    let python = std::env::var("WEBHOOK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3"));
    let check = Command::new(&python).args(["-c", "import standardwebhooks"]).output();
    match check {
        Ok(out) if out.status.success() => python,
        _ => panic!(
            "{} cannot import standardwebhooks: run scripts/test.sh (it installs standardwebhooks into .venv) \
             or set WEBHOOK_TEST_PYTHON to a python with `pip install standardwebhooks==1.1.0`",
            python.display()
        ),
    }
}

fn rand_suffix() -> u128 {
    uuid::Uuid::new_v4().as_u128()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One deployment: an SQLite file, the emulator's state and mailbox, in a temporary folder.
struct Deployment {
    dir: tempfile::TempDir,
    hook_port: u16,
    database_url: String,
    /// A PostgreSQL database of its own, dropped with the deployment.
    postgres: Option<String>,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

impl Deployment {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}", dir.path().join("ap.db").display());
        Self {
            dir,
            hook_port: free_port(),
            database_url,
            postgres: None,
        }
    }

    /// A deployment on a fresh PostgreSQL database (`TEST_POSTGRES_URL`).
    fn on_postgres() -> Self {
        use sqlx::{Connection, Executor};
        let name = format!("ap_webhooks_test_{}", uuid::Uuid::new_v4().simple());
        block_on(async {
            let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
                .await
                .unwrap_or_else(|e| panic!("this test needs PostgreSQL at TEST_POSTGRES_URL: {e}"));
            admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        });
        let base = postgres_admin_url();
        let (head, _) = base.rsplit_once('/').unwrap();
        let mut d = Self::new();
        d.database_url = format!("{head}/{name}");
        d.postgres = Some(name);
        d
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_admin-provisioner"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("DATABASE_URL", &self.database_url)
            .env("COGNITO_EMULATOR_STATE", self.dir.path().join("emulator.db"))
            .env("MAILBOX_DIR", self.dir.path().join("mailbox"))
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("RESEND_COOLDOWN_SECS", "0")
            .env(
                "WEBHOOK_URL",
                format!("http://127.0.0.1:{}/hooks?token=private", self.hook_port),
            )
            .env("WEBHOOK_SECRET", SECRET)
            .env("WEBHOOK_TIMEOUT_SECS", "2")
            .env("RUST_LOG", "warn")
            .env_remove("COGNITO_USER_POOL_ID")
            .env_remove("DATABASE_SCHEMA");
        cmd
    }

    fn cli(&self, args: &[&str]) {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `serve` (output to files in the folder) and waits until it listens.
    fn serve(&self) -> Proc {
        let out = self.dir.path().join(format!(
            "serve-{}.out",
            Instant::now().elapsed().as_nanos() ^ rand_suffix()
        ));
        let child = self
            .command(&["serve"])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        let mut child = Proc(child);
        let started = Instant::now();
        loop {
            if std::fs::read_to_string(&out)
                .unwrap_or_default()
                .contains("listening on")
            {
                return child;
            }
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!(
                    "serve exited with {status}: {}",
                    std::fs::read_to_string(out.with_extension("err")).unwrap_or_default()
                );
            }
            assert!(started.elapsed() < Duration::from_secs(30), "serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn receiver(&self, hang_first_secs: u64) -> Proc {
        let mut child = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/webhook_receiver.py"))
            .arg(self.hook_port.to_string())
            .arg(SECRET)
            .arg(self.log_path())
            .arg(hang_first_secs.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready");
        Proc(child)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("received.jsonl")
    }

    /// Every line the receiver logged.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Verified deliveries, in arrival order.
    fn deliveries(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r["kind"] == "delivery" && r["valid"] == true)
            .collect()
    }

    /// Waits until `n` distinct events arrived verified (or panics after `timeout`).
    fn wait_for_events(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let deliveries = self.deliveries();
            let distinct: BTreeSet<String> = deliveries
                .iter()
                .map(|d| d["webhook_id"].as_str().unwrap().to_string())
                .collect();
            if distinct.len() >= n {
                return deliveries;
            }
            assert!(
                started.elapsed() < timeout,
                "only {} of {n} events arrived: {:?}",
                distinct.len(),
                self.received()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A scalar from the deployment's database (PostgreSQL: in the product's schema).
    fn scalar(&self, sql: &str) -> i64 {
        block_on(async {
            if self.postgres.is_some() {
                let store = admin_provisioner_store::PostgresStore::connect(&self.database_url)
                    .await
                    .unwrap();
                let v: i64 = sqlx::query_scalar(sql).fetch_one(store.pool()).await.unwrap();
                store.pool().close().await;
                v
            } else {
                let pool = sqlx::SqlitePool::connect(&self.database_url).await.unwrap();
                let v: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
                pool.close().await;
                v
            }
        })
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        use sqlx::{Connection, Executor};
        if let Some(name) = self.postgres.take() {
            block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        }
    }
}

/// Event ids per admin, in order of first arrival.
fn arrival_order_per_admin(deliveries: &[Value]) -> BTreeMap<String, Vec<i64>> {
    let mut seen = BTreeSet::new();
    let mut per_admin: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for d in deliveries {
        let id = d["event"]["id"].as_i64().unwrap();
        if seen.insert(id) {
            per_admin
                .entry(d["event"]["admin_id"].as_str().unwrap().to_string())
                .or_default()
                .push(id);
        }
    }
    per_admin
}

#[test]
fn a_receiver_down_for_a_while_then_back_gets_every_event_verified_in_order_per_admin() {
    // Arrange: serve runs while the receiver is down; six events for three admins are committed.
    let d = Deployment::new();
    let _serve = d.serve();
    d.cli(&["bootstrap-admin", "--email", "first@example.com"]);
    d.cli(&["provision", "--email", "a@example.com"]);
    d.cli(&["provision", "--email", "b@example.com"]);
    d.cli(&["resend-invite", "--email", "a@example.com"]);
    d.cli(&["resend-invite", "--email", "b@example.com"]);
    d.cli(&["resend-invite", "--email", "a@example.com"]);
    std::thread::sleep(Duration::from_millis(2500));
    // The fault fired: attempts were made and failed (connection refused), nothing was delivered.
    let failed = d.scalar("SELECT COUNT(*) FROM webhook_attempts WHERE status IS NULL AND error IS NOT NULL");
    assert!(failed >= 1, "no failed attempt while the receiver was down");
    assert_eq!(
        d.scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'delivered'"),
        0
    );

    // Act: the receiver comes back.
    let _receiver = d.receiver(0);
    let deliveries = d.wait_for_events(6, Duration::from_secs(60));

    // Assert: every event, each verified by standardwebhooks, in order per admin.
    assert!(d.received().iter().all(|r| r["valid"] != false), "{:?}", d.received());
    let per_admin = arrival_order_per_admin(&deliveries);
    assert_eq!(per_admin.len(), 3);
    for (admin, ids) in &per_admin {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order for {admin}: {ids:?}");
    }
    let types_of = |email: &str| -> Vec<String> {
        let mut seen = BTreeSet::new();
        deliveries
            .iter()
            .filter(|x| x["event"]["email"] == email && seen.insert(x["event"]["id"].as_i64().unwrap()))
            .map(|x| x["event"]["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        types_of("a@example.com"),
        vec!["admin.invited", "admin.invite_resent", "admin.invite_resent"]
    );
    for x in &deliveries {
        assert_eq!(x["webhook_id"], format!("evt_{}", x["event"]["id"]));
    }
    // The delivery log names the receiver without its query (which may hold a credential).
    assert_eq!(
        d.scalar("SELECT COUNT(*) FROM webhook_attempts WHERE url LIKE '%token%'"),
        0
    );
    assert_eq!(
        d.scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'"),
        0
    );
}

#[test]
fn the_receiver_refuses_a_request_whose_signature_does_not_match() {
    // A negative control: the receiver really verifies (so the test above could fail).
    let d = Deployment::new();
    let _receiver = d.receiver(0);
    let status = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            reqwest::Client::new()
                .post(format!("http://127.0.0.1:{}/hooks", d.hook_port))
                .header("webhook-id", "evt_1")
                .header("webhook-timestamp", chrono::Utc::now().timestamp().to_string())
                .header("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
                .body(r#"{"id":1}"#)
                .send()
                .await
                .unwrap()
                .status()
        });
    assert_eq!(status.as_u16(), 400);
    assert_eq!(d.received()[0]["valid"], false);
}

#[test]
fn sigkill_during_a_delivery_loses_nothing() {
    // Arrange: a receiver that hangs on the first request; two events.
    let d = Deployment::new();
    let _receiver = d.receiver(60);
    let mut serve = d.serve();
    d.cli(&["bootstrap-admin", "--email", "first@example.com"]);
    d.cli(&["provision", "--email", "a@example.com"]);
    let started = Instant::now();
    let hung = loop {
        if let Some(r) = d.received().into_iter().find(|r| r["kind"] == "started") {
            break r["webhook_id"].as_str().unwrap().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no delivery started");
        std::thread::sleep(Duration::from_millis(50));
    };

    // Act: SIGKILL while that request is in flight; one more event while down; start again.
    serve.0.kill().unwrap();
    serve.0.wait().unwrap();
    assert!(
        !d.deliveries().iter().any(|x| x["webhook_id"] == hung.as_str()),
        "the fault fired: {hung} was cut off before it was answered"
    );
    d.cli(&["provision", "--email", "b@example.com"]);
    let _serve = d.serve();
    let deliveries = d.wait_for_events(3, Duration::from_secs(60));

    // Assert: every event arrived verified, including the one cut off by the kill.
    let ids: BTreeSet<String> = deliveries
        .iter()
        .map(|x| x["webhook_id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&hung), "{hung} was lost: {ids:?}");
    assert_eq!(ids.len(), 3);
    assert_eq!(
        d.scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'delivered'"),
        3
    );
    drop(serve);
}

#[test]
fn three_replicas_on_postgres_deliver_each_event_exactly_once() {
    // Arrange: a receiver that always accepts, three `serve` processes on one PostgreSQL database.
    let d = Deployment::on_postgres();
    let _receiver = d.receiver(0);
    let replicas: Vec<Proc> = (0..3).map(|_| d.serve()).collect();

    // Act: twelve events for seven admins, committed by CLI runs.
    d.cli(&["bootstrap-admin", "--email", "first@example.com"]);
    for i in 0..6 {
        d.cli(&["provision", "--email", &format!("r{i}@example.com")]);
    }
    for i in 0..5 {
        d.cli(&["resend-invite", "--email", &format!("r{i}@example.com")]);
    }
    let deliveries = d.wait_for_events(12, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));

    // Assert: each event arrived once (one attempt each, as every answer was 2xx), in order per admin.
    let deliveries = {
        let later = d.deliveries();
        assert!(later.len() >= deliveries.len());
        later
    };
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for x in &deliveries {
        *per_id.entry(x["webhook_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 12);
    assert!(per_id.values().all(|n| *n == 1), "duplicates: {per_id:?}");
    for (admin, ids) in arrival_order_per_admin(&deliveries) {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order for {admin}: {ids:?}");
    }
    assert_eq!(d.scalar("SELECT COUNT(*) FROM webhook_attempts"), 12);
    assert_eq!(
        d.scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'delivered'"),
        12
    );
    drop(replicas);
}
