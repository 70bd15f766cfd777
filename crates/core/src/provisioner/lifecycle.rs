//! Disabling and enabling an admin in both systems: the disable and enable sagas.
//!
//! Written in the style of the removal saga (`removal.rs`): a saga-log row before the first side effect,
//! each step's completion recorded in the transaction of the step where there is one, and an undo that
//! puts both systems back as they were.
//!
//! * **Disable** — (1) database: `users.disabled_at` set, audit, `admin.disabled`, saga →
//!   `identity_updating`, one transaction (from here the admin is refused on every request: authorization
//!   reads the database); (2) Cognito `AdminDisableUser`; saga → `completed`. Undo: `AdminEnableUser`
//!   (in case the disable landed unseen), then `disabled_at` cleared (`admin.enabled`), saga →
//!   `compensated`.
//! * **Enable** — the mirror, so that the database grants nothing before Cognito agrees: (1) saga →
//!   `identity_updating`; Cognito `AdminEnableUser`; (2) database: `disabled_at` cleared, audit,
//!   `admin.enabled`, saga → `completed`, one transaction. Undo: `AdminDisableUser`, saga → `compensated`
//!   (the database was never changed).
//!
//! Recovery: `started` → `aborted` (no side effect yet); `identity_updating` → rolled forward (redo the
//! remaining steps; every step is idempotent), undone if that fails for good; `compensating` / `stuck` →
//! the undo is finished. An undo that cannot finish leaves the saga `stuck` for recovery and operators.

use super::*;

/// Which way a lifecycle saga goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Disable,
    Enable,
}

impl Direction {
    fn of(kind: SagaKind) -> Option<Self> {
        match kind {
            SagaKind::Disable => Some(Direction::Disable),
            SagaKind::Enable => Some(Direction::Enable),
            SagaKind::Provision | SagaKind::Remove => None,
        }
    }
    fn kind(self) -> SagaKind {
        match self {
            Direction::Disable => SagaKind::Disable,
            Direction::Enable => SagaKind::Enable,
        }
    }
    fn action(self) -> AuditAction {
        match self {
            Direction::Disable => AuditAction::DisableAdmin,
            Direction::Enable => AuditAction::EnableAdmin,
        }
    }
}

impl Provisioner {
    /// Disables an admin in both systems: they can no longer log in (Cognito `AdminDisableUser`) and
    /// every API call with a token they already hold is refused at once (`users.disabled_at`, read by
    /// [`Provisioner::authorize`] on every request).
    ///
    /// Idempotent: an admin already disabled is returned unchanged. Errors: [`Error::Forbidden`],
    /// [`Error::NotFound`], [`Error::LastAdmin`] (the last active admin cannot be disabled),
    /// [`Error::OperationInProgress`] (another saga holds this admin), identity-provider and database
    /// errors after the saga undid its work, [`Error::SagaStuck`] when the undo itself could not finish.
    pub async fn disable_admin(
        &self,
        caller: &Caller,
        id: UserId,
        request_id: Option<&str>,
    ) -> Result<AdminRecord, Error> {
        self.run_lifecycle(caller, id, Direction::Disable, request_id).await
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
        self.run_lifecycle(caller, id, Direction::Enable, request_id).await
    }

    async fn run_lifecycle(
        &self,
        caller: &Caller,
        id: UserId,
        direction: Direction,
        request_id: Option<&str>,
    ) -> Result<AdminRecord, Error> {
        let actor = self.authorize(caller).await?;
        let record = self
            .store_call(self.admins.get_admin(id))
            .await?
            .ok_or(Error::NotFound)?;
        let already = match direction {
            Direction::Disable => record.user.is_disabled(),
            Direction::Enable => !record.user.is_disabled(),
        };
        if already {
            return Ok(record);
        }
        if direction == Direction::Disable
            && record.user.is_active_admin()
            && self.store_call(self.admins.count_active_admins()).await? <= 1
        {
            return Err(Error::LastAdmin);
        }
        let now = self.now();
        let saga = SagaRecord {
            id: Uuid::new_v4(),
            kind: direction.kind(),
            actor: actor.clone(),
            email: record.user.email.clone(),
            email_normalized: record.user.email_normalized.clone(),
            user_id: record.user.id,
            cognito_username: record.user.cognito_username.clone(),
            cognito_sub: Some(record.user.cognito_sub.clone()),
            identity_created_by_saga: false,
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
            Err(StoreError::SagaInFlight) => return Err(Error::OperationInProgress),
            Err(e) => return Err(e.into()),
        };
        let result = self
            .with_lease(&saga, self.lifecycle_forward(&saga, direction, false))
            .await;
        if let Err(e) = &result {
            tracing::warn!(saga_id = %saga.id, code = e.code(), error = %e, kind = direction.kind().as_str(), "disable/enable failed");
            let audit = self.audit(
                &actor,
                direction.action(),
                &record.user.email_normalized,
                &format!("failure: {}", e.code()),
                request_id,
            );
            let _ = self.store_call(self.admins.append_audit(audit)).await;
        }
        result
    }

    /// The forward steps from wherever `saga` is (`started`, or `identity_updating` when `resuming`).
    async fn lifecycle_forward(
        &self,
        saga: &SagaRecord,
        direction: Direction,
        resuming: bool,
    ) -> Result<AdminRecord, Error> {
        let id = saga.user_id;
        let audit = self.audit(
            &saga.actor,
            direction.action(),
            &saga.email_normalized,
            "success",
            saga.request_id.as_deref(),
        );
        match direction {
            Direction::Disable => {
                if !resuming {
                    // Step 1: the database, with the saga's progress in the same transaction.
                    let step = self
                        .retry(|| {
                            self.store_call(self.admins.set_admin_disabled(
                                id,
                                Some(self.now()),
                                audit.clone(),
                                Some((saga.id, SagaState::IdentityUpdating)),
                            ))
                        })
                        .await;
                    if let Err(e) = step {
                        return self.first_step_failed(saga, e).await;
                    }
                }
                // Step 2: Cognito.
                let disabled = self
                    .retry(|| {
                        self.idp_call(
                            idp_op::ADMIN_DISABLE_USER,
                            self.idp.admin_disable_user(&saga.cognito_username),
                        )
                    })
                    .await;
                match disabled {
                    Ok(()) => {
                        // A lost write here leaves the saga `identity_updating`: recovery redoes the
                        // (idempotent) Cognito call and completes it.
                        let _ = self.set_state(saga, SagaState::Completed, None).await;
                    }
                    Err(e) => return Err(self.lifecycle_undo(saga, direction, admin_call_error(e)).await),
                }
            }
            Direction::Enable => {
                if !resuming {
                    if let Err(e) = self.set_state(saga, SagaState::IdentityUpdating, None).await {
                        return self.first_step_failed(saga, e).await;
                    }
                }
                // Step 1: Cognito.
                let enabled = self
                    .retry(|| {
                        self.idp_call(
                            idp_op::ADMIN_ENABLE_USER,
                            self.idp.admin_enable_user(&saga.cognito_username),
                        )
                    })
                    .await;
                if let Err(e) = enabled {
                    return Err(self.lifecycle_undo(saga, direction, admin_call_error(e)).await);
                }
                // Step 2: the database, completing the saga in the same transaction.
                let step = self
                    .retry(|| {
                        self.store_call(self.admins.set_admin_disabled(
                            id,
                            None,
                            audit.clone(),
                            Some((saga.id, SagaState::Completed)),
                        ))
                    })
                    .await;
                if let Err(e) = step {
                    // Did it land despite the error? Only a definite "still disabled" is undone.
                    match self.store_call(self.admins.get_admin(id)).await {
                        Ok(Some(r)) if !r.user.is_disabled() => {
                            let _ = self.set_state(saga, SagaState::Completed, None).await;
                        }
                        Ok(_) => return Err(self.lifecycle_undo(saga, direction, e.into()).await),
                        Err(read_err) => {
                            tracing::error!(saga_id = %saga.id, error = %read_err, "cannot tell whether the admin was enabled; leaving the saga to recovery");
                            self.release_lease(saga).await;
                            return Err(Error::SagaStuck { saga_id: saga.id });
                        }
                    }
                }
            }
        }
        self.store_call(self.admins.get_admin(id)).await?.ok_or(Error::NotFound)
    }

    /// The first side effect failed: if the saga log shows it landed anyway, go on (the caller's next
    /// step); otherwise abort the saga (nothing was changed) and return the error.
    async fn first_step_failed(&self, saga: &SagaRecord, e: StoreError) -> Result<AdminRecord, Error> {
        let direction = Direction::of(saga.kind).expect("a lifecycle saga");
        match self.store_call(self.sagas.get(saga.id)).await {
            Ok(Some(s)) if s.state == SagaState::IdentityUpdating => {
                Box::pin(self.lifecycle_forward(saga, direction, true)).await
            }
            Ok(_) => {
                let why = e.to_string();
                let _ = self.set_state(saga, SagaState::Aborted, Some(why)).await;
                Err(e.into())
            }
            Err(read_err) => {
                tracing::error!(saga_id = %saga.id, error = %read_err, "cannot tell whether the first step landed; leaving the saga to recovery");
                self.release_lease(saga).await;
                Err(Error::SagaStuck { saga_id: saga.id })
            }
        }
    }

    /// Puts both systems back as they were before the saga and returns the error to report: `cause` once
    /// the undo finished, [`Error::SagaStuck`] when it could not (the saga is then `stuck`, retried by
    /// recovery).
    async fn lifecycle_undo(&self, saga: &SagaRecord, direction: Direction, cause: Error) -> Error {
        let _ = self
            .set_state(saga, SagaState::Compensating, Some(cause.to_string()))
            .await;
        match self.lifecycle_undo_steps(saga, direction).await {
            Ok(()) => cause,
            Err(e) => {
                tracing::error!(saga_id = %saga.id, error = %e, "could not undo the disable/enable; saga is stuck and will be retried");
                let _ = self.set_state(saga, SagaState::Stuck, Some(e)).await;
                self.release_lease(saga).await;
                Error::SagaStuck { saga_id: saga.id }
            }
        }
    }

    async fn lifecycle_undo_steps(&self, saga: &SagaRecord, direction: Direction) -> Result<(), String> {
        let (op, call) = match direction {
            Direction::Disable => (idp_op::ADMIN_ENABLE_USER, true),
            Direction::Enable => (idp_op::ADMIN_DISABLE_USER, false),
        };
        let restored = self
            .retry(|| async {
                if call {
                    self.idp_call(op, self.idp.admin_enable_user(&saga.cognito_username))
                        .await
                } else {
                    self.idp_call(op, self.idp.admin_disable_user(&saga.cognito_username))
                        .await
                }
            })
            .await;
        match restored {
            // A user that is gone has nothing to restore.
            Ok(()) | Err(IdpError::UserNotFound) => {}
            Err(e) => return Err(e.to_string()),
        }
        match direction {
            Direction::Disable => {
                let audit = self.audit(
                    &saga.actor,
                    AuditAction::DisableAdmin,
                    &saga.email_normalized,
                    "undone: admin enabled again",
                    saga.request_id.as_deref(),
                );
                match self
                    .retry(|| {
                        self.store_call(self.admins.set_admin_disabled(
                            saga.user_id,
                            None,
                            audit.clone(),
                            Some((saga.id, SagaState::Compensated)),
                        ))
                    })
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(StoreError::NotFound) => self
                        .set_state(saga, SagaState::Compensated, None)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Direction::Enable => self
                .set_state(saga, SagaState::Compensated, None)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }

    /// Settles an interrupted disable or enable saga (see the module docs).
    pub(super) async fn recover_lifecycle(&self, saga: &SagaRecord) -> SagaState {
        let Some(direction) = Direction::of(saga.kind) else {
            return saga.state;
        };
        match saga.state {
            SagaState::Started => {
                self.finish_state(saga, SagaState::Aborted, Some("interrupted before any side effect"))
                    .await
            }
            SagaState::IdentityUpdating => match self.lifecycle_forward(saga, direction, true).await {
                Ok(_) => self.current_state(saga).await,
                Err(_) => self.current_state(saga).await,
            },
            SagaState::Compensating | SagaState::Stuck => match self.lifecycle_undo_steps(saga, direction).await {
                Ok(()) => SagaState::Compensated,
                Err(e) => {
                    let _ = self.set_state(saga, SagaState::Stuck, Some(e)).await;
                    SagaState::Stuck
                }
            },
            other => other,
        }
    }

    async fn current_state(&self, saga: &SagaRecord) -> SagaState {
        self.store_call(self.sagas.get(saga.id))
            .await
            .ok()
            .flatten()
            .map(|s| s.state)
            .unwrap_or(saga.state)
    }
}
