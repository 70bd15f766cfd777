//! The admin list and one admin, as clients see them.

use super::*;
use crate::pages::{AdminCursor, AdminListQuery, AdminPage, StoredAdminFilter, UnfinishedFilter};

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

    /// One page of the admin list (see [`crate::pages`] for the order and the guarantees of a walk). Reads
    /// at most `limit + 1` rows of each kind, whatever the tables hold.
    pub async fn list_admin_page(&self, query: &AdminListQuery) -> Result<AdminPage, Error> {
        let limit = query.limit.clamp(1, crate::pages::MAX_LIMIT) as usize;
        let prefix = query.email_prefix.as_ref().map(|p| p.trim().to_lowercase());
        let wants_stored = !matches!(query.status, Some(InviteStatus::Pending | InviteStatus::Failed));
        let wants_unfinished = matches!(query.status, None | Some(InviteStatus::Pending | InviteStatus::Failed));
        let mut admins: Vec<AdminView> = Vec::new();
        let mut unfinished_after = None;
        match query.cursor {
            None | Some(AdminCursor::Stored { .. }) if wants_stored => {
                let after = match query.cursor {
                    Some(AdminCursor::Stored { created_at, id }) => Some((created_at, id)),
                    _ => None,
                };
                let now = self.now();
                let filter = StoredAdminFilter {
                    status: query.status,
                    email_prefix: prefix.clone(),
                    now,
                };
                let mut rows = self
                    .store_call(self.admins.list_admins_page(&filter, after, limit as i64 + 1))
                    .await?;
                if rows.len() > limit {
                    rows.truncate(limit);
                    let last = rows.last().expect("limit >= 1");
                    let next = AdminCursor::Stored {
                        created_at: last.user.created_at,
                        id: last.user.id,
                    };
                    return Ok(AdminPage {
                        admins: rows.into_iter().map(|r| AdminView::of_record(r, now)).collect(),
                        next: Some(next),
                    });
                }
                admins.extend(rows.into_iter().map(|r| AdminView::of_record(r, now)));
            }
            Some(AdminCursor::Unfinished { after }) => unfinished_after = after,
            _ => {}
        }
        if !wants_unfinished {
            return Ok(AdminPage { admins, next: None });
        }
        // Phase 2 fills the rest of the page. The stored admins were read first, so a provisioning that
        // finishes in between is missed by this walk rather than shown twice.
        let room = limit - admins.len();
        let filter = UnfinishedFilter {
            stuck: match query.status {
                Some(InviteStatus::Failed) => Some(true),
                Some(InviteStatus::Pending) => Some(false),
                _ => None,
            },
            email_prefix: prefix,
        };
        let mut sagas = self
            .store_call(
                self.sagas
                    .list_unfinished_provisions_page(&filter, unfinished_after, room as i64 + 1),
            )
            .await?;
        let more = sagas.len() > room;
        sagas.truncate(room);
        let next = match sagas.last() {
            Some(last) if more => Some(AdminCursor::Unfinished {
                after: Some((last.started_at, last.id)),
            }),
            // A page filled by stored admins alone: the next one starts phase 2.
            None if more => Some(AdminCursor::Unfinished { after: None }),
            _ => None,
        };
        let stored: std::collections::HashSet<UserId> = admins.iter().map(|a| a.id).collect();
        admins.extend(
            sagas
                .iter()
                .filter(|s| !stored.contains(&s.user_id))
                .map(AdminView::of_saga),
        );
        Ok(AdminPage { admins, next })
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
