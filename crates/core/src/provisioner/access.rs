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
    ///
    /// With [`ProvisionerSettings::require_mfa`], an active admin without an enrolled authenticator is
    /// refused with [`Error::MfaEnrollmentRequired`] (see [`Provisioner::begin_mfa_enrolment`]).
    pub async fn authorize(&self, caller: &Caller) -> Result<Actor, Error> {
        self.authorize_with(caller, true).await
    }

    async fn authorize_with(&self, caller: &Caller, enforce_mfa: bool) -> Result<Actor, Error> {
        let actor = self.authorize_inner(caller).await?;
        if enforce_mfa && self.settings.require_mfa && matches!(caller, Caller::Token { .. }) {
            if let Actor::Admin(id) = actor {
                let record = self
                    .store_read(|| self.admins.get_admin(id))
                    .await?
                    .ok_or(Error::Forbidden)?;
                if record.user.mfa_enrolled_at.is_none() {
                    return Err(Error::MfaEnrollmentRequired);
                }
            }
        }
        Ok(actor)
    }

    async fn authorize_inner(&self, caller: &Caller) -> Result<Actor, Error> {
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
        if let AuthOutcome::Tokens(_) = &outcome {
            self.mark_accepted_if_needed(&login_name, request_id).await;
        }
        Ok(outcome)
    }

    /// Answers the challenge `session` belongs to (`RespondToAuthChallenge`): a new password, the
    /// completion of `MFA_SETUP` (after [`Provisioner::verify_mfa_in_challenge`]) or an authenticator
    /// code. Tokens mark a first login active; tokens after an MFA step prove the authenticator in
    /// Cognito, so its enrolment is recorded (which also repairs a record lost after an earlier
    /// enrolment). Errors: [`Error::InvalidCredentials`] (unknown, used or expired session),
    /// [`Error::InvalidMfaCode`] (wrong or already used code), [`Error::PasswordPolicy`].
    pub async fn respond_to_challenge(
        &self,
        username: &str,
        session: &Secret,
        answer: &ChallengeAnswer,
        request_id: Option<&str>,
    ) -> Result<LoginOutcome, Error> {
        let outcome = self
            .idp_call(
                idp_op::RESPOND_TO_AUTH_CHALLENGE,
                self.idp.respond_to_auth_challenge(username, session, answer),
            )
            .await
            .map_err(challenge_error)?;
        if let AuthOutcome::Tokens(_) = &outcome {
            self.mark_accepted_if_needed(username, request_id).await;
            if matches!(answer, ChallengeAnswer::MfaSetup | ChallengeAnswer::SoftwareTokenMfa(_)) {
                self.record_mfa_enrolled_by_username(username, request_id).await;
            }
        }
        Ok(outcome)
    }

    /// `MFA_SETUP`, first step: a new authenticator secret for the sign-in in `session`
    /// (`AssociateSoftwareToken` with the session). Returns the secret, its `otpauth://` URI and the next
    /// session.
    pub async fn begin_mfa_in_challenge(&self, username: &str, session: &Secret) -> Result<MfaEnrolment, Error> {
        let association = self
            .idp_call(
                idp_op::ASSOCIATE_SOFTWARE_TOKEN,
                self.idp.associate_software_token(&MfaAuth::Session(session.clone())),
            )
            .await
            .map_err(challenge_error)?;
        self.enrolment(association, username)
    }

    /// `MFA_SETUP`, second step: checks the authenticator's `code` (`VerifySoftwareToken` with the
    /// session), then completes the sign-in (`RespondToAuthChallenge` `MFA_SETUP`).
    pub async fn verify_mfa_in_challenge(
        &self,
        username: &str,
        session: &Secret,
        code: &Secret,
        request_id: Option<&str>,
    ) -> Result<LoginOutcome, Error> {
        let next = self
            .idp_call(
                idp_op::VERIFY_SOFTWARE_TOKEN,
                self.idp.verify_software_token(&MfaAuth::Session(session.clone()), code),
            )
            .await
            .map_err(challenge_error)?
            .ok_or_else(|| Error::IdentityProviderError("VerifySoftwareToken answered no session".into()))?;
        self.respond_to_challenge(username, &next, &ChallengeAnswer::MfaSetup, request_id)
            .await
    }

    /// Enrolment by a signed-in admin (`REQUIRE_MFA` with an `OPTIONAL` pool, or a new authenticator):
    /// `AssociateSoftwareToken` with their access token. Allowed while
    /// [`Error::MfaEnrollmentRequired`] refuses everything else.
    pub async fn begin_mfa_enrolment(&self, caller: &Caller, access_token: &Secret) -> Result<MfaEnrolment, Error> {
        self.authorize_with(caller, false).await?;
        let account = match caller {
            Caller::Token { username, .. } => username.clone(),
            _ => return Err(Error::Forbidden),
        };
        let association = self
            .idp_call(
                idp_op::ASSOCIATE_SOFTWARE_TOKEN,
                self.idp
                    .associate_software_token(&MfaAuth::AccessToken(access_token.clone())),
            )
            .await
            .map_err(challenge_error)?;
        self.enrolment(association, &account)
    }

    /// Completes [`Provisioner::begin_mfa_enrolment`]: `VerifySoftwareToken` with the code, then
    /// `SetUserMFAPreference` (software token enabled and preferred), then `users.mfa_enrolled_at`. A
    /// database failure after Cognito's success is logged, not returned: the admin's next sign-in answers
    /// `SOFTWARE_TOKEN_MFA`, which records the enrolment ([`Provisioner::respond_to_challenge`]).
    pub async fn complete_mfa_enrolment(
        &self,
        caller: &Caller,
        access_token: &Secret,
        code: &Secret,
        request_id: Option<&str>,
    ) -> Result<(), Error> {
        let actor = self.authorize_with(caller, false).await?;
        let auth = MfaAuth::AccessToken(access_token.clone());
        self.idp_call(
            idp_op::VERIFY_SOFTWARE_TOKEN,
            self.idp.verify_software_token(&auth, code),
        )
        .await
        .map_err(challenge_error)?;
        self.retry(|| {
            self.idp_call(
                idp_op::SET_USER_MFA_PREFERENCE,
                self.idp.set_user_mfa_preference(access_token, true),
            )
        })
        .await
        .map_err(challenge_error)?;
        if let Actor::Admin(id) = actor {
            self.record_mfa_enrolled(id, request_id).await;
        }
        Ok(())
    }

    fn enrolment(
        &self,
        association: crate::identity::SoftwareTokenAssociation,
        account: &str,
    ) -> Result<MfaEnrolment, Error> {
        let uri = crate::totp::otpauth_uri(association.secret_code.expose(), &self.settings.mfa_issuer, account)
            .map_err(|e| Error::IdentityProviderError(e.to_string()))?;
        Ok(MfaEnrolment {
            secret_code: association.secret_code,
            otpauth_uri: Secret::new(uri),
            session: association.session,
        })
    }

    async fn record_mfa_enrolled_by_username(&self, username: &str, request_id: Option<&str>) {
        match self
            .store_read(|| self.admins.find_admin_by_cognito_username(username))
            .await
        {
            Ok(Some(r)) if r.user.mfa_enrolled_at.is_none() => self.record_mfa_enrolled(r.user.id, request_id).await,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(request_id, error = %e, "MFA proven in Cognito but the admin could not be looked up; their next sign-in records it");
            }
        }
    }

    async fn record_mfa_enrolled(&self, id: UserId, request_id: Option<&str>) {
        let at = self.now();
        match self
            .retry(|| self.store_call(self.admins.set_mfa_enrolled(id, Some(at))))
            .await
        {
            Ok(_) => tracing::info!(user_id = %id, request_id, "MFA enrolment recorded"),
            Err(e) => {
                tracing::error!(user_id = %id, request_id, error = %e, "MFA enrolled in Cognito but not recorded; the next sign-in with a code records it");
            }
        }
    }

    /// Answers a `NEW_PASSWORD_REQUIRED` challenge with its session (the console's path), then marks the
    /// admin active. In a pool with `MfaConfiguration=ON` the answer is the `MFA_SETUP` challenge. See [`Provisioner::handle_new_password_challenge`] for errors.
    pub async fn complete_new_password(
        &self,
        username: &str,
        session: &Secret,
        new_password: &Password,
        request_id: Option<&str>,
    ) -> Result<LoginOutcome, Error> {
        self.respond_to_challenge(
            username,
            session,
            &ChallengeAnswer::NewPassword(new_password.clone()),
            request_id,
        )
        .await
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
