//! The audit log page (`/console/audit`).

use super::{console_user, describe, error_page, format_time, render, Chrome};
use crate::http::api::audit_events;
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

struct AuditRow {
    iso: String,
    exact: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    ok: bool,
    request_id: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    rows: Vec<AuditRow>,
}

pub(super) async fn audit_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match console_user(&state, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let events = match audit_events(&state, 200).await {
        Ok(e) => e,
        Err(e) => return error_page(&state, e.status, e.code, &describe(&e)),
    };
    let rows = events
        .iter()
        .map(|e| AuditRow {
            iso: e.at.to_rfc3339(),
            exact: format_time(e.at),
            actor: e.actor_email.clone().unwrap_or_else(|| e.actor.clone()),
            action: e.action.clone(),
            target: e.target.clone(),
            outcome: e.outcome.clone(),
            ok: e.outcome.starts_with("success"),
            request_id: e.request_id.clone().unwrap_or_else(|| "—".into()),
        })
        .collect();
    let page = AuditPage {
        chrome: Chrome::signed_in(&state, &user, "Audit log", "/console/audit", None),
        rows,
    };
    render(StatusCode::OK, &page)
}
