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
                let _ = self
                    .store_call(self.admins.mark_accepted(record.user.id, now, audit))
                    .await;
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

    pub(super) async fn mark_accepted_if_needed(&self, username: &str, request_id: Option<&str>) {
        let record = match self
            .store_call(self.admins.find_admin_by_cognito_username(username))
            .await
        {
            Ok(Some(r)) => Some(r),
            Ok(None) => self
                .store_call(self.admins.find_admin_by_email(&username.to_lowercase()))
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        let Some(record) = record else { return };
        if record.user.status == UserStatus::Active {
            return;
        }
        let actor = Actor::Admin(record.user.id);
        let audit = self.audit(
            &actor,
            AuditAction::FirstLoginCompleted,
            &record.user.email_normalized,
            "success",
            request_id,
        );
        if let Err(e) = self
            .retry(|| self.store_call(self.admins.mark_accepted(record.user.id, self.now(), audit.clone())))
            .await
        {
            tracing::error!(user_id = %record.user.id, error = %e, "password changed but the admin could not be marked active; the next login will repair it");
        }
    }
}
