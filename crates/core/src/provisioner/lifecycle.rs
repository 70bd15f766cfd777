//! Disabling and enabling an admin in both systems: the disable and enable sagas, declared as step tables
//! on the saga engine (`engine.rs`), like provisioning and removal.
//!
//! * **Disable** ([`DISABLE`]) — (1) `disable_records`: `users.disabled_at` set, audit, `admin.disabled`
//!   and the saga → `identity_updating`, one transaction (from here the admin is refused on every
//!   request: authorization reads the database); undo: `disabled_at` cleared (`admin.enabled`). (2)
//!   `disable_user`: Cognito `AdminDisableUser` and `AdminUserGlobalSignOut` (both idempotent; the
//!   sign-out revokes the admin's refresh tokens), then the saga → `completed`; undo:
//!   `AdminEnableUser` (in case the disable landed unseen). The database goes first so that the admin is
//!   refused at once, whatever Cognito does.
//! * **Enable** ([`ENABLE`]) — the mirror, so that the database grants nothing before Cognito agrees:
//!   (1) `enable_user`: the saga's intent is logged as `identity_updating` ("may have run"), Cognito
//!   `AdminEnableUser`; undo:
//!   `AdminDisableUser`. (2) `enable_records`: `disabled_at` cleared, audit, `admin.enabled` and the saga
//!   → `completed`, one transaction (the point of no return).
//!
//! * **Sessions** — a disable also ends the admin's sessions in its records write (the session epoch
//!   `users.sessions_valid_after`, see [`Provisioner::authorize`]); an enable keeps the epoch, so a token
//!   issued before the latest disable stays refused after re-enable. [`Provisioner::end_sessions`] (console
//!   sign-out) moves the epoch alone. Token `iat`s have whole seconds and a token from the epoch's own
//!   second is refused, so whoever moves the epoch waits until the clock has left that second before a new
//!   sign-in can succeed: sign-out answers only then, and an enable calls `AdminEnableUser` only then (each
//!   at most one second).
//!
//! Recovery (the engine, from the tables): `started` (a disable's intent) → `aborted` (no side effect
//! yet, none started for a caller who has gone); `identity_updating` → each step's probe says whether its effect exists: found,
//! the saga goes forward (the remaining steps are idempotent); not found, what was done is undone;
//! `compensating` / `stuck` → the undos are finished (an enable whose records were written is complete).
//! An undo that cannot finish leaves the saga `stuck` for the next pass and operators.

use super::engine::*;
use super::*;

impl Provisioner {
    /// Disables an admin in both systems: they can no longer log in (Cognito `AdminDisableUser`) and
    /// every API call with a token they already hold is refused at once (`users.disabled_at`, read by
    /// [`Provisioner::authorize`] on every request).
    ///
    /// Idempotent: an admin already disabled is returned unchanged. Errors: [`Error::Forbidden`],
    /// [`Error::NotFound`], [`Error::LastAdmin`] (the last active admin cannot be disabled),
    /// [`Error::LastOwner`] (nor the last active owner), [`Error::RoleForbidden`], [`Error::SelfAction`],
    /// [`Error::OperationInProgress`] (another saga holds this admin), identity-provider and database
    /// errors after the saga undid its work, [`Error::SagaStuck`] when the undo itself could not finish.
    pub async fn disable_admin(
        &self,
        caller: &Caller,
        id: UserId,
        request_id: Option<&str>,
    ) -> Result<AdminRecord, Error> {
        self.run_lifecycle(caller, id, &DISABLE, request_id).await
    }

    /// Enables a disabled admin in both systems (Cognito `AdminEnableUser`, then `disabled_at` cleared:
    /// the admin gets back the status they had, `invited` or `active`). Idempotent; errors as for
    /// [`Provisioner::disable_admin`] (without `LastAdmin`).
    pub async fn enable_admin(
        &self,
        caller: &Caller,
        id: UserId,
        request_id: Option<&str>,
    ) -> Result<AdminRecord, Error> {
        self.run_lifecycle(caller, id, &ENABLE, request_id).await
    }

    /// Ends every session of the calling admin at once (console sign-out ends them all, on every device):
    /// the session epoch is set to now, so every token issued until now is refused by
    /// [`Provisioner::authorize`] with [`Error::SessionEnded`], whatever its expiry. Answers once the
    /// service's clock has left the current second (at most one second later), so that a sign-in right
    /// after gets a token with a later `iat` and is not caught. Store call: `end_sessions` (retried; it
    /// is idempotent and never moves the epoch back). Errors: [`Error::Forbidden`] (not an active admin:
    /// nothing to end), [`Error::SessionEnded`] (this token's session is already over),
    /// [`Error::DatabaseUnavailable`].
    pub async fn end_sessions(&self, caller: &Caller) -> Result<(), Error> {
        let Actor::Admin(id) = self.authorize(caller).await? else {
            return Err(Error::Forbidden);
        };
        let at = self.now();
        self.retry(|| self.store_call(self.admins.end_sessions(id, at))).await?;
        self.wait_past_second_of(at).await;
        Ok(())
    }

    /// Sleeps until the service's clock has entered the whole second after `epoch`'s (at most one second
    /// of real time; with a clock that is already later, not at all).
    pub(super) async fn wait_past_second_of(&self, epoch: DateTime<Utc>) {
        let next_second_ms = (epoch.timestamp() + 1) * 1000;
        let remaining_ms = next_second_ms - self.now().timestamp_millis();
        if remaining_ms > 0 {
            tokio::time::sleep(Duration::from_millis(remaining_ms.min(1000) as u64)).await;
        }
    }

    async fn run_lifecycle(
        &self,
        caller: &Caller,
        id: UserId,
        def: &'static SagaDef<LifecycleData>,
        request_id: Option<&str>,
    ) -> Result<AdminRecord, Error> {
        let actor = self.authorize(caller).await?;
        let disable = def.kind == SagaKind::Disable;
        let action = if disable {
            AdminAction::Disable
        } else {
            AdminAction::Enable
        };
        let record = self
            .retry(|| self.store_call(self.admins.get_admin(id)))
            .await?
            .ok_or(Error::NotFound)?;
        self.permit(&actor, action, Some(&record), None).await?;
        if record.user.is_disabled() == disable {
            return Ok(record);
        }
        if disable
            && record.user.is_active_admin()
            && self
                .retry(|| self.store_call(self.admins.count_active_admins()))
                .await?
                <= 1
        {
            return Err(Error::LastAdmin);
        }
        if !disable {
            // No sign-in may succeed (Cognito refuses a disabled user) within the second of the session
            // epoch: such a token would be refused (see the module docs).
            if let Some(epoch) = record.user.sessions_valid_after {
                self.wait_past_second_of(epoch).await;
            }
        }
        let saga = self.admin_intent(def.kind, &actor, &record, request_id);
        let data = LifecycleData {
            actor: actor.clone(),
            request_id: request_id.map(str::to_string),
            record: None,
        };
        let result = match def.run(self, saga, data).await {
            Ok(LifecycleData { record: Some(r), .. }) => Ok(r),
            // The last write's reply was lost but the step read its effect back (or recovery will log
            // it): the current records.
            Ok(_) => self
                .retry(|| self.store_call(self.admins.get_admin(id)))
                .await?
                .ok_or(Error::NotFound),
            // The engine's answer to a saga already in flight for this admin.
            Err(Error::AdminExists) => Err(Error::OperationInProgress),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::warn!(code = e.code(), error = %e, kind = def.kind.as_str(), "disable/enable failed");
            let audit = self.audit(
                &actor,
                lifecycle_action(def.kind),
                &record.user.email_normalized,
                &format!("failure: {}", e.code()),
                request_id,
            );
            let _ = self.store_call(self.admins.append_audit(audit)).await;
        }
        result
    }
}

fn lifecycle_action(kind: SagaKind) -> AuditAction {
    if kind == SagaKind::Disable {
        AuditAction::DisableAdmin
    } else {
        AuditAction::EnableAdmin
    }
}

// --------------------------------------------------------------------------------------------------
// The tables
// --------------------------------------------------------------------------------------------------

/// The disable saga: the database first (the admin is refused at once), then Cognito. Both steps undo.
pub static DISABLE: SagaDef<LifecycleData> = SagaDef {
    kind: SagaKind::Disable,
    name: "disable",
    stuck: Direction::Undo,
    undoing: "undoing: enabling the admin again in Cognito and the database",
    steps: &[
        Step {
            name: "disable_records",
            doing: "marking the admin disabled in the database",
            begins: None,
            done: SagaState::IdentityUpdating,
            logged: Logged::InAction,
            action: disable_records,
            undo: Some(enable_records_undo),
            probe: Some(records_disabled),
            redo: false,
            lost: None,
            calls: &[crate::store::op::SET_ADMIN_DISABLED],
        },
        Step {
            name: "disable_user",
            doing: "database marked disabled; disabling the Cognito user",
            begins: None,
            done: SagaState::Completed,
            logged: Logged::After("completed"),
            action: disable_user,
            undo: Some(enable_user_undo),
            probe: None,
            redo: true,
            lost: None,
            calls: &[idp_op::ADMIN_DISABLE_USER, idp_op::ADMIN_USER_GLOBAL_SIGN_OUT],
        },
    ],
};

/// The enable saga: Cognito first (logged as "may have run" before the call), then the database, whose
/// transaction completes the saga (the point of no return).
///
/// `enable_user` begins and ends in `identity_updating` (there is no write after its action: the next
/// step's transaction logs the saga's end); its probe, not the log, tells recovery whether it ran.
pub static ENABLE: SagaDef<LifecycleData> = SagaDef {
    kind: SagaKind::Enable,
    name: "enable",
    stuck: Direction::Undo,
    undoing: "undoing: disabling the Cognito user again",
    steps: &[
        Step {
            name: "enable_user",
            doing: "enabling the Cognito user, then clearing the database's disabled mark",
            begins: Some(SagaState::IdentityUpdating),
            done: SagaState::IdentityUpdating,
            logged: Logged::InAction,
            action: enable_user,
            undo: Some(disable_user_undo),
            probe: Some(identity_enabled),
            redo: false,
            lost: None,
            calls: &[idp_op::ADMIN_ENABLE_USER],
        },
        Step {
            name: "enable_records",
            doing: "Cognito user enabled; clearing the database's disabled mark",
            begins: None,
            done: SagaState::Completed,
            logged: Logged::InAction,
            action: enable_records,
            undo: None,
            probe: Some(records_enabled),
            redo: true,
            lost: None,
            calls: &[crate::store::op::SET_ADMIN_DISABLED],
        },
    ],
};

/// The disable / enable sagas' working data.
pub struct LifecycleData {
    actor: Actor,
    request_id: Option<String>,
    /// The admin's records as the last database step left them.
    record: Option<AdminRecord>,
}

impl LifecycleData {
    pub(super) fn recovering(saga: &SagaRecord) -> Self {
        Self {
            actor: saga.actor.clone(),
            request_id: saga.request_id.clone(),
            record: None,
        }
    }
}

/// Sets or clears `disabled_at` (with an audit row, and the saga's state in the same transaction when
/// `saga_state` is given). After an error the records are read back: the write landed (the saga's state
/// with it) → `Ok`; it certainly did not → `Refused`; unreadable → `Undecided`.
async fn write_disabled(
    cx: &mut Cx<LifecycleData>,
    disable: bool,
    outcome: &str,
    saga_state: Option<SagaState>,
) -> Result<AdminRecord, StepError> {
    let (p, saga, d) = (&cx.p, &cx.saga, &cx.data);
    let audit = p.audit(
        &d.actor,
        lifecycle_action(saga.kind),
        &saga.email_normalized,
        outcome,
        d.request_id.as_deref(),
    );
    let at = disable.then(|| p.now());
    let wrote = p
        .retry(|| {
            p.store_call(
                p.admins
                    .set_admin_disabled(saga.user_id, at, audit.clone(), saga_state.map(|s| (saga.id, s))),
            )
        })
        .await;
    match wrote {
        Ok(record) => Ok(record),
        Err(StoreError::LastAdmin) => Err(StepError::Refused(Error::LastAdmin)),
        Err(StoreError::LastOwner) => Err(StepError::Refused(Error::LastOwner)),
        Err(StoreError::NotFound) => Err(StepError::Refused(Error::NotFound)),
        Err(e) => match p.store_call(p.admins.get_admin(saga.user_id)).await {
            Ok(Some(r)) if r.user.is_disabled() == disable => Ok(r),
            Ok(_) => Err(StepError::Refused(e.into())),
            Err(read_err) => Err(StepError::Undecided(format!(
                "{e}; cannot tell whether the admin's disabled state was written: {read_err}"
            ))),
        },
    }
}

/// Disable, step 1: `disabled_at` set, audit, `admin.disabled`, saga → `identity_updating`.
fn disable_records(cx: &mut Cx<LifecycleData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        let record = write_disabled(cx, true, "success", Some(SagaState::IdentityUpdating)).await?;
        cx.data.record = Some(record);
        Ok(SagaUpdate::default())
    })
}

/// Undo of `disable_records`: `disabled_at` cleared (`admin.enabled`); a removed admin has nothing to undo.
fn enable_records_undo(cx: &mut Cx<LifecycleData>) -> StepFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        match write_disabled(cx, false, "undone: admin enabled again", None).await {
            Ok(r) => {
                cx.data.record = Some(r);
                Ok(())
            }
            Err(StepError::Refused(Error::NotFound)) => Ok(()),
            Err(StepError::Refused(e) | StepError::Failed(e)) => Err(e),
            Err(StepError::Undecided(msg)) => Err(Error::DatabaseUnavailable(msg)),
        }
    })
}

/// Probe of `disable_records`: the admin is disabled in the database.
fn records_disabled(cx: &mut Cx<LifecycleData>) -> StepFuture<'_, Result<Probe, Error>> {
    Box::pin(async move {
        Ok(match cx.p.store_call(cx.p.admins.get_admin(cx.saga.user_id)).await? {
            Some(r) if r.user.is_disabled() => {
                cx.data.record = Some(r);
                Probe::Done
            }
            Some(_) => Probe::NotDone("the admin is not disabled in the database".into()),
            None => Probe::NotDone("the admin's records are gone".into()),
        })
    })
}

/// Enable, step 2: `disabled_at` cleared, audit, `admin.enabled`, saga → `completed`.
fn enable_records(cx: &mut Cx<LifecycleData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        let record = write_disabled(cx, false, "success", Some(SagaState::Completed)).await?;
        cx.data.record = Some(record);
        Ok(SagaUpdate::default())
    })
}

/// Probe of `enable_records`: the admin is enabled in the database (its transaction completed the saga).
fn records_enabled(cx: &mut Cx<LifecycleData>) -> StepFuture<'_, Result<Probe, Error>> {
    Box::pin(async move {
        Ok(match cx.p.store_call(cx.p.admins.get_admin(cx.saga.user_id)).await? {
            Some(r) if !r.user.is_disabled() => {
                cx.data.record = Some(r);
                Probe::Done
            }
            Some(_) => Probe::NotDone("the admin is still disabled in the database".into()),
            None => Probe::NotDone("the admin's records are gone".into()),
        })
    })
}

/// `AdminDisableUser` or `AdminEnableUser` (both idempotent), retried. A missing user is `UserNotFound`.
async fn set_identity_enabled(cx: &Cx<LifecycleData>, enable: bool) -> Result<(), IdpError> {
    let (p, saga) = (&cx.p, &cx.saga);
    if enable {
        p.retry(|| {
            p.idp_call(
                idp_op::ADMIN_ENABLE_USER,
                p.idp.admin_enable_user(&saga.cognito_username),
            )
        })
        .await
    } else {
        p.retry(|| {
            p.idp_call(
                idp_op::ADMIN_DISABLE_USER,
                p.idp.admin_disable_user(&saga.cognito_username),
            )
        })
        .await
    }
}

/// Disable, step 2: `AdminDisableUser`, then `AdminUserGlobalSignOut` (both idempotent): Cognito refuses
/// the admin's refresh tokens too (moto's refresh path, unlike Cognito's, does not check `Enabled`).
fn disable_user(cx: &mut Cx<LifecycleData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        match set_identity_enabled(cx, false).await {
            Ok(()) => {}
            // No Cognito user to disable: nothing took effect.
            Err(e @ IdpError::UserNotFound) => return Err(StepError::Refused(admin_call_error(e))),
            Err(e) => return Err(StepError::Failed(admin_call_error(e))),
        }
        let (p, saga) = (&cx.p, &cx.saga);
        p.retry(|| {
            p.idp_call(
                idp_op::ADMIN_USER_GLOBAL_SIGN_OUT,
                p.idp.admin_user_global_sign_out(&saga.cognito_username),
            )
        })
        .await
        .map_err(|e| StepError::Failed(admin_call_error(e)))?;
        Ok(SagaUpdate::default())
    })
}

/// Enable, step 1: `AdminEnableUser`.
fn enable_user(cx: &mut Cx<LifecycleData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        match set_identity_enabled(cx, true).await {
            Ok(()) => Ok(SagaUpdate::default()),
            Err(e @ IdpError::UserNotFound) => Err(StepError::Refused(admin_call_error(e))),
            Err(e) => Err(StepError::Failed(admin_call_error(e))),
        }
    })
}

/// Undo of `disable_user`: `AdminEnableUser`; a user that is gone has nothing to restore.
fn enable_user_undo(cx: &mut Cx<LifecycleData>) -> StepFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        match set_identity_enabled(cx, true).await {
            Ok(()) | Err(IdpError::UserNotFound) => Ok(()),
            Err(e) => Err(admin_call_error(e)),
        }
    })
}

/// Undo of `enable_user`: `AdminDisableUser`; a user that is gone has nothing to restore.
fn disable_user_undo(cx: &mut Cx<LifecycleData>) -> StepFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        match set_identity_enabled(cx, false).await {
            Ok(()) | Err(IdpError::UserNotFound) => Ok(()),
            Err(e) => Err(admin_call_error(e)),
        }
    })
}

/// Probe of `enable_user`: the Cognito user is enabled (`AdminGetUser`'s `Enabled`). A user that is gone
/// cannot be enabled: the saga is aborted and the database keeps the admin disabled.
fn identity_enabled(cx: &mut Cx<LifecycleData>) -> StepFuture<'_, Result<Probe, Error>> {
    Box::pin(async move {
        let (p, saga) = (&cx.p, &cx.saga);
        match p
            .idp_call(idp_op::ADMIN_GET_USER, p.idp.admin_get_user(&saga.cognito_username))
            .await
        {
            Ok(u) if u.enabled => Ok(Probe::Done),
            Ok(_) => Ok(Probe::NotDone("the Cognito user is still disabled".into())),
            Err(IdpError::UserNotFound) => Ok(Probe::Foreign("the Cognito user no longer exists".into())),
            Err(e) => Err(admin_call_error(e)),
        }
    })
}
