//! Bootstrap, authorisation of callers, login and first login.

use super::*;

impl Provisioner {
    // ----------------------------------------------------------------------------------------------
    // Further operations used by the CLI and the HTTP API
    // ----------------------------------------------------------------------------------------------

    /// Creates the very first admin (operator only), an `owner`. Refused with [`Error::AlreadyBootstrapped`] once any
    /// admin exists. Same saga as [`Provisioner::provision_new_admin`], audited as `bootstrap_admin`.
    pub async fn bootstrap_admin(&self, email: &str, request_id: Option<&str>) -> Result<ProvisionedAdmin, Error> {
        let email = AdminEmail::parse(email)?;
        if !self.store_call(self.admins.list_admins()).await?.is_empty() {
            return Err(Error::AlreadyBootstrapped);
        }
        self.run_provision_saga(
            Actor::Operator,
            email,
            Role::Owner,
            AuditAction::BootstrapAdmin,
            None,
            request_id,
        )
        .await
    }

    /// [`Provisioner::resend_admin_invite`] by admin id.
    pub async fn resend_admin_invite_by_id(
        &self,
        caller: &Caller,
        id: UserId,
        request_id: Option<&str>,
    ) -> Result<InviteView, Error> {
        let actor = self.authorize(caller).await?;
        let record = self
            .store_call(self.admins.get_admin(id))
            .await?
            .ok_or(Error::NotFound)?;
        self.permit(&actor, AdminAction::Resend, Some(&record), None).await?;
        self.resend_for(actor, record, request_id).await
    }

    /// Resolves a caller to an [`Actor`]: the operator, or an active admin found in the database by the
    /// token's `sub` alone. The username is never used to authorise: Cognito re-uses a username when a
    /// user is deleted and re-created, but never a `sub`, so a re-created user (a new `sub`) inherits
    /// nothing. A token issued at or before the admin's session epoch (`users.sessions_valid_after`: set
    /// by sign-out and by a disable, kept by an enable) is refused: its session has ended.
    /// Errors: [`Error::Forbidden`] (not an active admin), [`Error::SessionEnded`],
    /// [`Error::DatabaseUnavailable`].
    ///
    /// A valid token for the linked `sub` of an admin still `invited` (and not disabled) proves the
    /// password was changed (Cognito issues no token before): the first login's activation write was
    /// lost. Once Cognito confirms it (one `AdminGetUser`, on this rare path only: the user at the
    /// admin's username has the token's `sub`, is `CONFIRMED` and enabled), the admin is marked active
    /// (audited `first_login_completed`, idempotent) and the request authorised. A disabled or removed
    /// admin is never activated, and a `sub` linked to no admin stays [`Error::Forbidden`].
    pub async fn authorize(&self, caller: &Caller) -> Result<Actor, Error> {
        match caller {
            Caller::Operator => Ok(Actor::Operator),
            Caller::Authorized(id) => Ok(Actor::Admin(*id)),
            Caller::Scim(name) => Ok(Actor::Scim(name.clone())),
            Caller::Token {
                sub,
                username: _,
                issued_at,
            } => {
                let found = self.store_read(|| self.admins.find_admin_by_cognito_sub(sub)).await?;
                match found {
                    Some(r) if r.user.cognito_sub != *sub => Err(Error::Forbidden),
                    // A disabled admin is refused at once, whatever their token says.
                    Some(r) if r.user.is_active_admin() => {
                        // `iat` has whole seconds: a token from the epoch's own second is refused too;
                        // whoever moves the epoch waits into the next second before a new sign-in can
                        // succeed (`end_sessions`, the enable saga), so a fresh token is never caught.
                        if r.user.sessions_valid_after.is_some_and(|epoch| *issued_at <= epoch) {
                            return Err(Error::SessionEnded);
                        }
                        Ok(Actor::Admin(r.user.id))
                    }
                    Some(r) if r.user.status == UserStatus::Invited && !r.user.is_disabled() => {
                        if r.user.sessions_valid_after.is_some_and(|epoch| *issued_at <= epoch) {
                            return Err(Error::SessionEnded);
                        }
                        if !self.password_changed_in_cognito(&r).await? {
                            return Err(Error::Forbidden);
                        }
                        tracing::warn!(user_id = %r.user.id, "a token proves the first login of an admin still recorded as invited; marking them active");
                        match self.record_first_login(&r, None).await {
                            // The row as written decides: a disable that landed meanwhile still refuses.
                            Ok(updated) if updated.user.is_active_admin() => Ok(Actor::Admin(updated.user.id)),
                            Ok(_) | Err(StoreError::NotFound) => Err(Error::Forbidden),
                            Err(e) => Err(e.into()),
                        }
                    }
                    _ => Err(Error::Forbidden),
                }
            }
        }
    }

    /// Logs in with `USER_PASSWORD_AUTH`. A returning admin whose database row still says `invited`
    /// (a lost write after the password change) is repaired to `active` here.
    pub async fn login(
        &self,
        username: &str,
        password: &Password,
        request_id: Option<&str>,
    ) -> Result<LoginOutcome, Error> {
        let login_name = username.trim().to_lowercase();
        let outcome = self
            .idp_call(idp_op::INITIATE_AUTH, self.idp.initiate_auth(&login_name, password))
            .await
            // Pools that reveal user existence answer UserNotFound: to the caller it is a wrong login.
            .map_err(login_error)?;
        match outcome {
            AuthOutcome::NewPasswordRequired { session, username } => {
                Ok(LoginOutcome::NewPasswordRequired { session, username })
            }
            AuthOutcome::Tokens(tokens) => {
                self.mark_accepted_if_needed(&login_name, request_id).await;
                Ok(LoginOutcome::Tokens(tokens))
            }
        }
    }

    /// Answers a `NEW_PASSWORD_REQUIRED` challenge with its session (the console's path), then marks the
    /// admin active. See [`Provisioner::handle_new_password_challenge`] for errors.
    pub async fn complete_new_password(
        &self,
        username: &str,
        session: &Secret,
        new_password: &Password,
        request_id: Option<&str>,
    ) -> Result<Tokens, Error> {
        let tokens = self
            .idp_call(
                idp_op::RESPOND_TO_AUTH_CHALLENGE,
                self.idp
                    .respond_to_new_password_challenge(username, session, new_password),
            )
            .await
            .map_err(login_error)?;
        self.mark_accepted_if_needed(username, request_id).await;
        Ok(tokens)
    }

    /// True when Cognito says `record`'s user (same `sub`) has set a password and is enabled: the
    /// evidence [`Provisioner::authorize`] needs before repairing a lost activation.
    async fn password_changed_in_cognito(&self, record: &AdminRecord) -> Result<bool, Error> {
        let username = &record.user.cognito_username;
        match self
            .retry(|| self.idp_call(idp_op::ADMIN_GET_USER, self.idp.admin_get_user(username)))
            .await
        {
            Ok(user) => {
                Ok(user.sub == record.user.cognito_sub && user.status == IdpUserStatus::Confirmed && user.enabled)
            }
            Err(IdpError::UserNotFound) => Ok(false),
            Err(e) => Err(admin_call_error(e)),
        }
    }
}
