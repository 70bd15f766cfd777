//! Named crash points: places just before and after each side effect of a saga where a test can make the
//! real process die with SIGKILL, to prove that recovery by a new process keeps both-or-neither.
//!
//! Armed only in a build with the `testing` cargo feature (the workspace's test builds enable it through a
//! dev-dependency; a release build compiles [`point`] to nothing), and only when
//! `ADMIN_PROVISIONER_CRASH_AT` names the point.

/// The crash points of the provisioning saga, in the order a run passes them. The engine fires them at
/// places derived from the saga's table (`SagaDef::crash_points`; a unit test keeps this list equal to it).
pub const PROVISION_CRASH_POINTS: &[&str] = &[
    // The intent is recorded as `identity_creating` (lease taken): AdminCreateUser is about to be called;
    // it was not.
    "provision.after_intent",
    // The Cognito user exists; the saga log does not know it (the records' transaction would log it).
    "provision.after_create_user",
    // The records are written and the saga completed; the caller has not been answered.
    "provision.after_records",
];

/// The crash points of the removal saga, in the order a run passes them (derived like the above).
pub const REMOVE_CRASH_POINTS: &[&str] = &[
    // The intent is recorded (lease taken); nothing else happened.
    "remove.after_intent",
    // The records are deleted and the saga is `identity_pending_delete`, in one transaction.
    "remove.after_delete_records",
    // The Cognito user is deleted; the saga log does not say so yet.
    "remove.after_delete_user",
    // The saga is completed; the caller has not been answered.
    "remove.after_completed",
];

/// The crash points of the disable saga, in the order a run passes them (derived like the above).
pub const DISABLE_CRASH_POINTS: &[&str] = &[
    // The intent is recorded (lease taken); nothing else happened.
    "disable.after_intent",
    // The database says disabled and the saga is `identity_updating`, in one transaction; Cognito not yet.
    "disable.after_disable_records",
    // Cognito's user is disabled; the saga log does not say so yet.
    "disable.after_disable_user",
    // The saga is completed; the caller has not been answered.
    "disable.after_completed",
];

/// The crash points of the enable saga, in the order a run passes them (derived like the above).
pub const ENABLE_CRASH_POINTS: &[&str] = &[
    // The intent is recorded as `identity_updating` (lease taken): AdminEnableUser is about to be
    // called; it was not.
    "enable.after_intent",
    // Cognito's user is enabled; the database still says disabled.
    "enable.after_enable_user",
    // The records are enabled and the saga completed, in one transaction; the caller has not been answered.
    "enable.after_enable_records",
];

/// The crash points of the password-reset saga, in the order a run passes them (derived like the above).
pub const RESET_PASSWORD_CRASH_POINTS: &[&str] = &[
    // The intent is recorded as `identity_updating` (lease taken): AdminResetUserPassword is about to be
    // called; it was not.
    "reset_password.after_intent",
    // Cognito reset the password; the user is not signed out yet and the database knows nothing.
    "reset_password.after_reset_user",
    // Cognito signed the user out too; the database's sessions and event are next.
    "reset_password.after_sign_out_user",
    // The sessions ended, the event and the saga completed, in one transaction; no answer yet.
    "reset_password.after_reset_records",
];

/// The crash points of the MFA-reset saga, in the order a run passes them (derived like the above).
pub const RESET_MFA_CRASH_POINTS: &[&str] = &[
    "reset_mfa.after_intent",
    "reset_mfa.after_clear_mfa",
    "reset_mfa.after_sign_out_user",
    "reset_mfa.after_mfa_records",
];

/// The crash points of the provisioning saga with roles mirrored into Cognito groups
/// (`COGNITO_ROLE_GROUPS=true`), in the order a run passes them (derived like the above).
pub const PROVISION_GROUPS_CRASH_POINTS: &[&str] = &[
    "provision.after_intent",
    "provision.after_create_user",
    // The Cognito user is in its role's group; the database knows nothing yet.
    "provision.after_add_to_group",
    "provision.after_records",
];

/// The crash points of the role-change saga with roles mirrored into Cognito groups, in the order a run
/// passes them (derived like the above).
pub const CHANGE_ROLE_GROUPS_CRASH_POINTS: &[&str] = &[
    // The intent is recorded as `identity_updating` (lease taken); no group changed yet.
    "change_role.after_intent",
    // The user is in the new role's group too; still in the former one; the database has the old role.
    "change_role.after_group_add",
    // The user is only in the new role's group; the database still has the old role.
    "change_role.after_group_remove",
    // The role is written and the saga completed; the caller has not been answered.
    "change_role.after_role_records",
];

/// The environment variable naming the point to die at.
pub const CRASH_AT_ENV: &str = "ADMIN_PROVISIONER_CRASH_AT";

/// Dies with SIGKILL here if this is the armed crash point (testing builds only).
#[inline]
pub fn point(name: &str) {
    #[cfg(feature = "testing")]
    {
        if std::env::var(CRASH_AT_ENV).as_deref() == Ok(name) {
            eprintln!("crash point {name} reached: SIGKILL");
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill").args(["-9", &pid]).status();
            // `kill` unavailable: die without unwinding all the same.
            std::process::abort();
        }
    }
    #[cfg(not(feature = "testing"))]
    let _ = name;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_crash_points_are_the_ones_the_tables_derive() {
        let derived = crate::provisioner::crash_points(crate::store::SagaKind::Provision);
        assert_eq!(derived, PROVISION_CRASH_POINTS);
        let derived = crate::provisioner::crash_points(crate::store::SagaKind::Remove);
        assert_eq!(derived, REMOVE_CRASH_POINTS);
        let derived = crate::provisioner::crash_points(crate::store::SagaKind::Disable);
        assert_eq!(derived, DISABLE_CRASH_POINTS);
        let derived = crate::provisioner::crash_points(crate::store::SagaKind::Enable);
        assert_eq!(derived, ENABLE_CRASH_POINTS);
        let derived = crate::provisioner::crash_points(crate::store::SagaKind::ResetPassword);
        assert_eq!(derived, RESET_PASSWORD_CRASH_POINTS);
        let derived = crate::provisioner::crash_points(crate::store::SagaKind::ResetMfa);
        assert_eq!(derived, RESET_MFA_CRASH_POINTS);
        let derived = crate::provisioner::crash_points_mirrored(crate::store::SagaKind::Provision, true);
        assert_eq!(derived, PROVISION_GROUPS_CRASH_POINTS);
        let derived = crate::provisioner::crash_points_mirrored(crate::store::SagaKind::ChangeRole, true);
        assert_eq!(derived, CHANGE_ROLE_GROUPS_CRASH_POINTS);
    }
}
