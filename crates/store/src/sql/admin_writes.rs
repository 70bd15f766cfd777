//! [`AdminWrites`]: every change of a stored admin, each in one write transaction with its audit entry,
//! its lifecycle event and (where given) its saga's step.

use super::{admin_by_id, advance_saga, advance_saga_linking, insert_audit, insert_event, sql, Backend, SqlStore};
use crate::error::{is_foreign_key_violation, map_err, unique_violation, Unique};
use crate::events;
use crate::types::{DbId, DbTime};
use admin_provisioner_core::domain::{AdminRecord, Role, UserId};
use admin_provisioner_core::store::{AdminWrites, AuditEntry, CredentialsReset, NewAdmin, SagaState, StoreError};
use chrono::{DateTime, Utc};
use const_format::concatcp;
use uuid::Uuid;

impl<B: Backend> SqlStore<B> {
    /// One transaction of `insert_admin`; see the trait's docs. `Ok(None)`: a concurrent call inserted
    /// the same user id first, so try again (the idempotent path will find its row).
    async fn insert_admin_once(
        &self,
        admin: &NewAdmin,
        audit: &AuditEntry,
        complete_saga: Option<Uuid>,
    ) -> Result<Option<AdminRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = self.now();

        if let Some(existing) = admin_by_id::<B>(&mut tx, admin.id).await? {
            if existing.user.cognito_username != admin.cognito_username {
                return Err(StoreError::Other(format!(
                    "user id {} already belongs to another admin",
                    admin.id
                )));
            }
            if let Some(saga) = complete_saga {
                advance_saga_linking::<B>(&mut tx, saga, SagaState::Completed, now, Some(admin)).await?;
            }
            tx.commit().await.map_err(map_err)?;
            return Ok(Some(existing));
        }

        let inserted = sql(
            "INSERT INTO users (id, email, email_normalized, cognito_username, cognito_sub, status, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'invited', $6, $6)",
        )
        .bind(DbId::from(admin.id))
        .bind(&admin.email)
        .bind(&admin.email_normalized)
        .bind(&admin.cognito_username)
        .bind(&admin.cognito_sub)
        .bind(now)
        .execute(B::exec(&mut tx))
        .await;
        if let Err(e) = inserted {
            match unique_violation(&e) {
                Some(Unique::UserId) => return Ok(None),
                // When both the e-mail and the Cognito user are taken, the e-mail wins, whichever index
                // the database happened to check first (SQLite checks the newest first).
                Some(Unique::CognitoUsername | Unique::CognitoSub) => {
                    drop(tx);
                    let email_taken: Option<i32> = sql("SELECT 1 FROM users WHERE email_normalized = $1")
                        .bind(&admin.email_normalized)
                        .fetch_optional_scalar(self.db())
                        .await
                        .map_err(map_err)?;
                    if email_taken.is_some() {
                        return Err(StoreError::EmailTaken);
                    }
                    return Err(StoreError::CognitoUserTaken);
                }
                _ => return Err(map_err(e)),
            }
        }

        let invited_at = DbTime::new(admin.invited_at);
        sql(
            "INSERT INTO admin_info (user_id, invited_by, invited_at, invite_expires_at, invites_sent, \
             last_invite_sent_at, invite_delivered, accepted_at, role) \
             VALUES ($1, $2, $3, $4, 1, $3, $5, NULL, $6)",
        )
        .bind(DbId::from(admin.id))
        .bind(admin.invited_by.map(DbId::from))
        .bind(invited_at)
        .bind(DbTime::new(admin.invite_expires_at))
        .bind(admin.invite_delivered)
        .bind(admin.role.as_str())
        .execute(B::exec(&mut tx))
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                StoreError::Other("the inviting admin does not exist".to_string())
            } else {
                map_err(e)
            }
        })?;

        insert_audit::<B>(&mut tx, audit).await?;
        if let Some(saga) = complete_saga {
            // A SCIM create: the SCIM attributes its intent carries, in the same transaction (the unique
            // index on `users.scim_user_name` refuses a userName another admin holds).
            sql("UPDATE users SET \
                 scim_user_name = (SELECT s.scim_user_name FROM sagas s WHERE s.id = $2), \
                 external_id = (SELECT s.scim_external_id FROM sagas s WHERE s.id = $2), \
                 scim_profile = (SELECT s.scim_profile FROM sagas s WHERE s.id = $2) \
                 WHERE id = $1 AND EXISTS \
                 (SELECT 1 FROM sagas s WHERE s.id = $2 AND s.scim_user_name IS NOT NULL)")
            .bind(DbId::from(admin.id))
            .bind(DbId(saga))
            .execute(B::exec(&mut tx))
            .await
            .map_err(map_err)?;
            advance_saga_linking::<B>(&mut tx, saga, SagaState::Completed, now, Some(admin)).await?;
        }
        let record = admin_by_id::<B>(&mut tx, admin.id)
            .await?
            .ok_or_else(|| StoreError::Other("inserted admin vanished".to_string()))?;
        insert_event::<B>(&mut tx, events::ADMIN_INVITED, &record, audit, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(record))
    }

    /// The last-owner guard (issue 21): refuses with [`StoreError::LastOwner`] a change that takes admin
    /// `id` out of the active owners (demote, disable, remove) when they are the last one. Called inside
    /// the change's transaction, under `lock_admin_set` (the last-admin guard's lock), so two owners
    /// acting on each other at the same instant cannot both pass.
    async fn guard_last_owner(conn: &mut B::Connection, id: UserId) -> Result<(), StoreError> {
        const ACTIVE_OWNERS: &str = "SELECT COUNT(*) FROM users u JOIN admin_info a ON a.user_id = u.id \
             WHERE a.role = 'owner' AND u.status = 'active' AND u.disabled_at IS NULL";
        let is_active_owner: i64 = sql(concatcp!(ACTIVE_OWNERS, " AND u.id = $1"))
            .bind(DbId::from(id))
            .fetch_one_scalar(B::exec(&mut *conn))
            .await
            .map_err(map_err)?;
        if is_active_owner > 0 {
            let owners: i64 = sql(ACTIVE_OWNERS)
                .fetch_one_scalar(B::exec(&mut *conn))
                .await
                .map_err(map_err)?;
            if owners <= 1 {
                return Err(StoreError::LastOwner);
            }
        }
        Ok(())
    }

    /// How many admins are active and enabled, counted on `conn` (inside the caller's transaction).
    async fn active_admins(conn: &mut B::Connection) -> Result<i64, StoreError> {
        sql("SELECT COUNT(*) FROM users WHERE status = 'active' AND disabled_at IS NULL")
            .fetch_one_scalar(B::exec(conn))
            .await
            .map_err(map_err)
    }
}

#[async_trait::async_trait]
impl<B: Backend> AdminWrites for SqlStore<B> {
    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, user_id = %admin.id, saga_id = ?complete_saga))]
    async fn insert_admin(
        &self,
        admin: NewAdmin,
        audit: AuditEntry,
        complete_saga: Option<Uuid>,
    ) -> Result<AdminRecord, StoreError> {
        // A concurrent call with the same id loses on the primary key; its second attempt then finds the
        // winner's row and takes the idempotent path.
        for _ in 0..2 {
            if let Some(record) = self.insert_admin_once(&admin, &audit, complete_saga).await? {
                return Ok(record);
            }
        }
        Err(StoreError::Other(format!(
            "user id {} is being inserted concurrently",
            admin.id
        )))
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, user_id = %id))]
    async fn mark_accepted(&self, id: UserId, at: DateTime<Utc>, audit: AuditEntry) -> Result<AdminRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let at = DbTime::new(at);
        let changed = sql("UPDATE admin_info SET accepted_at = COALESCE(accepted_at, $2) WHERE user_id = $1")
            .bind(DbId::from(id))
            .bind(at)
            .execute(B::exec(&mut tx))
            .await
            .map_err(map_err)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        // Only the change from `invited` is an activation (and an event); a repeat is a no-op.
        let activated = sql("UPDATE users SET status = 'active', updated_at = $2 WHERE id = $1 AND status <> 'active'")
            .bind(DbId::from(id))
            .bind(at)
            .execute(B::exec(&mut tx))
            .await
            .map_err(map_err)?
            == 1;
        insert_audit::<B>(&mut tx, &audit).await?;
        let record = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        if activated {
            insert_event::<B>(&mut tx, events::ADMIN_ACTIVATED, &record, &audit, self.now()).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, user_id = %id, delivered = delivered))]
    async fn record_invite_sent(
        &self,
        id: UserId,
        sent_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        delivered: bool,
        audit: AuditEntry,
    ) -> Result<AdminRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let changed = sql(
            "UPDATE admin_info SET invites_sent = invites_sent + 1, last_invite_sent_at = $2, \
             invite_expires_at = $3, invite_delivered = $4 WHERE user_id = $1",
        )
        .bind(DbId::from(id))
        .bind(DbTime::new(sent_at))
        .bind(DbTime::new(expires_at))
        .bind(delivered)
        .execute(B::exec(&mut tx))
        .await
        .map_err(map_err)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit::<B>(&mut tx, &audit).await?;
        let record = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        insert_event::<B>(&mut tx, events::ADMIN_INVITE_RESENT, &record, &audit, self.now()).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, user_id = %id, saga_id = ?saga))]
    async fn delete_admin(&self, id: UserId, audit: AuditEntry, saga: Option<Uuid>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        B::lock_admin_set(&mut tx).await.map_err(map_err)?;
        // Never remove the last active admin (checked inside the transaction, under the lock).
        let status: Option<String> = sql("SELECT status FROM users WHERE id = $1 AND disabled_at IS NULL")
            .bind(DbId::from(id))
            .fetch_optional_scalar(B::exec(&mut tx))
            .await
            .map_err(map_err)?;
        if status.as_deref() == Some("active") && Self::active_admins(&mut tx).await? <= 1 {
            return Err(StoreError::LastAdmin);
        }
        Self::guard_last_owner(&mut tx, id).await?;
        // The records as they were, for the `admin.removed` event.
        let removed = admin_by_id::<B>(&mut tx, id).await?;
        let info = sql("DELETE FROM admin_info WHERE user_id = $1")
            .bind(DbId::from(id))
            .execute(B::exec(&mut tx))
            .await
            .map_err(map_err)?;
        // Other admins' `invited_by` pointing here become NULL (ON DELETE SET NULL).
        let user = sql("DELETE FROM users WHERE id = $1")
            .bind(DbId::from(id))
            .execute(B::exec(&mut tx))
            .await
            .map_err(map_err)?;
        if info == 0 && user == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit::<B>(&mut tx, &audit).await?;
        if let Some(saga) = saga {
            advance_saga::<B>(&mut tx, saga, SagaState::IdentityPendingDelete, self.now()).await?;
        }
        if let Some(removed) = &removed {
            insert_event::<B>(&mut tx, events::ADMIN_REMOVED, removed, &audit, self.now()).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, user_id = %id, disable = disabled_at.is_some()))]
    async fn set_admin_disabled(
        &self,
        id: UserId,
        disabled_at: Option<DateTime<Utc>>,
        audit: AuditEntry,
        saga: Option<(Uuid, SagaState)>,
    ) -> Result<AdminRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        B::lock_admin_set(&mut tx).await.map_err(map_err)?;
        let before = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let changed = before.user.disabled_at.is_some() != disabled_at.is_some();
        if changed {
            // Never disable the last active admin (checked under the lock, like a delete).
            if disabled_at.is_some() && before.user.is_active_admin() && Self::active_admins(&mut tx).await? <= 1 {
                return Err(StoreError::LastAdmin);
            }
            if disabled_at.is_some() {
                Self::guard_last_owner(&mut tx, id).await?;
            }
            let now = self.now();
            // A disable ends the admin's sessions in the same write (never moving the epoch back); an
            // enable leaves the epoch as it is.
            let epoch = match disabled_at {
                Some(at) => before.user.sessions_valid_after.max(Some(at)),
                None => before.user.sessions_valid_after,
            };
            sql("UPDATE users SET disabled_at = $2, updated_at = $3, sessions_valid_after = $4 WHERE id = $1")
                .bind(DbId::from(id))
                .bind(disabled_at.map(DbTime::new))
                .bind(now)
                .bind(epoch.map(DbTime::new))
                .execute(B::exec(&mut tx))
                .await
                .map_err(map_err)?;
        }
        insert_audit::<B>(&mut tx, &audit).await?;
        if let Some((saga, state)) = saga {
            advance_saga::<B>(&mut tx, saga, state, self.now()).await?;
        }
        let record = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        if changed {
            let kind = if disabled_at.is_some() {
                events::ADMIN_DISABLED
            } else {
                events::ADMIN_ENABLED
            };
            insert_event::<B>(&mut tx, kind, &record, &audit, self.now()).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, user_id = %id, role = role.as_str()))]
    async fn set_admin_role(
        &self,
        id: UserId,
        role: Role,
        audit: AuditEntry,
        saga: Option<(Uuid, SagaState)>,
    ) -> Result<AdminRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        B::lock_admin_set(&mut tx).await.map_err(map_err)?;
        let before = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let previous = before.admin_info.role;
        let changed = previous != role;
        if changed {
            if previous == Role::Owner {
                Self::guard_last_owner(&mut tx, id).await?;
            }
            sql("UPDATE admin_info SET role = $2 WHERE user_id = $1")
                .bind(DbId::from(id))
                .bind(role.as_str())
                .execute(B::exec(&mut tx))
                .await
                .map_err(map_err)?;
            sql("UPDATE users SET updated_at = $2 WHERE id = $1")
                .bind(DbId::from(id))
                .bind(self.now())
                .execute(B::exec(&mut tx))
                .await
                .map_err(map_err)?;
        }
        insert_audit::<B>(&mut tx, &audit).await?;
        if let Some((saga, state)) = saga {
            advance_saga::<B>(&mut tx, saga, state, self.now()).await?;
        }
        let record = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        if changed {
            sql("INSERT INTO events (type, admin_id, email, data, occurred_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(events::ADMIN_ROLE_CHANGED)
                .bind(DbId::from(record.user.id))
                .bind(&record.user.email_normalized)
                .bind(events::role_changed_data(&record, &audit, previous))
                .bind(self.now())
                .execute(B::exec(&mut tx))
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, user_id = %id))]
    async fn end_sessions(&self, id: UserId, at: DateTime<Utc>) -> Result<AdminRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let before = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let at = DbTime::new(at);
        if before.user.sessions_valid_after.is_some_and(|e| e >= at.0) {
            // A later epoch is already stored (another replica's clock): keep it.
            return Ok(before);
        }
        sql("UPDATE users SET sessions_valid_after = $2 WHERE id = $1")
            .bind(DbId::from(id))
            .bind(at)
            .execute(B::exec(&mut tx))
            .await
            .map_err(map_err)?;
        let record = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, user_id = %id))]
    async fn record_credentials_reset(
        &self,
        id: UserId,
        reset: CredentialsReset,
        at: DateTime<Utc>,
        audit: AuditEntry,
        saga: Option<(Uuid, SagaState)>,
    ) -> Result<AdminRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let before = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let at = DbTime::new(at);
        if before.user.sessions_valid_after.is_none_or(|e| e < at.0) {
            sql("UPDATE users SET sessions_valid_after = $2 WHERE id = $1")
                .bind(DbId::from(id))
                .bind(at)
                .execute(B::exec(&mut tx))
                .await
                .map_err(map_err)?;
        }
        if reset == CredentialsReset::Mfa {
            sql("UPDATE users SET mfa_enrolled_at = NULL, updated_at = $2 WHERE id = $1")
                .bind(DbId::from(id))
                .bind(self.now())
                .execute(B::exec(&mut tx))
                .await
                .map_err(map_err)?;
        }
        insert_audit::<B>(&mut tx, &audit).await?;
        if let Some((saga, state)) = saga {
            advance_saga::<B>(&mut tx, saga, state, self.now()).await?;
        }
        let record = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let event = match reset {
            CredentialsReset::Password => Some(events::ADMIN_PASSWORD_RESET),
            CredentialsReset::Mfa => Some(events::ADMIN_MFA_RESET),
            CredentialsReset::SignOut => None,
        };
        if let Some(kind) = event {
            insert_event::<B>(&mut tx, kind, &record, &audit, self.now()).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, user_id = %id))]
    async fn set_mfa_enrolled(&self, id: UserId, at: Option<DateTime<Utc>>) -> Result<AdminRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let before = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        if at.is_some() && before.user.mfa_enrolled_at.is_some() {
            // Already enrolled: the first time is kept.
            return Ok(before);
        }
        sql("UPDATE users SET mfa_enrolled_at = $2 WHERE id = $1")
            .bind(DbId::from(id))
            .bind(at.map(DbTime::new))
            .execute(B::exec(&mut tx))
            .await
            .map_err(map_err)?;
        let record = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(db = B::TRACE_NAME, user_id = %id))]
    async fn set_scim_attributes(
        &self,
        id: UserId,
        external_id: Option<String>,
        user_name: Option<String>,
        scim_profile: Option<String>,
    ) -> Result<AdminRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let changed = sql(
            "UPDATE users SET external_id = $2, scim_user_name = $3, scim_profile = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(DbId::from(id))
        .bind(&external_id)
        .bind(&user_name)
        .bind(&scim_profile)
        .bind(self.now())
        .execute(B::exec(&mut tx))
        .await
        .map_err(map_err)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        let record = admin_by_id::<B>(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }
}
