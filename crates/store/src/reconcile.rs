//! The reconciler's queries ([`ReconcileStore`]): a keyset stream of admins by Cognito username, and the
//! lease that lets one replica at a time run the background reconciler.
//!
//! The stream's order must equal Rust's `str` order (bytes of UTF-8), because the reconciler merges it
//! with Cognito users it sorted itself: PostgreSQL compares with `COLLATE "C"` (served by the index
//! `users_cognito_username_c_idx`), SQLite's default `BINARY` collation already is byte order.

use admin_provisioner_core::reconcile::ReconcileStore;

/// Implements [`ReconcileStore`] for `$store`; `$collate` is the SQL that makes `u.cognito_username`
/// compare by bytes.
macro_rules! impl_reconcile_store {
    ($store:ty, $backend:literal, $collate:literal) => {
        #[::async_trait::async_trait]
        impl ReconcileStore for $store {
            #[::tracing::instrument(skip_all, fields(db = $backend, limit))]
            async fn admins_after_cognito_username(
                &self,
                after: Option<&str>,
                limit: i64,
            ) -> Result<
                Vec<::admin_provisioner_core::domain::AdminRecord>,
                ::admin_provisioner_core::store::StoreError,
            > {
                let rows = match after {
                    Some(after) => ::sqlx::query_as::<_, $crate::types::AdminRow>(concat!(
                        $crate::sql::select_admin!(),
                        " WHERE u.cognito_username",
                        $collate,
                        " > $1 ORDER BY u.cognito_username",
                        $collate,
                        " LIMIT $2"
                    ))
                    .bind(after)
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await,
                    None => ::sqlx::query_as::<_, $crate::types::AdminRow>(concat!(
                        $crate::sql::select_admin!(),
                        " ORDER BY u.cognito_username",
                        $collate,
                        " LIMIT $1"
                    ))
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await,
                }
                .map_err($crate::error::map_err)?;
                rows.into_iter()
                    .map(::admin_provisioner_core::domain::AdminRecord::try_from)
                    .collect()
            }

            #[::tracing::instrument(skip_all, fields(db = $backend, name, holder))]
            async fn try_acquire_lease(
                &self,
                name: &str,
                holder: &str,
                now: ::chrono::DateTime<::chrono::Utc>,
                ttl: ::chrono::Duration,
            ) -> Result<bool, ::admin_provisioner_core::store::StoreError> {
                let done = ::sqlx::query(
                    "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder",
                )
                .bind(name)
                .bind(holder)
                .bind($crate::types::DbTime::new(now + ttl))
                .bind($crate::types::DbTime::new(now))
                .execute(self.pool())
                .await
                .map_err($crate::error::map_err)?;
                Ok(done.rows_affected() == 1)
            }

            #[::tracing::instrument(skip_all, fields(db = $backend, name, holder))]
            async fn release_lease(
                &self,
                name: &str,
                holder: &str,
            ) -> Result<(), ::admin_provisioner_core::store::StoreError> {
                ::sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                    .bind(name)
                    .bind(holder)
                    .execute(self.pool())
                    .await
                    .map_err($crate::error::map_err)?;
                Ok(())
            }
        }
    };
}

impl_reconcile_store!(crate::SqliteStore, "sqlite", "");
impl_reconcile_store!(crate::PostgresStore, "postgres", " COLLATE \"C\"");
