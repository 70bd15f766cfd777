//! Prometheus metrics, in the text exposition format, with no extra dependency.
//!
//! [`Metrics`] is the core's [`Observer`]: the provisioner reports each identity-provider call and each
//! finished provisioning to it, and the request middleware reports each HTTP answer. `GET /metrics`
//! renders:
//!
//! * `admin_provisioner_provisions_total{outcome}` — `created`, `compensated`, `rejected`, `stuck`;
//! * `admin_provisioner_saga_duration_seconds` — histogram of provisioning durations;
//! * `admin_provisioner_identity_provider_calls_total{operation,result}` — `result` is `ok` or Cognito's
//!   error name;
//! * `admin_provisioner_http_requests_total{status}`;
//! * the reconciler's last run (`admin_provisioner_reconcile_*`, see [`crate::reconcile::render_metrics`]).
//!
//! Label values come from fixed sets (operation names, error codes, status codes), never from user input.

use admin_provisioner_core::Observer;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Upper bounds of the saga-duration histogram buckets, in seconds.
const DURATION_BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

#[derive(Default)]
struct Histogram {
    /// Count per bucket (not cumulative), one per [`DURATION_BUCKETS`] entry.
    buckets: [u64; DURATION_BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    provisions: BTreeMap<String, u64>,
    saga_duration: Histogram,
    idp_calls: BTreeMap<(String, String), u64>,
    http_requests: BTreeMap<u16, u64>,
}

/// The metrics registry of one service. Cheap to share (`Arc`); all methods are thread-safe.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts one HTTP answer.
    pub fn http_request(&self, status: u16) {
        *self.lock().http_requests.entry(status).or_default() += 1;
    }

    /// The registry in Prometheus' text format (version 0.0.4).
    pub fn render(&self) -> String {
        let m = self.lock();
        let mut out = String::new();
        out.push_str("# HELP admin_provisioner_provisions_total Finished provisionings by outcome.\n");
        out.push_str("# TYPE admin_provisioner_provisions_total counter\n");
        for outcome in ["created", "compensated", "rejected", "stuck"] {
            let n = m.provisions.get(outcome).copied().unwrap_or(0);
            let _ = writeln!(out, "admin_provisioner_provisions_total{{outcome=\"{outcome}\"}} {n}");
        }
        for (outcome, n) in m
            .provisions
            .iter()
            .filter(|(o, _)| !["created", "compensated", "rejected", "stuck"].contains(&o.as_str()))
        {
            let _ = writeln!(
                out,
                "admin_provisioner_provisions_total{{outcome=\"{}\"}} {n}",
                label(outcome)
            );
        }

        out.push_str("# HELP admin_provisioner_saga_duration_seconds Duration of provisioning sagas.\n");
        out.push_str("# TYPE admin_provisioner_saga_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (le, n) in DURATION_BUCKETS.iter().zip(m.saga_duration.buckets.iter()) {
            cumulative += n;
            let _ = writeln!(
                out,
                "admin_provisioner_saga_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "admin_provisioner_saga_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            m.saga_duration.count
        );
        let _ = writeln!(
            out,
            "admin_provisioner_saga_duration_seconds_sum {}",
            m.saga_duration.sum
        );
        let _ = writeln!(
            out,
            "admin_provisioner_saga_duration_seconds_count {}",
            m.saga_duration.count
        );

        out.push_str("# HELP admin_provisioner_identity_provider_calls_total Identity-provider (Cognito) calls by operation and result.\n");
        out.push_str("# TYPE admin_provisioner_identity_provider_calls_total counter\n");
        for ((op, result), n) in &m.idp_calls {
            let _ = writeln!(
                out,
                "admin_provisioner_identity_provider_calls_total{{operation=\"{}\",result=\"{}\"}} {n}",
                label(op),
                label(result)
            );
        }

        out.push_str("# HELP admin_provisioner_http_requests_total HTTP requests answered, by status.\n");
        out.push_str("# TYPE admin_provisioner_http_requests_total counter\n");
        for (status, n) in &m.http_requests {
            let _ = writeln!(out, "admin_provisioner_http_requests_total{{status=\"{status}\"}} {n}");
        }
        crate::reconcile::render_metrics(&mut out);
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Observer for Metrics {
    fn idp_call(&self, op: &str, result: &str) {
        *self
            .lock()
            .idp_calls
            .entry((op.to_string(), result.to_string()))
            .or_default() += 1;
    }

    fn provision_finished(&self, outcome: &str, seconds: f64) {
        let mut m = self.lock();
        *m.provisions.entry(outcome.to_string()).or_default() += 1;
        let h = &mut m.saga_duration;
        if let Some(i) = DURATION_BUCKETS.iter().position(|le| seconds <= *le) {
            h.buckets[i] += 1;
        }
        h.sum += seconds;
        h.count += 1;
    }
}

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The process-wide registry that `serve` uses. Pass it as `Hooks.observer` when building the
/// [`crate::app::App`] that [`super::serve`] (or [`super::AppState::new`]) will serve, so the
/// provisioner's measurements reach `/metrics`.
pub fn metrics_observer() -> Arc<Metrics> {
    static GLOBAL: OnceLock<Arc<Metrics>> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::new).clone()
}

/// The saga gauges, computed from the saga log at scrape time: `admin_provisioner_sagas_unfinished` (not
/// in a terminal state) and `admin_provisioner_sagas_stuck` (`stuck`, or unfinished with an expired
/// lease). `None` (the database did not answer) renders no sample, so a scrape never shows a made-up 0.
pub fn render_saga_gauges(
    unfinished: Option<&[admin_provisioner_core::store::SagaRecord]>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let mut out = String::new();
    out.push_str("# HELP admin_provisioner_sagas_unfinished Sagas not yet completed, compensated or aborted.\n");
    out.push_str("# TYPE admin_provisioner_sagas_unfinished gauge\n");
    if let Some(s) = unfinished {
        let _ = writeln!(out, "admin_provisioner_sagas_unfinished {}", s.len());
    }
    out.push_str("# HELP admin_provisioner_sagas_stuck Sagas marked stuck or whose owner's lease expired.\n");
    out.push_str("# TYPE admin_provisioner_sagas_stuck gauge\n");
    if let Some(s) = unfinished {
        let _ = writeln!(
            out,
            "admin_provisioner_sagas_stuck {}",
            s.iter().filter(|x| x.is_stuck(now)).count()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        m.provision_finished("created", 0.07);
        m.provision_finished("created", 3.0);
        let text = m.render();
        assert!(
            text.contains("admin_provisioner_saga_duration_seconds_bucket{le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("admin_provisioner_saga_duration_seconds_bucket{le=\"5\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("admin_provisioner_provisions_total{outcome=\"created\"} 2\n"),
            "{text}"
        );
    }

    #[test]
    fn saga_gauges_are_absent_when_the_database_does_not_answer() {
        let text = render_saga_gauges(None, chrono::Utc::now());
        assert!(text.contains("# TYPE admin_provisioner_sagas_unfinished gauge"));
        assert!(!text.contains("admin_provisioner_sagas_unfinished 0"));
        let text = render_saga_gauges(Some(&[]), chrono::Utc::now());
        assert!(text.contains("admin_provisioner_sagas_unfinished 0\n"));
        assert!(text.contains("admin_provisioner_sagas_stuck 0\n"));
    }
}
