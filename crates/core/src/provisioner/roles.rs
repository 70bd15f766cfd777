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
//! * **With roles mirrored into Cognito groups** ([`CHANGE_ROLE_GROUPS`], `COGNITO_ROLE_GROUPS=true`) —
//!   (1) `group_add`: the intent is logged as `identity_updating` ("may have run"), then
//!   `AdminAddUserToGroup` to the new role's group; undo `AdminRemoveUserFromGroup`. (2) `group_remove`:
//!   `AdminListGroupsForUser`, then `AdminRemoveUserFromGroup` from every other group of the product
//!   (never from groups of other names); undo: back into the group of the role the database still has.
//!   (3) `role_records` as above, the point of no return. A refusal there (`409 last_owner`) undoes both
//!   group steps; recovery of a saga whose records were not written undoes them too (no role change is
//!   finished for a caller who has gone), so Cognito's groups and the database move together.
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
            previous: Some(record.admin_info.role),
        };
        let result = match self.change_role_def().run(self, saga, data).await {
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

/// The role-change saga with roles mirrored into Cognito groups (see the module docs).
pub static CHANGE_ROLE_GROUPS: SagaDef<RoleData> = SagaDef {
    kind: SagaKind::ChangeRole,
    name: "change_role",
    stuck: Direction::Undo,
    undoing: "undoing: putting the Cognito user back in its former role's group",
    steps: &[
        Step {
            name: "group_add",
            doing: "adding the Cognito user to the new role's group",
            begins: Some(SagaState::IdentityUpdating),
            done: SagaState::IdentityUpdating,
            logged: Logged::InAction,
            action: group_add,
            undo: Some(group_add_undo),
            probe: Some(in_new_group),
            redo: false,
            lost: None,
            calls: &[idp_op::ADMIN_ADD_USER_TO_GROUP],
        },
        Step {
            name: "group_remove",
            doing: "removing the Cognito user from its former role's group",
            begins: None,
            done: SagaState::IdentityUpdating,
            logged: Logged::InAction,
            action: group_remove,
            undo: Some(group_remove_undo),
            probe: Some(only_in_new_group),
            redo: false,
            lost: None,
            calls: &[idp_op::ADMIN_LIST_GROUPS_FOR_USER, idp_op::ADMIN_REMOVE_USER_FROM_GROUP],
        },
        Step {
            name: "role_records",
            doing: "Cognito groups moved; writing the new role in the database",
            begins: None,
            done: SagaState::Completed,
            logged: Logged::InAction,
            action: role_records,
            undo: None,
            probe: Some(role_written),
            redo: false,
            lost: None,
            calls: &[crate::store::op::SET_ADMIN_ROLE],
        },
    ],
};

impl Provisioner {
    /// The role-change saga's table: with the group steps when roles are mirrored into groups.
    pub(super) fn change_role_def(&self) -> &'static SagaDef<RoleData> {
        if self.mirrors_role_groups() {
            &CHANGE_ROLE_GROUPS
        } else {
            &CHANGE_ROLE
        }
    }
}

/// The role-change saga's working data.
pub struct RoleData {
    actor: Actor,
    request_id: Option<String>,
    /// The admin's records as the step left them.
    record: Option<AdminRecord>,
    /// The role the admin had when the saga began (recovery reads it from the database, which keeps it
    /// until the saga's last step).
    previous: Option<Role>,
}

impl RoleData {
    pub(super) fn recovering(saga: &SagaRecord) -> Self {
        Self {
            actor: saga.actor.clone(),
            request_id: saga.request_id.clone(),
            record: None,
            previous: None,
        }
    }
}

/// The new role's group.
fn new_group(cx: &Cx<RoleData>) -> Result<String, Error> {
    let role = cx
        .saga
        .role
        .ok_or_else(|| Error::Internal("a role change without a role".into()))?;
    cx.p.role_group(role)
        .ok_or_else(|| Error::Internal("a group step while role groups are off".into()))
}

/// The role the admin had before the saga: known to the run, or the database's (the records step, the
/// last, has not written when an undo runs). `None` when the admin's records are gone.
async fn previous_role(cx: &mut Cx<RoleData>) -> Result<Option<Role>, Error> {
    if let Some(r) = cx.data.previous {
        return Ok(Some(r));
    }
    let found =
        cx.p.retry(|| cx.p.store_call(cx.p.admins.get_admin(cx.saga.user_id)))
            .await?;
    let role = found.map(|r| r.admin_info.role).filter(|r| Some(*r) != cx.saga.role);
    cx.data.previous = role;
    Ok(role)
}

fn group_call_error(e: IdpError) -> StepError {
    match e {
        // No Cognito user to move: nothing took effect. Not a 404: the admin exists, its Cognito user
        // does not (the reconciler's `orphan`).
        IdpError::UserNotFound => StepError::Refused(Error::IdentityProviderError(
            "the admin's Cognito user no longer exists (reconcile reports it as an orphan); the role was not changed"
                .into(),
        )),
        e => StepError::Failed(admin_call_error(e)),
    }
}

/// `group_add`: `AdminAddUserToGroup` to the new role's group.
fn group_add(cx: &mut Cx<RoleData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        let group = new_group(cx).map_err(StepError::Refused)?;
        cx.p.add_to_group(&cx.saga.cognito_username, &group)
            .await
            .map_err(group_call_error)?;
        Ok(SagaUpdate::default())
    })
}

/// Undo of `group_add`: out of the new role's group again.
fn group_add_undo(cx: &mut Cx<RoleData>) -> StepFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        let group = new_group(cx)?;
        match cx.p.remove_from_group(&cx.saga.cognito_username, &group).await {
            Ok(()) | Err(IdpError::UserNotFound) => Ok(()),
            Err(e) => Err(admin_call_error(e)),
        }
    })
}

/// Probe of `group_add`: the user is in the new role's group.
fn in_new_group(cx: &mut Cx<RoleData>) -> StepFuture<'_, Result<Probe, Error>> {
    Box::pin(async move {
        let group = new_group(cx)?;
        match cx.p.product_groups_of(&cx.saga.cognito_username).await {
            Ok(groups) if groups.contains(&group) => Ok(Probe::Done),
            Ok(_) => Ok(Probe::NotDone("the Cognito user is not in the new role's group".into())),
            Err(IdpError::UserNotFound) => Ok(Probe::NotDone("the Cognito user no longer exists".into())),
            Err(e) => Err(admin_call_error(e)),
        }
    })
}

/// `group_remove`: out of every other group of the product (the user's other groups are left alone).
fn group_remove(cx: &mut Cx<RoleData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        let group = new_group(cx).map_err(StepError::Refused)?;
        let username = cx.saga.cognito_username.clone();
        let current = cx.p.product_groups_of(&username).await.map_err(group_call_error)?;
        for other in current.iter().filter(|g| **g != group) {
            cx.p.remove_from_group(&username, other)
                .await
                .map_err(group_call_error)?;
        }
        Ok(SagaUpdate::default())
    })
}

/// Undo of `group_remove`: back into the group of the role the admin had.
fn group_remove_undo(cx: &mut Cx<RoleData>) -> StepFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        let Some(previous) = previous_role(cx).await? else {
            return Ok(());
        };
        let Some(group) = cx.p.role_group(previous) else {
            return Ok(());
        };
        match cx.p.add_to_group(&cx.saga.cognito_username, &group).await {
            Ok(()) | Err(IdpError::UserNotFound) => Ok(()),
            Err(e) => Err(admin_call_error(e)),
        }
    })
}

/// Probe of `group_remove`: the new role's group is the user's only group of the product.
fn only_in_new_group(cx: &mut Cx<RoleData>) -> StepFuture<'_, Result<Probe, Error>> {
    Box::pin(async move {
        let group = new_group(cx)?;
        match cx.p.product_groups_of(&cx.saga.cognito_username).await {
            Ok(groups) if groups == [group] => Ok(Probe::Done),
            Ok(groups) => Ok(Probe::NotDone(format!("the Cognito user's role groups are {groups:?}"))),
            Err(IdpError::UserNotFound) => Ok(Probe::NotDone("the Cognito user no longer exists".into())),
            Err(e) => Err(admin_call_error(e)),
        }
    })
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
