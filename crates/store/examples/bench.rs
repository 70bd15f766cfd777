//! The scale benchmark (not part of the test command). Build the server, then run:
//!
//! ```sh
//! cargo build --release --bin admin-provisioner
//! cargo run --release -p admin-provisioner-store --example bench
//! ```
//!
//! (It lives in the store crate, whose dev-dependencies are light: the root crate's would also compile
//! the test-only crash points into the release build.)
//!
//! Starts the release server binary (`target/release/admin-provisioner`, or `BENCH_SERVER_BIN`) on
//! loopback with the built-in emulator, with a fresh database per cell, and prints on SQLite and on
//! PostgreSQL (`TEST_POSTGRES_URL`, which must allow `CREATE DATABASE`):
//!
//! * a. HTTP provisions/s at concurrency 1, 8 and 32 (emulator without latency) next to the rate of the
//!   same store calls of one provisioning executed directly by the benchmark (the "raw" rate), and the
//!   ratio. The two are measured in alternating slices of one run (`BENCH_ROUNDS`), so load from other
//!   processes on the machine falls on both alike;
//! * b. p50/p99 of one provisioning (`BENCH_LATENCY_SAMPLES`, default 300, sequential) with the emulator
//!   at 50 ms latency, minus that latency: the product's own overhead; beside it (alternating requests to
//!   a second server) the same provisioning with no latency;
//! * c. an import of 2,000 rows against the emulator limited to `AdminCreateUser=50` with 50 ms latency:
//!   achieved rate ÷ quota, and the failed rows;
//! * d. provisions/s (concurrency 8) after 100,000 admins exist (seeded in bulk: one `INSERT … SELECT` per
//!   table for `users` and `admin_info`, consistent with the same users imported into the emulator with
//!   its bulk path `import_users`) ÷ the rate on an empty database, the two servers measured in
//!   alternating slices;
//! * e. peak RSS of the server (`VmHWM`): after the load of d, and of a freshly started server on the same
//!   100,000 admins while four callers walk the whole admin list at once.
//!
//! Knobs (environment): `BENCH_SECS` (per load measurement, default 6), `BENCH_ROUNDS` (slices per
//! measurement, default 3), `BENCH_IMPORT_ROWS` (default 2000), `BENCH_BULK_ADMINS` (default 100000),
//! `BENCH_DATABASES` (`sqlite,postgres`), `BENCH_CELLS` (`a,b,c,d` — d includes e),
//! `BENCH_BASELINE_BIN` (a second server binary measured beside the first in cell a, e.g. an older
//! build). Every request goes to 127.0.0.1 only and every loop is bounded by time or count.

use admin_provisioner_core::domain::{Actor, UserId};
use admin_provisioner_core::store::SagaState;
use admin_provisioner_core::store::{AdminStore, AuditAction, AuditEntry, NewAdmin, SagaKind, SagaLog, SagaRecord};
use admin_provisioner_store::{PostgresStore, SqliteStore};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NEW_PASSWORD: &str = "Bench-Passw0rd!";

/// Provisionings that did not answer 201 (printed with each cell: a benchmark of errors is no benchmark).
static FAILED_REQUESTS: AtomicU64 = AtomicU64::new(0);
/// Raw replays that failed.
static FAILED_RAW: AtomicU64 = AtomicU64::new(0);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn binary() -> PathBuf {
    let p = std::env::var_os("BENCH_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/admin-provisioner"));
    assert!(
        p.exists(),
        "build the release binary first: cargo build --release --bin admin-provisioner"
    );
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

fn command(bin: &std::path::Path, cell: &Cell, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(cell.dir.path())
        .env_remove("COGNITO_USER_POOL_ID")
        .env("DATABASE_URL", &cell.url)
        .env("MAILBOX_DIR", cell.dir.path().join("mailbox"))
        .env("COGNITO_EMULATOR_STATE", cell.dir.path().join("emu.db"))
        // One caller provisions everything: lift the per-caller creation limit (30/min by default).
        .env("ADMIN_RATE_LIMIT_PER_MINUTE", "0")
        .env("AUTH_RATE_LIMIT_PER_MINUTE", "0")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// `bootstrap-admin root@bench.example.com` on the cell (before anything else is in it).
fn bootstrap(cell: &Cell, env: &[(&str, String)]) {
    let status = command(&binary(), cell, env)
        .args(["bootstrap-admin", "--email", "root@bench.example.com"])
        .status()
        .unwrap();
    assert!(status.success(), "bootstrap-admin failed");
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
    /// Bootstraps the cell's first admin, serves it, signs the admin in.
    async fn start(cell: &Cell, env: &[(&str, String)]) -> Server {
        bootstrap(cell, env);
        Self::serve(&binary(), cell, env).await
    }

    /// Serves an already bootstrapped cell with `bin` and signs the root admin in (first login: the
    /// temporary password from the mailbox; later ones: the new password).
    async fn serve(bin: &std::path::Path, cell: &Cell, env: &[(&str, String)]) -> Server {
        let port = free_port();
        let mut env = env.to_vec();
        env.push(("BIND_ADDR", format!("127.0.0.1:{port}")));
        let child = command(bin, cell, &env).arg("serve").spawn().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let login: Value = http
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": "root@bench.example.com", "password": NEW_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = match login["id_token"].as_str() {
            Some(t) => t.to_string(),
            None => {
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
                tokens["id_token"].as_str().expect("tokens").to_string()
            }
        };
        Server {
            child,
            base,
            token,
            http,
        }
    }

    async fn provision(&self, email: &str) -> bool {
        let ok = self
            .http
            .post(format!("{}/api/admins", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "email": email }))
            .send()
            .await
            .map(|r| r.status() == 201)
            .unwrap_or(false);
        if !ok {
            FAILED_REQUESTS.fetch_add(1, Ordering::Relaxed);
        }
        ok
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

/// Provisionings done through HTTP at `concurrency` for `secs`: (count, elapsed seconds).
async fn http_slice(server: &Arc<Server>, concurrency: usize, secs: f64, tag: &str) -> (u64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (server, done, tag) = (server.clone(), done.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < end {
                i += 1;
                let email = format!("{tag}-{w}-{i}-{}@bench.example.com", uuid::Uuid::new_v4().simple());
                if server.provision(&email).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (done.load(Ordering::Relaxed), start.elapsed().as_secs_f64())
}

/// Accumulated (count, seconds) of one load over alternating slices.
#[derive(Default, Clone, Copy)]
struct Tally(u64, f64);

impl Tally {
    fn add(&mut self, (n, t): (u64, f64)) {
        self.0 += n;
        self.1 += t;
    }
    fn rate(&self) -> f64 {
        self.0 as f64 / self.1
    }
}

async fn raw_slice(store: Arc<dyn RawStore>, concurrency: usize, secs: f64) -> (u64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
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
                } else {
                    FAILED_RAW.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (done.load(Ordering::Relaxed), start.elapsed().as_secs_f64())
}

trait RawStore: AdminStore + SagaLog {}
impl<T: AdminStore + SagaLog> RawStore for T {}

/// The store calls of one provisioning, as the product makes them (authorization lookup, existence check,
/// saga intent with its lease logged as `identity_creating` before AdminCreateUser, records + audit +
/// completion with the linked user in one transaction), executed directly: the rate the database allows.
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
        state: SagaState::IdentityCreating,
        attempts: 0,
        last_error: None,
        request_id: None,
        started_at: now,
        updated_at: now,
        // The product's saga holds a lease from its intent on; every later write is a compare-and-set on it.
        owner: Some("bench".to_string()),
        lease_expires_at: Some(now + chrono::Duration::seconds(60)),
        scim: None,
        role: None,
    };
    let Ok(saga) = store.begin(saga).await else {
        return false;
    };
    let sub = uuid::Uuid::new_v4().to_string();
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
        role: Default::default(),
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

/// Seeds `n` invited admins: in the cell's emulator with its bulk path (`import_users`, one
/// transaction), and in the database with one `INSERT … SELECT` per table (`users`, `admin_info`) whose
/// usernames and subs match the emulator's users.
async fn bulk_admins(cell: &Cell, n: u64) {
    let emulator = admin_provisioner_emulator::CognitoEmulator::open(admin_provisioner_emulator::EmulatorConfig::file(
        cell.dir.path().join("emu.db"),
        cell.dir.path().join("mailbox"),
    ))
    .await
    .unwrap();
    let users: Vec<_> = (1..=n)
        .map(|i| admin_provisioner_emulator::ImportUser {
            username: format!("bulk{i}@bulk.example.com"),
            sub: format!("sub-{i}"),
            email: format!("bulk{i}@bulk.example.com"),
            status: "FORCE_CHANGE_PASSWORD".into(),
            enabled: true,
        })
        .collect();
    for chunk in users.chunks(20_000) {
        emulator.import_users(chunk).await.unwrap();
    }
    drop(emulator);
    let url = cell.url.as_str();
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

fn cells() -> Vec<String> {
    std::env::var("BENCH_CELLS")
        .unwrap_or_else(|_| "a,b,c,d".into())
        .split(',')
        .map(|c| c.trim().to_string())
        .collect()
}

fn failures() -> String {
    let (h, r) = (
        FAILED_REQUESTS.swap(0, Ordering::Relaxed),
        FAILED_RAW.swap(0, Ordering::Relaxed),
    );
    if h + r == 0 {
        String::new()
    } else {
        format!(" [{h} HTTP provisionings failed, {r} raw replays failed]")
    }
}

async fn bench_database(db: &str) {
    let secs = env_u64("BENCH_SECS", 6) as f64;
    let rounds = env_u64("BENCH_ROUNDS", 3).max(1) as usize;
    let cells = cells();
    println!("\n== {db} ==");

    // a. HTTP vs raw at 1, 8, 32, alternating slices.
    if cells.iter().any(|c| c == "a") {
        let baseline = std::env::var_os("BENCH_BASELINE_BIN").map(PathBuf::from);
        for c in [1usize, 8, 32] {
            let cell = fresh_cell(db).await;
            let server = Arc::new(Server::start(&cell, &[]).await);
            let base_cell = match &baseline {
                Some(_) => Some(fresh_cell(db).await),
                None => None,
            };
            let base_server = match (&baseline, &base_cell) {
                (Some(bin), Some(bc)) => {
                    bootstrap(bc, &[]);
                    Some(Arc::new(Server::serve(bin, bc, &[]).await))
                }
                _ => None,
            };
            let raw_cell = fresh_cell(db).await;
            let store = open_store(&raw_cell.url).await;
            // Warm-up: connections, caches, the first JWKS fetch.
            http_slice(&server, c, 0.5, "warm").await;
            raw_slice(store.clone(), c, 0.5).await;
            let (mut http, mut raw, mut base) = (Tally::default(), Tally::default(), Tally::default());
            for r in 0..rounds {
                http.add(http_slice(&server, c, secs / rounds as f64, &format!("a{c}r{r}")).await);
                raw.add(raw_slice(store.clone(), c, secs / rounds as f64).await);
                if let Some(b) = &base_server {
                    base.add(http_slice(b, c, secs / rounds as f64, &format!("b{c}r{r}")).await);
                }
            }
            let baseline_note = if base_server.is_some() {
                format!(
                    "; baseline binary {:>7.1}/s (this ÷ baseline {:.2})",
                    base.rate(),
                    http.rate() / base.rate()
                )
            } else {
                String::new()
            };
            println!(
                "a. concurrency {c:>2}: HTTP {:>7.1} provisions/s, raw SQL {:>7.1}/s, ratio {:.2}{baseline_note}{}",
                http.rate(),
                raw.rate(),
                http.rate() / raw.rate(),
                failures()
            );
            drop(server);
            drop(base_server);
            drop(store);
            drop_cell(cell).await;
            drop_cell(raw_cell).await;
            if let Some(bc) = base_cell {
                drop_cell(bc).await;
            }
        }
    }

    // b. latency overhead at 50 ms emulator latency (one emulator call per provisioning: AdminCreateUser),
    // measured beside the same sequential provisioning with no latency (a second server, alternating one
    // request each): the difference is what idling 50 ms per request costs on this machine.
    if cells.iter().any(|c| c == "b") {
        let n = env_u64("BENCH_LATENCY_SAMPLES", 300) as usize;
        let cell = fresh_cell(db).await;
        let env = [("COGNITO_EMULATOR_LATENCY_MS", "50".to_string())];
        let server = Server::start(&cell, &env).await;
        let zero_cell = fresh_cell(db).await;
        let zero = Server::start(&zero_cell, &[]).await;
        for i in 0..10 {
            server.provision(&format!("bwarm{i}@bench.example.com")).await;
            zero.provision(&format!("bwarm{i}@bench.example.com")).await;
        }
        let mut samples = Vec::new();
        let mut zero_samples = Vec::new();
        for i in 0..n {
            let t = Instant::now();
            assert!(server.provision(&format!("b{i}@bench.example.com")).await);
            samples.push(t.elapsed().as_secs_f64() * 1000.0 - 50.0);
            let t = Instant::now();
            assert!(zero.provision(&format!("b{i}@bench.example.com")).await);
            zero_samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        zero_samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "b. overhead beyond 50 ms emulator latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({n} sequential provisions){}",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            samples.last().copied().unwrap_or(f64::NAN),
            failures()
        );
        println!(
            "   beside it, the same with 0 ms latency (alternating): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&zero_samples, 0.5),
            percentile(&zero_samples, 0.99),
            zero_samples.last().copied().unwrap_or(f64::NAN),
        );
        drop(server);
        drop(zero);
        drop_cell(cell).await;
        drop_cell(zero_cell).await;
    }

    // c. import at the quota.
    if cells.iter().any(|c| c == "c") {
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
        let t = Instant::now();
        let status = command(&binary(), &cell, &env)
            .args(["import", csv.to_str().unwrap(), "--rate", "49", "--report"])
            .arg(&report_path)
            .status()
            .unwrap();
        let wall = t.elapsed().as_secs_f64();
        let report: Value =
            serde_json::from_slice(&std::fs::read(&report_path).unwrap_or_default()).unwrap_or(Value::Null);
        let rate = report["achieved_rate"].as_f64().unwrap_or(f64::NAN);
        println!(
            "c. import of {rows} rows at AdminCreateUser=50/s, 50 ms, --rate 49: {rate:.1} rows/s = {:.3} of the quota, {} failed, {} provisioned, {} throttled attempts, {wall:.1}s wall with start-up (exit {})",
            rate / 50.0,
            report["summary"]["failed"],
            report["summary"]["provisioned"],
            report["summary"]["throttled"],
            status
        );
        drop_cell(cell).await;
    }

    // d + e. after 100,000 admins, beside an empty database.
    if cells.iter().any(|c| c == "d") {
        let n = env_u64("BENCH_BULK_ADMINS", 100_000);
        let cell = fresh_cell(db).await;
        bootstrap(&cell, &[]);
        let t = Instant::now();
        bulk_admins(&cell, n).await;
        let bulk_secs = t.elapsed().as_secs_f64();
        let empty_cell = fresh_cell(db).await;
        let full = Arc::new(Server::serve(&binary(), &cell, &[]).await);
        let empty = Arc::new(Server::start(&empty_cell, &[]).await);
        http_slice(&full, 8, 0.5, "dwarm").await;
        http_slice(&empty, 8, 0.5, "dwarm").await;
        let (mut f, mut e) = (Tally::default(), Tally::default());
        for r in 0..rounds {
            f.add(http_slice(&full, 8, secs / rounds as f64, &format!("d{r}")).await);
            e.add(http_slice(&empty, 8, secs / rounds as f64, &format!("e{r}")).await);
        }
        let rss_load = full.peak_rss_mib();
        let rss_load_empty = empty.peak_rss_mib();
        println!(
            "d. after {n} admins (seeded in {bulk_secs:.1}s): {:.1} provisions/s at concurrency 8, empty database {:.1}/s: ratio {:.2}{}",
            f.rate(),
            e.rate(),
            f.rate() / e.rate(),
            failures()
        );
        drop(full);
        drop(empty);
        drop_cell(empty_cell).await;
        // e. A fresh server on the same database: four callers walk the whole list at once.
        let server = Arc::new(Server::serve(&binary(), &cell, &[]).await);
        let rss_idle = server.peak_rss_mib();
        let t = Instant::now();
        let walkers: Vec<_> = (0..4)
            .map(|_| {
                let s = server.clone();
                tokio::spawn(async move { walk_list(&s).await })
            })
            .collect();
        let mut seen = Vec::new();
        for w in walkers {
            seen.push(w.await.unwrap());
        }
        println!(
            "e. peak RSS: {rss_load:.1} MiB after the load of d with {n} admins ({rss_load_empty:.1} MiB on the empty database); fresh server {rss_idle:.1} MiB at start, {:.1} MiB after 4 callers each walked all {:?} admins in pages of 200 ({:.1}s)",
            server.peak_rss_mib(),
            seen,
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
