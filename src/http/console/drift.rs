//! The drift page (`/console/drift`): the last reconciliation report.

use super::{console_user, format_time, render, Chrome};
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

struct FindingRow {
    kind: String,
    code: String,
    email: String,
    message: String,
    fix: String,
}

struct DriftReport {
    clean: bool,
    needs_attention: u64,
    finished_at: String,
    seconds: String,
    cognito_users: u64,
    database_admins: u64,
    counts: Vec<(String, u64)>,
    findings: Vec<FindingRow>,
}

#[derive(Template)]
#[template(path = "console/drift.html")]
struct DriftPage {
    chrome: Chrome,
    last_error: Option<String>,
    interval_secs: u64,
    report: Option<DriftReport>,
}

/// The last reconciliation report of this server (`serve`'s background reconciler).
pub(super) async fn drift_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match console_user(&state, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let status = crate::reconcile::status();
    let report = status.last.as_ref().map(|report| {
        let s = &report.summary;
        DriftReport {
            clean: report.is_clean(),
            needs_attention: s.needs_attention,
            finished_at: s.finished_at.map(format_time).unwrap_or_default(),
            seconds: format!("{:.1}", s.seconds),
            cognito_users: s.cognito_users,
            database_admins: s.database_admins,
            counts: s.counts.iter().map(|(k, n)| (k.clone(), *n)).collect(),
            findings: report
                .findings
                .iter()
                .map(|f| FindingRow {
                    kind: f.kind.code().to_string(),
                    code: f.code.clone(),
                    email: f.email.clone().unwrap_or_else(|| "—".into()),
                    message: f.message.clone(),
                    fix: f.fix.clone(),
                })
                .collect(),
        }
    });
    let page = DriftPage {
        chrome: Chrome::signed_in(&state, &user, "Drift", "/console/drift", None),
        last_error: status.last_error.clone(),
        interval_secs: state.app().config.reconcile_interval_secs,
        report,
    };
    render(StatusCode::OK, &page)
}
