//! Benchmark of the reconciler: N emulator users against N database admins, all in step (the common case:
//! the whole pool and table are read and merged, nothing to repair).
//!
//! ```sh
//! cargo run --release -p admin-provisioner-store --example reconcile_bench -- seed --users 1000000 --db sqlite --dir /tmp/rb
//! cargo run --release -p admin-provisioner-store --example reconcile_bench -- run --dir /tmp/rb [--rate 30]
//! ```
//!
//! `seed` writes the emulator's state file and the database (SQLite file in `--dir`, or a fresh PostgreSQL
//! database named in `--dir/database_url` when `--db postgres`, from `TEST_POSTGRES_URL`). `run` reconciles
//! once and prints wall time, peak RSS of the run process (`VmHWM`), and the summary; with `--rate R` the
//! emulator answers `TooManyRequests` beyond R `ListUsers` calls a second and the reconciler paces itself at
//! R, so the floor is N / 60 / R seconds.

use admin_provisioner_core::clock::SystemClock;
use admin_provisioner_core::reconcile::{ReconcileSettings, ReconcileStore, Reconciler};
use admin_provisioner_core::store::Store;
use admin_provisioner_core::{Provisioner, ProvisionerSettings};
use admin_provisioner_emulator::{CognitoEmulator, EmulatorConfig, ImportUser};
use sqlx::Connection;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn sub(n: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", n, n)
}
fn username(n: u64) -> String {
    format!("user{n:07}@bench.example")
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(arg(&args, "--dir").unwrap_or_else(|| "/tmp/reconcile-bench".into()));
    match args.first().map(String::as_str) {
        Some("seed") => {
            let n: u64 = arg(&args, "--users").unwrap_or_else(|| "1000000".into()).parse()?;
            let db = arg(&args, "--db").unwrap_or_else(|| "sqlite".into());
            seed(&dir, n, &db).await
        }
        Some("run") => {
            let rate: f64 = arg(&args, "--rate").unwrap_or_else(|| "0".into()).parse()?;
            run(&dir, rate).await
        }
        _ => {
            anyhow::bail!("usage: reconcile_bench seed --users N --db sqlite|postgres --dir D | run --dir D [--rate R]")
        }
    }
}

async fn emulator(dir: &std::path::Path) -> anyhow::Result<CognitoEmulator> {
    CognitoEmulator::open(EmulatorConfig::file(dir.join("emulator.db"), dir.join("mailbox"))).await
}

async fn seed(dir: &std::path::Path, n: u64, db: &str) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let t = Instant::now();
    let emu = emulator(dir).await?;
    let mut i = 0;
    while i < n {
        let end = (i + 20_000).min(n);
        let batch: Vec<ImportUser> = (i..end)
            .map(|k| ImportUser {
                username: username(k),
                sub: sub(k),
                email: username(k),
                status: "CONFIRMED".into(),
                enabled: true,
            })
            .collect();
        emu.import_users(&batch).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        i = end;
    }
    eprintln!("emulator: {n} users in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let url = match db {
        "sqlite" => format!("sqlite://{}", dir.join("db.sqlite").display()),
        "postgres" => {
            let admin = std::env::var("TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("ap_reconcile_bench_{}", uuid::Uuid::new_v4().simple());
            let mut c = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await?;
            let (base, _) = admin.rsplit_once('/').unwrap();
            format!("{base}/{name}")
        }
        other => anyhow::bail!("--db {other}: expected sqlite or postgres"),
    };
    std::fs::write(dir.join("database_url"), &url)?;
    let _store = admin_provisioner_store::connect(&url).await?; // migrations
    let when = "2026-01-01T00:00:00.000000Z";
    if db == "sqlite" {
        let mut c = sqlx::SqliteConnection::connect(&url).await?;
        let seq = format!(
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < {}) ",
            n - 1
        );
        sqlx::query(&format!(
            "INSERT INTO users (id, email, email_normalized, cognito_username, cognito_sub, status, created_at, updated_at) {seq} \
             SELECT printf('%08x-0000-4000-9000-%012x', n, n), printf('user%07d@bench.example', n), printf('user%07d@bench.example', n), \
             printf('user%07d@bench.example', n), printf('%08x-0000-4000-8000-%012x', n, n), 'active', '{when}', '{when}' FROM seq"
        ))
        .execute(&mut c)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO admin_info (user_id, invited_by, invited_at, invite_expires_at, invites_sent, last_invite_sent_at, invite_delivered, accepted_at) {seq} \
             SELECT printf('%08x-0000-4000-9000-%012x', n, n), NULL, '{when}', '{when}', 1, '{when}', 1, '{when}' FROM seq"
        ))
        .execute(&mut c)
        .await?;
    } else {
        let mut c = sqlx::PgConnection::connect(&url).await?;
        sqlx::query(&format!(
            "INSERT INTO users (id, email, email_normalized, cognito_username, cognito_sub, status, created_at, updated_at) \
             SELECT (lpad(to_hex(n), 8, '0') || '-0000-4000-9000-' || lpad(to_hex(n), 12, '0'))::uuid, \
             'user' || lpad(n::text, 7, '0') || '@bench.example', 'user' || lpad(n::text, 7, '0') || '@bench.example', \
             'user' || lpad(n::text, 7, '0') || '@bench.example', lpad(to_hex(n), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(n), 12, '0'), \
             'active', '{when}', '{when}' FROM generate_series(0, {}) AS n",
            n - 1
        ))
        .execute(&mut c)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO admin_info (user_id, invited_by, invited_at, invite_expires_at, invites_sent, last_invite_sent_at, invite_delivered, accepted_at) \
             SELECT (lpad(to_hex(n), 8, '0') || '-0000-4000-9000-' || lpad(to_hex(n), 12, '0'))::uuid, NULL, '{when}', '{when}', 1, '{when}', true, '{when}' \
             FROM generate_series(0, {}) AS n",
            n - 1
        ))
        .execute(&mut c)
        .await?;
        sqlx::query("ANALYZE").execute(&mut c).await?;
    }
    eprintln!("database: {n} admins in {:.1} s ({url})", t.elapsed().as_secs_f64());
    Ok(())
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

async fn run(dir: &std::path::Path, rate: f64) -> anyhow::Result<()> {
    let url = std::fs::read_to_string(dir.join("database_url"))?;
    let emu = Arc::new(emulator(dir).await?);
    if rate > 0.0 {
        emu.set_list_users_rate_limit(Some(rate as u32));
    }
    let store: Arc<dyn Store> = admin_provisioner_store::connect(&url).await?;
    let p = Provisioner::new(
        emu.clone(),
        store.clone(),
        Arc::new(SystemClock),
        ProvisionerSettings::default(),
    );
    let rs: Arc<dyn ReconcileStore> = store;
    let r = Reconciler::new(
        p,
        rs,
        ReconcileSettings {
            list_users_per_second: rate,
            ..ReconcileSettings::default()
        },
    );
    let t = Instant::now();
    let report = r.run(&mut |_| {}).await?;
    let secs = t.elapsed().as_secs_f64();
    let s = &report.summary;
    let floor = if rate > 0.0 {
        (s.cognito_users as f64 / 60.0).ceil() / rate
    } else {
        f64::NAN
    };
    println!(
        "{} Cognito users ({} pages, {} throttled), {} admins, {} findings: {:.2} s wall ({:.2} s reading + sorting Cognito, {:.2} s merging with the database), peak RSS {:.0} MB{}",
        s.cognito_users,
        s.list_users_pages,
        s.throttled,
        s.database_admins,
        report.findings.len(),
        secs,
        s.cognito_read_seconds,
        s.seconds - s.cognito_read_seconds,
        peak_rss_mb(),
        if rate > 0.0 {
            format!(", quota floor {floor:.1} s, achieved/floor {:.3}", secs / floor)
        } else {
            String::new()
        }
    );
    anyhow::ensure!(report.is_clean(), "the benchmark data should be in step");
    Ok(())
}
