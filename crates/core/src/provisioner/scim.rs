//! The SCIM door's operations: a SCIM create is one provisioning saga whose intent claims the `userName`
//! and carries the SCIM attributes, written in the records' own transaction; SCIM changes to those
//! attributes go through the same uniqueness rule. The HTTP layer (`src/scim`) only translates SCIM
//! documents to these calls.
//!
//! Uniqueness, before any side effect:
//! * the `userName` key ([`crate::domain::scim_user_name_key`]: IDN, case and NFKC look-alikes folded) must
//!   be no other admin's `userName` nor e-mail, checked here and claimed by the saga's intent (a unique
//!   index among unfinished sagas), with the unique index on `users.scim_user_name` behind both;
//! * every address in `emails` must be no other admin's e-mail nor `userName`.
//!
//! So a `409` never leaves an admin behind: a create refused for uniqueness never reached Cognito, and a
//! race lost at the records' transaction is compensated by the saga (its Cognito user deleted).

use super::*;

impl Provisioner {
    /// Provisions an admin for a SCIM client: [`Provisioner::provision_new_admin`] with the SCIM
    /// attributes written in the records' transaction (one saga; a crash is recovered with them).
    ///
    /// * `email` — the admin's address (the `userName` when it is one, else the primary `emails` value).
    /// * `attributes` — `externalId`, the `userName` key and the kept profile.
    /// * `other_emails` — the `emails` values, each checked to be no other admin's.
    /// * `role` — the new admin's role (SCIM `roles`; a SCIM token acts as an `admin`: never `owner`).
    ///
    /// Errors: as [`Provisioner::provision_new_admin`], plus [`Error::UserNameTaken`].
    pub async fn provision_scim_user(
        &self,
        caller: &Caller,
        email: &str,
        attributes: ScimAttributes,
        other_emails: &[String],
        role: Role,
        request_id: Option<&str>,
    ) -> Result<ProvisionedAdmin, Error> {
        let email = AdminEmail::parse(email)?;
        let actor = self.authorize(caller).await?;
        self.permit(&actor, AdminAction::Create, None, Some(role)).await?;
        self.check_scim_unique(&attributes.user_name, other_emails, None, Some(email.normalized()))
            .await?;
        self.run_provision_saga(
            actor,
            email,
            role,
            AuditAction::CreateAdmin,
            Some(attributes),
            request_id,
        )
        .await
    }

    /// Replaces the SCIM attributes of admin `id` (database only: they are not Cognito's), after the
    /// same uniqueness checks as a create.
    ///
    /// Errors: [`Error::Forbidden`], [`Error::NotFound`], [`Error::UserNameTaken`],
    /// [`Error::DatabaseUnavailable`].
    pub async fn set_scim_attributes(
        &self,
        caller: &Caller,
        id: UserId,
        attributes: ScimAttributes,
        other_emails: &[String],
    ) -> Result<AdminRecord, Error> {
        let actor = self.authorize(caller).await?;
        let record = self.get_admin_record(caller, id).await?;
        self.permit(&actor, AdminAction::SetScimAttributes, Some(&record), None)
            .await?;
        self.check_scim_unique(
            &attributes.user_name,
            other_emails,
            Some(id),
            Some(&record.user.email_normalized),
        )
        .await?;
        Ok(self
            .retry(|| {
                self.store_call(self.admins.set_scim_attributes(
                    id,
                    attributes.external_id.clone(),
                    Some(attributes.user_name.clone()),
                    Some(attributes.profile.clone()),
                ))
            })
            .await?)
    }

    /// The uniqueness checks of [`Provisioner::set_scim_attributes`] alone, writing nothing: a SCIM
    /// change that also switches `active` checks first, runs the disable or enable saga, then writes the
    /// attributes, so a refusal at either step leaves the User as it was.
    ///
    /// Errors: [`Error::Forbidden`], [`Error::NotFound`], [`Error::UserNameTaken`].
    pub async fn check_scim_attributes(
        &self,
        caller: &Caller,
        id: UserId,
        attributes: &ScimAttributes,
        other_emails: &[String],
    ) -> Result<(), Error> {
        let record = self.get_admin_record(caller, id).await?;
        self.check_scim_unique(
            &attributes.user_name,
            other_emails,
            Some(id),
            Some(&record.user.email_normalized),
        )
        .await
    }

    /// One admin's records, for a caller allowed to read them.
    ///
    /// Errors: [`Error::Forbidden`], [`Error::NotFound`], [`Error::DatabaseUnavailable`].
    pub async fn get_admin_record(&self, caller: &Caller, id: UserId) -> Result<AdminRecord, Error> {
        self.authorize(caller).await?;
        self.retry(|| self.store_call(self.admins.get_admin(id)))
            .await?
            .ok_or(Error::NotFound)
    }

    /// Admins whose SCIM key ([`ScimKey`]) is `key`: the SCIM filters `userName eq` and `externalId eq`
    /// as indexed lookups.
    pub async fn find_admins_by_scim_key(&self, caller: &Caller, key: &ScimKey) -> Result<Vec<AdminRecord>, Error> {
        self.authorize(caller).await?;
        Ok(self
            .retry(|| self.store_call(self.admins.find_admins_by_scim_key(key)))
            .await?)
    }

    /// One keyset page of stored admins (oldest first by `(created_at, id)`, after `after`, at most
    /// `limit`): the SCIM list walks the table with it, memory bounded by `limit`.
    pub async fn scan_admin_records(
        &self,
        caller: &Caller,
        after: Option<(DateTime<Utc>, UserId)>,
        limit: i64,
    ) -> Result<Vec<AdminRecord>, Error> {
        self.authorize(caller).await?;
        let all = crate::pages::StoredAdminFilter {
            status: None,
            email_prefix: None,
            now: self.now(),
        };
        Ok(self
            .retry(|| self.store_call(self.admins.list_admins_page(&all, after, limit)))
            .await?)
    }

    /// [`Error::UserNameTaken`] when `user_name` (a key) is another admin's `userName` or e-mail, or an
    /// address of `emails` is another admin's e-mail or `userName`. `except` is the admin being changed;
    /// `own_email` is their (or the new admin's) normalised address, which `emails` may of course carry.
    async fn check_scim_unique(
        &self,
        user_name: &str,
        emails: &[String],
        except: Option<UserId>,
        own_email: Option<&str>,
    ) -> Result<(), Error> {
        let mut keys = vec![user_name.to_string()];
        for raw in emails {
            let key = crate::domain::scim_user_name_key(raw);
            if Some(key.as_str()) != own_email && !keys.contains(&key) {
                keys.push(key);
            }
        }
        for key in keys {
            // One indexed lookup: the store matches the key against `users.scim_user_name` and the
            // normalised e-mail alike.
            let lookup = ScimKey::UserName(key.clone());
            let taken = self
                .retry(|| self.store_call(self.admins.find_admins_by_scim_key(&lookup)))
                .await?
                .iter()
                .any(|r| Some(r.user.id) != except);
            if taken {
                return Err(Error::UserNameTaken);
            }
        }
        Ok(())
    }
}
