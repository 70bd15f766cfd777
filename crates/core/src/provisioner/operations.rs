//! The five operations of the product (the contract names them).

use super::*;

impl Provisioner {
    // ----------------------------------------------------------------------------------------------
    // The five operations
    // ----------------------------------------------------------------------------------------------

    /// **Operation 1: create the Cognito user** (one step of the saga, also usable on its own).
    ///
    /// Calls Cognito `AdminCreateUser` with `Username` = the lower-cased e-mail, attributes `email` and
    /// `email_verified=true`, `DesiredDeliveryMediums=[EMAIL]` and, when given, `TemporaryPassword`
    /// (otherwise Cognito generates one). Cognito creates the user in `FORCE_CHANGE_PASSWORD` and e-mails
    /// the invitation with the username and the temporary password.
    ///
    /// * `email` — the new admin's address, already parsed.
    /// * `temporary_password` — `None` to let Cognito generate it (recommended: the product then never
    ///   holds it).
    ///
    /// Returns the [`CreatedIdentity`]: Cognito's `User` (`Username`, `sub`, status) and whether the
    /// invitation was delivered. On `CodeDeliveryFailure` the user *was* created: this calls
    /// `AdminGetUser` and returns it with `invite_delivered = false`.
    ///
    /// Errors: [`Error::ForeignIdentityExists`] (`UsernameExists`), [`Error::PasswordPolicy`]
    /// (`InvalidPassword`), [`Error::RateLimited`], [`Error::IdentityProviderUnavailable`] (timeout,
    /// network, `InternalError`), [`Error::IdentityProviderError`] (anything definitive, e.g.
    /// `InvalidParameter`). Makes no database call.
    pub async fn create_admin_user(
        &self,
        email: &AdminEmail,
        temporary_password: Option<TemporaryPassword>,
    ) -> Result<CreatedIdentity, Error> {
        self.create_user_call(email, temporary_password)
            .await
            .map_err(admin_call_error)
    }

    /// `AdminCreateUser` (plus `AdminGetUser` after `CodeDeliveryFailure`) with the port's own error, so
    /// the saga can retry it.
    pub(super) async fn create_user_call(
        &self,
        email: &AdminEmail,
        temporary_password: Option<TemporaryPassword>,
    ) -> Result<CreatedIdentity, IdpError> {
        let req = CreateUserRequest {
            username: email.normalized().to_string(),
            email: email.normalized().to_string(),
            temporary_password,
            message_action: None,
        };
        match self
            .idp_call(idp_op::ADMIN_CREATE_USER, self.idp.admin_create_user(req))
            .await
        {
            Ok(user) => Ok(CreatedIdentity {
                user,
                invite_delivered: true,
            }),
            Err(IdpError::CodeDeliveryFailure(_)) => {
                let user = self
                    .idp_call(idp_op::ADMIN_GET_USER, self.idp.admin_get_user(email.normalized()))
                    .await?;
                Ok(CreatedIdentity {
                    user,
                    invite_delivered: false,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// **Operation 2: write the database records**: one `User` row and its linked `AdminInfo` row.
    ///
    /// * `email` — the admin's address (the `User.email`; its lower-cased form is unique).
    /// * `cognito_username`, `cognito_sub` — the Cognito user to link (`User.cognito_username`,
    ///   `User.cognito_sub`, both unique).
    /// * `plan` — the id chosen in advance, who invited, whether the invitation was delivered, and the
    ///   saga to complete in the same transaction.
    ///
    /// SQL: in one transaction `INSERT INTO users`, `INSERT INTO admin_info` (foreign key `user_id`),
    /// `INSERT INTO audit_log` and, for a saga, `UPDATE sagas SET state='completed'` (also logging the linked
    /// Cognito user as the saga's own). Idempotent: calling it
    /// again with the same id returns the existing records.
    ///
    /// Returns the [`AdminRecord`]. Errors: [`Error::AdminExists`] (unique e-mail or Cognito user taken),
    /// [`Error::DatabaseUnavailable`]. Makes no Cognito call.
    pub async fn create_admin_database_records(
        &self,
        email: &AdminEmail,
        cognito_username: &str,
        cognito_sub: &str,
        plan: &RecordPlan,
    ) -> Result<AdminRecord, Error> {
        let (admin, audit) = self.record_rows(email, cognito_username, cognito_sub, plan);
        Ok(self
            .store_call(self.admins.insert_admin(admin, audit, plan.saga_id))
            .await?)
    }

    /// The rows operation 2 writes.
    pub(super) fn record_rows(
        &self,
        email: &AdminEmail,
        cognito_username: &str,
        cognito_sub: &str,
        plan: &RecordPlan,
    ) -> (NewAdmin, AuditEntry) {
        let now = self.now();
        let admin = NewAdmin {
            id: plan.user_id,
            email: email.as_str().to_string(),
            email_normalized: email.normalized().to_string(),
            cognito_username: cognito_username.to_string(),
            cognito_sub: cognito_sub.to_string(),
            invited_by: match &plan.actor {
                Actor::Admin(id) => Some(*id),
                Actor::Operator | Actor::Reconciler | Actor::Scim(_) => None,
            },
            invited_at: now,
            invite_expires_at: now + chrono::Duration::days(self.settings.invite_validity_days as i64),
            invite_delivered: plan.invite_delivered,
            role: plan.role,
        };
        let audit = self.audit(
            &plan.actor,
            plan.action,
            email.normalized(),
            "success",
            plan.request_id.as_deref(),
        );
        (admin, audit)
    }

    /// **Operation 3: provision a new admin** — the saga over operations 1 and 2. Only an authenticated,
    /// active admin (or the operator) may call it.
    ///
    /// * `caller` — a verified token's identity (checked against the database: the caller must be an
    ///   active admin) or [`Caller::Operator`].
    /// * `email` — the raw address as received; it is parsed here, at the edge.
    /// * `request_id` — recorded in the saga log and the audit log.
    ///
    /// Steps: (1) parse the e-mail and authorise the caller; (2) refuse if an admin with this e-mail
    /// exists; (3) record the intent in the saga log (`INSERT INTO sagas`, with the `User.id` and Cognito
    /// username it will use; a unique index lets only one unfinished saga hold an e-mail), then
    /// `UPDATE sagas SET state='identity_creating'` just before Cognito is called; (4) `AdminCreateUser`
    /// (operation 1), retrying transient errors, adopting its own user on `UsernameExists`, treating
    /// `CodeDeliveryFailure` as created; (5) `UPDATE sagas` with the Cognito username and `sub`; (6)
    /// operation 2, which also completes the saga. If (4)–(6) fail definitively, the compensation deletes
    /// the Cognito user this saga created (`AdminDeleteUser`) and marks the saga `compensated`; if that
    /// cannot finish the saga is marked `stuck` and [`Error::SagaStuck`] returned.
    ///
    /// Returns [`ProvisionedAdmin`] (both records and the invitation). Errors: [`Error::InvalidEmail`],
    /// [`Error::Forbidden`], [`Error::AdminExists`], [`Error::ForeignIdentityExists`],
    /// [`Error::RateLimited`], [`Error::IdentityProviderUnavailable`], [`Error::IdentityProviderError`],
    /// [`Error::DatabaseUnavailable`], [`Error::SagaStuck`].
    pub async fn provision_new_admin(
        &self,
        caller: &Caller,
        email: &str,
        request_id: Option<&str>,
    ) -> Result<ProvisionedAdmin, Error> {
        self.provision_admin_with_role(caller, email, Role::Admin, request_id)
            .await
    }

    /// [`Provisioner::provision_new_admin`] giving the new admin `role` (the permission table decides
    /// who may give which: only an owner creates an owner, a viewer creates nobody). The role travels in
    /// the saga's intent, so a provisioning finished by recovery gives it too.
    #[tracing::instrument(skip_all, fields(email_domain, role = role.as_str()))]
    pub async fn provision_admin_with_role(
        &self,
        caller: &Caller,
        email: &str,
        role: Role,
        request_id: Option<&str>,
    ) -> Result<ProvisionedAdmin, Error> {
        let email = AdminEmail::parse(email)?;
        if let Some((_, d)) = email.normalized().split_once('@') {
            tracing::Span::current().record("email_domain", d);
        }
        let actor = self.authorize(caller).await?;
        self.permit(&actor, AdminAction::Create, None, Some(role)).await?;
        self.run_provision_saga(actor, email, role, AuditAction::CreateAdmin, None, request_id)
            .await
    }

    /// **Operation 4: answer the first-login challenge.** The new admin logs in with the temporary
    /// password from the invitation e-mail and replaces it.
    ///
    /// * `username` — the Cognito username or the e-mail.
    /// * `temporary_password` — from the invitation.
    /// * `new_password` — must satisfy the pool's password policy.
    ///
    /// Cognito calls: `InitiateAuth` (`USER_PASSWORD_AUTH`) → `NEW_PASSWORD_REQUIRED` with a session →
    /// `RespondToAuthChallenge` (`NEW_PASSWORD_REQUIRED`, `USERNAME`, `NEW_PASSWORD`). SQL: `UPDATE users
    /// SET status='active'`, `UPDATE admin_info SET accepted_at`, `INSERT INTO audit_log`, one transaction.
    ///
    /// Returns the [`Tokens`] (ID, access, refresh, lifetime). Errors: [`Error::InvalidCredentials`] (wrong
    /// or expired temporary password, expired session), [`Error::PasswordPolicy`], [`Error::NoChallenge`]
    /// (the password was already changed), [`Error::RateLimited`], [`Error::IdentityProviderUnavailable`].
    /// A database failure after Cognito accepted the new password does not fail the call (the password is
    /// already changed); it is logged and repaired at the next successful login.
    #[tracing::instrument(skip_all)]
    pub async fn handle_new_password_challenge(
        &self,
        username: &str,
        temporary_password: &TemporaryPassword,
        new_password: &Password,
        request_id: Option<&str>,
    ) -> Result<LoginOutcome, Error> {
        match self
            .login(username, &Password::new(temporary_password.expose()), request_id)
            .await?
        {
            LoginOutcome::NewPasswordRequired { session, username } => {
                self.complete_new_password(&username, &session, new_password, request_id)
                    .await
            }
            _ => Err(Error::NoChallenge),
        }
    }

    /// **Operation 5: resend an invitation** with a new temporary password and a fresh expiry.
    ///
    /// * `caller` — as for [`Provisioner::provision_new_admin`].
    /// * `email` — the admin's address, raw.
    ///
    /// Refused for an admin who already set a password ([`Error::AlreadyActive`]) and within the cooldown
    /// after the previous invitation ([`Error::ResendCooldown`]). Cognito: `AdminCreateUser` with
    /// `MessageAction=RESEND` (same user and `sub`, new temporary password, expiry reset; a
    /// `CodeDeliveryFailure` is recorded as undelivered). SQL: `UPDATE admin_info` (`invites_sent`,
    /// `last_invite_sent_at`, `invite_expires_at`, `invite_delivered`) + `INSERT INTO audit_log`.
    ///
    /// Returns the new [`InviteView`]. Errors: [`Error::InvalidEmail`], [`Error::Forbidden`],
    /// [`Error::NotFound`], [`Error::AlreadyActive`], [`Error::ResendCooldown`], [`Error::RateLimited`],
    /// [`Error::IdentityProviderUnavailable`], [`Error::IdentityProviderError`] (the Cognito user is
    /// missing from the pool), [`Error::DatabaseUnavailable`].
    #[tracing::instrument(skip_all)]
    pub async fn resend_admin_invite(
        &self,
        caller: &Caller,
        email: &str,
        request_id: Option<&str>,
    ) -> Result<InviteView, Error> {
        let email = AdminEmail::parse(email)?;
        let actor = self.authorize(caller).await?;
        let record = self
            .store_call(self.admins.find_admin_by_email(email.normalized()))
            .await?
            .ok_or(Error::NotFound)?;
        self.permit(&actor, AdminAction::Resend, Some(&record), None).await?;
        self.resend_for(actor, record, request_id).await
    }
}
