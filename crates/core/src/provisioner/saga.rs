//! The provisioning saga: forward run, compensation, ownership rule and crash recovery.

use super::engine::*;
use super::lifecycle::{LifecycleData, DISABLE, ENABLE};
use super::removal::{RemoveData, REMOVE};
use super::roles::RoleData;
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
        role: Role,
        action: AuditAction,
        scim: Option<ScimAttributes>,
        request_id: Option<&str>,
    ) -> Result<ProvisionedAdmin, Error> {
        let started = Instant::now();
        let result = self
            .provision_inner(&actor, &email, role, action, scim, request_id)
            .await;
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
        role: Role,
        action: AuditAction,
        scim: Option<ScimAttributes>,
        request_id: Option<&str>,
    ) -> Result<ProvisionedAdmin, Error> {
        if self
            .retry(|| self.store_call(self.admins.find_admin_by_email(email.normalized())))
            .await?
            .is_some()
        {
            return Err(Error::AdminExists);
        }
        let mut intent = self.intent(
            SagaKind::Provision,
            actor,
            email.as_str(),
            email.normalized(),
            UserId::new(),
            email.normalized(),
            request_id,
        );
        // A SCIM create: the intent claims the userName (a unique index among unfinished sagas) and
        // carries the attributes that the records' transaction writes.
        intent.scim = scim;
        intent.role = Some(role);
        let saga_id = intent.id;
        let data = ProvisionData {
            actor: actor.clone(),
            email: email.clone(),
            action,
            request_id: request_id.map(str::to_string),
            user: None,
            invite_delivered: true,
            record: None,
        };
        let data = self.provision_def().run(self, intent, data).await?;
        let record = data
            .record
            .ok_or_else(|| Error::Internal("the provisioning saga ended without records".into()))?;
        Ok(self.provisioned(record, saga_id))
    }

    /// A saga's intent row (state `started`, which the engine replaces with the first step's `begins` when
    /// it has one; holding a fresh lease): what every saga logs before its
    /// first side effect.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn intent(
        &self,
        kind: SagaKind,
        actor: &Actor,
        email: &str,
        email_normalized: &str,
        user_id: UserId,
        cognito_username: &str,
        request_id: Option<&str>,
    ) -> SagaRecord {
        let now = self.now();
        SagaRecord {
            id: Uuid::new_v4(),
            kind,
            actor: actor.clone(),
            email: email.to_string(),
            email_normalized: email_normalized.to_string(),
            user_id,
            cognito_username: cognito_username.to_string(),
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
            scim: None,
            role: None,
        }
    }

    /// The intent of a saga on an existing admin (removal, disable, enable): the admin's ids, e-mail and
    /// Cognito user (username and `sub`) and delivery flag, from its records.
    pub(super) fn admin_intent(
        &self,
        kind: SagaKind,
        actor: &Actor,
        record: &AdminRecord,
        request_id: Option<&str>,
    ) -> SagaRecord {
        let mut saga = self.intent(
            kind,
            actor,
            &record.user.email,
            &record.user.email_normalized,
            record.user.id,
            &record.user.cognito_username,
            request_id,
        );
        saga.cognito_sub = Some(record.user.cognito_sub.clone());
        saga.invite_delivered = record.admin_info.invite_delivered;
        saga
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
            // The log says AdminCreateUser was never called (a saga logged before the intent carried
            // `identity_creating`): whatever is there is someone else's.
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

    /// The provisioning saga's table: with the `add_to_group` step when roles are mirrored into groups.
    pub(super) fn provision_def(&self) -> &'static SagaDef<ProvisionData> {
        if self.mirrors_role_groups() {
            &PROVISION_GROUPS
        } else {
            &PROVISION
        }
    }

    /// Settles one claimed, unfinished saga by its kind's table (see [`engine`]). A saga is recovered by
    /// the table of the current configuration (`COGNITO_ROLE_GROUPS`): the group steps are idempotent,
    /// and an admin whose groups differ from the database is the reconciler's `role_group_mismatch`.
    pub(super) async fn recover_one(&self, saga: &SagaRecord) -> SagaState {
        match saga.kind {
            SagaKind::Provision => match ProvisionData::recovering(saga) {
                Ok(data) => self.provision_def().recover(self, saga, data).await,
                Err(e) => {
                    tracing::error!(saga_id = %saga.id, error = %e, "cannot recover a provisioning with an unreadable e-mail");
                    saga.state
                }
            },
            SagaKind::Remove => REMOVE.recover(self, saga, RemoveData::recovering(saga)).await,
            SagaKind::Disable => DISABLE.recover(self, saga, LifecycleData::recovering(saga)).await,
            SagaKind::Enable => ENABLE.recover(self, saga, LifecycleData::recovering(saga)).await,
            SagaKind::ChangeRole => {
                self.change_role_def()
                    .recover(self, saga, RoleData::recovering(saga))
                    .await
            }
            SagaKind::ResetPassword => {
                super::credentials::RESET_PASSWORD
                    .recover(self, saga, super::credentials::ResetData::recovering(saga))
                    .await
            }
            SagaKind::ResetMfa => {
                super::credentials::RESET_MFA
                    .recover(self, saga, super::credentials::ResetData::recovering(saga))
                    .await
            }
        }
    }
}

// --------------------------------------------------------------------------------------------------
// The provisioning saga's table
// --------------------------------------------------------------------------------------------------

/// The provisioning saga: the Cognito user (undo: delete it if it is the saga's own), then the database
/// records, which complete the saga in their transaction (the point of no return: nothing after it).
///
/// Two durable writes in all: the intent is logged as `identity_creating` ("AdminCreateUser may have
/// run", before it does), and the records' transaction completes the saga and logs the Cognito user it
/// links as the saga's own. Between them the saga logs nothing: a crash there leaves
/// `identity_creating`, and recovery asks Cognito (the ownership rule's time window) whether the saga's
/// user exists. A failure that is compensated or left `stuck` logs the user with that state.
pub static PROVISION: SagaDef<ProvisionData> = SagaDef {
    kind: SagaKind::Provision,
    name: "provision",
    stuck: Direction::Undo,
    undoing: "undoing: deleting the Cognito user it created",
    steps: &[
        Step {
            name: "create_user",
            doing: "creating the Cognito user",
            begins: Some(SagaState::IdentityCreating),
            done: SagaState::IdentityCreating,
            logged: Logged::InAction,
            action: create_user,
            undo: Some(delete_own_user),
            probe: Some(find_own_user),
            redo: false,
            lost: Some(delete_user_if_lost),
            calls: &[idp_op::ADMIN_CREATE_USER],
        },
        Step {
            name: "records",
            doing: "Cognito user exists; writing the database records",
            begins: None,
            done: SagaState::Completed,
            logged: Logged::InAction,
            action: write_records,
            undo: None,
            probe: Some(records_exist),
            redo: true,
            lost: None,
            calls: &[crate::store::op::INSERT_ADMIN],
        },
    ],
};

/// The provisioning saga with roles mirrored into Cognito groups (`COGNITO_ROLE_GROUPS=true`): between
/// the user and the records, `add_to_group` puts the user in the group of the saga's role
/// (`AdminAddUserToGroup`; undo `AdminRemoveUserFromGroup`). It logs nothing of its own: recovery's probe
/// asks Cognito for the user's groups, and adds the user again if needed (idempotent) before writing the
/// records.
pub static PROVISION_GROUPS: SagaDef<ProvisionData> = SagaDef {
    kind: SagaKind::Provision,
    name: "provision",
    stuck: Direction::Undo,
    undoing: "undoing: deleting the Cognito user it created",
    steps: &[
        Step {
            name: "create_user",
            doing: "creating the Cognito user",
            begins: Some(SagaState::IdentityCreating),
            done: SagaState::IdentityCreating,
            logged: Logged::InAction,
            action: create_user,
            undo: Some(delete_own_user),
            probe: Some(find_own_user),
            redo: false,
            lost: Some(delete_user_if_lost),
            calls: &[idp_op::ADMIN_CREATE_USER],
        },
        Step {
            name: "add_to_group",
            doing: "Cognito user exists; adding it to its role's group",
            begins: None,
            done: SagaState::IdentityCreating,
            logged: Logged::InAction,
            action: add_to_group,
            undo: Some(remove_own_user_from_group),
            probe: Some(user_in_group),
            redo: true,
            lost: Some(delete_user_if_lost),
            calls: &[idp_op::ADMIN_ADD_USER_TO_GROUP],
        },
        Step {
            name: "records",
            doing: "Cognito user exists; writing the database records",
            begins: None,
            done: SagaState::Completed,
            logged: Logged::InAction,
            action: write_records,
            undo: None,
            probe: Some(records_exist),
            redo: true,
            lost: None,
            calls: &[crate::store::op::INSERT_ADMIN],
        },
    ],
};

/// The group of the saga's role (a provisioning logged before roles existed gives `admin`).
fn saga_role_group(p: &Provisioner, saga: &SagaRecord) -> Result<String, Error> {
    p.role_group(saga.role.unwrap_or_default())
        .ok_or_else(|| Error::Internal("a group step while role groups are off".into()))
}

/// `AdminAddUserToGroup` of the saga's user to its role's group (created if missing).
fn add_to_group(cx: &mut Cx<ProvisionData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        let group = saga_role_group(&cx.p, &cx.saga).map_err(StepError::Refused)?;
        let Some(user) = cx.data.user.clone() else {
            return Err(StepError::Refused(Error::Internal(
                "no Cognito user to add to a group".into(),
            )));
        };
        match cx.p.add_to_group(&user.username, &group).await {
            Ok(()) => Ok(SagaUpdate::default()),
            Err(e) => Err(StepError::Failed(admin_call_error(e))),
        }
    })
}

/// Undo of `add_to_group`: the saga's own user (by the ownership rule, as `delete_own_user`) leaves the
/// group. A user that is gone, or someone else's, is left alone.
fn remove_own_user_from_group(cx: &mut Cx<ProvisionData>) -> StepFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        let group = saga_role_group(&cx.p, &cx.saga)?;
        let username = match &cx.data.user {
            Some(u) => Some(u.username.clone()),
            None => {
                let saga = cx.saga.clone();
                cx.p.find_own_identity(&saga)
                    .await
                    .map_err(admin_call_error)?
                    .map(|u| u.username)
            }
        };
        let Some(username) = username else {
            return Ok(());
        };
        match cx.p.remove_from_group(&username, &group).await {
            Ok(()) | Err(IdpError::UserNotFound) => Ok(()),
            Err(e) => Err(admin_call_error(e)),
        }
    })
}

/// Probe of `add_to_group`: the saga's user (found by `create_user`'s probe) is in its role's group.
fn user_in_group(cx: &mut Cx<ProvisionData>) -> StepFuture<'_, Result<Probe, Error>> {
    Box::pin(async move {
        let group = saga_role_group(&cx.p, &cx.saga)?;
        let Some(user) = cx.data.user.clone() else {
            return Ok(Probe::NotDone("no Cognito user".into()));
        };
        match cx.p.product_groups_of(&user.username).await {
            Ok(groups) if groups.contains(&group) => Ok(Probe::Done),
            Ok(_) => Ok(Probe::NotDone("the Cognito user is not in its role's group".into())),
            Err(IdpError::UserNotFound) => Ok(Probe::NotDone("no Cognito user".into())),
            Err(e) => Err(admin_call_error(e)),
        }
    })
}

/// The provisioning saga's working data.
pub struct ProvisionData {
    actor: Actor,
    email: AdminEmail,
    action: AuditAction,
    request_id: Option<String>,
    /// The Cognito user: created or adopted by this run, or found by recovery's probe.
    user: Option<IdpUser>,
    invite_delivered: bool,
    /// The records, once written.
    record: Option<AdminRecord>,
}

impl ProvisionData {
    /// The data recovery works with: all from the log (a recovered provisioning is audited as
    /// `create_admin`).
    fn recovering(saga: &SagaRecord) -> Result<Self, Error> {
        Ok(Self {
            actor: saga.actor.clone(),
            email: AdminEmail::parse(&saga.email)?,
            action: AuditAction::CreateAdmin,
            request_id: saga.request_id.clone(),
            user: None,
            invite_delivered: saga.invite_delivered,
            record: None,
        })
    }
}

/// `AdminCreateUser`, adopting the saga's own user on `UsernameExists` (see `create_identity_step`).
fn create_user(cx: &mut Cx<ProvisionData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        match cx.p.create_identity_step(&cx.saga).await {
            Ok(identity) => {
                let user = identity.user;
                let fields = SagaUpdate {
                    cognito_username: Some(user.username.clone()),
                    cognito_sub: Some(user.sub.clone()),
                    identity_created_by_saga: Some(true),
                    invite_delivered: Some(identity.invite_delivered),
                    add_attempts: 1,
                    ..Default::default()
                };
                cx.data.invite_delivered = identity.invite_delivered;
                cx.data.user = Some(user);
                Ok(fields)
            }
            // Nothing of ours was created: someone else's user, or an admin that already exists.
            Err(e @ (Error::ForeignIdentityExists | Error::AdminExists | Error::InvalidEmail(_))) => {
                Err(StepError::Refused(e))
            }
            Err(e) => Err(StepError::Failed(e)),
        }
    })
}

/// Undo of `create_user`: delete the Cognito user if (and only if) it is this saga's own.
fn delete_own_user(cx: &mut Cx<ProvisionData>) -> StepFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        let mut view = cx.saga.clone();
        if let Some(u) = &cx.data.user {
            view.identity_created_by_saga = true;
            view.cognito_username = u.username.clone();
            view.cognito_sub = Some(u.sub.clone());
        }
        cx.p.undo_identity(&view).await.map_err(admin_call_error)
    })
}

/// Probe of `create_user`: the user at the saga's username, classified by the ownership rule.
fn find_own_user(cx: &mut Cx<ProvisionData>) -> StepFuture<'_, Result<Probe, Error>> {
    Box::pin(async move {
        Ok(
            match cx.p.classify_identity(&cx.saga).await.map_err(admin_call_error)? {
                Found::Recorded(user) | Found::InWindow(user) => {
                    cx.data.user = Some(user);
                    Probe::Done
                }
                Found::Missing => Probe::NotDone("interrupted; no Cognito user was left".into()),
                Found::Foreign => Probe::Foreign(
                    "interrupted; the Cognito user at this username is not this saga's and was left alone".into(),
                ),
            },
        )
    })
}

/// Lease lost after `create_user`: the new owner has settled the saga. The provisioning stands if it ended
/// with this run's user linked to the saga's admin; otherwise the user is deleted if it is still the very
/// user this run created (same `sub`) and no admin links to it.
fn delete_user_if_lost(cx: &mut Cx<ProvisionData>) -> StepFuture<'_, bool> {
    Box::pin(async move {
        let Some(user) = cx.data.user.clone() else {
            return false;
        };
        let (p, saga) = (&cx.p, &cx.saga);
        match p.store_call(p.admins.get_admin(saga.user_id)).await {
            Ok(Some(record)) if record.user.cognito_sub == user.sub => {
                cx.data.record = Some(record);
                return true;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(saga_id = %saga.id, error = %e, "cannot read the database; leaving the user for an operator");
                return false;
            }
        }
        if let Ok(Some(_)) = p.store_call(p.admins.find_admin_by_cognito_sub(&user.sub)).await {
            return false;
        }
        match p
            .retry(|| p.idp_call(idp_op::ADMIN_GET_USER, p.idp.admin_get_user(&user.username)))
            .await
        {
            Ok(current) if current.sub == user.sub => {
                match p
                    .retry(|| p.idp_call(idp_op::ADMIN_DELETE_USER, p.idp.admin_delete_user(&user.username)))
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
        false
    })
}

/// The `User` + `AdminInfo` rows, completing the saga in the same transaction. A write whose reply was
/// lost is read back before anything is undone; when even the read fails the run cannot tell. A user who
/// already set a password (recovery found it `CONFIRMED`) is marked active.
fn write_records(cx: &mut Cx<ProvisionData>) -> StepFuture<'_, Result<SagaUpdate, StepError>> {
    Box::pin(async move {
        let (p, saga, d) = (&cx.p, &cx.saga, &mut cx.data);
        let Some(user) = d.user.clone() else {
            return Err(StepError::Refused(Error::Internal(
                "no Cognito user to link the records to".into(),
            )));
        };
        let plan = RecordPlan {
            user_id: saga.user_id,
            actor: d.actor.clone(),
            action: d.action,
            invite_delivered: d.invite_delivered,
            request_id: d.request_id.clone(),
            saga_id: Some(saga.id),
            // A provisioning logged before roles existed gives `admin`.
            role: saga.role.unwrap_or_default(),
        };
        let (admin, audit) = p.record_rows(&d.email, &user.username, &user.sub, &plan);
        let mut record = match p
            .retry(|| p.store_call(p.admins.insert_admin(admin.clone(), audit.clone(), plan.saga_id)))
            .await
        {
            Ok(record) => record,
            Err(e) => {
                if !e.is_transient() {
                    tracing::error!(saga_id = %saga.id, error = %e, "the database refused the records");
                }
                let err = Error::from(e);
                // Verify before undoing: the write may have landed although its reply was lost.
                match p.retry(|| p.store_call(p.admins.get_admin(saga.user_id))).await {
                    Ok(Some(record)) => record,
                    Ok(None) => return Err(StepError::Refused(err)),
                    Err(read_err) => return Err(StepError::Undecided(format!("{err}; read-back failed: {read_err}"))),
                }
            }
        };
        if user.status == IdpUserStatus::Confirmed && record.user.status != UserStatus::Active {
            let audit = p.audit(
                &Actor::Admin(record.user.id),
                AuditAction::FirstLoginCompleted,
                &record.user.email_normalized,
                "success",
                saga.request_id.as_deref(),
            );
            match p
                .store_call(p.admins.mark_accepted(record.user.id, p.now(), audit))
                .await
            {
                Ok(r) => record = r,
                Err(e) => {
                    tracing::warn!(saga_id = %saga.id, error = %e, "could not mark the admin active; the reconciler will")
                }
            }
        }
        d.record = Some(record);
        Ok(SagaUpdate::default())
    })
}

/// Probe of `records`: the saga's admin exists (the records' transaction also completed the saga).
fn records_exist(cx: &mut Cx<ProvisionData>) -> StepFuture<'_, Result<Probe, Error>> {
    Box::pin(async move {
        Ok(match cx.p.store_call(cx.p.admins.get_admin(cx.saga.user_id)).await? {
            Some(record) => {
                cx.data.record = Some(record);
                Probe::Done
            }
            None => Probe::NotDone("no records".into()),
        })
    })
}
