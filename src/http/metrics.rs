//! Prometheus metrics on [`prometheus_client`] (the Prometheus project's Rust client), rendered in the
//! OpenMetrics text format (`application/openmetrics-text; version=1.0.0`, which Prometheus scrapes
//! natively).
//!
//! [`Metrics`] is the core's [`Observer`]: the provisioner reports each identity-provider call and each
//! finished provisioning to it, and the request trace layer reports each HTTP answer. `GET /metrics`
//! renders:
//!
//! * `admin_provisioner_provisions_total{outcome}` — `created`, `compensated`, `rejected`, `stuck`;
//! * `admin_provisioner_saga_duration_seconds` — histogram of provisioning durations;
//! * `admin_provisioner_identity_provider_calls_total{operation,result}` — `result` is `ok` or Cognito's
//!   error name;
//! * `admin_provisioner_http_requests_total{status}`;
//! * computed at scrape time: the saga gauges `admin_provisioner_sagas_unfinished` and
//!   `admin_provisioner_sagas_stuck` (from the saga log; no sample when the database does not answer),
//!   and the reconciler's last run (`admin_provisioner_reconcile_runs_total{result}`,
//!   `admin_provisioner_reconcile_findings{kind}`, `admin_provisioner_reconcile_needs_attention`,
//!   `admin_provisioner_reconcile_last_run_timestamp_seconds`,
//!   `admin_provisioner_reconcile_last_run_duration_seconds`).
//!
//! Label values come from fixed sets (operation names, error codes, status codes), never from user input;
//! the encoder escapes them anyway.

use admin_provisioner_core::store::SagaRecord;
use admin_provisioner_core::Observer;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the saga-duration histogram buckets, in seconds.
const DURATION_BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// The outcomes every scrape shows (at 0 until one happens).
const OUTCOMES: [&str; 4] = ["created", "compensated", "rejected", "stuck"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdpCallLabels {
    operation: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// The metrics registry of one service. Cheap to share (`Arc`); all methods are thread-safe (the
/// metrics are atomics).
pub struct Metrics {
    provisions: Family<OutcomeLabels, Counter>,
    saga_duration: Histogram,
    idp_calls: Family<IdpCallLabels, Counter>,
    http_requests: Family<StatusLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let provisions = Family::<OutcomeLabels, Counter>::default();
        for outcome in OUTCOMES {
            let _ = provisions.get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            });
        }
        Self {
            provisions,
            saga_duration: Histogram::new(DURATION_BUCKETS),
            idp_calls: Family::default(),
            http_requests: Family::default(),
        }
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts one HTTP answer.
    pub fn http_request(&self, status: u16) {
        self.http_requests.get_or_create(&StatusLabels { status }).inc();
    }

    /// The process's metrics and the reconciler's, without the saga gauges (see [`Metrics::render_with`]).
    pub fn render(&self) -> String {
        self.render_with(None, chrono::Utc::now())
    }

    /// Everything `/metrics` shows, in the OpenMetrics text format: the counters and histogram of this
    /// registry, the reconciler's last run, and the saga gauges over `unfinished` (the saga log's
    /// unfinished sagas; `None` — the database did not answer — renders those gauges without a sample, so
    /// a scrape never shows a made-up 0).
    pub fn render_with(&self, unfinished: Option<&[SagaRecord]>, now: chrono::DateTime<chrono::Utc>) -> String {
        // A registry per scrape: the long-lived metrics are shared handles (cloning one shares its
        // atomics), the scrape-time gauges are made from what was just read.
        let mut r = Registry::default();
        r.register(
            "admin_provisioner_provisions",
            "Finished provisionings by outcome",
            self.provisions.clone(),
        );
        r.register(
            "admin_provisioner_saga_duration_seconds",
            "Duration of provisioning sagas",
            self.saga_duration.clone(),
        );
        r.register(
            "admin_provisioner_identity_provider_calls",
            "Identity-provider (Cognito) calls by operation and result",
            self.idp_calls.clone(),
        );
        r.register(
            "admin_provisioner_http_requests",
            "HTTP requests answered, by status",
            self.http_requests.clone(),
        );
        register_saga_gauges(&mut r, unfinished, now);
        register_reconcile(&mut r, &crate::reconcile::status());
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        out
    }
}

impl Observer for Metrics {
    fn idp_call(&self, op: &str, result: &str) {
        self.idp_calls
            .get_or_create(&IdpCallLabels {
                operation: op.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    fn provision_finished(&self, outcome: &str, seconds: f64) {
        self.provisions
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
        self.saga_duration.observe(seconds);
    }
}

/// The empty label set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NoLabels {}

/// A gauge family without labels: one sample when set, none when never touched.
type OptionalGauge = Family<NoLabels, Gauge>;

fn optional_gauge(value: Option<i64>) -> OptionalGauge {
    let g = OptionalGauge::default();
    if let Some(v) = value {
        g.get_or_create(&NoLabels {}).set(v);
    }
    g
}

/// The saga gauges: `admin_provisioner_sagas_unfinished` (not in a terminal state) and
/// `admin_provisioner_sagas_stuck` (`stuck`, or unfinished with an expired lease).
fn register_saga_gauges(r: &mut Registry, unfinished: Option<&[SagaRecord]>, now: chrono::DateTime<chrono::Utc>) {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    r.register(
        "admin_provisioner_sagas_unfinished",
        "Sagas not yet completed, compensated or aborted",
        optional_gauge(unfinished.map(|s| count(s.len()))),
    );
    r.register(
        "admin_provisioner_sagas_stuck",
        "Sagas marked stuck or whose owner's lease expired",
        optional_gauge(unfinished.map(|s| count(s.iter().filter(|x| x.is_stuck(now)).count()))),
    );
}

/// The reconciler's metrics from this process's [`crate::reconcile::Status`].
fn register_reconcile(r: &mut Registry, s: &crate::reconcile::Status) {
    let runs = Family::<ResultLabels, Counter>::default();
    for (result, n) in [("ok", s.runs_ok), ("error", s.runs_failed)] {
        runs.get_or_create(&ResultLabels { result: result.into() }).inc_by(n);
    }
    r.register(
        "admin_provisioner_reconcile_runs",
        "Reconciliation runs of this process by result",
        runs,
    );
    let Some(report) = &s.last else {
        return;
    };
    let sum = &report.summary;
    let findings = Family::<KindLabels, Gauge>::default();
    for (kind, n) in &sum.counts {
        findings
            .get_or_create(&KindLabels { kind: kind.clone() })
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    r.register(
        "admin_provisioner_reconcile_findings",
        "Findings of the last reconciliation run by kind (foreign is information only)",
        findings,
    );
    let needs_attention = Gauge::<i64>::default();
    needs_attention.set(i64::try_from(sum.needs_attention).unwrap_or(i64::MAX));
    r.register(
        "admin_provisioner_reconcile_needs_attention",
        "Drift findings the last run left unrepaired",
        needs_attention,
    );
    let finished = Gauge::<i64>::default();
    finished.set(sum.finished_at.map(|t| t.timestamp()).unwrap_or(0));
    r.register(
        "admin_provisioner_reconcile_last_run_timestamp_seconds",
        "When the last reconciliation run finished (Unix time)",
        finished,
    );
    let duration = Gauge::<f64, AtomicU64>::default();
    duration.set(sum.seconds);
    r.register(
        "admin_provisioner_reconcile_last_run_duration_seconds",
        "Wall time of the last reconciliation run",
        duration,
    );
}

/// The process-wide registry that `serve` uses. Pass it as `Hooks.observer` when building the
/// [`crate::app::App`] that [`super::serve`] (or [`super::AppState::new`]) will serve, so the
/// provisioner's measurements reach `/metrics`.
pub fn metrics_observer() -> Arc<Metrics> {
    static GLOBAL: OnceLock<Arc<Metrics>> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::new).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_outcomes_start_at_zero() {
        let m = Metrics::new();
        m.provision_finished("created", 0.07);
        m.provision_finished("created", 3.0);
        let text = m.render();
        assert!(
            text.contains("admin_provisioner_saga_duration_seconds_bucket{le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("admin_provisioner_saga_duration_seconds_bucket{le=\"5.0\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("admin_provisioner_saga_duration_seconds_count 2\n"),
            "{text}"
        );
        assert!(
            text.contains("admin_provisioner_provisions_total{outcome=\"created\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("admin_provisioner_provisions_total{outcome=\"stuck\"} 0\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn identity_provider_calls_and_http_statuses_are_labelled() {
        let m = Metrics::new();
        m.idp_call("AdminCreateUser", "ok");
        m.idp_call("AdminCreateUser", "TooManyRequestsException");
        m.http_request(201);
        let text = m.render();
        assert!(
            text.contains(
                "admin_provisioner_identity_provider_calls_total{operation=\"AdminCreateUser\",result=\"ok\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("admin_provisioner_http_requests_total{status=\"201\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn saga_gauges_are_absent_when_the_database_does_not_answer() {
        let m = Metrics::new();
        let text = m.render_with(None, chrono::Utc::now());
        // The encoder leaves out a family without samples altogether.
        assert!(!text.contains("admin_provisioner_sagas_unfinished"), "{text}");
        assert!(!text.contains("admin_provisioner_sagas_stuck"), "{text}");
        let text = m.render_with(Some(&[]), chrono::Utc::now());
        assert!(text.contains("admin_provisioner_sagas_unfinished 0\n"), "{text}");
        assert!(text.contains("admin_provisioner_sagas_stuck 0\n"), "{text}");
    }
}
