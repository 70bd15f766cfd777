//! Changing an admin's role: the role-change saga (`CHANGE_ROLE`), a kind of its own on the saga engine
//! (`engine.rs`), like disable and enable.
//!
//! * **Change role** ([`CHANGE_ROLE`]) — (1) `role_records`: `admin_info.role` set, audit
//!   `change_role`, event `admin.role_changed` and the saga → `completed`, one transaction under the
//!   last-admin guard's lock; demoting the last active owner is refused there (`409 last_owner`, nothing
//!   written, the saga `aborted`). The intent logs the new role (`sagas.role`), so recovery knows what
//!   the saga was giving: a saga left `started` never wrote (the write completes the saga in its own
//!   transaction) and is aborted; the step's probe finds a role already written.
//!
//! Who may change whose role is the permission table's (`policy.rs`): an owner changes anyone's but
//! their own; an admin moves admins and viewers between `admin` and `viewer`; a viewer changes nothing.

use super::engine::*;
use super::*;

impl Provisioner {
    /// Changes admin `id`'s role to `role` (saga `change_role`). Idempotent: an admin already in `role`
    /// is returned unchanged (no saga, no event).
    ///
    /// Errors: [`Error::Forbidden`], [`Error::RoleForbidden`], [`Error::SelfAction`], [`Error::NotFound`],
    /// [`Error::LastOwner`] (the last active owner cannot be demoted), [`Error::OperationInProgress`]
    /// (another saga holds this admin), [`Error::TooManyActions`], [`Error::DatabaseUnavailable`].
    pub async fn change_role(
        &self,
        caller: &Caller,
        id: UserId,
        role: Role,
        request_id: Option<&str>,
    ) -> Result<AdminRecord, Error> {
        let actor = self.authorize(caller).await?;
        let record = self
            .retry(|| self.store_call(self.admins.get_admin(id)))
            .await?
            .ok_or(Error::NotFound)?;
        self.permit(&actor, AdminAction::ChangeRole, Some(&record), Some(role))
            .await?;
        if record.admin_info.role == role {
            return Ok(record);
        }
        let mut saga = self.admin_intent(SagaKind::ChangeRole, &actor, &record, request_id);
        saga.role = Some(role);
        let data = RoleData {
            actor: actor.clone(),
            request_id: request_id.map(str::to_string),
            record: None,
        };
        let result = match CHANGE_ROLE.run(self, saga, data).await {
            Ok(RoleData { record: Some(r), .. }) => Ok(r),
            Ok(_) => self
                .retry(|| self.store_call(self.admins.get_admin(id)))
                .await?
                .ok_or(Error::NotFound),
            Err(Error::AdminExists) => Err(Error::OperationInProgress),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::warn!(code = e.code(), error = %e, "role change failed");
            let audit = self.audit(
                &actor,
                AuditAction::ChangeRole,
                &record.user.email_normalized,
                &format!("failure: {}", e.code()),
                request_id,
            );
            let _ = self.store_call(self.admins.append_audit(audit)).await;
        }
        result
    }
}

/// The role-change saga: the database's role, in one transaction that completes the saga.
pub static CHANGE_ROLE: SagaDef<RoleData> = SagaDef {
    kind: SagaKind::ChangeRole,
    name: "change_role",
    stuck: Direction::Forward,
    undoing: "undoing: nothing was changed",
    steps: &[Step {
        name: "role_records",
        doing: "writing the new role in the database",
        begins: None,
        done: SagaState::Completed,
        logged: Logged::InAction,
        action: role_records,
        undo: None,
        probe: Some(role_written),
        redo: false,
        lost: None,
        calls: &[crate::store::op::SET_ADMIN_ROLE],
    }],
};

/// The role-change saga's working data.
pub struct RoleData {
    actor: Actor,
    request_id: Option<String>,
    /// The admin's records as the step left them.
    record: Option<AdminRecord>,
}

impl RoleData {
    pub(super) fn recovering(saga: &SagaRecord) -> Self {
        Self {
            actor: saga.actor.clone(),
            request_id: saga.request_id.clone(),
            record: None,
        }
    }
}

/// `admin_info.role` set, audit, `admin.role_changed`, saga → `completed`. After an error the records
/// are read back: the role is there (the saga completed with it) → `Ok`; it certainly is not →
/// `Refused`; unreadable → `Undecided`.
fn role_records(cx: &mut Cx<RoleData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        let (p, saga, d) = (&cx.p, &cx.saga, &cx.data);
        let role = saga
            .role
            .ok_or_else(|| StepError::Refused(Error::Internal("a role change without a role".into())))?;
        let audit = p.audit(
            &d.actor,
            AuditAction::ChangeRole,
            &saga.email_normalized,
            &format!("success: {role}"),
            d.request_id.as_deref(),
        );
        let wrote = p
            .retry(|| {
                p.store_call(p.admins.set_admin_role(
                    saga.user_id,
                    role,
                    audit.clone(),
                    Some((saga.id, SagaState::Completed)),
                ))
            })
            .await;
        let record = match wrote {
            Ok(record) => record,
            Err(e @ (StoreError::LastOwner | StoreError::NotFound)) => return Err(StepError::Refused(e.into())),
            Err(e) => match p.store_call(p.sagas.get(saga.id)).await {
                Ok(Some(s)) if s.state == SagaState::Completed => {
                    match p.store_call(p.admins.get_admin(saga.user_id)).await {
                        Ok(Some(r)) => r,
                        _ => return Ok(SagaUpdate::default()),
                    }
                }
                Ok(_) => return Err(StepError::Refused(e.into())),
                Err(read_err) => {
                    return Err(StepError::Undecided(format!(
                        "{e}; cannot tell whether the role was written: {read_err}"
                    )))
                }
            },
        };
        cx.data.record = Some(record);
        Ok(SagaUpdate::default())
    })
}

/// Probe of `role_records`: the admin has the saga's role in the database.
fn role_written(cx: &mut Cx<RoleData>) -> StepFuture<'_, Result<Probe, Error>> {
    Box::pin(async move {
        Ok(match cx.p.store_call(cx.p.admins.get_admin(cx.saga.user_id)).await? {
            Some(r) if Some(r.admin_info.role) == cx.saga.role => {
                cx.data.record = Some(r);
                Probe::Done
            }
            Some(_) => Probe::NotDone("the admin does not have the new role".into()),
            None => Probe::Foreign("the admin's records are gone".into()),
        })
    })
}
