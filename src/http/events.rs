//! `GET /api/events`: the lifecycle events (outbox) for the application, paginated by id, with optional
//! long-polling.
//!
//! Promises: events come oldest first with ids greater than `after`; ids are in commit order, so a reader
//! that passes back `next_after` never misses or repeats an event; with `wait=N` (1..=30 seconds) an
//! empty answer is delayed until an event is committed or `N` seconds pass; only an active admin may read,
//! and a long-poll checks its caller again each time it wakes (at least once a second) and before it
//! answers: once the admin is disabled or removed it ends with 403 `forbidden`, once their sessions are
//! ended (sign-out, or a disable even if undone) with 401 `session_ended`, never with later events.

use super::api::ErrorBody;
use super::auth::AdminCaller;
use super::error::ApiError;
use super::AppState;
use admin_provisioner_core::Error;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

/// The longest long-poll.
pub const MAX_WAIT_SECS: u64 = 30;

/// How often a long-poll re-reads the table even without a wake-up (a safety net).
const RECHECK: Duration = Duration::from_secs(1);

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/events", get(list_events))
}

/// Query of `GET /api/events`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Return events with an id greater than this (default 0: from the start).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// The `next` of the previous page (the contract's cursor form of `after`; not with `after`).
    pub cursor: Option<String>,
    /// At most this many, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Long-poll: when nothing is newer than `after`, wait up to this many seconds (0 to 30, default 0).
    #[param(minimum = 0, maximum = 30)]
    pub wait: Option<u64>,
}

/// One lifecycle event.
#[derive(Serialize, ToSchema)]
pub struct EventDto {
    /// Monotonic id, in commit order (gaps are possible).
    #[schema(example = 42)]
    pub id: i64,
    /// `admin.invited`, `admin.invite_resent`, `admin.activated`, `admin.removed` or
    /// `admin.provisioning_failed`.
    #[serde(rename = "type")]
    #[schema(example = "admin.invited")]
    pub kind: String,
    /// The admin's `users.id` (for a failed provisioning, the id its saga had chosen).
    pub admin_id: Uuid,
    /// The admin's normalised e-mail.
    pub email: String,
    /// When the change was committed.
    pub occurred_at: DateTime<Utc>,
    /// Type-specific fields: for admin events `admin_id`, `email`, `status`, `actor`, `request_id`, `at`,
    /// `user` and `admin_info` (the records after the change; before it for `admin.removed`); for
    /// `admin.provisioning_failed` `saga_id`, `state`, `error`, `actor`, `request_id`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A page of events.
#[derive(Serialize, ToSchema)]
pub struct EventList {
    /// Oldest first.
    pub events: Vec<EventDto>,
    /// Pass as `after` for the next page (the last id returned, or `after` when none).
    pub next_after: i64,
    /// Opaque cursor of the next page (pass it back as `?cursor=`); absent when this page was not full
    /// (nothing more yet: keep polling with `after=next_after`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Lifecycle events after an id, oldest first; optionally waits for the next one.
#[utoipa::path(
    get, path = "/api/events", tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "Oldest first", body = EventList),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended` (also when it ends during a long-poll)", body = ErrorBody),
        (status = 403, description = "`forbidden` (also when the admin is disabled or removed during a long-poll)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_events(
    State(state): State<AppState>,
    admin: AdminCaller,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventList>, ApiError> {
    let Query(q) = query.map_err(|_| {
        ApiError::invalid_request("after, limit and wait must be whole numbers (after >= 0, limit 1-1000, wait 0-30)")
    })?;
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| ApiError::invalid_request("cursor is not a cursor this server returned"))?,
        ),
    };
    if cursor.is_some() && q.after.is_some() {
        return Err(ApiError::invalid_request("pass either after or cursor, not both"));
    }
    let after = cursor.or(q.after).unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid_request("after must be 0 or more"));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_request("limit must be a number from 1 to 1000"));
    }
    let wait = q.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(ApiError::invalid_request(
            "wait must be a number of seconds from 0 to 30",
        ));
    }
    let feed = &state.app().events;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut wake = (wait > 0).then(|| feed.subscribe());
    let mut woke = false;
    loop {
        let events = feed.log().list_after(after, limit).await.map_err(Error::from)?;
        if woke {
            // The caller may have been disabled, removed or signed out while this request waited. Checked
            // after the read: a change committed before it (its own event among them) is seen here.
            state.authorize_token(&admin.token).await?;
        }
        woke = true;
        let now = tokio::time::Instant::now();
        if !events.is_empty() || now >= deadline {
            let next_after = events.last().map_or(after, |e| e.id);
            let next = (events.len() as i64 == limit).then(|| next_after.to_string());
            return Ok(Json(EventList {
                events: events
                    .into_iter()
                    .map(|e| EventDto {
                        id: e.id,
                        kind: e.kind,
                        admin_id: e.admin_id,
                        email: e.email,
                        occurred_at: e.occurred_at,
                        data: e.data,
                    })
                    .collect(),
                next_after,
                next,
            }));
        }
        let pause = RECHECK.min(deadline - now);
        match wake.as_mut() {
            Some(rx) => {
                let _ = tokio::time::timeout(pause, rx.wait_for(|id| *id > after)).await;
            }
            None => tokio::time::sleep(pause).await,
        }
    }
}

/// The OpenAPI part of this route, merged into `/openapi.json`.
#[derive(OpenApi)]
#[openapi(paths(list_events), components(schemas(EventDto, EventList)))]
pub struct EventsDoc;
