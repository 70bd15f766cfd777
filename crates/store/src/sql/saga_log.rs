//! [`SagaLog`]: the durable record of every saga, its lease and its steps.

use super::{like_prefix, sql, Backend, SqlStore, SAGA_COLUMNS};
use crate::error::map_err;
use crate::types::{DbId, DbTime, SagaRow};
use admin_provisioner_core::pages::UnfinishedFilter;
use admin_provisioner_core::store::{SagaLog, SagaRecord, SagaUpdate, StoreError};
use chrono::{DateTime, Utc};
use const_format::concatcp;
use uuid::Uuid;

/// Records a saga unless its id is taken or (for a SCIM intent, `$19` set) an admin holds its userName.
const INSERT_SAGA: &str = concatcp!(
    "INSERT INTO sagas (",
    SAGA_COLUMNS,
    ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22 \
     WHERE $19 IS NULL OR NOT EXISTS \
     (SELECT 1 FROM users u WHERE u.scim_user_name = $19 OR u.email_normalized = $19) \
     ON CONFLICT (id) DO NOTHING RETURNING ",
    SAGA_COLUMNS
);

/// Applies a [`SagaUpdate`] if the saga is in the expected state and held by the expected owner.
const UPDATE_SAGA: &str = concatcp!(
    "UPDATE sagas SET state = COALESCE($2, state), \
     cognito_username = COALESCE($3, cognito_username), \
     cognito_sub = COALESCE($4, cognito_sub), \
     identity_created_by_saga = COALESCE($5, identity_created_by_saga), \
     invite_delivered = COALESCE($6, invite_delivered), \
     last_error = CASE WHEN $7 THEN $8 ELSE last_error END, \
     attempts = attempts + $9, updated_at = $10, \
     lease_expires_at = COALESCE($13, lease_expires_at) \
     WHERE id = $1 AND state = COALESCE($11, state) \
     AND ($12 IS NULL OR owner = $12) \
     AND ($2 IS NULL OR state = $2 OR state NOT IN ('completed', 'compensated', 'aborted')) \
     RETURNING ",
    SAGA_COLUMNS
);

/// Decodes saga rows.
fn records(rows: Vec<SagaRow>) -> Result<Vec<SagaRecord>, StoreError> {
    rows.into_iter().map(SagaRecord::try_from).collect()
}

#[async_trait::async_trait]
impl<B: Backend> SagaLog for SqlStore<B> {
    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, saga_id = %saga.id, kind = saga.kind.as_str()))]
    async fn begin(&self, saga: SagaRecord) -> Result<SagaRecord, StoreError> {
        let inserted: Option<SagaRow> = sql(INSERT_SAGA)
            .bind(DbId(saga.id))
            .bind(saga.kind.as_str())
            .bind(saga.actor.audit_name())
            .bind(&saga.email)
            .bind(&saga.email_normalized)
            .bind(DbId::from(saga.user_id))
            .bind(&saga.cognito_username)
            .bind(&saga.cognito_sub)
            .bind(saga.identity_created_by_saga)
            .bind(saga.invite_delivered)
            .bind(saga.state.as_str())
            .bind(saga.attempts)
            .bind(&saga.last_error)
            .bind(&saga.request_id)
            .bind(DbTime::new(saga.started_at))
            .bind(DbTime::new(saga.updated_at))
            .bind(&saga.owner)
            .bind(saga.lease_expires_at.map(DbTime::new))
            .bind(saga.scim.as_ref().map(|a| a.user_name.clone()))
            .bind(saga.scim.as_ref().and_then(|a| a.external_id.clone()))
            .bind(saga.scim.as_ref().map(|a| a.profile.clone()))
            .bind(saga.role.map(|r| r.as_str()))
            .fetch_optional(self.db())
            .await
            .map_err(map_err)?;
        match inserted {
            Some(row) => SagaRecord::try_from(row),
            // Same id again: the intent is already recorded. No row of that id: a SCIM intent whose
            // userName an admin holds (checked in the same statement as the insert, so a provisioning
            // that completed since the caller's check is seen).
            None => match self.get(saga.id).await? {
                Some(existing) => Ok(existing),
                None if saga.scim.is_some() => Err(StoreError::UserNameTaken),
                None => Err(StoreError::Other(format!(
                    "saga {} conflicts but cannot be read",
                    saga.id
                ))),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, saga_id = %id, state = ?update.state))]
    async fn update(&self, id: Uuid, update: SagaUpdate) -> Result<SagaRecord, StoreError> {
        let (set_error, error) = match update.last_error {
            Some(e) => (true, e),
            None => (false, None),
        };
        let expected_owner = update.expected_owner.clone();
        let row = sql(UPDATE_SAGA)
            .bind(DbId(id))
            .bind(update.state.map(|s| s.as_str()))
            .bind(update.cognito_username)
            .bind(update.cognito_sub)
            .bind(update.identity_created_by_saga)
            .bind(update.invite_delivered)
            .bind(set_error)
            .bind(error)
            .bind(update.add_attempts)
            .bind(update.at.map(DbTime::new).unwrap_or_else(|| self.now()))
            .bind(update.expected_state.map(|s| s.as_str()))
            .bind(expected_owner.clone())
            .bind(update.lease_expires_at.map(DbTime::new))
            .fetch_optional::<SagaRow>(self.db())
            .await
            .map_err(map_err)?
            .map(SagaRecord::try_from)
            .transpose()?;
        match row {
            Some(record) => Ok(record),
            // Nothing changed: no such saga, another owner holds it (lease lost), its state is not the
            // one expected (compare-and-set lost), or it is already finished.
            None => match self.get(id).await? {
                Some(current) if expected_owner.is_some() && current.owner != expected_owner => {
                    Err(StoreError::LeaseLost(current.owner.unwrap_or_else(|| "nobody".into())))
                }
                Some(current) => Err(StoreError::SagaStateChanged(current.state.as_str().to_string())),
                None => Err(StoreError::NotFound),
            },
        }
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, owner = owner))]
    async fn claim_expired(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        only: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<SagaRecord>, StoreError> {
        // The inner SELECT picks candidates (skipping rows another claimer has locked, on PostgreSQL);
        // the outer WHERE repeats the test, so a row taken meanwhile is left alone.
        let query = format!(
            "UPDATE sagas SET owner = $1, lease_expires_at = $3, updated_at = $2 \
             WHERE id IN (SELECT id FROM sagas \
             WHERE state NOT IN ('completed', 'compensated', 'aborted') \
             AND (lease_expires_at IS NULL OR lease_expires_at <= $2) \
             AND ($4 IS NULL OR id = $4) \
             ORDER BY started_at, id LIMIT $5{}) \
             AND state NOT IN ('completed', 'compensated', 'aborted') \
             AND (lease_expires_at IS NULL OR lease_expires_at <= $2) \
             RETURNING {SAGA_COLUMNS}",
            B::ROW_LOCK
        );
        let mut tx = self.begin_write().await?;
        let rows = sql(&query)
            .bind(owner)
            .bind(DbTime::new(now))
            .bind(DbTime::new(lease_until))
            .bind(only.map(DbId))
            .bind(limit)
            .fetch_all(B::exec(&mut tx))
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        let mut out = records(rows)?;
        out.sort_by_key(|s| (s.started_at, s.id));
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, saga_id = %id))]
    async fn get(&self, id: Uuid) -> Result<Option<SagaRecord>, StoreError> {
        sql(concatcp!("SELECT ", SAGA_COLUMNS, " FROM sagas WHERE id = $1"))
            .bind(DbId(id))
            .fetch_optional::<SagaRow>(self.db())
            .await
            .map_err(map_err)?
            .map(SagaRecord::try_from)
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME))]
    async fn list_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
        let rows = sql(concatcp!(
            "SELECT ",
            SAGA_COLUMNS,
            " FROM sagas WHERE state NOT IN ('completed', 'compensated', 'aborted') ORDER BY started_at, id"
        ))
        .fetch_all(self.db())
        .await
        .map_err(map_err)?;
        records(rows)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, limit = limit))]
    async fn list_unfinished_provisions_page(
        &self,
        filter: &UnfinishedFilter,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<SagaRecord>, StoreError> {
        let mut query = String::from(concatcp!(
            "SELECT ",
            SAGA_COLUMNS,
            " FROM sagas s WHERE s.kind = 'provision' \
             AND s.state NOT IN ('completed', 'compensated', 'aborted') \
             AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id)"
        ));
        let mut n = 0;
        match filter.stuck {
            Some(true) => query.push_str(" AND s.state = 'stuck'"),
            Some(false) => query.push_str(" AND s.state <> 'stuck'"),
            None => {}
        }
        if filter.email_prefix.is_some() {
            n += 1;
            query.push_str(&format!(" AND s.email_normalized LIKE ${n} ESCAPE '\\'"));
        }
        if after.is_some() {
            query.push_str(&format!(
                " AND (s.started_at > ${} OR (s.started_at = ${} AND s.id > ${}))",
                n + 1,
                n + 2,
                n + 3
            ));
            n += 3;
        }
        query.push_str(&format!(" ORDER BY s.started_at, s.id LIMIT ${}", n + 1));
        let mut q = sql(&query);
        if let Some(prefix) = &filter.email_prefix {
            q = q.bind(like_prefix(prefix));
        }
        if let Some((t, id)) = after {
            q = q.bind(DbTime::new(t)).bind(DbTime::new(t)).bind(DbId(id));
        }
        let rows = q.bind(limit.max(0)).fetch_all(self.db()).await.map_err(map_err)?;
        records(rows)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME))]
    async fn list_recent(&self, limit: i64) -> Result<Vec<SagaRecord>, StoreError> {
        let rows = sql(concatcp!(
            "SELECT ",
            SAGA_COLUMNS,
            " FROM sagas ORDER BY started_at DESC, id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.db())
        .await
        .map_err(map_err)?;
        records(rows)
    }

    #[tracing::instrument(skip_all)]
    async fn list_for_email(&self, email_normalized: &str) -> Result<Vec<SagaRecord>, StoreError> {
        let rows = sql(concatcp!(
            "SELECT ",
            SAGA_COLUMNS,
            " FROM sagas WHERE email_normalized = $1 ORDER BY started_at, id"
        ))
        .bind(email_normalized)
        .fetch_all(self.db())
        .await
        .map_err(map_err)?;
        records(rows)
    }
}
