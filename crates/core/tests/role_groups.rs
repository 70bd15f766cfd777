//! Roles mirrored into Cognito groups (`COGNITO_ROLE_GROUPS=true`) on the built-in emulator + SQLite:
//! the fault matrices derived from the provisioning table with its `add_to_group` step and from the
//! role-change table with its group steps (every port call of every step, in every fault mode, once and
//! always; each cell asserts that its fault fired), a role-change walk with both systems checked after
//! each step, and drift found and repaired by the reconciler. `tests/role_groups_moto_pg.rs` runs the
//! walk and the drift on moto + PostgreSQL.

mod saga_support;

use admin_provisioner_core::domain::Role;
use admin_provisioner_core::faults::FaultMode;
use admin_provisioner_core::identity::op as idp_op;
use admin_provisioner_core::provisioner::saga_steps_mirrored;
use admin_provisioner_core::store::SagaKind;
use admin_provisioner_core::Caller;
use saga_support::groups::*;
use saga_support::*;

async fn provision_matrix(mode: FaultMode) {
    let clean = clean_provision_log_mirrored().await;
    let cells = table_cells_mirrored(SagaKind::Provision, &clean);
    assert!(cells.iter().any(|c| c.step == "add_to_group"), "{cells:?}");
    for cell in cells {
        for times in [Some(1), None] {
            let (h, _) = emulator_sqlite_mirrored(matrix_settings()).await;
            run_fault_case_at(&h, cell.op, cell.skip, mode, times).await;
            let ctx = format!("provision {cell:?} {mode:?} {times:?}");
            // The admin provisioned at the end of the case is in exactly its role's group.
            assert_eq!(
                h.assert_groups_follow_role("victim@example.com", &ctx).await,
                Some(Role::Admin),
                "{ctx}"
            );
        }
    }
}

async fn change_role_matrix(mode: FaultMode) {
    let clean = clean_change_role_log_mirrored().await;
    let cells = table_cells_mirrored(SagaKind::ChangeRole, &clean);
    let steps: Vec<_> = cells.iter().map(|c| c.step).collect();
    assert!(
        steps.contains(&"group_add") && steps.contains(&"group_remove"),
        "{cells:?}"
    );
    for cell in cells {
        for times in [Some(1), None] {
            let (h, _) = emulator_sqlite_mirrored(matrix_settings()).await;
            run_change_role_fault_case(&h, cell.op, cell.skip, mode, times).await;
        }
    }
}

#[tokio::test]
async fn groups_matrix_provision_error() {
    provision_matrix(FaultMode::Error).await;
}
#[tokio::test]
async fn groups_matrix_provision_succeed_then_error() {
    provision_matrix(FaultMode::SucceedThenError).await;
}
#[tokio::test]
async fn groups_matrix_provision_hang() {
    provision_matrix(FaultMode::Hang).await;
}
#[tokio::test]
async fn groups_matrix_provision_succeed_then_hang() {
    provision_matrix(FaultMode::SucceedThenHang).await;
}
#[tokio::test]
async fn groups_matrix_change_role_error() {
    change_role_matrix(FaultMode::Error).await;
}
#[tokio::test]
async fn groups_matrix_change_role_succeed_then_error() {
    change_role_matrix(FaultMode::SucceedThenError).await;
}
#[tokio::test]
async fn groups_matrix_change_role_hang() {
    change_role_matrix(FaultMode::Hang).await;
}
#[tokio::test]
async fn groups_matrix_change_role_succeed_then_hang() {
    change_role_matrix(FaultMode::SucceedThenHang).await;
}

/// The tables with mirroring on and off: the group steps exist only when it is on.
#[test]
fn the_group_steps_exist_only_with_mirroring() {
    let names = |k, on| saga_steps_mirrored(k, on).iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(names(SagaKind::Provision, false), ["intent", "create_user", "records"]);
    assert_eq!(
        names(SagaKind::Provision, true),
        ["intent", "create_user", "add_to_group", "records"]
    );
    assert_eq!(names(SagaKind::ChangeRole, false), ["intent", "role_records"]);
    assert_eq!(
        names(SagaKind::ChangeRole, true),
        ["intent", "group_add", "group_remove", "role_records"]
    );
}

/// Without mirroring, no group call is made at all.
#[tokio::test]
async fn without_mirroring_no_group_is_touched() {
    let h = Harness::emulator_sqlite_with(matrix_settings()).await;
    let a =
        h.p.provision_new_admin(&Caller::Operator, "plain@example.com", None)
            .await
            .unwrap();
    h.p.change_role(&Caller::Operator, a.user.id, Role::Viewer, None)
        .await
        .unwrap();
    for op in [
        idp_op::CREATE_GROUP,
        idp_op::GET_GROUP,
        idp_op::ADMIN_ADD_USER_TO_GROUP,
        idp_op::ADMIN_REMOVE_USER_FROM_GROUP,
        idp_op::ADMIN_LIST_GROUPS_FOR_USER,
    ] {
        assert_eq!(h.plan.calls(op), 0, "{op}");
    }
    assert!(h.role_groups_of("plain@example.com").await.is_empty());
}

/// A missing role group is created at first use (someone deleted it, or start-up could not).
#[tokio::test]
async fn a_missing_role_group_is_created_at_first_use() {
    let h = Harness::emulator_sqlite_with(mirrored(fast_settings())).await;
    h.p.provision_admin_with_role(&Caller::Operator, "first@example.com", Role::Viewer, None)
        .await
        .unwrap();
    assert_eq!(h.plan.calls(idp_op::CREATE_GROUP), 1);
    h.assert_groups_follow_role("first@example.com", "first use").await;
    // Start-up creates the others, once.
    let created = h.p.ensure_role_groups().await.unwrap();
    assert_eq!(created, [group(Role::Admin), group(Role::Owner)]);
    assert!(h.p.ensure_role_groups().await.unwrap().is_empty());
}

/// Provision, change roles up and down, meet the last-owner guard, remove: after each step the database
/// and the groups agree (the shared walk, `role_walk`).
#[tokio::test]
async fn role_changes_move_database_and_groups_together() {
    let (h, _) = emulator_sqlite_mirrored(fast_settings()).await;
    role_walk(&h).await;
}

/// Drift made behind the product's back (the user removed from its group and put in another role's, as
/// in the AWS console) is reported as `role_group_mismatch` and repaired; foreign groups stay.
#[tokio::test]
async fn drift_is_found_and_repaired() {
    let (h, _) = emulator_sqlite_mirrored(fast_settings()).await;
    let store: std::sync::Arc<dyn admin_provisioner_core::reconcile::ReconcileStore> = h.raw_store.clone();
    drift_walk(&h, store).await;
}

/// An admin whose Cognito user was deleted by hand (an orphan) cannot change role while mirroring is on:
/// a 502 `identity_provider_error` (not a 404: the admin exists), nothing written, no saga left open.
#[tokio::test]
async fn an_orphans_role_change_is_refused_and_changes_nothing() {
    let (h, _) = emulator_sqlite_mirrored(fast_settings()).await;
    let a =
        h.p.provision_new_admin(&Caller::Operator, "orphan@example.com", None)
            .await
            .unwrap();
    h.raw_idp.admin_delete_user("orphan@example.com").await.unwrap();
    let e =
        h.p.change_role(&Caller::Operator, a.user.id, Role::Viewer, None)
            .await
            .unwrap_err();
    assert_eq!(e.code(), "identity_provider_error", "{e:?}");
    assert!(e.to_string().contains("no longer exists"), "{e}");
    assert_eq!(h.db_role("orphan@example.com").await, Some(Role::Admin));
    assert!(h.raw_store.list_unfinished().await.unwrap().is_empty());
}
