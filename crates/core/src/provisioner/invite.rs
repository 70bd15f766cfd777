//! Invitations: resending, and recording that the invitee set a password.

use super::*;

impl Provisioner {
    pub(super) async fn resend_for(
        &self,
        actor: Actor,
        record: AdminRecord,
        request_id: Option<&str>,
    ) -> Result<InviteView, Error> {
        let now = self.now();
        if record.user.status == UserStatus::Active {
            return Err(Error::AlreadyActive);
        }
        let cooldown = chrono::Duration::from_std(self.settings.resend_cooldown).unwrap_or_default();
        let next_allowed = record.admin_info.last_invite_sent_at + cooldown;
        if now < next_allowed {
            let secs = (next_allowed - now).num_milliseconds().max(0) as u64;
            return Err(Error::ResendCooldown {
                retry_after_secs: secs.div_ceil(1000).max(1),
                cooldown_secs: self.settings.resend_cooldown.as_secs(),
            });
        }
        let req = CreateUserRequest {
            username: record.user.cognito_username.clone(),
            email: record.user.email_normalized.clone(),
            temporary_password: None,
            message_action: Some(MessageAction::Resend),
        };
        let delivered = match self
            .retry(|| self.idp_call(idp_op::ADMIN_CREATE_USER, self.idp.admin_create_user(req.clone())))
            .await
        {
            Ok(_) => true,
            Err(IdpError::CodeDeliveryFailure(_)) => false,
            Err(IdpError::UnsupportedUserState(_)) => {
                // Cognito says the password was already changed: repair the database.
                let audit = self.audit(
                    &actor,
                    AuditAction::FirstLoginCompleted,
                    &record.user.email_normalized,
                    "success",
                    request_id,
                );
                if let Err(e) = self
                    .retry(|| self.store_call(self.admins.mark_accepted(record.user.id, now, audit.clone())))
                    .await
                {
                    tracing::error!(user_id = %record.user.id, error = %e, "Cognito says the password was changed but the admin could not be marked active; their next request with a token will repair it");
                }
                return Err(Error::AlreadyActive);
            }
            Err(IdpError::UserNotFound) => return Err(Error::IdentityProviderError(
                "the Cognito user of this admin is missing in the user pool; remove the admin and provision it again"
                    .into(),
            )),
            Err(e) => {
                let err = admin_call_error(e);
                let audit = self.audit(
                    &actor,
                    AuditAction::ResendInvite,
                    &record.user.email_normalized,
                    &format!("failure: {}", err.code()),
                    request_id,
                );
                let _ = self.store_call(self.admins.append_audit(audit)).await;
                return Err(err);
            }
        };
        let expires = now + chrono::Duration::days(self.settings.invite_validity_days as i64);
        let audit = self.audit(
            &actor,
            AuditAction::ResendInvite,
            &record.user.email_normalized,
            if delivered { "success" } else { "success: not delivered" },
            request_id,
        );
        let updated = self
            .retry(|| {
                self.store_call(
                    self.admins
                        .record_invite_sent(record.user.id, now, expires, delivered, audit.clone()),
                )
            })
            .await?;
        Ok(InviteView::of(&updated, now))
    }

    /// After Cognito accepted a password (a login or the new-password challenge): marks the admin
    /// linked to `username` active if they are not yet. Never fails the login (the caller already has
    /// tokens): a lookup or write that still fails after the retries is logged with `tracing::error!`
    /// (the admin's id when known, never the password or a token), and the admin's next request with a
    /// token repairs it (see [`Provisioner::authorize`]).
    pub(super) async fn mark_accepted_if_needed(&self, username: &str, request_id: Option<&str>) {
        let found = match self
            .store_read(|| self.admins.find_admin_by_cognito_username(username))
            .await
        {
            Ok(Some(r)) => Ok(Some(r)),
            Ok(None) => {
                let email = username.to_lowercase();
                self.store_read(|| self.admins.find_admin_by_email(&email)).await
            }
            Err(e) => Err(e),
        };
        let record = match found {
            Ok(Some(record)) => record,
            Ok(None) => {
                tracing::warn!(
                    request_id,
                    "a Cognito user logged in who is linked to no admin; nothing to mark active"
                );
                return;
            }
            Err(e) => {
                tracing::error!(request_id, error = %e, "password changed but the admin could not be looked up to be marked active; their next request with a token will repair it");
                return;
            }
        };
        if record.user.status == UserStatus::Active {
            return;
        }
        if let Err(e) = self.record_first_login(&record, request_id).await {
            tracing::error!(user_id = %record.user.id, request_id, error = %e, "password changed but the admin could not be marked active; their next request with a token will repair it");
        }
    }

    /// Marks `record`'s admin active (`accepted_at`, status `active`), audited as their own
    /// `first_login_completed`, with the retries of any write. Idempotent in the store: an admin already
    /// active keeps its first `accepted_at`.
    pub(super) async fn record_first_login(
        &self,
        record: &AdminRecord,
        request_id: Option<&str>,
    ) -> Result<AdminRecord, StoreError> {
        let audit = self.audit(
            &Actor::Admin(record.user.id),
            AuditAction::FirstLoginCompleted,
            &record.user.email_normalized,
            "success",
            request_id,
        );
        self.retry(|| self.store_call(self.admins.mark_accepted(record.user.id, self.now(), audit.clone())))
            .await
    }
}
