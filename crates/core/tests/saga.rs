//! The saga's guarantees, as specifications: a fault at every identity-provider call and every database
//! write, in every mode; idempotent steps; concurrent provisions; malformed input that writes nothing.
//!
//! Runs on the built-in emulator + SQLite. `tests/saga_moto_pg.rs` runs the same matrix on moto + PostgreSQL.

mod saga_support;

use admin_provisioner_core::domain::Password;
use admin_provisioner_core::faults::FaultMode;
use admin_provisioner_core::identity::{op as idp_op, IdpError};
use admin_provisioner_core::store::{op as store_op, SagaKind, SagaState};
use admin_provisioner_core::{Caller, Error};
use saga_support::*;

/// One cell of a fault matrix: `$runner` with the fault hitting once, then always, each on a fresh harness.
macro_rules! matrix_case {
    ($runner:ident, $name:ident, $op:expr, $mode:expr) => {
        #[tokio::test]
        async fn $name() {
            for times in [Some(1), None] {
                let h = Harness::emulator_sqlite().await;
                $runner(&h, $op, $mode, times).await;
            }
        }
    };
}

// The fault matrix, derived from the step tables: every port call of every step of the provisioning and
// the removal saga (`saga_support::table_cells`, checked against a clean run's calls), in every fault mode,
// once and always; each cell asserts that its fault fired, and a single transient fault ends in a created
// (or removed) admin. `tests/saga_moto_pg.rs` runs the same cells on moto + PostgreSQL.

async fn provision_matrix(mode: FaultMode) {
    let clean = clean_provision_log(&Harness::emulator_sqlite_with(matrix_settings()).await).await;
    for cell in table_cells(SagaKind::Provision, &clean) {
        for times in [Some(1), None] {
            let h = Harness::emulator_sqlite_with(matrix_settings()).await;
            run_fault_case_at(&h, cell.op, cell.skip, mode, times).await;
        }
    }
}

async fn remove_matrix(mode: FaultMode) {
    let clean = clean_remove_log(&Harness::emulator_sqlite_with(matrix_settings()).await).await;
    for cell in table_cells(SagaKind::Remove, &clean) {
        for times in [Some(1), None] {
            let h = Harness::emulator_sqlite_with(matrix_settings()).await;
            run_remove_fault_case(&h, cell.op, cell.skip, mode, times).await;
        }
    }
}

async fn lifecycle_matrix(kind: SagaKind, mode: FaultMode) {
    let clean = clean_lifecycle_log(&Harness::emulator_sqlite_with(matrix_settings()).await, kind).await;
    for cell in table_cells(kind, &clean) {
        for times in [Some(1), None] {
            let h = Harness::emulator_sqlite_with(matrix_settings()).await;
            run_lifecycle_fault_case(&h, kind, cell.op, cell.skip, mode, times).await;
        }
    }
}

async fn reset_matrix(kind: SagaKind, mode: FaultMode) {
    let clean = clean_reset_log(&Harness::emulator_sqlite_with(matrix_settings()).await, kind).await;
    for cell in table_cells(kind, &clean) {
        for times in [Some(1), None] {
            let h = Harness::emulator_sqlite_with(matrix_settings()).await;
            run_reset_fault_case(&h, kind, cell.op, cell.skip, mode, times).await;
        }
    }
}

#[tokio::test]
async fn table_matrix_reset_password_error() {
    reset_matrix(SagaKind::ResetPassword, FaultMode::Error).await;
}

#[tokio::test]
async fn table_matrix_reset_password_succeed_then_error() {
    reset_matrix(SagaKind::ResetPassword, FaultMode::SucceedThenError).await;
}

#[tokio::test]
async fn table_matrix_reset_password_hang() {
    reset_matrix(SagaKind::ResetPassword, FaultMode::Hang).await;
}

#[tokio::test]
async fn table_matrix_reset_mfa_error() {
    reset_matrix(SagaKind::ResetMfa, FaultMode::Error).await;
}

#[tokio::test]
async fn table_matrix_reset_mfa_succeed_then_hang() {
    reset_matrix(SagaKind::ResetMfa, FaultMode::SucceedThenHang).await;
}

#[tokio::test]
async fn table_matrix_provision_error() {
    provision_matrix(FaultMode::Error).await;
}
#[tokio::test]
async fn table_matrix_provision_succeed_then_error() {
    provision_matrix(FaultMode::SucceedThenError).await;
}
#[tokio::test]
async fn table_matrix_provision_hang() {
    provision_matrix(FaultMode::Hang).await;
}
#[tokio::test]
async fn table_matrix_provision_succeed_then_hang() {
    provision_matrix(FaultMode::SucceedThenHang).await;
}
#[tokio::test]
async fn table_matrix_remove_error() {
    remove_matrix(FaultMode::Error).await;
}
#[tokio::test]
async fn table_matrix_remove_succeed_then_error() {
    remove_matrix(FaultMode::SucceedThenError).await;
}
#[tokio::test]
async fn table_matrix_remove_hang() {
    remove_matrix(FaultMode::Hang).await;
}
#[tokio::test]
async fn table_matrix_remove_succeed_then_hang() {
    remove_matrix(FaultMode::SucceedThenHang).await;
}

#[tokio::test]
async fn table_matrix_disable_error() {
    lifecycle_matrix(SagaKind::Disable, FaultMode::Error).await;
}
#[tokio::test]
async fn table_matrix_disable_succeed_then_error() {
    lifecycle_matrix(SagaKind::Disable, FaultMode::SucceedThenError).await;
}
#[tokio::test]
async fn table_matrix_disable_hang() {
    lifecycle_matrix(SagaKind::Disable, FaultMode::Hang).await;
}
#[tokio::test]
async fn table_matrix_disable_succeed_then_hang() {
    lifecycle_matrix(SagaKind::Disable, FaultMode::SucceedThenHang).await;
}
#[tokio::test]
async fn table_matrix_enable_error() {
    lifecycle_matrix(SagaKind::Enable, FaultMode::Error).await;
}
#[tokio::test]
async fn table_matrix_enable_succeed_then_error() {
    lifecycle_matrix(SagaKind::Enable, FaultMode::SucceedThenError).await;
}
#[tokio::test]
async fn table_matrix_enable_hang() {
    lifecycle_matrix(SagaKind::Enable, FaultMode::Hang).await;
}
#[tokio::test]
async fn table_matrix_enable_succeed_then_hang() {
    lifecycle_matrix(SagaKind::Enable, FaultMode::SucceedThenHang).await;
}

/// The tables the matrix is derived from: the steps a newcomer reads, in order.
#[test]
fn the_matrix_covers_every_step_of_every_table() {
    use admin_provisioner_core::provisioner::saga_steps;
    let names = |k| saga_steps(k).iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(names(SagaKind::Provision), ["intent", "create_user", "records"]);
    assert_eq!(names(SagaKind::Remove), ["intent", "delete_records", "delete_user"]);
    assert_eq!(names(SagaKind::Disable), ["intent", "disable_records", "disable_user"]);
    assert_eq!(names(SagaKind::Enable), ["intent", "enable_user", "enable_records"]);
    assert_eq!(
        names(SagaKind::ResetPassword),
        ["intent", "reset_user", "sign_out_user", "reset_records"]
    );
    assert_eq!(
        names(SagaKind::ResetMfa),
        ["intent", "clear_mfa", "sign_out_user", "mfa_records"]
    );
}

/// A definitive (non-retryable) database failure while writing the records: the Cognito user is removed.
#[tokio::test]
async fn definitive_database_failure_compensates_the_cognito_user() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail_store(
        store_op::INSERT_ADMIN,
        FaultMode::Error,
        None,
        admin_provisioner_core::store::StoreError::Other("disk full".into()),
    );
    let err =
        h.p.provision_new_admin(&Caller::Operator, "carol@example.com", None)
            .await
            .unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err:?}");
    assert!(!h.cognito_has("carol@example.com").await);
    assert!(!h.db_has("carol@example.com").await);
    assert_eq!(h.saga_states("carol@example.com").await, vec![SagaState::Compensated]);
}

/// A definitive Cognito error (InvalidParameter) leaves nothing anywhere.
#[tokio::test]
async fn definitive_cognito_error_leaves_nothing() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail_idp(
        idp_op::ADMIN_CREATE_USER,
        FaultMode::Error,
        None,
        IdpError::InvalidParameter("bad attribute".into()),
    );
    let err =
        h.p.provision_new_admin(&Caller::Operator, "dave@example.com", None)
            .await
            .unwrap_err();
    assert_eq!(err.code(), "identity_provider_error");
    h.assert_both_or_neither("dave@example.com").await;
    assert!(!h.cognito_has("dave@example.com").await);
}

/// CodeDeliveryFailure means "created, invitation not delivered": both records exist, resend later.
#[tokio::test]
async fn code_delivery_failure_is_created_but_undelivered() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail_idp(
        idp_op::ADMIN_CREATE_USER,
        FaultMode::SucceedThenError,
        Some(1),
        IdpError::CodeDeliveryFailure("SES throttled".into()),
    );
    let admin =
        h.p.provision_new_admin(&Caller::Operator, "erin@example.com", None)
            .await
            .unwrap();
    assert!(!admin.invite.delivered);
    assert!(h.cognito_has("erin@example.com").await && h.db_has("erin@example.com").await);
    h.clock.advance(chrono::Duration::seconds(61));
    let invite =
        h.p.resend_admin_invite(&Caller::Operator, "erin@example.com", None)
            .await
            .unwrap();
    assert!(invite.delivered);
    assert_eq!(invite.invites_sent, 2);
}

/// The SDK's own retry of a create whose first attempt landed answers UsernameExists: the saga adopts its
/// own user instead of failing or deleting it.
#[tokio::test]
async fn username_exists_on_own_retry_is_adopted() {
    let h = Harness::emulator_sqlite().await;
    h.plan
        .fail(idp_op::ADMIN_CREATE_USER, FaultMode::SucceedThenError, Some(1));
    let admin =
        h.p.provision_new_admin(&Caller::Operator, "frank@example.com", None)
            .await
            .unwrap();
    let cognito = h.cognito_user("frank@example.com").await.unwrap();
    assert_eq!(admin.user.cognito_sub, cognito.sub);
    assert_eq!(h.plan.calls(idp_op::ADMIN_CREATE_USER), 2);
}

/// A Cognito user the product did not create is a conflict and is never deleted.
#[tokio::test]
async fn someone_elses_cognito_user_is_never_deleted() {
    let h = Harness::emulator_sqlite().await;
    h.clock.advance(chrono::Duration::seconds(-3600)); // created an hour "before" the saga
    let foreign = h.create_foreign_user("grace@example.com").await;
    h.clock.advance(chrono::Duration::seconds(3600));
    let err =
        h.p.provision_new_admin(&Caller::Operator, "Grace@Example.com", None)
            .await
            .unwrap_err();
    assert!(matches!(err, Error::ForeignIdentityExists), "{err:?}");
    assert_eq!(err.code(), "admin_exists");
    assert_eq!(h.cognito_user("grace@example.com").await.unwrap().sub, foreign.sub);
    assert!(!h.db_has("grace@example.com").await);
    assert_eq!(h.saga_states("grace@example.com").await, vec![SagaState::Aborted]);
}

/// A compensation that cannot finish leaves the saga visibly stuck; recovery finishes it later.
#[tokio::test]
async fn compensation_that_cannot_finish_is_stuck_then_recovered() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail_store(
        store_op::INSERT_ADMIN,
        FaultMode::Error,
        None,
        admin_provisioner_core::store::StoreError::Other("constraint bug".into()),
    );
    h.plan.fail(idp_op::ADMIN_DELETE_USER, FaultMode::Error, None);
    let err =
        h.p.provision_new_admin(&Caller::Operator, "heidi@example.com", None)
            .await
            .unwrap_err();
    let Error::SagaStuck { saga_id } = err else {
        panic!("expected SagaStuck, got {err:?}")
    };
    let saga = h.p.saga_log().get(saga_id).await.unwrap().unwrap();
    assert_eq!(saga.state, SagaState::Stuck);
    assert!(saga.last_error.unwrap().contains("compensation failed"));
    let views = h.p.list_admin_views().await.unwrap();
    assert_eq!(
        views
            .iter()
            .find(|v| v.email == "heidi@example.com")
            .unwrap()
            .status
            .as_str(),
        "failed"
    );

    h.plan.clear();
    let reports = h.recover().await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].state, SagaState::Compensated);
    h.assert_both_or_neither("heidi@example.com").await;
    assert!(!h.cognito_has("heidi@example.com").await);
}

/// A process killed after AdminCreateUser and before the records: recovery finishes the provisioning.
#[tokio::test]
async fn crash_between_cognito_and_database_is_rolled_forward() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail(store_op::INSERT_ADMIN, FaultMode::Hang, None);
    crash_at_first_hang(&h, "ivan@example.com").await;
    assert!(
        h.cognito_has("ivan@example.com").await,
        "the crash window must have been reached"
    );
    h.plan.clear();
    let reports = h.recover().await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].state, SagaState::Completed);
    h.assert_both_or_neither("ivan@example.com").await;
    assert!(h.db_has("ivan@example.com").await);
}

/// Killed after AdminCreateUser, before the records' transaction (which is also the write that logs the
/// user as the saga's own): the log says "creating" and knows no user; recovery finds the user in the
/// saga's window, writes the records and logs the user with the saga's completion.
#[tokio::test]
async fn crash_before_the_log_records_the_cognito_user_is_rolled_forward() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail(store_op::INSERT_ADMIN, FaultMode::Hang, None);
    crash_at_first_hang(&h, "jo@example.com").await;
    assert_eq!(
        h.plan.fired(store_op::INSERT_ADMIN),
        1,
        "the crash window must have been reached"
    );
    let saga = h.raw_store.list_unfinished().await.unwrap().remove(0);
    assert_eq!(saga.state, SagaState::IdentityCreating);
    assert!(!saga.identity_created_by_saga);
    assert_eq!(saga.cognito_sub, None);
    let user = h.cognito_user("jo@example.com").await.unwrap();
    h.plan.clear();
    let reports = h.recover().await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].state, SagaState::Completed);
    h.assert_both_or_neither("jo@example.com").await;
    assert!(h.db_has("jo@example.com").await);
    let saga = h.raw_store.get(saga.id).await.unwrap().unwrap();
    assert!(
        saga.identity_created_by_saga,
        "the completion logs the user as the saga's own"
    );
    assert_eq!(saga.cognito_sub.as_deref(), Some(user.sub.as_str()));
}

/// A provisioning left by an earlier version in `identity_created` (a state today's table no longer
/// logs: the user recorded, no records) is still finished by recovery.
#[tokio::test]
async fn a_saga_left_in_an_earlier_versions_identity_created_state_is_finished() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail(store_op::INSERT_ADMIN, FaultMode::Hang, None);
    crash_at_first_hang(&h, "olga@example.com").await;
    assert_eq!(h.plan.fired(store_op::INSERT_ADMIN), 1);
    h.plan.clear();
    let saga = h.raw_store.list_unfinished().await.unwrap().remove(0);
    let user = h.cognito_user("olga@example.com").await.unwrap();
    // What the earlier table logged after AdminCreateUser.
    h.raw_store
        .update(
            saga.id,
            admin_provisioner_core::store::SagaUpdate {
                state: Some(SagaState::IdentityCreated),
                cognito_username: Some(user.username.clone()),
                cognito_sub: Some(user.sub.clone()),
                identity_created_by_saga: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let reports = h.recover().await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].state, SagaState::Completed, "{reports:?}");
    h.assert_both_or_neither("olga@example.com").await;
    assert_eq!(
        h.raw_store
            .find_admin_by_email("olga@example.com")
            .await
            .unwrap()
            .unwrap()
            .user
            .cognito_sub,
        user.sub
    );
}

/// Killed after AdminCreateUser; the invitee set a password before recovery ran: recovery links the
/// user and marks the admin active instead of leaving an orphan.
#[tokio::test]
async fn crash_then_invitee_activates_before_recovery() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail(store_op::INSERT_ADMIN, FaultMode::Hang, None);
    crash_at_first_hang(&h, "lee@example.com").await;
    h.plan.clear();
    let temp = admin_provisioner_emulator::mailbox::Mailbox::new(h.mailbox_dir.as_ref().unwrap())
        .latest_for("lee@example.com")
        .unwrap()
        .unwrap()
        .temporary_password()
        .unwrap();
    h.p.handle_new_password_challenge("lee@example.com", &temp, &Password::new("Lee-Quick-Passw0rd!"), None)
        .await
        .unwrap();
    h.recover().await;
    let record = h
        .raw_store
        .find_admin_by_email("lee@example.com")
        .await
        .unwrap()
        .expect("records written");
    assert!(record.admin_info.accepted_at.is_some(), "the admin is active");
    h.assert_both_or_neither("lee@example.com").await;
}

/// A saga interrupted after its intent and before AdminCreateUser reached Cognito (the intent already
/// says "may have run"): recovery finds no user of its own and closes the saga, leaving nothing.
#[tokio::test]
async fn recovery_of_a_saga_interrupted_before_cognito_leaves_nothing() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail(idp_op::ADMIN_CREATE_USER, FaultMode::Hang, None);
    crash_at_first_hang(&h, "max@example.com").await;
    assert_eq!(h.plan.fired(idp_op::ADMIN_CREATE_USER), 1);
    assert!(!h.cognito_has("max@example.com").await);
    let saga = h.raw_store.list_unfinished().await.unwrap().remove(0);
    assert_eq!(
        saga.state,
        SagaState::IdentityCreating,
        "the intent is logged as identity_creating"
    );
    h.plan.clear();
    let reports = h.recover().await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].state, SagaState::Compensated, "{reports:?}");
    assert!(!h.cognito_has("max@example.com").await);
    assert!(!h.db_has("max@example.com").await);
}

/// Interrupted the same way, but a Cognito user with the address appears at the username before
/// recovery runs: recovery cannot tell it from its own AdminCreateUser landing late, so the ownership
/// rule decides. Within the saga's window and still waiting for first login, it is adopted (records
/// linked, both-or-neither); it is never deleted.
#[tokio::test]
async fn recovery_before_cognito_adopts_a_user_in_its_window_and_deletes_none() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail(idp_op::ADMIN_CREATE_USER, FaultMode::Hang, None);
    crash_at_first_hang(&h, "maxine@example.com").await;
    assert_eq!(h.plan.fired(idp_op::ADMIN_CREATE_USER), 1);
    h.plan.clear();
    let someone = h.create_foreign_user("maxine@example.com").await; // created after the saga began
    let reports = h.recover().await;
    assert_eq!(reports[0].state, SagaState::Completed, "{reports:?}");
    assert_eq!(h.cognito_user("maxine@example.com").await.unwrap().sub, someone.sub);
    h.assert_both_or_neither("maxine@example.com").await;
    assert_eq!(h.plan.calls(idp_op::ADMIN_DELETE_USER), 0);
}

/// Runs a provisioning of `email` until the first injected hang begins, then drops it: the process "dies".
async fn crash_at_first_hang(h: &Harness, email: &str) {
    let fut = h.p.provision_new_admin(&Caller::Operator, email, None);
    tokio::select! {
        _ = fut => panic!("the provisioning finished instead of hanging"),
        _ = h.plan.hang_started() => {}
    }
}

/// Concurrency: 20 provisions of one e-mail in different letter cases give exactly one admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_provisions_of_one_email_give_one_admin() {
    let h = Harness::emulator_sqlite().await;
    let variants: Vec<String> = (0..20)
        .map(|i| {
            let base = "judy.concurrent@example.com";
            base.chars()
                .enumerate()
                .map(|(j, c)| {
                    if (i >> (j % 5)) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        })
        .collect();
    let mut tasks = Vec::new();
    for v in variants {
        let p = h.p.clone();
        tasks.push(tokio::spawn(async move {
            p.provision_new_admin(&Caller::Operator, &v, None).await
        }));
    }
    let mut ok = 0;
    let mut exists = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::AdminExists) => exists += 1,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!((ok, exists), (1, 19));
    assert_eq!(h.raw_store.list_admins().await.unwrap().len(), 1);
    assert_eq!(h.cognito_users().await.len(), 1);
    assert_eq!(h.mailbox_count(), 1);
}

/// At least 15 malformed e-mails: each rejected with invalid_email, nothing written anywhere.
#[tokio::test]
async fn malformed_emails_are_rejected_and_write_nothing() {
    let h = Harness::emulator_sqlite().await;
    let long_local = format!("{}@example.com", "a".repeat(250));
    let bad = [
        "",
        "   ",
        "plainaddress",
        "@example.com",
        "ann@",
        "ann@@example.com",
        "ann@exa@mple.com",
        "ann@example",
        "ann example@example.com",
        "ann@exa mple.com",
        "ann\t@example.com",
        "ann\n@example.com",
        "ann@example..com",
        "ann@.example.com",
        "ann@example.com.",
        ".ann@example.com",
        "ann..b@example.com",
        "ann@exam_ple.com",
        "ann\u{0007}@example.com",
        long_local.as_str(),
    ];
    assert!(bad.len() >= 15);
    for raw in bad {
        let err = h.p.provision_new_admin(&Caller::Operator, raw, None).await.unwrap_err();
        assert_eq!(err.code(), "invalid_email", "{raw:?} gave {err:?}");
        assert_eq!(err.http_status(), 400);
        assert!(!err.to_string().is_empty());
    }
    assert!(h.raw_store.list_admins().await.unwrap().is_empty());
    assert!(h.raw_store.list_unfinished().await.unwrap().is_empty());
    assert!(h.raw_store.list_audit(100).await.unwrap().is_empty());
    assert!(h.cognito_users().await.is_empty());
    assert_eq!(h.mailbox_count(), 0);
    assert!(
        h.plan.call_log().is_empty(),
        "no port was called: {:?}",
        h.plan.call_log()
    );
}

/// Only an active admin may provision; an invited (not yet active) admin or a stranger is refused.
#[tokio::test]
async fn only_active_admins_may_provision() {
    let h = Harness::emulator_sqlite().await;
    let admin = h.p.bootstrap_admin("root@example.com", None).await.unwrap();
    let invited = Caller::Token {
        sub: admin.user.cognito_sub.clone(),
        username: admin.user.cognito_username.clone(),
        issued_at: h.p.now(),
    };
    let err =
        h.p.provision_new_admin(&invited, "x@example.com", None)
            .await
            .unwrap_err();
    assert!(matches!(err, Error::Forbidden));
    let stranger = Caller::Token {
        sub: "nobody".into(),
        username: "nobody".into(),
        issued_at: h.p.now(),
    };
    assert!(matches!(
        h.p.provision_new_admin(&stranger, "x@example.com", None).await,
        Err(Error::Forbidden)
    ));
    assert!(!h.cognito_has("x@example.com").await);
}

/// A saga slow enough to be compensated by recovery cannot write its records afterwards.
#[tokio::test]
async fn records_of_an_already_compensated_saga_are_refused() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail(store_op::INSERT_ADMIN, FaultMode::Hang, None);
    crash_at_first_hang(&h, "kai@example.com").await;
    let saga = h.raw_store.list_unfinished().await.unwrap().remove(0);
    h.plan.clear();
    // Another process had started undoing it; recovery finishes the undo.
    let undo = admin_provisioner_core::store::SagaUpdate {
        state: Some(SagaState::Compensating),
        ..Default::default()
    };
    h.raw_store.update(saga.id, undo).await.unwrap();
    h.recover().await;
    assert!(!h.cognito_has("kai@example.com").await);
    // The original saga wakes up and tries to finish.
    let late = h
        .raw_store
        .insert_admin(
            admin_provisioner_core::store::NewAdmin {
                id: saga.user_id,
                email: saga.email.clone(),
                email_normalized: saga.email_normalized.clone(),
                cognito_username: saga.cognito_username.clone(),
                cognito_sub: saga.cognito_sub.clone().unwrap_or_default(),
                invited_by: None,
                invited_at: h.p.now(),
                invite_expires_at: h.p.now(),
                invite_delivered: true,
                role: Default::default(),
            },
            admin_provisioner_core::store::AuditEntry {
                actor: admin_provisioner_core::domain::Actor::Operator,
                action: admin_provisioner_core::store::AuditAction::CreateAdmin,
                target: saga.email_normalized.clone(),
                outcome: "success".into(),
                request_id: None,
                at: h.p.now(),
            },
            Some(saga.id),
        )
        .await;
    assert!(late.is_err(), "records written for a compensated saga");
    h.assert_both_or_neither("kai@example.com").await;
    assert!(!h.db_has("kai@example.com").await);
}

matrix_case!(
    run_compensation_fault_case,
    undo_fault_admin_delete_user_error,
    idp_op::ADMIN_DELETE_USER,
    FaultMode::Error
);
matrix_case!(
    run_compensation_fault_case,
    undo_fault_admin_delete_user_succeed_then_error,
    idp_op::ADMIN_DELETE_USER,
    FaultMode::SucceedThenError
);
matrix_case!(
    run_compensation_fault_case,
    undo_fault_admin_delete_user_hang,
    idp_op::ADMIN_DELETE_USER,
    FaultMode::Hang
);
matrix_case!(
    run_compensation_fault_case,
    undo_fault_admin_delete_user_succeed_then_hang,
    idp_op::ADMIN_DELETE_USER,
    FaultMode::SucceedThenHang
);
matrix_case!(
    run_compensation_fault_case,
    undo_fault_saga_update_error,
    store_op::SAGA_UPDATE,
    FaultMode::Error
);
matrix_case!(
    run_compensation_fault_case,
    undo_fault_saga_update_hang,
    store_op::SAGA_UPDATE,
    FaultMode::Hang
);

matrix_case!(
    run_foreign_fault_case,
    foreign_user_fault_admin_create_user_error,
    idp_op::ADMIN_CREATE_USER,
    FaultMode::Error
);
matrix_case!(
    run_foreign_fault_case,
    foreign_user_fault_admin_create_user_hang,
    idp_op::ADMIN_CREATE_USER,
    FaultMode::Hang
);
matrix_case!(
    run_foreign_fault_case,
    foreign_user_fault_admin_create_user_succeed_then_error,
    idp_op::ADMIN_CREATE_USER,
    FaultMode::SucceedThenError
);
matrix_case!(
    run_foreign_fault_case,
    foreign_user_fault_admin_get_user_error,
    idp_op::ADMIN_GET_USER,
    FaultMode::Error
);
matrix_case!(
    run_foreign_fault_case,
    foreign_user_fault_admin_get_user_hang,
    idp_op::ADMIN_GET_USER,
    FaultMode::Hang
);
matrix_case!(
    run_foreign_fault_case,
    foreign_user_fault_admin_delete_user_error,
    idp_op::ADMIN_DELETE_USER,
    FaultMode::Error
);
matrix_case!(
    run_foreign_fault_case,
    foreign_user_fault_saga_update_error,
    store_op::SAGA_UPDATE,
    FaultMode::Error
);
matrix_case!(
    run_foreign_fault_case,
    foreign_user_fault_saga_update_succeed_then_error,
    store_op::SAGA_UPDATE,
    FaultMode::SucceedThenError
);
matrix_case!(
    run_foreign_fault_case,
    foreign_user_fault_saga_update_hang,
    store_op::SAGA_UPDATE,
    FaultMode::Hang
);

/// DELETE on a `failed` line (a stuck saga) runs its recovery now and leaves nothing behind.
#[tokio::test]
async fn revoking_a_failed_line_cleans_it_up() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail_store(
        store_op::INSERT_ADMIN,
        FaultMode::Error,
        None,
        admin_provisioner_core::store::StoreError::Other("constraint bug".into()),
    );
    h.plan.fail(idp_op::ADMIN_DELETE_USER, FaultMode::Error, None);
    let Err(Error::SagaStuck { .. }) =
        h.p.provision_new_admin(&Caller::Operator, "ned@example.com", None)
            .await
    else {
        panic!("expected a stuck saga")
    };
    let line =
        h.p.list_admin_views()
            .await
            .unwrap()
            .into_iter()
            .find(|v| v.email == "ned@example.com")
            .unwrap();
    assert_eq!(line.status.as_str(), "failed");
    h.plan.clear();
    h.p.remove_admin(&Caller::Operator, line.id, None).await.unwrap();
    assert!(!h.cognito_has("ned@example.com").await);
    assert!(h
        .p
        .list_admin_views()
        .await
        .unwrap()
        .iter()
        .all(|v| v.email != "ned@example.com"));
}

/// DELETE on a `pending` line whose saga is still running is refused, not raced.
#[tokio::test]
async fn revoking_a_running_provisioning_is_refused() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail(store_op::INSERT_ADMIN, FaultMode::Hang, None);
    crash_at_first_hang(&h, "ola@example.com").await;
    let line =
        h.p.list_admin_views()
            .await
            .unwrap()
            .into_iter()
            .find(|v| v.email == "ola@example.com")
            .unwrap();
    assert_eq!(line.status.as_str(), "pending");
    let err = h.p.remove_admin(&Caller::Operator, line.id, None).await.unwrap_err();
    assert_eq!(err.code(), "provisioning_in_progress");
    assert_eq!(err.http_status(), 409);
}
