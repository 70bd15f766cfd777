//! The scale benchmark: `cargo run --release --example bench` (not part of the test command).
//!
//! Starts the release server binary (`target/release/admin-provisioner`, built first with
//! `cargo build --release`) on loopback with the built-in emulator, once per cell with a fresh database, and
//! prints on SQLite and on PostgreSQL (`TEST_POSTGRES_URL`, which must allow `CREATE DATABASE`):
//!
//! * a. HTTP provisions/s at concurrency 1, 8 and 32 (emulator without latency) next to the rate of the
//!   same store calls of one provisioning executed directly by the benchmark (the "raw" rate), and the
//!   ratio;
//! * b. p50/p99 of one provisioning with the emulator at 50 ms latency, minus that latency;
//! * c. an import of 2,000 rows against the emulator limited to `AdminCreateUser=50` with 50 ms latency:
//!   achieved rate ÷ quota, and the failed rows;
//! * d. provisions/s (concurrency 8) after 100,000 admins exist ÷ the rate on an empty database;
//! * e. peak RSS of the server (`VmHWM`) after the load and after walking the whole admin list.
//!
//! Knobs (environment): `BENCH_SECS` (per load cell, default 5), `BENCH_IMPORT_ROWS` (default 2000),
//! `BENCH_BULK_ADMINS` (default 100000), `BENCH_DATABASES` (`sqlite,postgres`). Every request goes to
//! 127.0.0.1 only and every loop is bounded by time or count.

use admin_provisioner_core::domain::{Actor, UserId};
use admin_provisioner_core::store::{AdminStore, AuditAction, AuditEntry, NewAdmin, SagaKind, SagaLog, SagaRecord};
use admin_provisioner_core::store::{SagaState, SagaUpdate};
use admin_provisioner_store::{PostgresStore, SqliteStore};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NEW_PASSWORD: &str = "Bench-Passw0rd!";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn binary() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/admin-provisioner");
    assert!(p.exists(), "build the release binary first: cargo build --release");
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One fresh database (and folder) for a cell.
struct Cell {
    dir: tempfile::TempDir,
    url: String,
    pg_name: Option<String>,
}

async fn fresh_cell(db: &str) -> Cell {
    let dir = tempfile::tempdir().unwrap();
    if db == "sqlite" {
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        return Cell {
            dir,
            url,
            pg_name: None,
        };
    }
    let admin = pg_admin_url();
    let name = format!("ap_bench_i9_{}", uuid::Uuid::new_v4().simple());
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    Cell {
        dir,
        url: format!("{base}/{name}"),
        pg_name: Some(name),
    }
}

fn pg_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn drop_cell(cell: Cell) {
    if let Some(name) = cell.pg_name {
        use sqlx::{Connection, Executor};
        if let Ok(mut conn) = sqlx::PgConnection::connect(&pg_admin_url()).await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
    }
}

fn command(cell: &Cell, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(binary());
    c.current_dir(cell.dir.path())
        .env_remove("COGNITO_USER_POOL_ID")
        .env("DATABASE_URL", &cell.url)
        .env("MAILBOX_DIR", cell.dir.path().join("mailbox"))
        .env("COGNITO_EMULATOR_STATE", cell.dir.path().join("emu.db"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// A running server with a signed-in admin.
struct Server {
    child: Child,
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(cell: &Cell, env: &[(&str, String)]) -> Server {
        let status = command(cell, env)
            .args(["bootstrap-admin", "--email", "root@bench.example.com"])
            .status()
            .unwrap();
        assert!(status.success(), "bootstrap-admin failed");
        let port = free_port();
        let mut env = env.to_vec();
        env.push(("BIND_ADDR", format!("127.0.0.1:{port}")));
        let child = command(cell, &env).arg("serve").spawn().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let temp = admin_provisioner_emulator::mailbox::Mailbox::new(cell.dir.path().join("mailbox"))
            .latest_for("root@bench.example.com")
            .unwrap()
            .unwrap()
            .temporary_password()
            .unwrap();
        let tokens: Value = http
            .post(format!("{base}/api/auth/new-password"))
            .json(&json!({"username": "root@bench.example.com", "temporary_password": temp.expose(), "new_password": NEW_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = tokens["id_token"].as_str().expect("tokens").to_string();
        Server {
            child,
            base,
            token,
            http,
        }
    }

    async fn provision(&self, email: &str) -> bool {
        self.http
            .post(format!("{}/api/admins", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "email": email }))
            .send()
            .await
            .map(|r| r.status() == 201)
            .unwrap_or(false)
    }

    /// Peak resident set of the server process, MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }
}

/// Provisions/s through HTTP at `concurrency` for `secs`.
async fn http_rate(server: &Arc<Server>, concurrency: usize, secs: u64, tag: &str) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (server, done, tag) = (server.clone(), done.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < end {
                i += 1;
                if server.provision(&format!("{tag}-{w}-{i}@bench.example.com")).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The store calls of one provisioning (authorization lookup, existence check, saga intent, two saga
/// steps, records + audit + completion), executed directly: the rate the database allows.
async fn raw_rate(store: Arc<dyn RawStore>, concurrency: usize, secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (store, done) = (store.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < end {
                i += 1;
                let email = format!("raw-{w}-{i}-{}@bench.example.com", uuid::Uuid::new_v4().simple());
                if one_raw_provisioning(&*store, &email).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

trait RawStore: AdminStore + SagaLog {}
impl<T: AdminStore + SagaLog> RawStore for T {}

async fn one_raw_provisioning(store: &dyn RawStore, email: &str) -> bool {
    let now = chrono::Utc::now();
    let _ = store.find_admin_by_cognito_sub("root-sub").await;
    if store.find_admin_by_email(email).await.ok().flatten().is_some() {
        return false;
    }
    let user_id = UserId::new();
    let saga = SagaRecord {
        id: uuid::Uuid::new_v4(),
        kind: SagaKind::Provision,
        actor: Actor::Operator,
        email: email.to_string(),
        email_normalized: email.to_string(),
        user_id,
        cognito_username: email.to_string(),
        cognito_sub: None,
        identity_created_by_saga: false,
        invite_delivered: true,
        state: SagaState::Started,
        attempts: 0,
        last_error: None,
        request_id: None,
        started_at: now,
        updated_at: now,
        // The product's saga holds a lease from its intent on; every later write is a compare-and-set on it.
        owner: Some("bench".to_string()),
        lease_expires_at: Some(now + chrono::Duration::seconds(60)),
    };
    let Ok(saga) = store.begin(saga).await else {
        return false;
    };
    let step = |state| SagaUpdate {
        state: Some(state),
        expected_owner: Some("bench".to_string()),
        ..Default::default()
    };
    if store.update(saga.id, step(SagaState::IdentityCreating)).await.is_err() {
        return false;
    }
    let sub = uuid::Uuid::new_v4().to_string();
    let recorded = SagaUpdate {
        state: Some(SagaState::IdentityCreated),
        cognito_sub: Some(sub.clone()),
        identity_created_by_saga: Some(true),
        expected_owner: Some("bench".to_string()),
        ..Default::default()
    };
    if store.update(saga.id, recorded).await.is_err() {
        return false;
    }
    let admin = NewAdmin {
        id: user_id,
        email: email.to_string(),
        email_normalized: email.to_string(),
        cognito_username: email.to_string(),
        cognito_sub: sub,
        invited_by: None,
        invited_at: now,
        invite_expires_at: now + chrono::Duration::days(7),
        invite_delivered: true,
    };
    let audit = AuditEntry {
        actor: Actor::Operator,
        action: AuditAction::CreateAdmin,
        target: email.to_string(),
        outcome: "success".into(),
        request_id: None,
        at: now,
    };
    store.insert_admin(admin, audit, Some(saga.id)).await.is_ok()
}

async fn open_store(url: &str) -> Arc<dyn RawStore> {
    if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::connect(url).await.unwrap())
    } else {
        Arc::new(PostgresStore::connect(url).await.unwrap())
    }
}

/// Inserts `n` admins with plain SQL (one statement per table).
async fn bulk_admins(url: &str, n: u64) {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url).await.unwrap();
        let cte = format!("WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n}) ");
        let id = "printf('%08x-0000-4000-8000-%012x', i, i)";
        sqlx::query(&format!(
            "INSERT INTO users (id, email, email_normalized, cognito_username, cognito_sub, status, created_at, updated_at) \
             {cte} SELECT {id}, 'bulk' || i || '@bulk.example.com', 'bulk' || i || '@bulk.example.com', \
             'bulk' || i || '@bulk.example.com', 'sub-' || i, 'invited', '2026-01-01T00:00:00.000000Z', \
             '2026-01-01T00:00:00.000000Z' FROM g"
        ))
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query(&format!(
            "INSERT INTO admin_info (user_id, invited_by, invited_at, invite_expires_at, invites_sent, last_invite_sent_at, invite_delivered, accepted_at) \
             {cte} SELECT {id}, NULL, '2026-01-01T00:00:00.000000Z', '2099-01-01T00:00:00.000000Z', 1, \
             '2026-01-01T00:00:00.000000Z', 1, NULL FROM g"
        ))
        .execute(store.pool())
        .await
        .unwrap();
        store.pool().close().await;
    } else {
        let store = PostgresStore::connect(url).await.unwrap();
        sqlx::query(&format!(
            "INSERT INTO users (id, email, email_normalized, cognito_username, cognito_sub, status, created_at, updated_at) \
             SELECT md5(i::text)::uuid, 'bulk' || i || '@bulk.example.com', 'bulk' || i || '@bulk.example.com', \
             'bulk' || i || '@bulk.example.com', 'sub-' || i, 'invited', '2026-01-01', '2026-01-01' \
             FROM generate_series(1, {n}) i"
        ))
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query(&format!(
            "INSERT INTO admin_info (user_id, invited_by, invited_at, invite_expires_at, invites_sent, last_invite_sent_at, invite_delivered, accepted_at) \
             SELECT md5(i::text)::uuid, NULL, '2026-01-01', '2099-01-01', 1, '2026-01-01', true, NULL \
             FROM generate_series(1, {n}) i"
        ))
        .execute(store.pool())
        .await
        .unwrap();
        store.pool().close().await;
    }
}

/// Walks every page of `GET /api/admins`; returns how many admins it saw.
async fn walk_list(server: &Server) -> usize {
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    loop {
        let mut url = format!("{}/api/admins?limit=200", server.base);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = server
            .http
            .get(url)
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen += page["admins"].as_array().map_or(0, Vec::len);
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => return seen,
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

async fn bench_database(db: &str) {
    let secs = env_u64("BENCH_SECS", 5);
    println!("\n== {db} ==");

    // a. HTTP vs raw at 1, 8, 32.
    let mut peak_load = 0.0f64;
    let mut empty_rate_8 = 0.0;
    for c in [1usize, 8, 32] {
        let cell = fresh_cell(db).await;
        let server = Arc::new(Server::start(&cell, &[]).await);
        let http = http_rate(&server, c, secs, &format!("a{c}")).await;
        peak_load = peak_load.max(server.peak_rss_mib());
        if c == 8 {
            empty_rate_8 = http;
        }
        drop(server);
        let raw_cell = fresh_cell(db).await;
        let store = open_store(&raw_cell.url).await;
        let raw = raw_rate(store, c, secs).await;
        println!(
            "a. concurrency {c:>2}: HTTP {http:>7.1} provisions/s, raw SQL {raw:>7.1}/s, ratio {:.2}",
            http / raw
        );
        drop_cell(cell).await;
        drop_cell(raw_cell).await;
    }

    // b. latency overhead at 50 ms emulator latency (one emulator call per provisioning: AdminCreateUser).
    {
        let cell = fresh_cell(db).await;
        let env = [("COGNITO_EMULATOR_LATENCY_MS", "50".to_string())];
        let server = Server::start(&cell, &env).await;
        let mut samples = Vec::new();
        for i in 0..60 {
            let t = Instant::now();
            assert!(server.provision(&format!("b{i}@bench.example.com")).await);
            samples.push(t.elapsed().as_secs_f64() * 1000.0 - 50.0);
        }
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "b. overhead beyond 50 ms emulator latency: p50 {:.2} ms, p99 {:.2} ms (60 sequential provisions)",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99)
        );
        drop(server);
        drop_cell(cell).await;
    }

    // c. import at the quota.
    {
        let rows = env_u64("BENCH_IMPORT_ROWS", 2000);
        let cell = fresh_cell(db).await;
        let csv = cell.dir.path().join("import.csv");
        let mut text = String::from("email\n");
        for i in 0..rows {
            text.push_str(&format!("import{i}@bench.example.com\n"));
        }
        std::fs::write(&csv, text).unwrap();
        let env = [
            ("COGNITO_EMULATOR_LATENCY_MS", "50".to_string()),
            ("COGNITO_EMULATOR_RATE_LIMITS", "AdminCreateUser=50".to_string()),
        ];
        let report_path = cell.dir.path().join("report.json");
        let status = command(&cell, &env)
            .args(["import", csv.to_str().unwrap(), "--rate", "49", "--report"])
            .arg(&report_path)
            .status()
            .unwrap();
        let report: Value =
            serde_json::from_slice(&std::fs::read(&report_path).unwrap_or_default()).unwrap_or(Value::Null);
        println!(
            "c. import of {rows} rows at AdminCreateUser=50/s, 50 ms: {:.1} rows/s = {:.2} of the quota, {} failed, {} throttled attempts (exit {})",
            report["achieved_rate"].as_f64().unwrap_or(f64::NAN),
            report["achieved_rate"].as_f64().unwrap_or(f64::NAN) / 50.0,
            report["summary"]["failed"],
            report["summary"]["throttled"],
            status
        );
        drop_cell(cell).await;
    }

    // d + e. after 100,000 admins.
    {
        let n = env_u64("BENCH_BULK_ADMINS", 100_000);
        let cell = fresh_cell(db).await;
        {
            // Create the schema, then the bulk rows.
            drop(open_store(&cell.url).await);
        }
        let t = Instant::now();
        bulk_admins(&cell.url, n).await;
        let bulk_secs = t.elapsed().as_secs_f64();
        let server = Arc::new(Server::start(&cell, &[]).await);
        let rate = http_rate(&server, 8, secs, "d").await;
        let rss_load = server.peak_rss_mib();
        println!(
            "d. after {n} admins (inserted in {bulk_secs:.1}s): {rate:.1} provisions/s at concurrency 8 = {:.2} of the empty-database rate ({empty_rate_8:.1}/s)",
            rate / empty_rate_8
        );
        let t = Instant::now();
        let seen = walk_list(&server).await;
        println!(
            "e. peak RSS: {:.1} MiB under load (empty database cells), {rss_load:.1} MiB under load with {n} admins, {:.1} MiB after walking all {seen} admins in pages of 200 ({:.1}s)",
            peak_load,
            server.peak_rss_mib(),
            t.elapsed().as_secs_f64()
        );
        drop(server);
        drop_cell(cell).await;
    }
}

#[tokio::main]
async fn main() {
    let dbs = std::env::var("BENCH_DATABASES").unwrap_or_else(|_| "sqlite,postgres".into());
    println!(
        "admin-provisioner scale benchmark on {} ({} cores)",
        std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for db in dbs.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        bench_database(db).await;
    }
}
