//! [`ScimTokenStore`]: the named bearer tokens of SCIM clients (stored as SHA-256 digests only).

use super::{insert_audit, sql, Backend, SqlStore};
use crate::error::map_err;
use crate::types::DbTime;
use admin_provisioner_core::store::{AuditEntry, ScimToken, ScimTokenStore, StoreError};
use chrono::{DateTime, Utc};

/// One row of `scim_tokens` (without the digest).
#[derive(sqlx::FromRow)]
struct ScimTokenRow {
    name: String,
    created_by: String,
    created_at: DbTime,
    revoked_at: Option<DbTime>,
    last_used_at: Option<DbTime>,
}

impl From<ScimTokenRow> for ScimToken {
    fn from(r: ScimTokenRow) -> Self {
        Self {
            name: r.name,
            created_by: r.created_by,
            created_at: r.created_at.0,
            revoked_at: r.revoked_at.map(|t| t.0),
            last_used_at: r.last_used_at.map(|t| t.0),
        }
    }
}

/// The token named `name`, read on `conn`.
async fn scim_token_by_name<B: Backend>(conn: &mut B::Connection, name: &str) -> Result<Option<ScimToken>, StoreError> {
    Ok(
        sql("SELECT name, created_by, created_at, revoked_at, last_used_at FROM scim_tokens WHERE name = $1")
            .bind(name)
            .fetch_optional::<ScimTokenRow>(B::exec(conn))
            .await
            .map_err(map_err)?
            .map(Into::into),
    )
}

#[async_trait::async_trait]
impl<B: Backend> ScimTokenStore for SqlStore<B> {
    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, name = name))]
    async fn create_scim_token(
        &self,
        name: &str,
        token_sha256: &str,
        audit: AuditEntry,
    ) -> Result<ScimToken, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sql(
            "INSERT INTO scim_tokens (name, token_sha256, created_by, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(token_sha256)
        .bind(audit.actor.audit_name())
        .bind(DbTime::new(audit.at))
        .execute(B::exec(&mut tx))
        .await
        .map_err(map_err)?;
        if inserted == 0 {
            return Err(StoreError::TokenNameTaken);
        }
        insert_audit::<B>(&mut tx, &audit).await?;
        let token = scim_token_by_name::<B>(&mut tx, name)
            .await?
            .ok_or_else(|| StoreError::Other("inserted SCIM token vanished".into()))?;
        tx.commit().await.map_err(map_err)?;
        Ok(token)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME))]
    async fn list_scim_tokens(&self) -> Result<Vec<ScimToken>, StoreError> {
        Ok(
            sql("SELECT name, created_by, created_at, revoked_at, last_used_at FROM scim_tokens ORDER BY name")
                .fetch_all::<ScimTokenRow>(self.db())
                .await
                .map_err(map_err)?
                .into_iter()
                .map(Into::into)
                .collect(),
        )
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, name = name))]
    async fn revoke_scim_token(&self, name: &str, audit: AuditEntry) -> Result<ScimToken, StoreError> {
        let mut tx = self.begin_write().await?;
        let changed = sql("UPDATE scim_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE name = $1")
            .bind(name)
            .bind(DbTime::new(audit.at))
            .execute(B::exec(&mut tx))
            .await
            .map_err(map_err)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit::<B>(&mut tx, &audit).await?;
        let token = scim_token_by_name::<B>(&mut tx, name)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(token)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME))]
    async fn authenticate_scim_token(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let name: Option<String> = sql("SELECT name FROM scim_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL")
            .bind(token_sha256)
            .fetch_optional_scalar(self.db())
            .await
            .map_err(map_err)?;
        if let Some(name) = &name {
            // Best effort: a busy database must not refuse a valid token over a timestamp.
            let _ = sql("UPDATE scim_tokens SET last_used_at = $2 WHERE name = $1")
                .bind(name)
                .bind(DbTime::new(now))
                .execute(self.db())
                .await;
        }
        Ok(name)
    }
}
