//! Removing an admin in both systems (the removal saga) and revoking unfinished provisionings.

use super::*;

impl Provisioner {
    /// Removes an admin from both systems (revoking the invitation if it was never accepted).
    ///
    /// Refuses to remove the last active admin ([`Error::LastAdmin`]). Saga: record the intent; delete
    /// `AdminInfo` + `User` (+ audit) in one transaction; `AdminDeleteUser` (a missing user counts as
    /// deleted), retried; mark the saga completed. If Cognito cannot be reached the saga stays
    /// `identity_pending_delete`, is marked `stuck` and is retried by recovery: the database no longer
    /// grants the user anything meanwhile.
    pub async fn remove_admin(&self, caller: &Caller, id: UserId, request_id: Option<&str>) -> Result<(), Error> {
        let actor = self.authorize(caller).await?;
        let record = match self.store_call(self.admins.get_admin(id)).await? {
            Some(r) => r,
            None => match self.revoke_unfinished(&actor, id, request_id).await? {
                Some(r) => r,
                None => return Ok(()),
            },
        };
        if record.user.status == UserStatus::Active && self.store_call(self.admins.count_active_admins()).await? <= 1 {
            return Err(Error::LastAdmin);
        }
        let now = self.now();
        let saga = SagaRecord {
            id: Uuid::new_v4(),
            kind: SagaKind::Remove,
            actor: actor.clone(),
            email: record.user.email.clone(),
            email_normalized: record.user.email_normalized.clone(),
            user_id: record.user.id,
            cognito_username: record.user.cognito_username.clone(),
            cognito_sub: Some(record.user.cognito_sub.clone()),
            identity_created_by_saga: true,
            invite_delivered: record.admin_info.invite_delivered,
            state: SagaState::Started,
            attempts: 0,
            last_error: None,
            request_id: request_id.map(str::to_string),
            started_at: now,
            updated_at: now,
            owner: Some(self.new_owner()),
            lease_expires_at: Some(now + self.settings.lease_chrono()),
        };
        let saga = match self.retry(|| self.store_call(self.sagas.begin(saga.clone()))).await {
            Ok(s) => s,
            Err(StoreError::SagaInFlight) => return Err(Error::AdminExists),
            Err(e) => return Err(e.into()),
        };
        self.with_lease(&saga, self.remove_steps(&saga, &actor, &record, request_id))
            .await
    }

    async fn remove_steps(
        &self,
        saga: &SagaRecord,
        actor: &Actor,
        record: &AdminRecord,
        request_id: Option<&str>,
    ) -> Result<(), Error> {
        let id = record.user.id;
        let audit = self.audit(
            actor,
            AuditAction::DeleteAdmin,
            &record.user.email_normalized,
            "success",
            request_id,
        );
        match self
            .retry(|| self.store_call(self.admins.delete_admin(id, audit.clone(), Some(saga.id))))
            .await
        {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => {
                // Did the delete land despite the error? Only a definite "gone" lets Cognito be touched.
                match self.store_call(self.admins.get_admin(id)).await {
                    Ok(None) => {}
                    Ok(Some(_)) => {
                        let _ = self.set_state(saga, SagaState::Aborted, Some(e.to_string())).await;
                        return Err(e.into());
                    }
                    Err(read_err) => {
                        tracing::error!(saga_id = %saga.id, error = %read_err, "cannot tell whether the admin was deleted; leaving the removal to recovery");
                        self.release_lease(saga).await;
                        return Err(Error::SagaStuck { saga_id: saga.id });
                    }
                }
            }
        }
        self.finish_remove(saga).await
    }

    /// `DELETE` of a line that has no records yet: a provisioning still running (refused), or one that
    /// was interrupted or is stuck (recovered now: finished or undone). Returns the records when recovery
    /// finished the provisioning (the caller then removes the admin), `None` when nothing is left.
    pub(super) async fn revoke_unfinished(
        &self,
        actor: &Actor,
        id: UserId,
        request_id: Option<&str>,
    ) -> Result<Option<AdminRecord>, Error> {
        let pending = self.unfinished_provision_of(id).await?.ok_or(Error::NotFound)?;
        // Take the saga over only if no live owner holds its lease (a provisioning still running).
        let now = self.now();
        let owner = self.new_owner();
        let saga = self
            .store_call(
                self.sagas
                    .claim_expired(&owner, now, now + self.settings.lease_chrono(), Some(pending.id), 1),
            )
            .await?
            .into_iter()
            .next()
            .ok_or(Error::ProvisioningInProgress)?;
        let end = self.with_lease(&saga, self.recover_provision(&saga)).await;
        if !end.is_terminal() {
            self.release_lease(&saga).await;
        }
        if let Some(record) = self.store_call(self.admins.get_admin(id)).await? {
            return Ok(Some(record));
        }
        if !end.is_terminal() {
            return Err(Error::SagaStuck { saga_id: saga.id });
        }
        let audit = self.audit(
            actor,
            AuditAction::DeleteAdmin,
            &saga.email_normalized,
            "success: provisioning undone",
            request_id,
        );
        let _ = self.store_call(self.admins.append_audit(audit)).await;
        Ok(None)
    }

    pub(super) async fn finish_remove(&self, saga: &SagaRecord) -> Result<(), Error> {
        match self
            .retry(|| {
                self.idp_call(
                    idp_op::ADMIN_DELETE_USER,
                    self.idp.admin_delete_user(&saga.cognito_username),
                )
            })
            .await
        {
            Ok(()) | Err(IdpError::UserNotFound) => {
                let _ = self.set_state(saga, SagaState::Completed, None).await;
                Ok(())
            }
            Err(e) => {
                tracing::error!(saga_id = %saga.id, error = %e, "could not delete the Cognito user; saga is stuck and will be retried");
                let _ = self.set_state(saga, SagaState::Stuck, Some(e.to_string())).await;
                self.release_lease(saga).await;
                Err(Error::SagaStuck { saga_id: saga.id })
            }
        }
    }
}
