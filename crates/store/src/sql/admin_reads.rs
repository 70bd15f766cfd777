//! [`AdminReads`]: the stored admins, read outside any transaction.

use super::{admin_by_id, admin_page_sql, like_prefix, sql, Backend, SqlStore, SELECT_ADMIN};
use crate::error::map_err;
use crate::types::{AdminRow, DbId, DbTime};
use admin_provisioner_core::domain::{AdminRecord, InviteStatus, UserId};
use admin_provisioner_core::pages::StoredAdminFilter;
use admin_provisioner_core::store::{AdminReads, ScimKey, StoreError};
use chrono::{DateTime, Utc};
use const_format::concatcp;

impl<B: Backend> SqlStore<B> {
    /// The admin selected by `query` (`SELECT_ADMIN` plus a `WHERE` on one `u.` column, bound to `$1`).
    async fn admin_where(&self, query: &'static str, value: &str) -> Result<Option<AdminRecord>, StoreError> {
        sql(query)
            .bind(value)
            .fetch_optional::<AdminRow>(self.db())
            .await
            .map_err(map_err)?
            .map(AdminRecord::try_from)
            .transpose()
    }
}

#[async_trait::async_trait]
impl<B: Backend> AdminReads for SqlStore<B> {
    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME))]
    async fn ping(&self) -> Result<(), StoreError> {
        sql("SELECT 1").execute(self.db()).await.map_err(map_err)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME))]
    async fn find_admin_by_email(&self, email_normalized: &str) -> Result<Option<AdminRecord>, StoreError> {
        self.admin_where(
            concatcp!(SELECT_ADMIN, " WHERE u.email_normalized = $1"),
            email_normalized,
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME))]
    async fn find_admins_by_scim_key(&self, key: &ScimKey) -> Result<Vec<AdminRecord>, StoreError> {
        let (query, value) = match key {
            ScimKey::UserName(v) => (
                concatcp!(
                    SELECT_ADMIN,
                    " WHERE u.email_normalized = $1 OR u.scim_user_name = $1 ORDER BY u.created_at, u.id LIMIT 10"
                ),
                v,
            ),
            ScimKey::ExternalId(v) => (
                concatcp!(
                    SELECT_ADMIN,
                    " WHERE u.external_id = $1 ORDER BY u.created_at, u.id LIMIT 10"
                ),
                v,
            ),
        };
        let rows: Vec<AdminRow> = sql(query).bind(value).fetch_all(self.db()).await.map_err(map_err)?;
        rows.into_iter().map(AdminRecord::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, user_id = %id))]
    async fn get_admin(&self, id: UserId) -> Result<Option<AdminRecord>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(map_err)?;
        admin_by_id::<B>(&mut conn, id).await
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME))]
    async fn find_admin_by_cognito_username(&self, username: &str) -> Result<Option<AdminRecord>, StoreError> {
        self.admin_where(concatcp!(SELECT_ADMIN, " WHERE u.cognito_username = $1"), username)
            .await
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME))]
    async fn find_admin_by_cognito_sub(&self, sub: &str) -> Result<Option<AdminRecord>, StoreError> {
        self.admin_where(concatcp!(SELECT_ADMIN, " WHERE u.cognito_sub = $1"), sub)
            .await
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME))]
    async fn list_admins(&self) -> Result<Vec<AdminRecord>, StoreError> {
        sql(concatcp!(SELECT_ADMIN, " ORDER BY u.created_at, u.id"))
            .fetch_all::<AdminRow>(self.db())
            .await
            .map_err(map_err)?
            .into_iter()
            .map(AdminRecord::try_from)
            .collect()
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME))]
    async fn count_active_admins(&self) -> Result<i64, StoreError> {
        sql("SELECT COUNT(*) FROM users u JOIN admin_info a ON a.user_id = u.id WHERE u.status = 'active' AND u.disabled_at IS NULL")
            .fetch_one_scalar::<i64>(self.db())
            .await
            .map_err(map_err)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, limit = limit))]
    async fn list_admins_page(
        &self,
        filter: &StoredAdminFilter,
        after: Option<(DateTime<Utc>, UserId)>,
        limit: i64,
    ) -> Result<Vec<AdminRecord>, StoreError> {
        let query = admin_page_sql(filter, after.is_some());
        let mut q = sql(&query);
        if let Some(prefix) = &filter.email_prefix {
            q = q.bind(like_prefix(prefix));
        }
        if matches!(filter.status, Some(InviteStatus::Invited | InviteStatus::Expired)) {
            q = q.bind(DbTime::new(filter.now));
        }
        if let Some((t, id)) = after {
            q = q.bind(DbTime::new(t)).bind(DbTime::new(t)).bind(DbId::from(id));
        }
        q.bind(limit.max(0))
            .fetch_all::<AdminRow>(self.db())
            .await
            .map_err(map_err)?
            .into_iter()
            .map(AdminRecord::try_from)
            .collect()
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME))]
    async fn count_admins_by_status(&self, now: DateTime<Utc>) -> Result<(i64, i64, i64), StoreError> {
        let (active, invited, expired): (Option<i64>, Option<i64>, Option<i64>) = sql(
            "SELECT \
             SUM(CASE WHEN u.disabled_at IS NULL AND (u.status = 'active' OR a.accepted_at IS NOT NULL) THEN 1 ELSE 0 END), \
             SUM(CASE WHEN u.disabled_at IS NULL AND u.status <> 'active' AND a.accepted_at IS NULL AND a.invite_expires_at > $1 THEN 1 ELSE 0 END), \
             SUM(CASE WHEN u.disabled_at IS NULL AND u.status <> 'active' AND a.accepted_at IS NULL AND a.invite_expires_at <= $1 THEN 1 ELSE 0 END) \
             FROM users u JOIN admin_info a ON a.user_id = u.id",
        )
        .bind(DbTime::new(now))
        .fetch_one(self.db())
        .await
        .map_err(map_err)?;
        Ok((active.unwrap_or(0), invited.unwrap_or(0), expired.unwrap_or(0)))
    }
}
