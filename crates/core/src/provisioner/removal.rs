//! Removing an admin in both systems (the removal saga) and revoking unfinished provisionings.

use super::engine::*;
use super::*;

impl Provisioner {
    /// Removes an admin from both systems (revoking the invitation if it was never accepted).
    ///
    /// Refuses to remove the last active admin ([`Error::LastAdmin`]) and the last active owner
    /// ([`Error::LastOwner`], checked in the records' transaction); the permission table decides who may
    /// remove whom ([`Error::RoleForbidden`], [`Error::SelfAction`]). Saga: record the intent; delete
    /// `AdminInfo` + `User` (+ audit) in one transaction; `AdminDeleteUser` (a missing user counts as
    /// deleted), retried; mark the saga completed. If Cognito cannot be reached the saga stays
    /// `identity_pending_delete`, is marked `stuck` and is retried by recovery: the database no longer
    /// grants the user anything meanwhile.
    pub async fn remove_admin(&self, caller: &Caller, id: UserId, request_id: Option<&str>) -> Result<(), Error> {
        let actor = self.authorize(caller).await?;
        let record = match self.retry(|| self.store_call(self.admins.get_admin(id))).await? {
            Some(r) => {
                self.permit(&actor, AdminAction::Remove, Some(&r), None).await?;
                r
            }
            None => {
                // An unfinished provisioning: the role its saga gives is the target's.
                let gives = self.unfinished_provision_of(id).await?.and_then(|s| s.role);
                self.permit(&actor, AdminAction::Remove, None, gives).await?;
                match self.revoke_unfinished(&actor, id, request_id).await? {
                    Some(r) => r,
                    None => return Ok(()),
                }
            }
        };
        if record.user.status == UserStatus::Active
            && self
                .retry(|| self.store_call(self.admins.count_active_admins()))
                .await?
                <= 1
        {
            return Err(Error::LastAdmin);
        }
        let mut saga = self.admin_intent(SagaKind::Remove, &actor, &record, request_id);
        saga.identity_created_by_saga = true;
        let data = RemoveData {
            actor: actor.clone(),
            request_id: request_id.map(str::to_string),
        };
        REMOVE.run(self, saga, data).await.map(|_| ())
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
        let end = self.with_lease(&saga, self.recover_one(&saga)).await;
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
}

// --------------------------------------------------------------------------------------------------
// The removal saga's table
// --------------------------------------------------------------------------------------------------

/// The removal saga: the database records first (from then on the admin is granted nothing), then the
/// Cognito user. Neither can be undone: a failure after the records are gone leaves the saga `stuck` and
/// recovery finishes it.
pub static REMOVE: SagaDef<RemoveData> = SagaDef {
    kind: SagaKind::Remove,
    name: "remove",
    stuck: Direction::Forward,
    undoing: "finishing the removal (a removal is not undone once its records are gone)",
    steps: &[
        Step {
            name: "delete_records",
            doing: "removing the database records",
            begins: None,
            done: SagaState::IdentityPendingDelete,
            logged: Logged::InAction,
            action: delete_records,
            undo: None,
            probe: Some(records_gone),
            redo: true,
            lost: None,
            calls: &[crate::store::op::DELETE_ADMIN],
        },
        Step {
            name: "delete_user",
            doing: "database records removed; deleting the Cognito user",
            begins: None,
            done: SagaState::Completed,
            logged: Logged::After("completed"),
            action: delete_user,
            undo: None,
            probe: None,
            redo: true,
            lost: None,
            calls: &[idp_op::ADMIN_DELETE_USER],
        },
    ],
};

/// The removal saga's working data.
pub struct RemoveData {
    actor: Actor,
    request_id: Option<String>,
}

impl RemoveData {
    pub(super) fn recovering(saga: &SagaRecord) -> Self {
        Self {
            actor: saga.actor.clone(),
            request_id: saga.request_id.clone(),
        }
    }
}

/// `AdminInfo` + `User` (+ audit) in one transaction that also advances the saga to
/// `identity_pending_delete`. A missing admin counts as deleted; after an error only a definite "gone"
/// (read back) lets the saga go on to Cognito.
fn delete_records(cx: &mut Cx<RemoveData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        let (p, saga, d) = (&cx.p, &cx.saga, &cx.data);
        let audit = p.audit(
            &d.actor,
            AuditAction::DeleteAdmin,
            &saga.email_normalized,
            "success",
            d.request_id.as_deref(),
        );
        match p
            .retry(|| p.store_call(p.admins.delete_admin(saga.user_id, audit.clone(), Some(saga.id))))
            .await
        {
            Ok(()) | Err(StoreError::NotFound) => Ok(SagaUpdate::default()),
            Err(e) => match p.store_call(p.admins.get_admin(saga.user_id)).await {
                Ok(None) => Ok(SagaUpdate::default()),
                Ok(Some(_)) => Err(StepError::Refused(e.into())),
                Err(read_err) => Err(StepError::Undecided(format!(
                    "{e}; cannot tell whether the admin was deleted: {read_err}"
                ))),
            },
        }
    })
}

/// Probe of `delete_records`: the admin's records are gone.
fn records_gone(cx: &mut Cx<RemoveData>) -> StepFuture<'_, Result<Probe, Error>> {
    Box::pin(async move {
        Ok(match cx.p.store_call(cx.p.admins.get_admin(cx.saga.user_id)).await? {
            None => Probe::Done,
            Some(_) => Probe::NotDone("the admin's records still exist".into()),
        })
    })
}

/// `AdminDeleteUser`; a missing user counts as deleted.
fn delete_user(cx: &mut Cx<RemoveData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        let (p, saga) = (&cx.p, &cx.saga);
        match p
            .retry(|| {
                p.idp_call(
                    idp_op::ADMIN_DELETE_USER,
                    p.idp.admin_delete_user(&saga.cognito_username),
                )
            })
            .await
        {
            Ok(()) | Err(IdpError::UserNotFound) => Ok(SagaUpdate::default()),
            Err(e) => Err(StepError::Failed(admin_call_error(e))),
        }
    })
}
