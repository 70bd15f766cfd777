//! Regression tests for the four review findings of issue 7, and the fault matrix derived from what the
//! saga actually calls. Each finding's test fails on the code before the fix (noted per test).
//!
//! Runs on the built-in emulator + SQLite. Fixed case counts: the matrix is (calls of a clean
//! provisioning) x 4 modes x {once, always}; nothing here is random.

mod saga_support;

use admin_provisioner_core::faults::FaultMode;
use admin_provisioner_core::identity::{op as idp_op, IdpError};
use admin_provisioner_core::store::{op as store_op, SagaState, StoreError};
use admin_provisioner_core::{Caller, Error, ProvisionerSettings};
use saga_support::*;
use std::time::Duration;

// ------------------------------------------------------------------------------------------------
// Finding 1: a definitive database refusal is compensated at once and answered 500 `internal`.
// (Before: `StoreError::Other` became `DatabaseUnavailable`, was retried 3 times and answered 503.)
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_definitive_refusal_is_not_retried_and_answers_internal() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail_store(
        store_op::INSERT_ADMIN,
        FaultMode::Error,
        None,
        StoreError::Other("CHECK constraint failed: admin_info".into()),
    );
    let err =
        h.p.provision_new_admin(&Caller::Operator, "carol@example.com", None)
            .await
            .unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err:?}");
    assert_eq!(err.code(), "internal");
    assert_eq!(err.http_status(), 500);
    assert_eq!(
        h.plan.fired(store_op::INSERT_ADMIN),
        1,
        "a definitive refusal must not be retried"
    );
    assert!(
        !h.cognito_has("carol@example.com").await,
        "compensation must delete the Cognito user"
    );
    assert!(!h.db_has("carol@example.com").await);
    assert_eq!(h.saga_states("carol@example.com").await, vec![SagaState::Compensated]);
}

/// The same through a real refusal of the database (a trigger), classified from the sqlx error.
#[tokio::test]
async fn a_trigger_refusal_from_sqlite_is_definitive() {
    let h = Harness::emulator_sqlite().await;
    let url = h.db_url.clone().unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_admins BEFORE INSERT ON admin_info \
         BEGIN SELECT RAISE(ABORT, 'admins are frozen by policy'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let err =
        h.p.provision_new_admin(&Caller::Operator, "frozen@example.com", None)
            .await
            .unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err:?}");
    assert_eq!(h.plan.calls(store_op::INSERT_ADMIN), 1, "retried a definitive refusal");
    assert!(!h.cognito_has("frozen@example.com").await);
    assert!(!h.db_has("frozen@example.com").await);
    assert_eq!(h.saga_states("frozen@example.com").await, vec![SagaState::Compensated]);
}

// ------------------------------------------------------------------------------------------------
// Finding 2: recovery takes only expired leases; a run that lost its lease undoes its own user.
// (Before: recovery took sagas idle for 120 s, compensated a saga whose AdminCreateUser was still in
// flight, and the running saga then stopped on `SagaStateChanged` without deleting its user: a ghost.)
// ------------------------------------------------------------------------------------------------

fn slow_settings() -> ProvisionerSettings {
    ProvisionerSettings {
        call_timeout: Duration::from_secs(3),
        max_attempts: 3,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        // Renewed every 10 s: the slow call below (1 s) sees no renewal, as with a stalled owner.
        lease_ttl: Duration::from_secs(30),
        ..ProvisionerSettings::default()
    }
}

async fn wait_for_call(h: &Harness, op: &str) {
    for _ in 0..200 {
        if h.plan.calls(op) > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{op} was never called");
}

#[tokio::test]
async fn recovery_racing_a_slow_create_leaves_no_ghost() {
    let h = Harness::emulator_sqlite_with(slow_settings()).await;
    let email = "slow@example.com";
    h.plan.fail(
        idp_op::ADMIN_CREATE_USER,
        FaultMode::Slow(Duration::from_secs(1)),
        Some(1),
    );
    let p = h.p.clone();
    let run = tokio::spawn(async move { p.provision_new_admin(&Caller::Operator, email, None).await });
    wait_for_call(&h, idp_op::ADMIN_CREATE_USER).await;
    // The owner stalls past its lease (no renewal in time); recovery in "another process" takes over
    // while AdminCreateUser is still in flight, finds no user and closes the saga.
    let reports = h.recover().await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].state, SagaState::Compensated, "{reports:?}");
    // The slow create lands; the run finds its lease lost and deletes the user it alone created.
    let result = run.await.unwrap();
    assert!(result.is_err(), "{result:?}");
    assert_eq!(h.plan.fired(idp_op::ADMIN_CREATE_USER), 1);
    assert!(
        h.plan.calls(idp_op::ADMIN_DELETE_USER) >= 1,
        "the lease-lost run did not undo its user"
    );
    assert!(!h.cognito_has(email).await, "ghost Cognito user left behind");
    assert!(!h.db_has(email).await);
    assert!(h.raw_store.list_unfinished().await.unwrap().is_empty());
    // And the e-mail is free again.
    h.p.provision_new_admin(&Caller::Operator, email, None).await.unwrap();
    h.assert_both_or_neither(email).await;
}

#[tokio::test]
async fn recovery_leaves_a_saga_with_a_live_lease_alone() {
    let h = Harness::emulator_sqlite_with(slow_settings()).await;
    let email = "busy@example.com";
    h.plan.fail(
        idp_op::ADMIN_CREATE_USER,
        FaultMode::Slow(Duration::from_secs(1)),
        Some(1),
    );
    let p = h.p.clone();
    let run = tokio::spawn(async move { p.provision_new_admin(&Caller::Operator, email, None).await });
    wait_for_call(&h, idp_op::ADMIN_CREATE_USER).await;
    // Far past any fixed age rule, but within the lease.
    h.advance(chrono::Duration::seconds(20));
    let reports = h.p.recover_unfinished().await.unwrap();
    assert!(
        reports.is_empty(),
        "recovery took a saga whose owner holds its lease: {reports:?}"
    );
    let saga = &h.raw_store.list_unfinished().await.unwrap()[0];
    assert!(saga.owner.is_some() && saga.lease_expires_at.is_some(), "{saga:?}");
    run.await.unwrap().unwrap();
    h.assert_both_or_neither(email).await;
    assert!(h.db_has(email).await);
}

#[tokio::test]
async fn two_recoverers_never_take_the_same_saga() {
    let h = Harness::emulator_sqlite().await;
    // Ten abandoned intents (a crashed owner: lease expired, AdminCreateUser never reached Cognito).
    h.plan.fail(idp_op::ADMIN_CREATE_USER, FaultMode::Hang, None);
    for i in 0..10 {
        let email = format!("abandoned{i}@example.com");
        let p = h.p.clone();
        let run = tokio::spawn(async move { p.provision_new_admin(&Caller::Operator, &email, None).await });
        h.plan.hang_started().await;
        run.abort();
    }
    h.plan.clear();
    h.advance(chrono::Duration::seconds(6));
    let now = h.p.now();
    let until = now + chrono::Duration::seconds(30);
    let (a, b) = tokio::join!(
        h.raw_store.claim_expired("replica-a", now, until, None, 100),
        h.raw_store.claim_expired("replica-b", now, until, None, 100)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 10, "a={} b={}", a.len(), b.len());
    for s in a.iter().chain(b.iter()) {
        assert!(s.owner.as_deref() == Some("replica-a") || s.owner.as_deref() == Some("replica-b"));
    }
    // Held now: a third claimer gets nothing until the leases expire.
    assert!(h
        .raw_store
        .claim_expired("replica-c", now, until, None, 100)
        .await
        .unwrap()
        .is_empty());
}

#[test]
fn settings_that_let_a_step_outlive_its_lease_are_refused() {
    assert!(ProvisionerSettings::default().validate().is_ok());
    let slow = ProvisionerSettings {
        call_timeout: Duration::from_secs(30),
        ..ProvisionerSettings::default()
    };
    let msg = slow.validate().unwrap_err();
    assert!(
        msg.contains("SAGA_LEASE_SECS") && msg.contains("CALL_TIMEOUT_SECS"),
        "{msg}"
    );
    let fixed = ProvisionerSettings {
        lease_ttl: Duration::from_secs(180),
        ..slow
    };
    assert!(fixed.validate().is_ok());
}

// ------------------------------------------------------------------------------------------------
// Finding 3: one retry layer, on the port's error type.
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_failing_call_is_attempted_exactly_max_attempts_times() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail(idp_op::ADMIN_CREATE_USER, FaultMode::Error, None);
    let err =
        h.p.provision_new_admin(&Caller::Operator, "down@example.com", None)
            .await
            .unwrap_err();
    assert!(matches!(err, Error::IdentityProviderUnavailable(_)), "{err:?}");
    assert_eq!(
        h.plan.calls(idp_op::ADMIN_CREATE_USER),
        h.p.settings().max_attempts as usize,
        "retries stacked or missing"
    );
    h.assert_both_or_neither("down@example.com").await;
}

#[tokio::test]
async fn a_definitive_cognito_error_is_not_retried() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail_idp(
        idp_op::ADMIN_CREATE_USER,
        FaultMode::Error,
        None,
        IdpError::InvalidParameter("bad attribute".into()),
    );
    let _ =
        h.p.provision_new_admin(&Caller::Operator, "bad@example.com", None)
            .await
            .unwrap_err();
    assert_eq!(h.plan.calls(idp_op::ADMIN_CREATE_USER), 1);
}

// ------------------------------------------------------------------------------------------------
// Finding 4: the fault matrix is derived from the step tables (`tests/saga.rs`, `table_matrix_*`): every
// cell asserts its fault fired and a single transient fault ends in a created admin (see
// `saga_support::run_fault_case_at`). Read faults on the read-back branches:
// ------------------------------------------------------------------------------------------------

/// Read faults on the branches that read back: `AdminGetUser` when adopting the user a lost reply
/// created, `get_admin` when verifying a records write whose reply was lost. Each is absorbed.
#[tokio::test]
async fn read_faults_on_the_read_back_branches_are_absorbed() {
    // (write, its mode, how often, read that fails once). A create that lands then errs once is retried,
    // gets UsernameExists and adopts its user (AdminGetUser, then the link check in the database); a
    // records write that lands then errs on every attempt leaves the decision to the read-back.
    let cases: [(&str, FaultMode, Option<u32>, &str); 4] = [
        (
            idp_op::ADMIN_CREATE_USER,
            FaultMode::SucceedThenError,
            Some(1),
            idp_op::ADMIN_GET_USER,
        ),
        (
            idp_op::ADMIN_CREATE_USER,
            FaultMode::SucceedThenError,
            Some(1),
            store_op::FIND_ADMIN_BY_COGNITO_USERNAME,
        ),
        (
            store_op::INSERT_ADMIN,
            FaultMode::SucceedThenHang,
            None,
            store_op::GET_ADMIN,
        ),
        (
            store_op::INSERT_ADMIN,
            FaultMode::SucceedThenError,
            None,
            store_op::GET_ADMIN,
        ),
    ];
    for (write, write_mode, times, read) in cases {
        let h = Harness::emulator_sqlite().await;
        let email = "reader@example.com";
        h.plan.fail(write, write_mode, times);
        h.plan.fail(read, FaultMode::Error, Some(1));
        let res = h.p.provision_new_admin(&Caller::Operator, email, None).await;
        let ctx = format!("{write} {write_mode:?} x{times:?} + {read} error once");
        assert!(h.plan.fired(read) > 0, "{ctx}: the read fault never fired");
        assert!(res.is_ok(), "{ctx}: {res:?}");
        h.plan.clear();
        h.assert_both_or_neither(email).await;
        assert!(h.db_has(email).await, "{ctx}");
    }
}
