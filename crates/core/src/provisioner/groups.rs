//! Roles mirrored into Cognito groups (`COGNITO_ROLE_GROUPS=true`): each role is a group named
//! `COGNITO_GROUP_PREFIX` + role (`admin-provisioner-owner`, `-admin`, `-viewer`), created if missing at
//! start-up ([`Provisioner::ensure_role_groups`]) or at first use. An admin is in exactly the group of
//! their database role: provisioning adds the user to it (step `add_to_group`), a role change moves the
//! user between groups and the database together (the `change_role` saga's group steps), and the
//! reconciler reports (`role_group_mismatch`) and repairs drift.
//!
//! The product touches only the three groups it names: a group of any other name, and a user's
//! membership in it, is never changed.

use super::*;

/// Description the product gives the groups it creates.
const GROUP_DESCRIPTION: &str =
    "Managed by admin-provisioner: members are the admins of this role. Do not edit by hand.";

impl Provisioner {
    /// Whether roles are mirrored into Cognito groups.
    pub fn mirrors_role_groups(&self) -> bool {
        self.settings.role_groups.is_some()
    }

    /// The group of `role` (`None` when mirroring is off).
    pub fn role_group(&self, role: Role) -> Option<String> {
        self.settings
            .role_groups
            .as_ref()
            .map(|prefix| format!("{prefix}{}", role.as_str()))
    }

    /// The product's groups, one per role (empty when mirroring is off).
    pub fn role_groups(&self) -> Vec<String> {
        Role::ALL.iter().filter_map(|r| self.role_group(*r)).collect()
    }

    /// Creates the role groups that are missing (`GetGroup`, then `CreateGroup`; a group created
    /// concurrently is fine). Returns the names it created. Nothing when mirroring is off.
    pub async fn ensure_role_groups(&self) -> Result<Vec<String>, Error> {
        let mut created = Vec::new();
        for group in self.role_groups() {
            match self
                .retry(|| self.idp_call(idp_op::GET_GROUP, self.idp.get_group(&group)))
                .await
            {
                Ok(_) => continue,
                Err(IdpError::ResourceNotFound(_)) => {}
                Err(e) => return Err(admin_call_error(e)),
            }
            if self.create_role_group(&group).await.map_err(admin_call_error)? {
                created.push(group);
            }
        }
        Ok(created)
    }

    /// `CreateGroup`; `Ok(false)` when it already existed.
    async fn create_role_group(&self, group: &str) -> Result<bool, IdpError> {
        match self
            .retry(|| self.idp_call(idp_op::CREATE_GROUP, self.idp.create_group(group, GROUP_DESCRIPTION)))
            .await
        {
            Ok(()) => {
                tracing::info!(group, "Cognito role group created");
                Ok(true)
            }
            Err(IdpError::GroupExists(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `AdminAddUserToGroup` (idempotent, retried); a missing group is created first use and the call
    /// made again.
    pub(super) async fn add_to_group(&self, username: &str, group: &str) -> Result<(), IdpError> {
        let add = || {
            self.retry(|| {
                self.idp_call(
                    idp_op::ADMIN_ADD_USER_TO_GROUP,
                    self.idp.admin_add_user_to_group(username, group),
                )
            })
        };
        match add().await {
            Err(IdpError::ResourceNotFound(m)) if self.role_groups().iter().any(|g| g == group) => {
                tracing::warn!(group, message = %m, "role group missing; creating it");
                self.create_role_group(group).await?;
                add().await
            }
            other => other,
        }
    }

    /// `AdminRemoveUserFromGroup` (idempotent, retried). A missing group has no member to remove.
    pub(super) async fn remove_from_group(&self, username: &str, group: &str) -> Result<(), IdpError> {
        match self
            .retry(|| {
                self.idp_call(
                    idp_op::ADMIN_REMOVE_USER_FROM_GROUP,
                    self.idp.admin_remove_user_from_group(username, group),
                )
            })
            .await
        {
            Err(IdpError::ResourceNotFound(_)) => Ok(()),
            other => other,
        }
    }

    /// The product's role groups the user is in (`AdminListGroupsForUser`, other groups left out), sorted.
    pub async fn product_groups_of(&self, username: &str) -> Result<Vec<String>, IdpError> {
        let ours = self.role_groups();
        let all = self
            .retry(|| {
                self.idp_call(
                    idp_op::ADMIN_LIST_GROUPS_FOR_USER,
                    self.idp.admin_list_groups_for_user(username),
                )
            })
            .await?;
        Ok(all.into_iter().filter(|g| ours.contains(g)).collect())
    }

    /// Puts the user in exactly the group of `role` among the product's groups: adds it if missing, then
    /// removes the user from the product's other groups. Returns (added, removed).
    pub(crate) async fn set_role_group(
        &self,
        username: &str,
        role: Role,
    ) -> Result<(Vec<String>, Vec<String>), IdpError> {
        let Some(target) = self.role_group(role) else {
            return Ok((Vec::new(), Vec::new()));
        };
        let current = self.product_groups_of(username).await?;
        let mut added = Vec::new();
        if !current.contains(&target) {
            self.add_to_group(username, &target).await?;
            added.push(target.clone());
        }
        let mut removed = Vec::new();
        for g in current.into_iter().filter(|g| *g != target) {
            self.remove_from_group(username, &g).await?;
            removed.push(g);
        }
        Ok((added, removed))
    }
}
