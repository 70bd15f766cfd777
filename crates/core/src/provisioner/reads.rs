//! The reads and bookkeeping the surfaces need besides the operations (counts, audit pages, the saga
//! log, idempotency keys), each through the core's timeout and retry of transient store errors, so that
//! no surface reaches a port directly.

use super::*;

impl Provisioner {
    /// How many stored admins are `(active, invited, expired)` now.
    pub async fn admin_status_counts(&self) -> Result<(i64, i64, i64), Error> {
        let now = self.now();
        Ok(self
            .retry(|| self.store_call(self.admins.count_admins_by_status(now)))
            .await?)
    }

    /// At most `limit` audit events older than `before_id`, newest first, each with the acting admin's
    /// e-mail where known.
    pub async fn audit_page(
        &self,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(AuditEvent, Option<String>)>, Error> {
        Ok(self
            .retry(|| self.store_call(self.admins.list_audit_page(before_id, limit)))
            .await?)
    }

    /// One saga of the log.
    pub async fn saga(&self, id: Uuid) -> Result<Option<SagaRecord>, Error> {
        Ok(self.retry(|| self.store_call(self.sagas.get(id))).await?)
    }

    /// Every unfinished saga (for metrics and the console).
    pub async fn unfinished_sagas(&self) -> Result<Vec<SagaRecord>, Error> {
        Ok(self.retry(|| self.store_call(self.sagas.list_unfinished())).await?)
    }

    /// The admin with this normalised e-mail, if any (the operator's import checks lines with it).
    pub async fn admin_by_email(&self, email_normalized: &str) -> Result<Option<AdminRecord>, Error> {
        Ok(self
            .retry(|| self.store_call(self.admins.find_admin_by_email(email_normalized)))
            .await?)
    }

    /// Claims an idempotency key of `scope` (the calling admin) for a request whose body hashes to
    /// `request_hash`. See [`IdempotencyBegin`].
    pub(crate) async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyBegin, Error> {
        Ok(self
            .retry(|| self.store_call(self.admins.idempotency_begin(scope, key, request_hash)))
            .await?)
    }

    /// Remembers the definitive answer of a claimed key.
    pub(crate) async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        response: StoredResponse,
    ) -> Result<(), Error> {
        Ok(self
            .retry(|| self.store_call(self.admins.idempotency_complete(scope, key, response.clone())))
            .await?)
    }

    /// Releases a claimed key whose answer may change on a retry (throttling, server-side failures).
    pub(crate) async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<(), Error> {
        Ok(self
            .retry(|| self.store_call(self.admins.idempotency_abandon(scope, key)))
            .await?)
    }
}
