//! The admin list and one admin, as clients see them.

use super::*;

impl Provisioner {
    /// Every admin with its computed status, plus unfinished provisionings (`pending`) and stuck ones
    /// (`failed`). Oldest first.
    pub async fn list_admin_views(&self) -> Result<Vec<AdminView>, Error> {
        let now = self.now();
        let mut out: Vec<AdminView> = self
            .store_call(self.admins.list_admins())
            .await?
            .into_iter()
            .map(|r| AdminView::of_record(r, now))
            .collect();
        let stored: std::collections::HashSet<UserId> = out.iter().map(|a| a.id).collect();
        for s in self.store_call(self.sagas.list_unfinished()).await? {
            if s.kind == SagaKind::Provision && !stored.contains(&s.user_id) {
                out.push(AdminView::of_saga(&s));
            }
        }
        Ok(out)
    }

    /// One admin (or unfinished provisioning) by id.
    pub async fn get_admin_view(&self, id: UserId) -> Result<AdminView, Error> {
        if let Some(record) = self.store_call(self.admins.get_admin(id)).await? {
            return Ok(AdminView::of_record(record, self.now()));
        }
        Ok(AdminView::of_saga(
            &self.unfinished_provision_of(id).await?.ok_or(Error::NotFound)?,
        ))
    }

    /// The unfinished provisioning saga that will write admin `id`, if any.
    pub(super) async fn unfinished_provision_of(&self, id: UserId) -> Result<Option<SagaRecord>, Error> {
        Ok(self
            .store_call(self.sagas.list_unfinished())
            .await?
            .into_iter()
            .find(|s| s.kind == SagaKind::Provision && s.user_id == id))
    }
}
