//! Idempotency: every saga step, run twice, gives the same end state as running it once.

mod saga_support;

use admin_provisioner_core::domain::{Actor, AdminEmail, Password, TemporaryPassword, UserId};
use admin_provisioner_core::store::{AuditAction, SagaKind, SagaRecord, SagaState, SagaUpdate};
use admin_provisioner_core::{Caller, Error, RecordPlan};
use saga_support::*;

fn temp_password(h: &Harness, email: &str) -> TemporaryPassword {
    let dir = h.mailbox_dir.as_ref().unwrap();
    admin_provisioner_emulator::mailbox::Mailbox::new(dir)
        .latest_for(email)
        .unwrap()
        .unwrap()
        .temporary_password()
        .unwrap()
}

#[tokio::test]
async fn create_admin_user_twice_leaves_one_cognito_user() {
    let h = Harness::emulator_sqlite().await;
    let email = AdminEmail::parse("Ann@Example.com").unwrap();
    let first = h.p.create_admin_user(&email, None).await.unwrap();
    let second = h.p.create_admin_user(&email, None).await.unwrap_err();
    assert!(matches!(second, Error::ForeignIdentityExists));
    let users = h.cognito_users().await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].sub, first.user.sub);
}

#[tokio::test]
async fn create_admin_database_records_twice_writes_once() {
    let h = Harness::emulator_sqlite().await;
    let email = AdminEmail::parse("bea@example.com").unwrap();
    let identity = h.p.create_admin_user(&email, None).await.unwrap();
    let plan = RecordPlan {
        user_id: UserId::new(),
        actor: Actor::Operator,
        action: AuditAction::CreateAdmin,
        invite_delivered: true,
        request_id: None,
        saga_id: None,
        role: Default::default(),
    };
    let a =
        h.p.create_admin_database_records(&email, &identity.user.username, &identity.user.sub, &plan)
            .await
            .unwrap();
    let b =
        h.p.create_admin_database_records(&email, &identity.user.username, &identity.user.sub, &plan)
            .await
            .unwrap();
    assert_eq!(a, b);
    assert_eq!(h.raw_store.list_admins().await.unwrap().len(), 1);
    assert_eq!(h.raw_store.list_audit(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn saga_begin_and_update_twice_give_the_same_row() {
    let h = Harness::emulator_sqlite().await;
    let now = h.p.now();
    let saga = SagaRecord {
        id: uuid::Uuid::new_v4(),
        kind: SagaKind::Provision,
        actor: Actor::Operator,
        email: "cy@example.com".into(),
        email_normalized: "cy@example.com".into(),
        user_id: UserId::new(),
        cognito_username: "cy@example.com".into(),
        cognito_sub: None,
        identity_created_by_saga: false,
        invite_delivered: true,
        state: SagaState::Started,
        attempts: 0,
        last_error: None,
        request_id: None,
        started_at: now,
        updated_at: now,
        owner: None,
        lease_expires_at: None,
        scim: None,
        role: None,
    };
    let a = h.p.saga_log().begin(saga.clone()).await.unwrap();
    let b = h.p.saga_log().begin(saga.clone()).await.unwrap();
    assert_eq!(a, b);
    let update = SagaUpdate {
        state: Some(SagaState::IdentityCreated),
        cognito_sub: Some("sub-1".into()),
        identity_created_by_saga: Some(true),
        ..Default::default()
    };
    let u1 = h.p.saga_log().update(saga.id, update.clone()).await.unwrap();
    let u2 = h.p.saga_log().update(saga.id, update).await.unwrap();
    assert_eq!((u1.state, u1.cognito_sub.clone()), (u2.state, u2.cognito_sub.clone()));
    assert_eq!(h.raw_store.list_unfinished().await.unwrap().len(), 1);
}

#[tokio::test]
async fn provision_twice_gives_one_admin() {
    let h = Harness::emulator_sqlite().await;
    let first =
        h.p.provision_new_admin(&Caller::Operator, "dee@example.com", None)
            .await
            .unwrap();
    let second =
        h.p.provision_new_admin(&Caller::Operator, "DEE@example.com", None)
            .await
            .unwrap_err();
    assert!(matches!(second, Error::AdminExists));
    let admins = h.raw_store.list_admins().await.unwrap();
    assert_eq!(admins.len(), 1);
    assert_eq!(admins[0].user.id, first.user.id);
    assert_eq!(h.cognito_users().await.len(), 1);
    assert_eq!(h.mailbox_count(), 1);
}

#[tokio::test]
async fn recovery_twice_is_a_no_op_the_second_time() {
    let h = Harness::emulator_sqlite().await;
    h.plan.fail(
        admin_provisioner_core::store::op::INSERT_ADMIN,
        admin_provisioner_core::faults::FaultMode::Hang,
        None,
    );
    let fut = h.p.provision_new_admin(&Caller::Operator, "eve@example.com", None);
    tokio::select! {
        _ = fut => panic!("expected a hang"),
        _ = h.plan.hang_started() => {}
    }
    h.plan.clear();
    let first = h.recover().await;
    let after_first = h.raw_store.list_admins().await.unwrap();
    let second = h.recover().await;
    assert_eq!(first.len(), 1);
    assert!(second.is_empty());
    assert_eq!(h.raw_store.list_admins().await.unwrap(), after_first);
    h.assert_both_or_neither("eve@example.com").await;
}

#[tokio::test]
async fn new_password_challenge_twice_keeps_the_admin_active() {
    let h = Harness::emulator_sqlite().await;
    h.p.bootstrap_admin("fay@example.com", None).await.unwrap();
    let temp = temp_password(&h, "fay@example.com");
    h.p.handle_new_password_challenge("fay@example.com", &temp, &Password::new("Fay-New-Passw0rd!"), None)
        .await
        .unwrap();
    let after_first = h
        .raw_store
        .find_admin_by_email("fay@example.com")
        .await
        .unwrap()
        .unwrap();
    let again =
        h.p.handle_new_password_challenge("fay@example.com", &temp, &Password::new("Fay-New-Passw0rd!"), None)
            .await;
    assert!(matches!(again, Err(Error::InvalidCredentials)), "{again:?}");
    let after_second = h
        .raw_store
        .find_admin_by_email("fay@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after_first, after_second);
    assert!(after_second.admin_info.accepted_at.is_some());
}

#[tokio::test]
async fn remove_twice_removes_once() {
    let h = Harness::emulator_sqlite().await;
    h.p.bootstrap_admin("gus@example.com", None).await.unwrap();
    let temp = temp_password(&h, "gus@example.com");
    h.p.handle_new_password_challenge("gus@example.com", &temp, &Password::new("Gus-New-Passw0rd!"), None)
        .await
        .unwrap();
    let other =
        h.p.provision_new_admin(&Caller::Operator, "hal@example.com", None)
            .await
            .unwrap();
    h.p.remove_admin(&Caller::Operator, other.user.id, None).await.unwrap();
    let again =
        h.p.remove_admin(&Caller::Operator, other.user.id, None)
            .await
            .unwrap_err();
    assert!(matches!(again, Error::NotFound));
    h.assert_both_or_neither("hal@example.com").await;
    assert!(!h.cognito_has("hal@example.com").await);
    assert_eq!(h.raw_store.list_admins().await.unwrap().len(), 1);
}
