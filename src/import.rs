//! `admin-provisioner import FILE.csv`: bulk provisioning at Cognito's quota, safe to re-run and to stop.
//!
//! 1. **Validate everything first.** The file is read with the `csv` crate (quoted fields, embedded commas
//!    and line breaks); its header row must have an `email` column (any case) and may have a `role` column
//!    (`owner`, `admin` or `viewer`; empty: `admin`; an unknown role is an invalid row, code `invalid_role`);
//!    other columns are ignored.
//!    Every row is parsed as an [`AdminEmail`] and checked for duplicates within the file. Every bad row is
//!    reported with its line number and reason before anything is provisioned, and nothing is provisioned
//!    for it.
//! 2. **Provision the good rows** concurrently, each as one saga ([`Provisioner::provision_new_admin`] as
//!    the operator), under a client-side rate limit (`--rate`, default 45/s: under `AdminCreateUser`'s
//!    50/s per account). A row that Cognito throttles (`TooManyRequests`, after the saga's own retries)
//!    halves the shared rate and is tried again after a backoff; successes raise the rate back step by step
//!    (additive increase, multiplicative decrease), so the import settles just under the real quota.
//! 3. **Re-running is safe.** A row whose admin already exists is `skipped` without calling Cognito, so
//!    nobody is e-mailed twice; failed rows are simply tried again.
//! 4. **SIGINT stops cleanly.** The first Ctrl-C starts no new row and waits for the sagas in flight to
//!    finish (each ends in one of the saga's durable end states); a second Ctrl-C leaves at once, and the
//!    saga log lets recovery settle what was cut off (every import starts by running that recovery).
//! 5. **Progress and results.** A progress bar with rate and ETA on a terminal, plain progress lines
//!    otherwise; a summary at the end; `--report out.json` with each row's outcome.
//!
//! Exit status: 0 when every row was provisioned or skipped; 1 when some row was invalid or failed, or
//! the import was interrupted.

use crate::app::App;
use admin_provisioner_core::domain::{AdminEmail, Role};
use admin_provisioner_core::{Caller, Error};
use anyhow::{bail, Context};
use serde::Serialize;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default client-side rate, rows per second.
pub const DEFAULT_RATE: f64 = 45.0;
/// How many times one row is tried when Cognito throttles it.
const MAX_THROTTLED_ATTEMPTS: u32 = 10;
/// First backoff after a throttled row; doubles per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest backoff between two attempts of one row.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Lowest rate the limiter backs off to, rows per second.
const MIN_RATE: f64 = 0.5;

/// Options of one import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The CSV file.
    pub file: PathBuf,
    /// Rows started per second at most.
    pub rate: f64,
    /// Rows in flight at most.
    pub concurrency: usize,
    /// Where to write the JSON report.
    pub report: Option<PathBuf>,
}

/// What happened to one row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Provisioned by this run (Cognito user + records; invitation e-mailed).
    Provisioned,
    /// The admin existed already: nothing done, nobody e-mailed.
    Skipped,
    /// The row is not a valid admin: nothing done.
    Invalid,
    /// Provisioning failed (nothing left half-done: see the saga); run the import again to retry.
    Failed,
    /// Not started because the import was interrupted.
    NotStarted,
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct RowReport {
    /// Line number in the file (1 = the header).
    pub line: u64,
    /// The `email` field as written.
    pub email: String,
    /// What happened.
    pub outcome: Outcome,
    /// Why (invalid and failed rows), or a note (skipped rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Stable error code of a failed row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The admin's `User.id` (provisioned and skipped rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// How many times Cognito throttled this row before it settled.
    pub throttled: u32,
}

/// Totals of an import.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Data rows in the file.
    pub rows: usize,
    /// Provisioned by this run.
    pub provisioned: usize,
    /// Already there.
    pub skipped: usize,
    /// Bad rows.
    pub invalid: usize,
    /// Failed rows.
    pub failed: usize,
    /// Not started (interrupted).
    pub not_started: usize,
    /// Throttled attempts, all rows together.
    pub throttled: u64,
}

/// The `--report` document.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The CSV file.
    pub file: String,
    /// When the import started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Wall time, seconds.
    pub elapsed_seconds: f64,
    /// Rows started per second, on average, over the provisioning phase.
    pub achieved_rate: f64,
    /// The `--rate` asked for.
    pub rate_limit: f64,
    /// True when SIGINT stopped the import.
    pub interrupted: bool,
    /// Totals.
    pub summary: Summary,
    /// Every row, in file order.
    pub rows: Vec<RowReport>,
}

/// A row that passed validation.
struct Row {
    index: usize,
    email: String,
    role: Role,
}

/// The rows to provision: (index into the reports, e-mail as written, role).
pub type GoodRows = Vec<(usize, String, Role)>;

/// Reads and validates the file: every row's report (invalid ones settled) and the rows to provision.
pub fn read_rows(path: &Path) -> anyhow::Result<(Vec<RowReport>, GoodRows)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .clone();
    let Some(column) = headers
        .iter()
        .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case("email"))
    else {
        bail!(
            "{}: the header row has no `email` column (found: {})",
            path.display(),
            headers.iter().collect::<Vec<_>>().join(", ")
        );
    };
    // The optional `role` column: owner, admin or viewer (empty: admin).
    let role_column = headers.iter().position(|h| h.eq_ignore_ascii_case("role"));
    let mut reports = Vec::new();
    let mut good = Vec::new();
    let mut first_line_of: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                reports.push(RowReport {
                    line,
                    email: String::new(),
                    outcome: Outcome::Invalid,
                    reason: Some(format!("not readable as CSV: {e}")),
                    code: Some("invalid_row".into()),
                    user_id: None,
                    throttled: 0,
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let email = record.get(column).unwrap_or("").to_string();
        let mut report = RowReport {
            line,
            email: email.clone(),
            outcome: Outcome::Invalid,
            reason: None,
            code: Some("invalid_email".into()),
            user_id: None,
            throttled: 0,
        };
        let raw_role = role_column.and_then(|c| record.get(c)).unwrap_or("");
        let role = if raw_role.is_empty() {
            Some(Role::Admin)
        } else {
            Role::parse(raw_role)
        };
        if email.is_empty() {
            report.reason = Some("the email field is empty".into());
        } else if role.is_none() {
            report.reason = Some(format!(
                "unknown role {:?}: a role is owner, admin or viewer (empty: admin)",
                raw_role
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(32)
                    .collect::<String>()
            ));
            report.code = Some("invalid_role".into());
        } else {
            match AdminEmail::parse(&email) {
                Err(e) => report.reason = Some(e.to_string()),
                Ok(parsed) => match first_line_of.get(parsed.normalized()) {
                    Some(first) => {
                        report.reason = Some(format!("the same admin as line {first}"));
                        report.code = Some("duplicate_row".into());
                    }
                    None => {
                        first_line_of.insert(parsed.normalized().to_string(), line);
                        good.push((reports.len(), email.clone(), role.unwrap_or_default()));
                        report.outcome = Outcome::NotStarted;
                        report.code = None;
                    }
                },
            }
        }
        reports.push(report);
    }
    Ok((reports, good))
}

/// The shared client-side rate limiter: start slots spaced `1/rate` apart; AIMD on throttling.
struct Limiter {
    state: Mutex<LimiterState>,
    max_rate: f64,
}

struct LimiterState {
    rate: f64,
    next_slot: Instant,
}

impl Limiter {
    fn new(rate: f64) -> Self {
        Self {
            state: Mutex::new(LimiterState {
                rate,
                next_slot: Instant::now(),
            }),
            max_rate: rate,
        }
    }

    /// Waits for the next start slot.
    async fn wait(&self) {
        let slot = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = s.next_slot.max(now);
            s.next_slot = slot + Duration::from_secs_f64(1.0 / s.rate);
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }

    /// Cognito throttled a call: halve the rate.
    fn throttled(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.rate = (s.rate / 2.0).max(MIN_RATE);
    }

    /// A call went through: raise the rate by a tenth of the maximum, up to it.
    fn succeeded(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.rate = (s.rate + self.max_rate / 10.0).min(self.max_rate);
    }
}

/// Progress display: a bar on a terminal, a line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {pos}/{len} rows · {per_sec} · ETA {eta} · {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Self {
            bar,
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
        }
    }

    fn row_done(&self, throttled: u64) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{throttled} throttled"));
            bar.inc(1);
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= Duration::from_secs(2) || done == self.total {
            *last = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            let rate = done as f64 / secs;
            let eta = if rate > 0.0 {
                (self.total - done) as f64 / rate
            } else {
                0.0
            };
            eprintln!(
                "import: {done}/{} rows, {rate:.1} rows/s, ETA {eta:.0}s, {throttled} throttled",
                self.total
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Runs an import on a built app; `stop` is set on the first SIGINT. Returns the report.
pub async fn run_import(app: &App, options: &ImportOptions, stop: Arc<AtomicBool>) -> anyhow::Result<Report> {
    if !(options.rate.is_finite() && options.rate > 0.0) {
        bail!("--rate must be a positive number of rows per second");
    }
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let (mut reports, good) = read_rows(&options.file)?;

    let invalid: Vec<&RowReport> = reports.iter().filter(|r| r.outcome == Outcome::Invalid).collect();
    for r in &invalid {
        eprintln!(
            "line {}: {} ({})",
            r.line,
            r.reason.as_deref().unwrap_or("invalid"),
            if r.email.is_empty() { "no email" } else { &r.email }
        );
    }
    if !invalid.is_empty() {
        eprintln!(
            "import: {} bad row(s) will not be provisioned; {} row(s) will be",
            invalid.len(),
            good.len()
        );
    }

    // Settle whatever an earlier, cut-off run left in flight (sagas whose lease has expired) before starting
    // new sagas.
    app.provisioner
        .recover_unfinished()
        .await
        .context("recovering unfinished sagas before the import")?;

    let rows: Vec<Row> = good
        .into_iter()
        .map(|(index, email, role)| Row { index, email, role })
        .collect();
    let limiter = Arc::new(Limiter::new(options.rate));
    let progress = Arc::new(Progress::new(rows.len() as u64));
    let throttled_total = Arc::new(AtomicU64::new(0));
    let queue = Arc::new(Mutex::new(rows.into_iter()));
    let run_id = format!("import-{}", uuid::Uuid::new_v4());
    let provisioning_started = Instant::now();

    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let (app, limiter, progress, throttled_total, queue, stop, run_id) = (
            app.clone(),
            limiter.clone(),
            progress.clone(),
            throttled_total.clone(),
            queue.clone(),
            stop.clone(),
            run_id.clone(),
        );
        workers.spawn(async move {
            let mut settled: Vec<(usize, RowReport)> = Vec::new();
            loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Some(row) = queue.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                    break;
                };
                let report = import_row(&app, &row, &limiter, &throttled_total, &stop, &run_id).await;
                progress.row_done(throttled_total.load(Ordering::Relaxed));
                settled.push((row.index, report));
            }
            settled
        });
    }
    while let Some(done) = workers.join_next().await {
        for (index, report) in done.context("an import worker failed")? {
            let line = reports[index].line;
            reports[index] = RowReport { line, ..report };
        }
    }
    progress.finish();
    let provisioning_secs = provisioning_started.elapsed().as_secs_f64();

    let interrupted = stop.load(Ordering::SeqCst);
    let mut summary = Summary {
        rows: reports.len(),
        throttled: throttled_total.load(Ordering::Relaxed),
        ..Summary::default()
    };
    for r in &reports {
        match r.outcome {
            Outcome::Provisioned => summary.provisioned += 1,
            Outcome::Skipped => summary.skipped += 1,
            Outcome::Invalid => summary.invalid += 1,
            Outcome::Failed => summary.failed += 1,
            Outcome::NotStarted => summary.not_started += 1,
        }
    }
    let attempted = summary.provisioned + summary.skipped + summary.failed;
    Ok(Report {
        file: options.file.display().to_string(),
        started_at,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        achieved_rate: if provisioning_secs > 0.0 {
            attempted as f64 / provisioning_secs
        } else {
            0.0
        },
        rate_limit: options.rate,
        interrupted,
        summary,
        rows: reports,
    })
}

/// Provisions one row (or skips it), retrying throttled attempts with backoff.
async fn import_row(
    app: &App,
    row: &Row,
    limiter: &Limiter,
    throttled_total: &AtomicU64,
    stop: &AtomicBool,
    run_id: &str,
) -> RowReport {
    let mut report = RowReport {
        line: 0,
        email: row.email.clone(),
        outcome: Outcome::Failed,
        reason: None,
        code: None,
        user_id: None,
        throttled: 0,
    };
    let normalized = row.email.trim().to_lowercase();
    let mut backoff = FIRST_BACKOFF;
    loop {
        // Re-run safety: an admin that exists is skipped without calling Cognito (nobody is e-mailed).
        match app.provisioner.admin_by_email(&normalized).await {
            Ok(Some(existing)) => {
                report.outcome = Outcome::Skipped;
                report.reason = Some("already provisioned".into());
                report.user_id = Some(existing.user.id.to_string());
                return report;
            }
            Ok(None) => {}
            Err(e) => {
                report.code = Some(e.code().into());
                report.reason = Some(e.to_string());
                return report;
            }
        }
        limiter.wait().await;
        let result = app
            .provisioner
            .provision_admin_with_role(&Caller::Operator, &row.email, row.role, Some(run_id))
            .await;
        match result {
            Ok(admin) => {
                limiter.succeeded();
                report.outcome = Outcome::Provisioned;
                report.user_id = Some(admin.user.id.to_string());
                return report;
            }
            Err(Error::AdminExists) => {
                report.outcome = Outcome::Skipped;
                report.reason = Some("already provisioned".into());
                return report;
            }
            Err(Error::RateLimited) if report.throttled + 1 < MAX_THROTTLED_ATTEMPTS => {
                report.throttled += 1;
                throttled_total.fetch_add(1, Ordering::Relaxed);
                limiter.throttled();
                if stop.load(Ordering::SeqCst) {
                    report.outcome = Outcome::NotStarted;
                    report.reason = Some("throttled, then interrupted before a retry".into());
                    return report;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                if matches!(e, Error::RateLimited) {
                    report.throttled += 1;
                    throttled_total.fetch_add(1, Ordering::Relaxed);
                }
                report.code = Some(e.code().into());
                report.reason = Some(e.to_string());
                return report;
            }
        }
    }
}

/// Prints the summary (stdout) and writes the report; the exit status follows from the summary.
pub fn finish(report: &Report, options: &ImportOptions) -> anyhow::Result<()> {
    let s = &report.summary;
    println!(
        "import {}: {} rows: {} provisioned, {} skipped (already there), {} invalid, {} failed, {} not started; \
         {:.1} rows/s (limit {}/s), {} throttled attempt(s), {:.1}s",
        if report.interrupted { "interrupted" } else { "finished" },
        s.rows,
        s.provisioned,
        s.skipped,
        s.invalid,
        s.failed,
        s.not_started,
        report.achieved_rate,
        report.rate_limit,
        s.throttled,
        report.elapsed_seconds
    );
    for r in report.rows.iter().filter(|r| r.outcome == Outcome::Failed) {
        println!(
            "failed line {}: {} ({})",
            r.line,
            r.email,
            r.reason.as_deref().unwrap_or("")
        );
    }
    if let Some(path) = &options.report {
        let json = serde_json::to_vec_pretty(report)?;
        std::fs::write(path, json).with_context(|| format!("cannot write the report {}", path.display()))?;
    }
    if report.interrupted {
        bail!(
            "interrupted: {} row(s) not started; run the import again to finish",
            s.not_started
        );
    }
    if s.invalid + s.failed > 0 {
        bail!(
            "{} invalid and {} failed row(s); fix or retry them and run the import again",
            s.invalid,
            s.failed
        );
    }
    Ok(())
}
