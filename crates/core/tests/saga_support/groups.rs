//! Roles mirrored into Cognito groups (`COGNITO_ROLE_GROUPS=true`): the harness's group checks, the
//! table-derived cells of the group tables, and the role-change fault case.

use super::*;
use admin_provisioner_core::domain::{Role, UserId};
use admin_provisioner_core::provisioner::saga_steps_mirrored;

/// The prefix the group tests use (the default of `COGNITO_GROUP_PREFIX`).
pub const PREFIX: &str = "admin-provisioner-";

/// The group of `role`.
pub fn group(role: Role) -> String {
    format!("{PREFIX}{}", role.as_str())
}

/// `base` with roles mirrored into groups.
pub fn mirrored(base: ProvisionerSettings) -> ProvisionerSettings {
    ProvisionerSettings {
        role_groups: Some(PREFIX.to_string()),
        ..base
    }
}

/// An emulator + SQLite harness with mirroring on and the role groups created (as `serve` does at
/// start-up); the fault plan's call log starts after that.
pub async fn emulator_sqlite_mirrored(base: ProvisionerSettings) -> (Harness, usize) {
    let h = Harness::emulator_sqlite_with(mirrored(base)).await;
    h.p.ensure_role_groups().await.unwrap();
    let start = h.plan.call_log().len();
    (h, start)
}

impl Harness {
    /// The product's role groups the user is in, read directly (no faults).
    pub async fn role_groups_of(&self, username: &str) -> Vec<String> {
        match self.raw_idp.admin_list_groups_for_user(username).await {
            Ok(g) => g.into_iter().filter(|g| g.starts_with(PREFIX)).collect(),
            Err(IdpError::UserNotFound) => Vec::new(),
            Err(e) => panic!("AdminListGroupsForUser failed: {e}"),
        }
    }

    /// The database role of `email`'s admin, if any.
    pub async fn db_role(&self, email: &str) -> Option<Role> {
        self.raw_store
            .find_admin_by_email(&email.to_lowercase())
            .await
            .unwrap()
            .map(|r| r.admin_info.role)
    }

    /// Both systems agree on `email`: both-or-neither, and an admin's Cognito user is in exactly the
    /// group of its database role. Returns the role.
    pub async fn assert_groups_follow_role(&self, email: &str, ctx: &str) -> Option<Role> {
        self.assert_both_or_neither(email).await;
        let record = self
            .raw_store
            .find_admin_by_email(&email.to_lowercase())
            .await
            .unwrap()?;
        let groups = self.role_groups_of(&record.user.cognito_username).await;
        assert_eq!(
            groups,
            [group(record.admin_info.role)],
            "{ctx}: {email} has role {} in the database but role groups {groups:?}",
            record.admin_info.role
        );
        Some(record.admin_info.role)
    }
}

/// [`table_cells`] for a table with its group steps (mirroring on).
pub fn table_cells_mirrored(kind: SagaKind, clean_log: &[String]) -> Vec<Cell> {
    let begin = clean_log
        .iter()
        .position(|op| op == store_op::SAGA_BEGIN)
        .unwrap_or_else(|| panic!("no intent in the clean run {clean_log:?}"));
    let mut cells: Vec<Cell> = Vec::new();
    let push = |cells: &mut Vec<Cell>, step: &'static str, op: &'static str| {
        let skip = cells.iter().filter(|c| c.op == op).count() as u32;
        cells.push(Cell { step, op, skip });
    };
    for op in &clean_log[..begin] {
        let op: &'static str = Box::leak(op.clone().into_boxed_str());
        push(&mut cells, "precondition", op);
    }
    for step in saga_steps_mirrored(kind, true) {
        for op in step.calls {
            push(&mut cells, step.name, op);
        }
    }
    let declared: Vec<&str> = cells.iter().map(|c| c.op).collect();
    let called: Vec<&str> = clean_log.iter().map(String::as_str).collect();
    assert_eq!(
        declared, called,
        "the mirrored {kind:?} table's declared calls differ from a clean run's calls"
    );
    cells
}

/// The calls of a clean provisioning with mirroring on.
pub async fn clean_provision_log_mirrored() -> Vec<String> {
    let (h, start) = emulator_sqlite_mirrored(matrix_settings()).await;
    h.p.provision_new_admin(&Caller::Operator, "probe@example.com", None)
        .await
        .unwrap();
    h.plan.call_log()[start..].to_vec()
}

/// The subject of a role-change cell: an admin (role `admin`), provisioned cleanly.
pub async fn role_subject(h: &Harness, email: &str) -> UserId {
    h.p.provision_new_admin(&Caller::Operator, email, None)
        .await
        .unwrap()
        .user
        .id
}

/// The calls of a clean role change (admin → viewer) with mirroring on.
pub async fn clean_change_role_log_mirrored() -> Vec<String> {
    let (h, _) = emulator_sqlite_mirrored(matrix_settings()).await;
    let id = role_subject(&h, "probe@example.com").await;
    let before = h.plan.call_log().len();
    h.p.change_role(&Caller::Operator, id, Role::Viewer, None)
        .await
        .unwrap();
    h.plan.call_log()[before..].to_vec()
}

/// One role-change cell (mirroring on): an admin is moved admin → viewer while `op`'s `skip + 1`-th call
/// fails in `mode`. The fault fires; a single transient fault is absorbed; `Ok` means the database and
/// the groups say viewer; `SagaStuck` leaves an unfinished saga; any other error leaves both at admin.
/// After the recovery that follows, no saga is unfinished and the groups follow the database's role;
/// the change then succeeds.
pub async fn run_change_role_fault_case(h: &Harness, op: &str, skip: u32, mode: FaultMode, times: Option<u32>) {
    let ctx = format!("change_role fault {op}#{skip} {mode:?} times={times:?}");
    let email = "mover@example.com";
    let id = role_subject(h, email).await;
    // A group the product did not make: never touched.
    h.raw_idp.create_group("team-x", "someone else's").await.unwrap();
    h.raw_idp.admin_add_user_to_group(email, "team-x").await.unwrap();

    h.plan.fail_after(op, skip, mode, times);
    let result =
        h.p.change_role(&Caller::Operator, id, Role::Viewer, Some("matrix"))
            .await;
    assert!(h.plan.fired(op) > 0, "{ctx}: the fault never fired");
    if times == Some(1) {
        assert!(
            result.is_ok(),
            "{ctx}: a single transient fault was not absorbed: {result:?}"
        );
    }
    match &result {
        Ok(r) => {
            assert_eq!(r.admin_info.role, Role::Viewer, "{ctx}");
            assert_eq!(
                h.assert_groups_follow_role(email, &ctx).await,
                Some(Role::Viewer),
                "{ctx}"
            );
        }
        Err(Error::SagaStuck { saga_id }) => {
            let saga = h.raw_store.get(*saga_id).await.unwrap().unwrap();
            assert!(
                !saga.state.is_terminal(),
                "{ctx}: stuck but the saga is {:?}",
                saga.state
            );
        }
        Err(e) => {
            assert_eq!(
                h.db_role(email).await,
                Some(Role::Admin),
                "{ctx}: error {e:?} but the role changed"
            );
            assert_eq!(
                h.assert_groups_follow_role(email, &ctx).await,
                Some(Role::Admin),
                "{ctx}: {e:?}"
            );
        }
    }
    h.plan.clear();
    h.recover().await;
    assert!(
        h.raw_store.list_unfinished().await.unwrap().is_empty(),
        "{ctx}: unfinished sagas remain after recovery"
    );
    let settled = h.assert_groups_follow_role(email, &ctx).await;
    if result.is_ok() {
        assert_eq!(settled, Some(Role::Viewer), "{ctx}");
    }
    let all = h.raw_idp.admin_list_groups_for_user(email).await.unwrap();
    assert!(
        all.contains(&"team-x".to_string()),
        "{ctx}: a foreign group was touched: {all:?}"
    );
    // Nothing is left half-done: the change now succeeds (or already has) and both say viewer.
    h.p.change_role(&Caller::Operator, id, Role::Viewer, None)
        .await
        .unwrap();
    assert_eq!(h.assert_groups_follow_role(email, &ctx).await, Some(Role::Viewer));
}

/// Marks `id` active (first login done) directly in the store, as the reconciler's repair does.
pub async fn mark_active(h: &Harness, id: UserId, email: &str) {
    use admin_provisioner_core::domain::Actor;
    use admin_provisioner_core::store::{AuditAction, AuditEntry};
    let audit = AuditEntry {
        actor: Actor::Reconciler,
        action: AuditAction::ReconcileMarkActive,
        target: email.to_string(),
        outcome: "success: test".into(),
        request_id: None,
        at: h.p.now(),
    };
    h.raw_store.mark_accepted(id, h.p.now(), audit).await.unwrap();
}

/// Provision an owner and a viewer, move the viewer through every role, meet the last-owner guard (the
/// group steps undone with the refused write), remove: after each step both systems are checked.
pub async fn role_walk(h: &Harness) {
    let owner_email = "walk.owner@example.com";
    let email = "walker@example.com";
    let owner =
        h.p.provision_admin_with_role(&Caller::Operator, owner_email, Role::Owner, None)
            .await
            .unwrap();
    assert_eq!(
        h.assert_groups_follow_role(owner_email, "owner provisioned").await,
        Some(Role::Owner)
    );
    mark_active(h, owner.user.id, owner_email).await;
    let walker =
        h.p.provision_admin_with_role(&Caller::Operator, email, Role::Viewer, None)
            .await
            .unwrap();
    assert_eq!(
        h.assert_groups_follow_role(email, "viewer provisioned").await,
        Some(Role::Viewer)
    );
    for role in [Role::Admin, Role::Owner, Role::Viewer, Role::Admin] {
        let r =
            h.p.change_role(&Caller::Operator, walker.user.id, role, None)
                .await
                .unwrap();
        assert_eq!(r.admin_info.role, role);
        assert_eq!(
            h.assert_groups_follow_role(email, &format!("changed to {role}")).await,
            Some(role)
        );
    }
    // The last active owner cannot be demoted: 409 last_owner, the groups put back as they were.
    let refused =
        h.p.change_role(&Caller::Operator, owner.user.id, Role::Viewer, None)
            .await
            .unwrap_err();
    assert_eq!(refused.code(), "last_owner");
    assert_eq!(
        h.assert_groups_follow_role(owner_email, "last owner refused").await,
        Some(Role::Owner)
    );
    assert!(h.raw_store.list_unfinished().await.unwrap().is_empty());
    // Removal deletes the Cognito user, and its memberships with it.
    h.p.remove_admin(&Caller::Operator, walker.user.id, None).await.unwrap();
    assert!(h.assert_groups_follow_role(email, "removed").await.is_none());
    assert!(!h.cognito_has(email).await);
}

/// Drift made directly in Cognito is reported, repaired (audited, re-checked), and foreign groups stay.
pub async fn drift_walk(h: &Harness, store: Arc<dyn admin_provisioner_core::reconcile::ReconcileStore>) {
    use admin_provisioner_core::reconcile::{DriftKind, ReconcileSettings, Reconciler, Repair};
    use admin_provisioner_core::store::AuditAction;
    let email = "drifter@example.com";
    let steady = "steady@example.com";
    h.p.provision_new_admin(&Caller::Operator, email, None).await.unwrap();
    h.p.provision_admin_with_role(&Caller::Operator, steady, Role::Viewer, None)
        .await
        .unwrap();
    // Behind the product's back: out of its group, into another role's and into a foreign one.
    h.raw_idp
        .admin_remove_user_from_group(email, &group(Role::Admin))
        .await
        .unwrap();
    h.raw_idp
        .admin_add_user_to_group(email, &group(Role::Owner))
        .await
        .unwrap();
    h.raw_idp.create_group("team-y", "not ours").await.unwrap();
    h.raw_idp.admin_add_user_to_group(email, "team-y").await.unwrap();

    let run = |repair: bool| {
        let r = Reconciler::new(
            h.p.clone(),
            store.clone(),
            ReconcileSettings {
                repair,
                ..ReconcileSettings::default()
            },
        );
        async move { r.run(&mut |_| {}).await.unwrap() }
    };
    let report = run(false).await;
    let found: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.kind == DriftKind::RoleGroupMismatch)
        .collect();
    assert_eq!(found.len(), 1, "{:?}", report.findings);
    assert_eq!(found[0].code, "role_group_mismatch");
    assert_eq!(found[0].email.as_deref(), Some(email));
    assert_eq!(found[0].repair, Repair::Available);
    assert!(found[0].message.contains(&group(Role::Owner)), "{}", found[0].message);
    assert_eq!(report.summary.counts["role_group_mismatch"], 1);
    assert!(!report.is_clean());
    // Reporting changed nothing.
    assert_eq!(h.role_groups_of(email).await, [group(Role::Owner)]);

    let repaired = run(true).await;
    let f = repaired
        .findings
        .iter()
        .find(|f| f.kind == DriftKind::RoleGroupMismatch)
        .expect("the finding again");
    assert_eq!(f.repair, Repair::Applied, "{f:?}");
    assert_eq!(h.assert_groups_follow_role(email, "repaired").await, Some(Role::Admin));
    let all = h.raw_idp.admin_list_groups_for_user(email).await.unwrap();
    assert!(
        all.contains(&"team-y".to_string()),
        "a foreign group was touched: {all:?}"
    );
    assert_eq!(
        h.assert_groups_follow_role(steady, "untouched").await,
        Some(Role::Viewer)
    );
    let audit = h.raw_store.list_audit(50).await.unwrap();
    let entry = audit
        .iter()
        .find(|e| e.entry.action == AuditAction::ReconcileRoleGroups)
        .expect("the repair is audited");
    assert_eq!(entry.entry.target, email);
    assert!(entry.entry.outcome.starts_with("success"), "{}", entry.entry.outcome);

    let after = run(false).await;
    assert_eq!(after.summary.counts["role_group_mismatch"], 0, "{:?}", after.findings);
}
