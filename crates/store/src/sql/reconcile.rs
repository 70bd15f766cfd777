//! The reconciler's queries ([`ReconcileStore`]): a keyset stream of admins by Cognito username, and the
//! lease that lets one replica at a time run the background reconciler.
//!
//! The stream's order must equal Rust's `str` order (bytes of UTF-8), because the reconciler merges it
//! with Cognito users it sorted itself: PostgreSQL compares with `COLLATE "C"` (served by the index
//! `users_cognito_username_c_idx`), SQLite's default `BINARY` collation already is byte order (see
//! [`Backend::BYTE_COLLATE`]).

use super::{sql, Backend, SqlStore, SELECT_ADMIN};
use crate::error::map_err;
use crate::types::{AdminRow, DbTime};
use admin_provisioner_core::domain::AdminRecord;
use admin_provisioner_core::reconcile::ReconcileStore;
use admin_provisioner_core::store::StoreError;
use chrono::{DateTime, Duration, Utc};

#[async_trait::async_trait]
impl<B: Backend> ReconcileStore for SqlStore<B> {
    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, limit))]
    async fn admins_after_cognito_username(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AdminRecord>, StoreError> {
        let collate = B::BYTE_COLLATE;
        let rows: Vec<AdminRow> = match after {
            Some(after) => {
                let query = format!(
                    "{SELECT_ADMIN} WHERE u.cognito_username{collate} > $1 ORDER BY u.cognito_username{collate} LIMIT $2"
                );
                sql(&query).bind(after).bind(limit).fetch_all(self.db()).await
            }
            None => {
                let query = format!("{SELECT_ADMIN} ORDER BY u.cognito_username{collate} LIMIT $1");
                sql(&query).bind(limit).fetch_all(self.db()).await
            }
        }
        .map_err(map_err)?;
        rows.into_iter().map(AdminRecord::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, name, holder))]
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let done = sql("INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder")
        .bind(name)
        .bind(holder)
        .bind(DbTime::new(now + ttl))
        .bind(DbTime::new(now))
        .execute(self.db())
        .await
        .map_err(map_err)?;
        Ok(done == 1)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, name, holder))]
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sql("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.db())
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
