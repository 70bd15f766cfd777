//! Groups of the emulated pool (`CreateGroup`, `GetGroup`, `AdminAddUserToGroup`,
//! `AdminRemoveUserFromGroup`, `AdminListGroupsForUser`), kept in the SQLite state (`emu_groups`,
//! `emu_group_members`) so they survive restarts, and the `cognito:groups` claim of the tokens.
//!
//! Cognito's rules: a group name is 1–128 characters without whitespace or control characters, a
//! description at most 2048; creating an existing name is `GroupExistsException`; adding a member twice
//! or removing a non-member succeeds; a missing group is `ResourceNotFoundException` ("Group not
//! found."), a missing user `UserNotFoundException`; deleting a user ends its memberships.

use crate::db::{find_user, micros, unavailable, username_key};
use crate::CognitoEmulator;
use admin_provisioner_core::identity::{IdpError, IdpGroup};

/// The tables, created at every open (idempotent; see `db::migrate`).
pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS emu_groups (
        name          TEXT PRIMARY KEY NOT NULL,
        description   TEXT,
        created_at_us INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS emu_group_members (
        group_name   TEXT NOT NULL REFERENCES emu_groups(name) ON DELETE CASCADE,
        username_key TEXT NOT NULL REFERENCES emu_users(username_key) ON DELETE CASCADE,
        PRIMARY KEY (group_name, username_key)
    )",
    "CREATE INDEX IF NOT EXISTS emu_group_members_by_user ON emu_group_members(username_key)",
];

const GROUP_NOT_FOUND: &str = "Group not found.";

fn check_name(name: &str) -> Result<(), IdpError> {
    let len = name.chars().count();
    if len == 0 || len > 128 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(IdpError::InvalidParameter(
            "1 validation error detected: Value at 'groupName' failed to satisfy constraint: Member must satisfy \
             regular expression pattern: [\\p{L}\\p{M}\\p{S}\\p{N}\\p{P}]+ and have length between 1 and 128"
                .into(),
        ));
    }
    Ok(())
}

impl CognitoEmulator {
    /// `CreateGroup`.
    #[tracing::instrument(skip_all, fields(op = "CreateGroup", group = %name))]
    pub(crate) async fn emu_create_group(&self, name: &str, description: &str) -> Result<(), IdpError> {
        self.inner.meter.admit("CreateGroup").await?;
        check_name(name)?;
        if description.chars().count() > 2048 {
            return Err(IdpError::InvalidParameter(
                "Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 2048"
                    .into(),
            ));
        }
        let r = sqlx::query("INSERT INTO emu_groups (name, description, created_at_us) VALUES (?, ?, ?)")
            .bind(name)
            .bind((!description.is_empty()).then_some(description))
            .bind(micros(self.now()))
            .execute(&self.inner.pool)
            .await;
        match r {
            Ok(_) => {
                tracing::info!("group created");
                Ok(())
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(IdpError::GroupExists("A group with the name already exists".into()))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// `GetGroup`.
    pub(crate) async fn emu_get_group(&self, name: &str) -> Result<IdpGroup, IdpError> {
        self.inner.meter.admit("GetGroup").await?;
        check_name(name)?;
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT name, description FROM emu_groups WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(unavailable)?;
        row.map(|(name, description)| IdpGroup { name, description })
            .ok_or_else(|| IdpError::ResourceNotFound(GROUP_NOT_FOUND.into()))
    }

    /// `AdminAddUserToGroup` (`add`) or `AdminRemoveUserFromGroup`, in one transaction.
    pub(crate) async fn emu_set_membership(&self, username: &str, group: &str, add: bool) -> Result<(), IdpError> {
        let op = if add {
            "AdminAddUserToGroup"
        } else {
            "AdminRemoveUserFromGroup"
        };
        self.inner.meter.admit(op).await?;
        check_name(group)?;
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM emu_groups WHERE name = ?")
            .bind(group)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        if exists.is_none() {
            return Err(IdpError::ResourceNotFound(GROUP_NOT_FOUND.into()));
        }
        let user = find_user(&mut *tx, username)
            .await
            .map_err(unavailable)?
            .ok_or(IdpError::UserNotFound)?;
        let key = username_key(&user.username);
        let sql = if add {
            "INSERT OR IGNORE INTO emu_group_members (group_name, username_key) VALUES (?, ?)"
        } else {
            "DELETE FROM emu_group_members WHERE group_name = ? AND username_key = ?"
        };
        sqlx::query(sql)
            .bind(group)
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        tracing::info!(op, group, sub = %user.sub, "group membership changed");
        Ok(())
    }

    /// `AdminListGroupsForUser`: the user's group names, sorted.
    pub(crate) async fn emu_list_groups_for_user(&self, username: &str) -> Result<Vec<String>, IdpError> {
        self.inner.meter.admit("AdminListGroupsForUser").await?;
        let user = find_user(&self.inner.pool, username)
            .await
            .map_err(unavailable)?
            .ok_or(IdpError::UserNotFound)?;
        self.groups_of_key(&username_key(&user.username)).await
    }

    /// The group's name, description and creation time (microseconds), for the wire's `GroupType`.
    pub(crate) async fn group_row(&self, name: &str) -> Result<Option<(String, Option<String>, i64)>, IdpError> {
        sqlx::query_as("SELECT name, description, created_at_us FROM emu_groups WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(unavailable)
    }

    /// The group names of the user with this lookup key, sorted (the tokens' `cognito:groups`).
    pub(crate) async fn groups_of_key(&self, key: &str) -> Result<Vec<String>, IdpError> {
        sqlx::query_scalar("SELECT group_name FROM emu_group_members WHERE username_key = ? ORDER BY group_name")
            .bind(key)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(unavailable)
    }
}
