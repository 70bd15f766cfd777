//! One saga's facts (`/console/sagas/{id}`): the `failed` and `pending` lines of the admins page link
//! here; read from the saga log only.

use super::{console_user, describe, error_page, format_time, relative, render, Chrome};
use crate::http::error::ApiError;
use crate::http::AppState;
use admin_provisioner_core::store::{SagaKind, SagaRecord, SagaState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};

/// The saga log entry as the page shows it.
struct SagaView {
    id: String,
    email: String,
    kind: &'static str,
    step: &'static str,
    state: &'static str,
    state_class: &'static str,
    explanation: &'static str,
    owner: Option<String>,
    lease: String,
    attempts: i32,
    last_error: Option<String>,
    cognito_username: String,
    identity_created_by_saga: bool,
    started: String,
    started_iso: String,
    updated: String,
    updated_iso: String,
    request_id: String,
}

/// The step a saga in `state` is at (or last reached), in words: read from the saga's own table in the
/// core (`saga_step_words`), so the page names the step the saga of that kind is really at.
fn saga_step(kind: SagaKind, state: SagaState) -> &'static str {
    admin_provisioner_core::provisioner::saga_step_words(kind, state)
}

fn saga_view(s: &SagaRecord, now: DateTime<Utc>) -> SagaView {
    let (state_class, explanation) = if s.state == SagaState::Stuck {
        (
            "failed",
            "This provisioning failed and could not be fully undone yet. Recovery retries it automatically; the last error below says what blocked it.",
        )
    } else if s.state.is_terminal() {
        ("active", "This saga has finished.")
    } else if s.is_stuck(now) {
        (
            "expired",
            "This saga is unfinished and its owner's lease has expired: the next recovery pass of any replica takes it over.",
        )
    } else {
        ("pending", "This saga is running: its owner holds a lease on it.")
    };
    let lease = match s.lease_expires_at {
        Some(t) if t > now => format!("held until {} ({})", format_time(t), relative(t, now)),
        Some(t) => format!("expired or released at {}", format_time(t)),
        None => "none".into(),
    };
    SagaView {
        id: s.id.to_string(),
        email: s.email.clone(),
        kind: match s.kind {
            SagaKind::Provision => "provision",
            SagaKind::Remove => "remove",
            SagaKind::Disable => "disable",
            SagaKind::Enable => "enable",
            SagaKind::ChangeRole => "change_role",
            SagaKind::ResetPassword => "reset_password",
            SagaKind::ResetMfa => "reset_mfa",
        },
        step: saga_step(s.kind, s.state),
        state: s.state.as_str(),
        state_class,
        explanation,
        owner: s.owner.clone(),
        lease,
        attempts: s.attempts,
        last_error: s.last_error.clone(),
        cognito_username: s.cognito_username.clone(),
        identity_created_by_saga: s.identity_created_by_saga,
        started: format_time(s.started_at),
        started_iso: s.started_at.to_rfc3339(),
        updated: format_time(s.updated_at),
        updated_iso: s.updated_at.to_rfc3339(),
        request_id: s.request_id.clone().unwrap_or_else(|| "—".into()),
    }
}

#[derive(Template)]
#[template(path = "console/saga.html")]
struct SagaPage {
    chrome: Chrome,
    saga: SagaView,
}

/// `GET /console/sagas/{id}`: one saga log entry. Reads the saga log only (no Cognito call).
pub(super) async fn saga_page(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let user = match console_user(&state, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let not_found = || {
        error_page(
            &state,
            StatusCode::NOT_FOUND,
            "not_found",
            "There is no saga with this id in the saga log.",
        )
    };
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return not_found();
    };
    let saga = match state.provisioner().saga(id).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(),
        Err(e) => {
            let e = ApiError::from(e);
            return error_page(&state, e.status, e.code, &describe(&e));
        }
    };
    let now = state.provisioner().now();
    let page = SagaPage {
        chrome: Chrome::signed_in(&state, &user, "Saga", "", None),
        saga: saga_view(&saga, now),
    };
    render(StatusCode::OK, &page)
}
