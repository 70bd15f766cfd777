//! `admin-provisioner reconcile [--repair] [--json]` and the background reconciler of `serve`.
//!
//! The work itself is [`admin_provisioner_core::reconcile`]; this module prints it (a table for people,
//! JSON Lines for scripts), maps the outcome to the exit status (0 nothing needs attention, 2 drift
//! remains, 1 error), keeps the last report of this process for `/metrics` and the console's Drift page,
//! and runs the periodic, one-replica-at-a-time loop of `serve`.

use crate::app::App;
use admin_provisioner_core::reconcile::ReconcileStore;
use admin_provisioner_core::reconcile::{Background, Finding, ReconcileSettings, Reconciler, Repair, Report, Tick};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Returned by the command when drift remains: the CLI exits 2 without an error line.
#[derive(Debug, thiserror::Error)]
#[error("drift remains")]
pub struct DriftRemains;

/// A reconciler over the app's provisioner and store.
pub fn reconciler(app: &App, settings: ReconcileSettings) -> Reconciler {
    let store: Arc<dyn ReconcileStore> = app.store.clone();
    Reconciler::new(app.provisioner.clone(), store, settings)
}

/// The `reconcile` command: prints each finding as it is found, then the summary.
pub async fn command(app: &App, repair: bool, json: bool, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let r = reconciler(
        app,
        ReconcileSettings {
            repair,
            ..ReconcileSettings::default()
        },
    );
    if !json {
        let _ = writeln!(out, "{:<9} {:<34} {:<36} REPAIR", "KIND", "CODE", "E-MAIL");
    }
    let mut write_err: Option<std::io::Error> = None;
    let report = {
        let mut sink = |f: &Finding| {
            let res = if json {
                let mut v = serde_json::to_value(f).unwrap_or_default();
                v["type"] = "finding".into();
                writeln!(out, "{v}")
            } else {
                print_row(out, f)
            };
            if let Err(e) = res {
                write_err.get_or_insert(e);
            }
        };
        r.run(&mut sink).await?
    };
    if let Some(e) = write_err {
        return Err(anyhow::anyhow!("cannot write the report: {e}"));
    }
    record(&report);
    let s = &report.summary;
    if json {
        let mut v = serde_json::to_value(s)?;
        v["type"] = "summary".into();
        writeln!(out, "{v}")?;
    } else {
        let counts: Vec<String> = s.counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(
            out,
            "\nread {} Cognito users ({} pages{}) and {} admins in {:.1} s: {}; repaired {}{}; needs attention {}",
            s.cognito_users,
            s.list_users_pages,
            if s.throttled > 0 {
                format!(", {} throttled answers waited out", s.throttled)
            } else {
                String::new()
            },
            s.database_admins,
            s.seconds,
            counts.join(", "),
            s.repaired,
            if s.repair_failures > 0 {
                format!(" (failed {})", s.repair_failures)
            } else {
                String::new()
            },
            s.needs_attention
        )?;
        if !repair && report.findings.iter().any(|f| f.repair == Repair::Available) {
            writeln!(
                out,
                "run `admin-provisioner reconcile --repair` to apply the safe repairs"
            )?;
        }
    }
    out.flush()?;
    if report.is_clean() {
        Ok(())
    } else {
        Err(DriftRemains.into())
    }
}

fn print_row(out: &mut (dyn Write + Send), f: &Finding) -> std::io::Result<()> {
    let repair = match &f.repair {
        Repair::Manual => "manual".to_string(),
        Repair::Available => "available (--repair)".to_string(),
        Repair::Applied => "REPAIRED".to_string(),
        Repair::Failed(why) => format!("failed: {why}"),
    };
    writeln!(
        out,
        "{:<9} {:<34} {:<36} {}",
        f.kind.code(),
        f.code,
        f.email.as_deref().unwrap_or("-"),
        repair
    )?;
    let ids = format!(
        "admin {} · db {} / {} · cognito {} / {} ({}{})",
        f.admin_id.as_deref().unwrap_or("-"),
        f.db_cognito_username.as_deref().unwrap_or("-"),
        f.db_cognito_sub.as_deref().unwrap_or("-"),
        f.cognito_username.as_deref().unwrap_or("-"),
        f.cognito_sub.as_deref().unwrap_or("-"),
        f.cognito_status.as_deref().unwrap_or("-"),
        match f.cognito_enabled {
            Some(false) => ", disabled",
            _ => "",
        }
    );
    writeln!(
        out,
        "          {}\n          {ids}\n          fix: {}",
        f.message, f.fix
    )
}

/// What this process knows about reconciliation runs (for `/metrics` and the console).
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// The last successful run's report.
    pub last: Option<Report>,
    /// Runs finished without error.
    pub runs_ok: u64,
    /// Runs that failed.
    pub runs_failed: u64,
    /// The last failure's message.
    pub last_error: Option<String>,
}

fn status_cell() -> &'static Mutex<Status> {
    static CELL: OnceLock<Mutex<Status>> = OnceLock::new();
    CELL.get_or_init(Default::default)
}

/// Records a finished run.
pub fn record(report: &Report) {
    let mut s = status_cell().lock().unwrap_or_else(|p| p.into_inner());
    s.last = Some(report.clone());
    s.runs_ok += 1;
    s.last_error = None;
}

fn record_failure(message: String) {
    let mut s = status_cell().lock().unwrap_or_else(|p| p.into_inner());
    s.runs_failed += 1;
    s.last_error = Some(message);
}

/// A copy of the current status.
pub fn status() -> Status {
    status_cell().lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Spawns `serve`'s background reconciler (report only; repairs need `reconcile --repair`): a run every
/// `interval`, the first right away, by one replica at a time. Returns `None` when `interval` is zero.
pub fn spawn_background(app: &App, interval: Duration) -> Option<(tokio::task::JoinHandle<()>, Background)> {
    if interval.is_zero() {
        tracing::info!("background reconciler off (RECONCILE_INTERVAL_SECS=0)");
        return None;
    }
    let bg = Background::new(
        reconciler(app, ReconcileSettings::default()),
        format!("serve-{}", uuid::Uuid::new_v4()),
        interval,
    );
    let task_bg = bg.clone();
    let handle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match task_bg.tick().await {
                Ok(Tick::Ran(report)) => {
                    if !report.is_clean() {
                        tracing::warn!(
                            needs_attention = report.summary.needs_attention,
                            "reconciler found drift: run `admin-provisioner reconcile` for details"
                        );
                    }
                    record(&report);
                }
                Ok(Tick::Skipped) => tracing::debug!("another replica runs the reconciler"),
                Err(e) => {
                    tracing::warn!(error = %e, "reconciler run failed");
                    record_failure(e.to_string());
                }
            }
        }
    });
    Some((handle, bg))
}
