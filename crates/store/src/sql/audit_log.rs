//! [`AuditLog`]: the append-only audit log.

use super::{insert_audit, sql, Backend, SqlStore};
use crate::error::map_err;
use crate::types::AuditRow;
use admin_provisioner_core::store::{AuditEntry, AuditEvent, AuditLog, StoreError};

/// One audit entry with the e-mail of its actor, when the actor is a stored admin.
#[derive(sqlx::FromRow)]
struct AuditRowWithActor {
    #[sqlx(flatten)]
    event: AuditRow,
    actor_email: Option<String>,
}

#[async_trait::async_trait]
impl<B: Backend> AuditLog for SqlStore<B> {
    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, action = audit.action.as_str()))]
    async fn append_audit(&self, audit: AuditEntry) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await.map_err(map_err)?;
        insert_audit::<B>(&mut conn, &audit).await
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, limit = limit))]
    async fn list_audit(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        sql("SELECT id, actor, action, target, outcome, request_id, at FROM audit_log ORDER BY id DESC LIMIT $1")
            .bind(limit.max(0))
            .fetch_all::<AuditRow>(self.db())
            .await
            .map_err(map_err)?
            .into_iter()
            .map(AuditEvent::try_from)
            .collect()
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, limit = limit))]
    async fn list_audit_page(
        &self,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(AuditEvent, Option<String>)>, StoreError> {
        let query = format!(
            "SELECT l.id, l.actor, l.action, l.target, l.outcome, l.request_id, l.at, \
             u.email AS actor_email FROM audit_log l LEFT JOIN users u ON {} \
             WHERE l.id < $1 ORDER BY l.id DESC LIMIT $2",
            B::ACTOR_IS_USER
        );
        sql(&query)
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(limit.max(0))
            .fetch_all::<AuditRowWithActor>(self.db())
            .await
            .map_err(map_err)?
            .into_iter()
            .map(|r| Ok((AuditEvent::try_from(r.event)?, r.actor_email)))
            .collect()
    }
}
