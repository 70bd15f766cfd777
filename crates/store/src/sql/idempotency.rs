//! [`IdempotencyKeys`]: the claims and stored responses of `Idempotency-Key` requests.

use super::{sql, Backend, SqlStore, IDEMPOTENCY_CLAIM_TTL};
use crate::error::map_err;
use crate::types::{DbTime, IdempotencyRow};
use admin_provisioner_core::store::{IdempotencyBegin, IdempotencyKeys, StoreError, StoredResponse};

#[async_trait::async_trait]
impl<B: Backend> IdempotencyKeys for SqlStore<B> {
    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, scope = scope))]
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyBegin, StoreError> {
        // Loops only if the key is abandoned between our insert attempt and our read.
        for _ in 0..3 {
            let claimed = sql(
                "INSERT INTO idempotency_keys (scope, key, request_hash, status, body, created_at) \
                 VALUES ($1, $2, $3, NULL, NULL, $4) ON CONFLICT (scope, key) DO NOTHING",
            )
            .bind(scope)
            .bind(key)
            .bind(request_hash)
            .bind(self.now())
            .execute(self.db())
            .await
            .map_err(map_err)?;
            if claimed == 1 {
                return Ok(IdempotencyBegin::Started);
            }
            // A claim that never completed (its process died) is taken over after a while by a retry of
            // the same request, instead of answering "in progress" forever.
            let taken_over = sql("UPDATE idempotency_keys SET created_at = $4 \
                 WHERE scope = $1 AND key = $2 AND request_hash = $3 AND status IS NULL \
                 AND created_at < $5")
            .bind(scope)
            .bind(key)
            .bind(request_hash)
            .bind(self.now())
            .bind(DbTime::new(self.now().0 - IDEMPOTENCY_CLAIM_TTL))
            .execute(self.db())
            .await
            .map_err(map_err)?;
            if taken_over == 1 {
                return Ok(IdempotencyBegin::Started);
            }
            let row: Option<IdempotencyRow> =
                sql("SELECT request_hash, status, body FROM idempotency_keys WHERE scope = $1 AND key = $2")
                    .bind(scope)
                    .bind(key)
                    .fetch_optional(self.db())
                    .await
                    .map_err(map_err)?;
            if let Some(row) = row {
                let response = row.response()?;
                return Ok(IdempotencyBegin::Existing {
                    request_hash: row.request_hash,
                    response,
                });
            }
        }
        Err(StoreError::Unavailable(
            "idempotency key is contended; retry".to_string(),
        ))
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, scope = scope, status = response.status))]
    async fn idempotency_complete(&self, scope: &str, key: &str, response: StoredResponse) -> Result<(), StoreError> {
        let changed = sql("UPDATE idempotency_keys SET status = $3, body = $4 WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .bind(i32::from(response.status))
            .bind(&response.body)
            .execute(self.db())
            .await
            .map_err(map_err)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, scope = scope))]
    async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        sql("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL")
            .bind(scope)
            .bind(key)
            .execute(self.db())
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
