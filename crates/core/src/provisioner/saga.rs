//! The provisioning saga: forward run, compensation, ownership rule and crash recovery.

use super::*;

/// How many sagas one claim of a recovery pass takes at a time (so replicas share a backlog).
const RECOVERY_BATCH: i64 = 5;

/// The answer to [`Provisioner::retry_saga`].
#[derive(Clone, Debug, PartialEq)]
pub enum RetryOutcome {
    /// The saga was taken over and settled as far as possible now.
    Settled(RecoveryReport),
    /// The saga had already finished; nothing was done.
    AlreadyFinished(SagaState),
    /// A live owner holds the saga's lease: it is still being worked on.
    Held {
        /// The owner (`host:pid:run`).
        owner: String,
        /// Until when its lease runs (unless renewed).
        until: Option<DateTime<Utc>>,
    },
}

impl Provisioner {
    /// One recovery pass: takes over every unfinished saga whose lease has expired (a crashed or stalled
    /// owner, or a stuck saga whose owner gave it up), a few at a time by compare-and-set, and settles
    /// each under a lease of its own. A provisioning whose records exist is marked completed; one that
    /// never called Cognito is aborted; one whose own Cognito user exists is rolled forward (records
    /// written, marked active if the invitee already set a password); one with no user is compensated; an
    /// undo under way (or stuck) is finished. A removal is finished in both systems. Sagas it cannot
    /// settle yet (a system unreachable) get their lease released at the end of the pass.
    pub async fn recover_unfinished(&self) -> Result<Vec<RecoveryReport>, Error> {
        let owner = self.new_owner();
        let mut out = Vec::new();
        let mut unsettled = Vec::new();
        loop {
            let now = self.now();
            let lease_until = now + self.settings.lease_chrono();
            let batch = self
                .retry(|| self.store_call(self.sagas.claim_expired(&owner, now, lease_until, None, RECOVERY_BATCH)))
                .await?;
            if batch.is_empty() {
                break;
            }
            for saga in batch {
                let state = self.with_lease(&saga, self.recover_one(&saga)).await;
                if !state.is_terminal() {
                    unsettled.push(saga.clone());
                }
                out.push(RecoveryReport {
                    saga_id: saga.id,
                    email: saga.email.clone(),
                    state,
                });
            }
        }
        for saga in &unsettled {
            self.release_lease(saga).await;
        }
        Ok(out)
    }

    /// `admin-provisioner sagas retry ID`: settles saga `id` now, unless a live owner holds its lease.
    /// Reads and writes the saga log, and Cognito only as far as settling needs.
    pub async fn retry_saga(&self, id: Uuid) -> Result<RetryOutcome, Error> {
        let owner = self.new_owner();
        let now = self.now();
        let claimed = self
            .store_call(
                self.sagas
                    .claim_expired(&owner, now, now + self.settings.lease_chrono(), Some(id), 1),
            )
            .await?;
        let Some(saga) = claimed.into_iter().next() else {
            return match self.store_call(self.sagas.get(id)).await? {
                None => Err(Error::NotFound),
                Some(s) if s.state.is_terminal() => Ok(RetryOutcome::AlreadyFinished(s.state)),
                Some(s) => Ok(RetryOutcome::Held {
                    owner: s.owner.unwrap_or_default(),
                    until: s.lease_expires_at,
                }),
            };
        };
        let state = self.with_lease(&saga, self.recover_one(&saga)).await;
        if !state.is_terminal() {
            self.release_lease(&saga).await;
        }
        Ok(RetryOutcome::Settled(RecoveryReport {
            saga_id: saga.id,
            email: saga.email.clone(),
            state,
        }))
    }

    // ----------------------------------------------------------------------------------------------
    // Saga internals
    // ----------------------------------------------------------------------------------------------

    pub(super) async fn run_provision_saga(
        &self,
        actor: Actor,
        email: AdminEmail,
        action: AuditAction,
        request_id: Option<&str>,
    ) -> Result<ProvisionedAdmin, Error> {
        let started = Instant::now();
        let result = self.provision_inner(&actor, &email, action, request_id).await;
        let outcome = match &result {
            Ok(_) => "created",
            Err(Error::SagaStuck { .. }) => "stuck",
            Err(Error::AdminExists | Error::ForeignIdentityExists | Error::Forbidden | Error::InvalidEmail(_)) => {
                "rejected"
            }
            Err(_) => "compensated",
        };
        self.observer
            .provision_finished(outcome, started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            tracing::warn!(code = e.code(), error = %e, "provisioning failed");
            let audit = self.audit(
                &actor,
                action,
                email.normalized(),
                &format!("failure: {}", e.code()),
                request_id,
            );
            let _ = self.store_call(self.admins.append_audit(audit)).await;
        }
        result
    }

    pub(super) async fn provision_inner(
        &self,
        actor: &Actor,
        email: &AdminEmail,
        action: AuditAction,
        request_id: Option<&str>,
    ) -> Result<ProvisionedAdmin, Error> {
        if self
            .retry(|| self.store_call(self.admins.find_admin_by_email(email.normalized())))
            .await?
            .is_some()
        {
            return Err(Error::AdminExists);
        }
        let now = self.now();
        let intent = SagaRecord {
            id: Uuid::new_v4(),
            kind: SagaKind::Provision,
            actor: actor.clone(),
            email: email.as_str().to_string(),
            email_normalized: email.normalized().to_string(),
            user_id: UserId::new(),
            cognito_username: email.normalized().to_string(),
            cognito_sub: None,
            identity_created_by_saga: false,
            invite_delivered: true,
            state: SagaState::Started,
            attempts: 0,
            last_error: None,
            request_id: request_id.map(str::to_string),
            started_at: now,
            updated_at: now,
            owner: Some(self.new_owner()),
            lease_expires_at: Some(now + self.settings.lease_chrono()),
        };

        // Step 1: record the intent (and take the lease) before any side effect.
        let saga = match self.retry(|| self.store_call(self.sagas.begin(intent.clone()))).await {
            Ok(s) => s,
            Err(StoreError::SagaInFlight) => return Err(Error::AdminExists),
            Err(e) => {
                // The row may exist (a lost reply): release the e-mail. If even that fails, the saga is
                // still `started` with no side effect; recovery aborts it once the lease expires.
                let _ = self.set_state(&intent, SagaState::Aborted, Some(e.to_string())).await;
                return Err(e.into());
            }
        };
        crate::crash::point("provision.after_intent");
        self.with_lease(
            &saga,
            self.provision_steps(saga.clone(), actor, email, action, request_id),
        )
        .await
    }

    async fn provision_steps(
        &self,
        mut saga: SagaRecord,
        actor: &Actor,
        email: &AdminEmail,
        action: AuditAction,
        request_id: Option<&str>,
    ) -> Result<ProvisionedAdmin, Error> {
        // Step 2: note in the log that AdminCreateUser is about to be called. A saga still `started` after a
        // crash therefore never called Cognito, and recovery leaves any user at that username alone.
        let creating = SagaUpdate {
            state: Some(SagaState::IdentityCreating),
            expected_state: Some(SagaState::Started),
            ..self.owned(&saga)
        };
        match self
            .retry(|| self.store_call(self.sagas.update(saga.id, creating.clone())))
            .await
        {
            Ok(_) => {}
            Err(StoreError::SagaStateChanged(ref st)) if st == SagaState::IdentityCreating.as_str() => {}
            Err(e @ StoreError::LeaseLost(_)) => {
                // Nothing was created yet: the new owner aborts the saga.
                tracing::error!(saga_id = %saga.id, error = %e, "saga lease lost before any side effect");
                return Err(Error::DatabaseUnavailable(e.to_string()));
            }
            Err(e) => {
                let _ = self.set_state(&saga, SagaState::Aborted, Some(e.to_string())).await;
                return Err(e.into());
            }
        }
        saga.state = SagaState::IdentityCreating;
        crate::crash::point("provision.before_create_user");

        // Step 3: the Cognito user.
        let identity = match self.create_identity_step(&saga).await {
            Ok(identity) => identity,
            Err(err) => return self.compensate_provision(&saga, None, err).await,
        };

        crate::crash::point("provision.after_create_user");

        // Step 4: remember it in the saga log (only while this run still holds the saga).
        let update = SagaUpdate {
            state: Some(SagaState::IdentityCreated),
            cognito_username: Some(identity.user.username.clone()),
            cognito_sub: Some(identity.user.sub.clone()),
            identity_created_by_saga: Some(true),
            invite_delivered: Some(identity.invite_delivered),
            add_attempts: 1,
            ..self.owned(&saga)
        };
        match self
            .retry(|| self.store_call(self.sagas.update(saga.id, update.clone())))
            .await
        {
            Ok(_) => {}
            Err(StoreError::LeaseLost(_) | StoreError::SagaStateChanged(_)) => {
                return self.lease_lost_undo(&saga, &identity.user).await
            }
            Err(e) => return self.compensate_provision(&saga, Some(&identity.user), e.into()).await,
        }

        crate::crash::point("provision.after_identity_recorded");

        // Step 5: the database records, completing the saga in the same transaction.
        let plan = RecordPlan {
            user_id: saga.user_id,
            actor: actor.clone(),
            action,
            invite_delivered: identity.invite_delivered,
            request_id: request_id.map(str::to_string),
            saga_id: Some(saga.id),
        };
        let (admin, audit) = self.record_rows(email, &identity.user.username, &identity.user.sub, &plan);
        let err = match self
            .retry(|| self.store_call(self.admins.insert_admin(admin.clone(), audit.clone(), plan.saga_id)))
            .await
        {
            Ok(record) => {
                crate::crash::point("provision.after_records");
                return Ok(self.provisioned(record, saga.id));
            }
            Err(e) => {
                if !e.is_transient() {
                    tracing::error!(saga_id = %saga.id, error = %e, "the database refused the records; compensating");
                }
                Error::from(e)
            }
        };
        // Verify before undoing: the write may have landed although its reply was lost.
        match self
            .retry(|| self.store_call(self.admins.get_admin(saga.user_id)))
            .await
        {
            Ok(Some(record)) => Ok(self.provisioned(record, saga.id)),
            Ok(None) => self.compensate_provision(&saga, Some(&identity.user), err).await,
            Err(read_err) => {
                tracing::error!(saga_id = %saga.id, error = %read_err, "cannot tell whether the records were written; leaving the saga for recovery");
                let _ = self
                    .set_state(
                        &saga,
                        SagaState::Stuck,
                        Some(format!("{err}; read-back failed: {read_err}")),
                    )
                    .await;
                self.release_lease(&saga).await;
                Err(Error::SagaStuck { saga_id: saga.id })
            }
        }
    }

    /// A run that lost its lease after creating Cognito user `user`: another owner (recovery) took the
    /// saga and may or may not have seen the user. Waits (at most one lease) for that owner to settle the
    /// saga, then undoes what this run alone knows it created: the user is deleted unless the saga ended
    /// with it linked to the saga's admin (then the provisioning stands and is returned).
    pub(super) async fn lease_lost_undo(&self, saga: &SagaRecord, user: &IdpUser) -> Result<ProvisionedAdmin, Error> {
        tracing::error!(saga_id = %saga.id, "saga lease lost after AdminCreateUser; waiting for the new owner, then undoing this run's own user");
        let deadline = tokio::time::Instant::now() + self.settings.lease_ttl;
        let settled = loop {
            match self.store_call(self.sagas.get(saga.id)).await {
                Ok(Some(cur)) if cur.state.is_terminal() => break true,
                _ if tokio::time::Instant::now() >= deadline => break false,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let lost = Error::DatabaseUnavailable(format!(
            "saga {} lost its lease to recovery while it worked; its partial work was undone, try again",
            saga.id
        ));
        if !settled {
            tracing::error!(saga_id = %saga.id, "the new owner has not settled the saga; it will adopt or undo the user");
            return Err(lost);
        }
        match self.store_call(self.admins.get_admin(saga.user_id)).await {
            Ok(Some(record)) if record.user.cognito_sub == user.sub => return Ok(self.provisioned(record, saga.id)),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(saga_id = %saga.id, error = %e, "cannot read the database; leaving the user for an operator");
                return Err(lost);
            }
        }
        if let Ok(Some(_)) = self.store_call(self.admins.find_admin_by_cognito_sub(&user.sub)).await {
            return Err(lost);
        }
        // Still the very user this run created (same sub)? Then it is ours alone: delete it.
        match self
            .retry(|| self.idp_call(idp_op::ADMIN_GET_USER, self.idp.admin_get_user(&user.username)))
            .await
        {
            Ok(current) if current.sub == user.sub => {
                match self
                    .retry(|| self.idp_call(idp_op::ADMIN_DELETE_USER, self.idp.admin_delete_user(&user.username)))
                    .await
                {
                    Ok(()) | Err(IdpError::UserNotFound) => {}
                    Err(e) => {
                        tracing::error!(saga_id = %saga.id, error = %e, "could not delete this run's Cognito user")
                    }
                }
            }
            _ => {}
        }
        Err(lost)
    }

    pub(super) fn provisioned(&self, record: AdminRecord, saga_id: Uuid) -> ProvisionedAdmin {
        let invite = InviteView::of(&record, self.now());
        ProvisionedAdmin {
            user: record.user,
            admin_info: record.admin_info,
            invite,
            saga_id,
        }
    }

    /// AdminCreateUser with retries, adoption of its own user, and CodeDeliveryFailure handling.
    pub(super) async fn create_identity_step(&self, saga: &SagaRecord) -> Result<CreatedIdentity, Error> {
        let email = match AdminEmail::parse(&saga.email) {
            Ok(e) => e,
            Err(e) => return Err(e.into()),
        };
        match self.retry(|| self.create_user_call(&email, None)).await {
            Ok(identity) => Ok(identity),
            Err(IdpError::UsernameExists) => {
                // Ours (a retry whose first attempt landed) or someone else's?
                match self.find_own_identity(saga).await {
                    Ok(Some(user)) => {
                        tracing::info!(saga_id = %saga.id, "adopting the Cognito user created by an earlier attempt of this saga");
                        Ok(CreatedIdentity {
                            user,
                            invite_delivered: true,
                        })
                    }
                    Ok(None) => {
                        // Not ours. If the database links it to an admin with this e-mail, a concurrent
                        // provisioning of the same address just finished first: the admin exists.
                        match self
                            .store_call(self.admins.find_admin_by_email(&saga.email_normalized))
                            .await
                        {
                            Ok(Some(_)) => Err(Error::AdminExists),
                            _ => Err(Error::ForeignIdentityExists),
                        }
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(admin_call_error(e)),
        }
    }

    /// How long after its intent a saga may still have created its Cognito user: every attempt of the
    /// create step with its timeouts and backoff, twice over, plus the clock skew.
    pub(super) fn creation_window(&self) -> chrono::Duration {
        let per_attempt = self.settings.call_timeout + self.settings.backoff_max;
        let span = per_attempt.saturating_mul(self.settings.max_attempts.max(1) * 2);
        chrono::Duration::from_std(span).unwrap_or(chrono::Duration::minutes(10)) + self.settings.ownership_skew
    }

    /// What is at the saga's Cognito username, and whether it is the saga's own (see the module docs).
    pub(super) async fn classify_identity(&self, saga: &SagaRecord) -> Result<Found, IdpError> {
        let user = match self
            .retry(|| self.idp_call(idp_op::ADMIN_GET_USER, self.idp.admin_get_user(&saga.cognito_username)))
            .await
        {
            Ok(u) => u,
            Err(IdpError::UserNotFound) => return Ok(Found::Missing),
            Err(e) => return Err(e),
        };
        if saga.identity_created_by_saga && saga.cognito_sub.as_deref() == Some(user.sub.as_str()) {
            return Ok(Found::Recorded(user));
        }
        if saga.state == SagaState::Started {
            // The log says AdminCreateUser was never called: whatever is there is someone else's.
            return Ok(Found::Foreign);
        }
        let from = saga.started_at - self.settings.ownership_skew;
        let until = saga.started_at + self.creation_window();
        let in_window = user.created_at >= from && user.created_at <= until;
        let same_email = user
            .email
            .as_deref()
            .map(|e| e.eq_ignore_ascii_case(&saga.email_normalized))
            .unwrap_or(false);
        let known_status = matches!(
            user.status,
            IdpUserStatus::ForceChangePassword | IdpUserStatus::Confirmed
        );
        if !(in_window && same_email && known_status) {
            return Ok(Found::Foreign);
        }
        // Linked to another admin already? Then it is not ours to adopt or delete.
        match self
            .retry(|| self.store_call(self.admins.find_admin_by_cognito_username(&user.username)))
            .await
        {
            Ok(Some(r)) if r.user.id != saga.user_id => Ok(Found::Foreign),
            Ok(_) => Ok(Found::InWindow(user)),
            Err(e) => Err(IdpError::Unavailable(format!("cannot check the database: {e}"))),
        }
    }

    /// The Cognito user at the saga's username, if it may be adopted by the running saga: its own by the
    /// log, or created in its window and still waiting for first login.
    pub(super) async fn find_own_identity(&self, saga: &SagaRecord) -> Result<Option<IdpUser>, IdpError> {
        Ok(match self.classify_identity(saga).await? {
            Found::Recorded(u) => Some(u),
            Found::InWindow(u) if u.status == IdpUserStatus::ForceChangePassword => Some(u),
            _ => None,
        })
    }

    /// Undo of a provisioning: delete the Cognito user if (and only if) it is this saga's own. Returns the
    /// error to report (or, when this run had lost its lease and the new owner finished the saga, the
    /// admin it finished).
    pub(super) async fn compensate_provision(
        &self,
        saga: &SagaRecord,
        known: Option<&IdpUser>,
        cause: Error,
    ) -> Result<ProvisionedAdmin, Error> {
        // Nothing of ours was created: someone else's user, or an admin that already exists.
        if matches!(cause, Error::ForeignIdentityExists | Error::AdminExists) {
            let _ = self.set_state(saga, SagaState::Aborted, Some(cause.to_string())).await;
            return Err(cause);
        }
        tracing::warn!(saga_id = %saga.id, cause = %cause, "compensating provisioning");
        let claim = SagaUpdate {
            state: Some(SagaState::Compensating),
            last_error: Some(Some(cause.to_string())),
            ..self.owned(saga)
        };
        if let Err(StoreError::LeaseLost(_) | StoreError::SagaStateChanged(_)) = self
            .retry(|| self.store_call(self.sagas.update(saga.id, claim.clone())))
            .await
        {
            // Another process (recovery) took this saga meanwhile: undo only what this run knows it
            // created, once the new owner has settled.
            return match known {
                Some(user) => self.lease_lost_undo(saga, user).await,
                None => {
                    tracing::warn!(saga_id = %saga.id, "saga taken over elsewhere; not compensating");
                    Err(cause)
                }
            };
        }
        let mut view = saga.clone();
        if let Some(u) = known {
            view.identity_created_by_saga = true;
            view.cognito_username = u.username.clone();
            view.cognito_sub = Some(u.sub.clone());
        }
        match self.undo_identity(&view).await {
            Ok(()) => {
                let _ = self
                    .set_state(saga, SagaState::Compensated, Some(cause.to_string()))
                    .await;
                Err(cause)
            }
            Err(undo_err) => {
                tracing::error!(saga_id = %saga.id, error = %undo_err, "compensation could not finish; saga is stuck");
                let msg = format!("{cause}; compensation failed: {undo_err}");
                let _ = self.set_state(saga, SagaState::Stuck, Some(msg)).await;
                self.release_lease(saga).await;
                Err(Error::SagaStuck { saga_id: saga.id })
            }
        }
    }

    /// Deletes the saga's own Cognito user, if there is one.
    pub(super) async fn undo_identity(&self, saga: &SagaRecord) -> Result<(), IdpError> {
        let target = if saga.identity_created_by_saga {
            Some(saga.cognito_username.clone())
        } else {
            // Only a user still waiting for first login is deleted on the strength of the time window.
            self.find_own_identity(saga).await?.map(|u| u.username)
        };
        let Some(username) = target else {
            return Ok(());
        };
        match self
            .retry(|| self.idp_call(idp_op::ADMIN_DELETE_USER, self.idp.admin_delete_user(&username)))
            .await
        {
            Ok(()) | Err(IdpError::UserNotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Recovery of a provisioning: finish it if its Cognito user exists and is its own (roll forward),
    /// undo it if it was already being undone, close it if nothing was created. Never deletes a user it
    /// cannot prove is its own; a case it cannot decide is marked `stuck` for an operator.
    pub(super) async fn recover_provision(&self, saga: &SagaRecord) -> SagaState {
        match self.store_call(self.admins.get_admin(saga.user_id)).await {
            Ok(Some(_)) => return self.finish_state(saga, SagaState::Completed, None).await,
            Ok(None) => {}
            Err(_) => return saga.state, // database down: try again next pass
        }
        match saga.state {
            SagaState::Started => {
                self.finish_state(saga, SagaState::Aborted, Some("interrupted before any side effect"))
                    .await
            }
            SagaState::Compensating | SagaState::Stuck => match self.undo_identity(saga).await {
                Ok(()) => {
                    self.finish_state(saga, SagaState::Compensated, Some("undo finished by recovery"))
                        .await
                }
                Err(e) => {
                    let _ = self.set_state(saga, SagaState::Stuck, Some(e.to_string())).await;
                    SagaState::Stuck
                }
            },
            _ => match self.classify_identity(saga).await {
                Ok(Found::Recorded(user)) | Ok(Found::InWindow(user)) => match self.roll_forward(saga, &user).await {
                    Ok(()) => SagaState::Completed,
                    Err(e) => {
                        tracing::warn!(saga_id = %saga.id, error = %e, "recovery could not finish the saga yet");
                        saga.state
                    }
                },
                Ok(Found::Missing) => {
                    self.finish_state(
                        saga,
                        SagaState::Compensated,
                        Some("interrupted; no Cognito user was left"),
                    )
                    .await
                }
                Ok(Found::Foreign) => {
                    self.finish_state(
                        saga,
                        SagaState::Aborted,
                        Some("interrupted; the Cognito user at this username is not this saga's and was left alone"),
                    )
                    .await
                }
                Err(_) => saga.state, // Cognito unreachable: try again next pass
            },
        }
    }

    /// Writes the records of an interrupted saga whose Cognito user exists (and marks the admin active if
    /// the invitee already set a password).
    pub(super) async fn roll_forward(&self, saga: &SagaRecord, user: &IdpUser) -> Result<(), Error> {
        let email = AdminEmail::parse(&saga.email)?;
        let plan = RecordPlan {
            user_id: saga.user_id,
            actor: saga.actor.clone(),
            action: AuditAction::CreateAdmin,
            invite_delivered: saga.invite_delivered,
            request_id: saga.request_id.clone(),
            saga_id: Some(saga.id),
        };
        let record = self
            .create_admin_database_records(&email, &user.username, &user.sub, &plan)
            .await?;
        if user.status == IdpUserStatus::Confirmed {
            let audit = self.audit(
                &Actor::Admin(record.user.id),
                AuditAction::FirstLoginCompleted,
                &record.user.email_normalized,
                "success",
                saga.request_id.as_deref(),
            );
            self.store_call(self.admins.mark_accepted(record.user.id, self.now(), audit))
                .await?;
        }
        tracing::warn!(saga_id = %saga.id, "recovery finished an interrupted provisioning");
        Ok(())
    }

    /// Moves a saga to a final state, only from the state recovery observed (compare-and-set).
    pub(super) async fn finish_state(&self, saga: &SagaRecord, state: SagaState, why: Option<&str>) -> SagaState {
        let update = SagaUpdate {
            state: Some(state),
            expected_state: Some(saga.state),
            last_error: why.map(|w| Some(w.to_string())),
            ..self.owned(saga)
        };
        match self
            .retry(|| self.store_call(self.sagas.update(saga.id, update.clone())))
            .await
        {
            Ok(r) => r.state,
            Err(StoreError::SagaStateChanged(_)) | Err(_) => self
                .store_call(self.sagas.get(saga.id))
                .await
                .ok()
                .flatten()
                .map(|r| r.state)
                .unwrap_or(saga.state),
        }
    }

    pub(super) async fn recover_one(&self, saga: &SagaRecord) -> SagaState {
        match saga.kind {
            SagaKind::Provision => self.recover_provision(saga).await,
            SagaKind::Disable | SagaKind::Enable => self.recover_lifecycle(saga).await,
            SagaKind::Remove => match self.store_call(self.admins.get_admin(saga.user_id)).await {
                Ok(Some(record)) => {
                    // The database delete never happened: redo it, then Cognito.
                    let audit = self.audit(
                        &saga.actor,
                        AuditAction::DeleteAdmin,
                        &record.user.email_normalized,
                        "success",
                        saga.request_id.as_deref(),
                    );
                    if self
                        .store_call(self.admins.delete_admin(saga.user_id, audit, Some(saga.id)))
                        .await
                        .is_err()
                    {
                        return saga.state;
                    }
                    match self.finish_remove(saga).await {
                        Ok(()) => SagaState::Completed,
                        Err(_) => SagaState::Stuck,
                    }
                }
                Ok(None) => match self.finish_remove(saga).await {
                    Ok(()) => SagaState::Completed,
                    Err(_) => SagaState::Stuck,
                },
                Err(_) => saga.state,
            },
        }
    }
}
