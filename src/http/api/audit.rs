//! `/api/audit`: the audit log, newest first, cursor-paginated.

use super::{AuditEventDto, AuditList, AuditQuery, ErrorBody};
use crate::http::auth::AdminCaller;
use crate::http::error::ApiError;
use crate::http::AppState;
use admin_provisioner_core::store::AuditEvent;
use axum::extract::{Query, State};
use axum::Json;

/// The audit log, newest first.
#[utoipa::path(
    get, path = "/api/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "Newest first", body = AuditList),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`; `session_ended`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn audit(
    State(state): State<AppState>,
    _admin: AdminCaller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditList>, ApiError> {
    let Query(q) = query.map_err(|_| ApiError::invalid_request("limit must be a number from 1 to 1000"))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_request("limit must be a number from 1 to 1000"));
    }
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            admin_provisioner_core::pages::AuditCursor::decode(c)
                .map_err(|e| ApiError::invalid_request(e.to_string()))?,
        ),
    };
    let (events, next) = audit_page(&state, cursor, limit).await?;
    Ok(Json(AuditList {
        events,
        next: next.map(|c| c.encode()),
    }))
}

/// Audit events, newest first, with the acting admin's e-mail when known: the most recent `limit`.
pub async fn audit_events(state: &AppState, limit: i64) -> Result<Vec<AuditEventDto>, ApiError> {
    Ok(audit_page(state, None, limit).await?.0)
}

/// One page of audit events older than `cursor`, newest first, with the acting admin's e-mail (one query
/// with a join), and the cursor of the next page.
pub async fn audit_page(
    state: &AppState,
    cursor: Option<admin_provisioner_core::pages::AuditCursor>,
    limit: i64,
) -> Result<(Vec<AuditEventDto>, Option<admin_provisioner_core::pages::AuditCursor>), ApiError> {
    let mut rows = state
        .provisioner()
        .audit_page(cursor.map(|c| c.before_id), limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next = match rows.last() {
        Some((last, _)) if more => Some(admin_provisioner_core::pages::AuditCursor { before_id: last.id }),
        _ => None,
    };
    let events = rows
        .into_iter()
        .map(|(AuditEvent { id, entry }, actor_email)| AuditEventDto {
            id,
            at: entry.at,
            actor_email,
            actor: entry.actor.audit_name(),
            action: entry.action.as_str().to_string(),
            target: entry.target,
            outcome: entry.outcome,
            request_id: entry.request_id,
        })
        .collect();
    Ok((events, next))
}
