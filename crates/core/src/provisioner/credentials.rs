//! Credentials reset by another admin: a password reset and an MFA reset (each a saga kind of its own on
//! the engine, `engine.rs`), and sign-out everywhere.
//!
//! * **Reset password** ([`RESET_PASSWORD`]) — (1) `reset_user`: the saga's intent is logged as
//!   `identity_updating` ("may have run"), Cognito `AdminResetUserPassword` (the user becomes
//!   `RESET_REQUIRED` and is e-mailed a code; their next sign-in answers `409 password_reset_required`);
//!   (2) `sign_out_user`: `AdminUserGlobalSignOut` (their refresh tokens are revoked); (3)
//!   `reset_records`: the admin's sessions ended in the database (the session epoch), audit
//!   `reset_password`, event `admin.password_reset` and the saga → `completed`, one transaction.
//! * **Reset MFA** ([`RESET_MFA`]) — the same shape: (1) `clear_mfa`: `AdminSetUserMFAPreference` with
//!   the software token off (the next sign-in enrols again: `MFA_SETUP` on a pool with MFA on,
//!   `mfa_enrollment_required` with `REQUIRE_MFA`); (2) `sign_out_user`; (3) `mfa_records`:
//!   `mfa_enrolled_at` cleared, sessions ended, audit `reset_mfa`, event `admin.mfa_reset`, saga →
//!   `completed`.
//!
//! A reset cannot be taken back (the old password or authenticator is gone once Cognito has answered),
//! so both sagas only go forward: the first step has no undo, a failure of a later step leaves the saga
//! `stuck` and recovery finishes it (every step is idempotent: a second `AdminResetUserPassword` mails a
//! new code that replaces the first; sign-out and clearing MFA are idempotent; the records' transaction
//! completes the saga, so it is never written twice). A refusal by Cognito before anything changed (no
//! such user, a user who cannot reset) aborts the saga and writes nothing. Recovery of a saga left in
//! `identity_updating`: `reset_user`'s probe asks `AdminGetUser` whether the user is `RESET_REQUIRED`
//! (not yet: the reset runs again); the MFA preference cannot be read through the port, so `clear_mfa`
//! always runs again.
//!
//! * **Sign out everywhere** ([`Provisioner::sign_out_admin`]) — not a saga: the database's session epoch
//!   first (every console session and API token of the admin is refused from their next request), then
//!   `AdminUserGlobalSignOut` (Cognito refuses their refresh tokens), both retried; both are idempotent,
//!   so a failure is answered and the same request repeated finishes it. Disable and remove end the
//!   sessions in their own records write (`lifecycle.rs`, `removal.rs`) and Cognito's sign-in is refused
//!   for a disabled or deleted user anyway.
//!
//! Who may do it is the permission table's (`policy.rs`): an admin or owner, on another admin or viewer;
//! only an owner on an owner; nobody on their own account (`self_action_forbidden`; one's own password is
//! reset with forgot-password, one's own sessions end with sign-out).

use super::engine::*;
use super::*;
use crate::store::CredentialsReset;

impl Provisioner {
    /// Resets admin `id`'s password (saga `reset_password`): Cognito `AdminResetUserPassword` (a code is
    /// e-mailed; their next sign-in answers [`Error::PasswordResetRequired`]), `AdminUserGlobalSignOut`,
    /// then their sessions end in the database, audited, with the event `admin.password_reset`.
    ///
    /// Errors: [`Error::Forbidden`], [`Error::RoleForbidden`], [`Error::SelfAction`], [`Error::NotFound`],
    /// [`Error::NotActive`] (the admin has not set a password yet, or is disabled: Cognito cannot reset
    /// it), [`Error::OperationInProgress`], [`Error::TooManyActions`], identity-provider and database
    /// errors (nothing changed), [`Error::SagaStuck`] (Cognito reset the password; recovery finishes the
    /// rest).
    pub async fn reset_admin_password(
        &self,
        caller: &Caller,
        id: UserId,
        request_id: Option<&str>,
    ) -> Result<AdminRecord, Error> {
        self.run_reset(caller, id, &RESET_PASSWORD, request_id).await
    }

    /// Clears admin `id`'s authenticator (saga `reset_mfa`): Cognito `AdminSetUserMFAPreference` with the
    /// software token off, `AdminUserGlobalSignOut`, then `mfa_enrolled_at` cleared and their sessions
    /// ended in the database, audited, with the event `admin.mfa_reset`. Their next sign-in enrols a new
    /// authenticator. Errors as [`Provisioner::reset_admin_password`], without `NotActive`.
    pub async fn reset_admin_mfa(
        &self,
        caller: &Caller,
        id: UserId,
        request_id: Option<&str>,
    ) -> Result<AdminRecord, Error> {
        self.run_reset(caller, id, &RESET_MFA, request_id).await
    }

    /// Signs admin `id` out everywhere: their session epoch in the database (every console session and
    /// token issued until now is refused at their next request, [`Error::SessionEnded`]), then Cognito
    /// `AdminUserGlobalSignOut` (their refresh tokens are refused), audited as `sign_out_admin`. Both
    /// writes are retried and idempotent. Errors: [`Error::Forbidden`], [`Error::RoleForbidden`],
    /// [`Error::SelfAction`], [`Error::NotFound`], [`Error::TooManyActions`],
    /// [`Error::IdentityProviderUnavailable`] (the sessions in the database did end; repeat the request),
    /// [`Error::DatabaseUnavailable`].
    pub async fn sign_out_admin(
        &self,
        caller: &Caller,
        id: UserId,
        request_id: Option<&str>,
    ) -> Result<AdminRecord, Error> {
        let actor = self.authorize(caller).await?;
        let record = self
            .retry(|| self.store_call(self.admins.get_admin(id)))
            .await?
            .ok_or(Error::NotFound)?;
        self.permit(&actor, AdminAction::SignOut, Some(&record), None).await?;
        let at = self.now();
        let audit = self.audit(
            &actor,
            AuditAction::SignOutAdmin,
            &record.user.email_normalized,
            "success",
            request_id,
        );
        let result = async {
            let updated = self
                .retry(|| {
                    self.store_call(self.admins.record_credentials_reset(
                        id,
                        CredentialsReset::SignOut,
                        at,
                        audit.clone(),
                        None,
                    ))
                })
                .await?;
            let username = &record.user.cognito_username;
            match self
                .retry(|| {
                    self.idp_call(
                        idp_op::ADMIN_USER_GLOBAL_SIGN_OUT,
                        self.idp.admin_user_global_sign_out(username),
                    )
                })
                .await
            {
                // A Cognito user that is gone has no refresh token left.
                Ok(()) | Err(IdpError::UserNotFound) => {}
                Err(e) => return Err(admin_call_error(e)),
            }
            self.wait_past_second_of(at).await;
            Ok(updated)
        }
        .await;
        if let Err(e) = &result {
            tracing::warn!(code = e.code(), error = %e, "sign-out everywhere failed");
            let audit = self.audit(
                &actor,
                AuditAction::SignOutAdmin,
                &record.user.email_normalized,
                &format!("failure: {}", e.code()),
                request_id,
            );
            let _ = self.store_call(self.admins.append_audit(audit)).await;
        }
        result
    }

    async fn run_reset(
        &self,
        caller: &Caller,
        id: UserId,
        def: &'static SagaDef<ResetData>,
        request_id: Option<&str>,
    ) -> Result<AdminRecord, Error> {
        let actor = self.authorize(caller).await?;
        let (action, audit_action) = reset_actions(def.kind);
        let record = self
            .retry(|| self.store_call(self.admins.get_admin(id)))
            .await?
            .ok_or(Error::NotFound)?;
        self.permit(&actor, action, Some(&record), None).await?;
        if def.kind == SagaKind::ResetPassword && !record.user.is_active_admin() {
            return Err(Error::NotActive);
        }
        let saga = self.admin_intent(def.kind, &actor, &record, request_id);
        let data = ResetData {
            actor: actor.clone(),
            request_id: request_id.map(str::to_string),
            record: None,
            stuck: false,
        };
        let result = match def.run(self, saga, data).await {
            Ok(ResetData { record: Some(r), .. }) => Ok(r),
            Ok(_) => self
                .retry(|| self.store_call(self.admins.get_admin(id)))
                .await?
                .ok_or(Error::NotFound),
            Err(Error::AdminExists) => Err(Error::OperationInProgress),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::warn!(code = e.code(), error = %e, kind = def.kind.as_str(), "credentials reset failed");
            let audit = self.audit(
                &actor,
                audit_action,
                &record.user.email_normalized,
                &format!("failure: {}", e.code()),
                request_id,
            );
            let _ = self.store_call(self.admins.append_audit(audit)).await;
        }
        result
    }
}

fn reset_actions(kind: SagaKind) -> (AdminAction, AuditAction) {
    if kind == SagaKind::ResetMfa {
        (AdminAction::ResetMfa, AuditAction::ResetMfa)
    } else {
        (AdminAction::ResetPassword, AuditAction::ResetPassword)
    }
}

// --------------------------------------------------------------------------------------------------
// The tables
// --------------------------------------------------------------------------------------------------

/// The password-reset saga: Cognito (reset, then sign-out), then the database. Forward only.
pub static RESET_PASSWORD: SagaDef<ResetData> = SagaDef {
    kind: SagaKind::ResetPassword,
    name: "reset_password",
    stuck: Direction::Forward,
    undoing: "nothing to undo: a reset password cannot be restored",
    steps: &[
        Step {
            name: "reset_user",
            doing: "resetting the Cognito user's password (a code is e-mailed)",
            begins: Some(SagaState::IdentityUpdating),
            done: SagaState::IdentityUpdating,
            logged: Logged::InAction,
            action: reset_user,
            undo: None,
            probe: Some(identity_reset),
            redo: true,
            lost: None,
            calls: &[idp_op::ADMIN_RESET_USER_PASSWORD],
        },
        SIGN_OUT_STEP,
        Step {
            name: "reset_records",
            doing: "Cognito user reset and signed out; ending the admin's sessions in the database",
            begins: None,
            done: SagaState::Completed,
            logged: Logged::InAction,
            action: reset_records,
            undo: None,
            probe: None,
            redo: true,
            lost: None,
            calls: &[crate::store::op::RECORD_CREDENTIALS_RESET],
        },
    ],
};

/// The MFA-reset saga: Cognito (MFA off, then sign-out), then the database. Forward only.
pub static RESET_MFA: SagaDef<ResetData> = SagaDef {
    kind: SagaKind::ResetMfa,
    name: "reset_mfa",
    stuck: Direction::Forward,
    undoing: "nothing to undo: a cleared authenticator cannot be restored",
    steps: &[
        Step {
            name: "clear_mfa",
            doing: "turning the Cognito user's authenticator off",
            begins: Some(SagaState::IdentityUpdating),
            done: SagaState::IdentityUpdating,
            logged: Logged::InAction,
            action: clear_mfa,
            undo: None,
            probe: Some(mfa_unknown),
            redo: true,
            lost: None,
            calls: &[idp_op::ADMIN_SET_USER_MFA_PREFERENCE],
        },
        SIGN_OUT_STEP,
        Step {
            name: "mfa_records",
            doing: "authenticator off and signed out in Cognito; clearing the enrolment in the database",
            begins: None,
            done: SagaState::Completed,
            logged: Logged::InAction,
            action: reset_records,
            undo: None,
            probe: None,
            redo: true,
            lost: None,
            calls: &[crate::store::op::RECORD_CREDENTIALS_RESET],
        },
    ],
};

/// `AdminUserGlobalSignOut`, the middle step of both sagas (no probe: recovery always runs it again).
const SIGN_OUT_STEP: Step<ResetData> = Step {
    name: "sign_out_user",
    doing: "signing the Cognito user out everywhere",
    begins: None,
    done: SagaState::IdentityUpdating,
    logged: Logged::InAction,
    action: sign_out_user,
    undo: None,
    probe: None,
    redo: true,
    lost: None,
    calls: &[idp_op::ADMIN_USER_GLOBAL_SIGN_OUT],
};

/// The reset sagas' working data.
pub struct ResetData {
    actor: Actor,
    request_id: Option<String>,
    /// The admin's records as the last step left them.
    record: Option<AdminRecord>,
    /// Recovery of a saga logged as `stuck` (the engine tracks the state of steps that log nothing in
    /// memory only, so the records step is told).
    stuck: bool,
}

impl ResetData {
    pub(super) fn recovering(saga: &SagaRecord) -> Self {
        Self {
            actor: saga.actor.clone(),
            request_id: saga.request_id.clone(),
            record: None,
            stuck: saga.state == SagaState::Stuck,
        }
    }
}

/// A Cognito refusal that certainly changed nothing (no such user, a user who cannot be reset) is
/// `Refused`; anything else may have taken effect.
fn step_error(e: IdpError) -> StepError {
    match e {
        IdpError::UserNotFound => StepError::Refused(Error::NotFound),
        IdpError::NotAuthorized(_) | IdpError::InvalidParameter(_) => StepError::Refused(Error::NotActive),
        e => StepError::Failed(admin_call_error(e)),
    }
}

/// Reset password, step 1: `AdminResetUserPassword`.
fn reset_user(cx: &mut Cx<ResetData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        let (p, saga) = (&cx.p, &cx.saga);
        p.retry(|| {
            p.idp_call(
                idp_op::ADMIN_RESET_USER_PASSWORD,
                p.idp.admin_reset_user_password(&saga.cognito_username),
            )
        })
        .await
        .map_err(step_error)?;
        Ok(SagaUpdate::default())
    })
}

/// Probe of `reset_user`: the Cognito user (the saga's, same `sub`) is `RESET_REQUIRED`.
fn identity_reset(cx: &mut Cx<ResetData>) -> StepFuture<'_, Result<Probe, Error>> {
    Box::pin(async move {
        let (p, saga) = (&cx.p, &cx.saga);
        match p
            .idp_call(idp_op::ADMIN_GET_USER, p.idp.admin_get_user(&saga.cognito_username))
            .await
        {
            Ok(u) if saga.cognito_sub.as_deref().is_some_and(|s| s != u.sub) => {
                Ok(Probe::Foreign("the Cognito user was replaced".into()))
            }
            Ok(u) if u.status.as_cognito() == "RESET_REQUIRED" => Ok(Probe::Done),
            Ok(_) => Ok(Probe::NotDone("the Cognito user is not RESET_REQUIRED".into())),
            Err(IdpError::UserNotFound) => Ok(Probe::Foreign("the Cognito user no longer exists".into())),
            Err(e) => Err(admin_call_error(e)),
        }
    })
}

/// Reset MFA, step 1: `AdminSetUserMFAPreference` with the software token off (idempotent).
fn clear_mfa(cx: &mut Cx<ResetData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        let (p, saga) = (&cx.p, &cx.saga);
        p.retry(|| {
            p.idp_call(
                idp_op::ADMIN_SET_USER_MFA_PREFERENCE,
                p.idp.admin_set_user_mfa_preference(&saga.cognito_username, false),
            )
        })
        .await
        .map_err(step_error)?;
        Ok(SagaUpdate::default())
    })
}

/// Probe of `clear_mfa`: the port cannot read a user's MFA preference, so recovery clears it again
/// (idempotent) unless the user is gone.
fn mfa_unknown(cx: &mut Cx<ResetData>) -> StepFuture<'_, Result<Probe, Error>> {
    Box::pin(async move {
        let (p, saga) = (&cx.p, &cx.saga);
        match p
            .idp_call(idp_op::ADMIN_GET_USER, p.idp.admin_get_user(&saga.cognito_username))
            .await
        {
            Ok(u) if saga.cognito_sub.as_deref().is_some_and(|s| s != u.sub) => {
                Ok(Probe::Foreign("the Cognito user was replaced".into()))
            }
            Ok(_) => Ok(Probe::NotDone(
                "the MFA preference is not readable; clearing it again (idempotent)".into(),
            )),
            Err(IdpError::UserNotFound) => Ok(Probe::Foreign("the Cognito user no longer exists".into())),
            Err(e) => Err(admin_call_error(e)),
        }
    })
}

/// Step 2 of both: `AdminUserGlobalSignOut` (idempotent).
fn sign_out_user(cx: &mut Cx<ResetData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
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

/// Step 3 of both: sessions ended (and, for an MFA reset, `mfa_enrolled_at` cleared), audit, event and
/// the saga → `completed`, one transaction. After an error the saga is read back: completed (the write
/// landed) → `Ok`; not → `Failed` (forward only: the saga is stuck and recovery writes it); unreadable
/// → `Undecided`.
fn reset_records(cx: &mut Cx<ResetData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        if cx.data.stuck {
            // Recovery resumes a stuck saga past the Cognito steps (their effects found): back to
            // `identity_updating` first, since the store never completes a saga logged as stuck.
            let p = &cx.p;
            let update = SagaUpdate {
                state: Some(SagaState::IdentityUpdating),
                expected_state: Some(SagaState::Stuck),
                ..p.owned(&cx.saga)
            };
            let id = cx.saga.id;
            match p.retry(|| p.store_call(p.sagas.update(id, update.clone()))).await {
                Ok(row) => cx.saga = row,
                // A retry whose first attempt landed.
                Err(StoreError::SagaStateChanged(ref st)) if st == SagaState::IdentityUpdating.as_str() => {}
                Err(e) => return Err(StepError::Failed(e.into())),
            }
            cx.data.stuck = false;
        }
        let (p, saga, d) = (&cx.p, &cx.saga, &cx.data);
        let (_, audit_action) = reset_actions(saga.kind);
        let reset = if saga.kind == SagaKind::ResetMfa {
            CredentialsReset::Mfa
        } else {
            CredentialsReset::Password
        };
        let audit = p.audit(
            &d.actor,
            audit_action,
            &saga.email_normalized,
            "success",
            d.request_id.as_deref(),
        );
        let at = p.now();
        let wrote = p
            .retry(|| {
                p.store_call(p.admins.record_credentials_reset(
                    saga.user_id,
                    reset,
                    at,
                    audit.clone(),
                    Some((saga.id, SagaState::Completed)),
                ))
            })
            .await;
        let record = match wrote {
            Ok(record) => record,
            // The admin's records are gone (removed meanwhile): nothing left to end.
            Err(StoreError::NotFound) => return Err(StepError::Refused(Error::NotFound)),
            Err(e) => match p.store_call(p.sagas.get(saga.id)).await {
                Ok(Some(s)) if s.state == SagaState::Completed => {
                    match p.store_call(p.admins.get_admin(saga.user_id)).await {
                        Ok(Some(r)) => r,
                        _ => return Ok(SagaUpdate::default()),
                    }
                }
                Ok(_) => return Err(StepError::Failed(e.into())),
                Err(read_err) => {
                    return Err(StepError::Undecided(format!(
                        "{e}; cannot tell whether the reset was recorded: {read_err}"
                    )))
                }
            },
        };
        cx.data.record = Some(record);
        Ok(SagaUpdate::default())
    })
}
