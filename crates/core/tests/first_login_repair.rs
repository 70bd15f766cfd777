//! A first login whose activation write is lost: the caller still gets tokens, the failure is logged,
//! and the admin's next request with a token repairs it (issue 18, finding 8). Built-in emulator +
//! SQLite, with the store's `mark_accepted` (or the lookup before it) failing by fault injection.

mod saga_support;

use admin_provisioner_core::domain::{Actor, Password, UserStatus};
use admin_provisioner_core::faults::FaultMode;
use admin_provisioner_core::store::{op as store_op, AuditAction, AuditEntry};
use admin_provisioner_core::{Caller, Error};
use saga_support::*;
use std::io::Write;
use std::sync::{Arc, Mutex};

const NEW_PASSWORD: &str = "Ann-Chose-Passw0rd!";

/// Every log line written while the returned guard lives (this thread; the tests run on a
/// current-thread runtime).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bootstraps `email` (invited) and returns the temporary password from the emulator's mailbox.
async fn invited(h: &Harness, email: &str) -> admin_provisioner_core::domain::AdminRecord {
    h.p.bootstrap_admin(email, None).await.unwrap();
    h.raw_store.find_admin_by_email(email).await.unwrap().unwrap()
}

async fn first_login(h: &Harness, email: &str) -> Result<admin_provisioner_core::domain::Tokens, Error> {
    let temp = admin_provisioner_emulator::mailbox::Mailbox::new(h.mailbox_dir.as_ref().unwrap())
        .latest_for(email)
        .unwrap()
        .unwrap()
        .temporary_password()
        .unwrap();
    match h
        .p
        .handle_new_password_challenge(email, &temp, &Password::new(NEW_PASSWORD), None)
        .await?
    {
        admin_provisioner_core::LoginOutcome::Tokens(t) => Ok(t),
        other => panic!("MFA is off: expected tokens, got {:?}", other.challenge_name()),
    }
}

fn token_of(record: &admin_provisioner_core::domain::AdminRecord) -> Caller {
    Caller::Token {
        sub: record.user.cognito_sub.clone(),
        username: record.user.cognito_username.clone(),
        issued_at: chrono::Utc::now(),
    }
}

async fn first_login_audits(h: &Harness) -> usize {
    h.raw_store
        .list_audit(100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.entry.action == AuditAction::FirstLoginCompleted)
        .count()
}

#[tokio::test]
async fn a_lost_activation_is_logged_and_repaired_by_the_next_request_with_a_token() {
    let h = Harness::emulator_sqlite().await;
    let ann = invited(&h, "ann@example.com").await;
    h.plan.fail(store_op::MARK_ACCEPTED, FaultMode::Error, None);
    let logs = Logs::default();

    let tokens = {
        let _capture = logs.capture();
        first_login(&h, "ann@example.com").await
    };

    assert!(
        tokens.is_ok(),
        "the password is changed in Cognito: the caller gets tokens"
    );
    let attempts = h.p.settings().max_attempts as usize;
    assert_eq!(
        h.plan.fired(store_op::MARK_ACCEPTED),
        attempts,
        "the write was retried, then failed"
    );
    let log = logs.text();
    let line = log
        .lines()
        .find(|l| l.contains("could not be marked active"))
        .unwrap_or_else(|| panic!("no error line in:\n{log}"));
    assert!(
        line.contains("ERROR") && line.contains(&ann.user.id.to_string()),
        "{line}"
    );
    assert!(!log.contains(NEW_PASSWORD), "no secret in the log");
    let stored = h.raw_store.get_admin(ann.user.id).await.unwrap().unwrap();
    assert_eq!(stored.user.status, UserStatus::Invited, "the activation was lost");

    h.plan.clear();
    let actor = h.p.authorize(&token_of(&ann)).await;

    assert_eq!(actor.unwrap(), Actor::Admin(ann.user.id), "authorised instead of 403");
    let repaired = h.raw_store.get_admin(ann.user.id).await.unwrap().unwrap();
    assert_eq!(repaired.user.status, UserStatus::Active);
    assert!(repaired.admin_info.accepted_at.is_some());
    assert_eq!(
        first_login_audits(&h).await,
        1,
        "audited once, as first_login_completed"
    );
    h.p.authorize(&token_of(&ann)).await.unwrap();
    assert_eq!(
        first_login_audits(&h).await,
        1,
        "a repaired admin is not activated again"
    );
}

#[tokio::test]
async fn a_failed_lookup_after_the_password_change_is_logged_not_swallowed() {
    let h = Harness::emulator_sqlite().await;
    let bob = invited(&h, "bob@example.com").await;
    h.plan
        .fail(store_op::FIND_ADMIN_BY_COGNITO_USERNAME, FaultMode::Error, None);
    let logs = Logs::default();

    let tokens = {
        let _capture = logs.capture();
        first_login(&h, "bob@example.com").await
    };

    assert!(tokens.is_ok());
    assert!(
        h.plan.fired(store_op::FIND_ADMIN_BY_COGNITO_USERNAME) > 0,
        "the fault fired"
    );
    let log = logs.text();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("could not be looked up")),
        "{log}"
    );
    h.plan.clear();
    assert_eq!(h.p.authorize(&token_of(&bob)).await.unwrap(), Actor::Admin(bob.user.id));
}

#[tokio::test]
async fn a_token_of_an_invited_admin_who_never_changed_the_password_is_refused() {
    let h = Harness::emulator_sqlite().await;
    let cid = invited(&h, "cid@example.com").await;

    let err = h.p.authorize(&token_of(&cid)).await.unwrap_err();

    assert!(matches!(err, Error::Forbidden), "{err:?}");
    let stored = h.raw_store.get_admin(cid.user.id).await.unwrap().unwrap();
    assert_eq!(
        stored.user.status,
        UserStatus::Invited,
        "Cognito still says FORCE_CHANGE_PASSWORD"
    );
}

#[tokio::test]
async fn a_disabled_admin_with_a_lost_activation_is_not_activated_by_a_token() {
    let h = Harness::emulator_sqlite().await;
    let dee = invited(&h, "dee@example.com").await;
    h.plan.fail(store_op::MARK_ACCEPTED, FaultMode::Error, None);
    first_login(&h, "dee@example.com").await.unwrap();
    h.plan.clear();
    let audit = AuditEntry {
        actor: Actor::Operator,
        action: AuditAction::DisableAdmin,
        target: "dee@example.com".into(),
        outcome: "success".into(),
        request_id: None,
        at: h.p.now(),
    };
    h.raw_store
        .set_admin_disabled(dee.user.id, Some(h.p.now()), audit, None)
        .await
        .unwrap();

    let err = h.p.authorize(&token_of(&dee)).await.unwrap_err();

    assert!(matches!(err, Error::Forbidden), "{err:?}");
    let stored = h.raw_store.get_admin(dee.user.id).await.unwrap().unwrap();
    assert_eq!(stored.user.status, UserStatus::Invited);
    assert_eq!(first_login_audits(&h).await, 0);
}

#[tokio::test]
async fn a_token_for_a_sub_linked_to_no_admin_is_refused() {
    let h = Harness::emulator_sqlite().await;
    invited(&h, "eve@example.com").await;
    let stranger = Caller::Token {
        sub: uuid::Uuid::new_v4().to_string(),
        username: "eve@example.com".into(),
        issued_at: chrono::Utc::now(),
    };

    let err = h.p.authorize(&stranger).await.unwrap_err();

    assert!(matches!(err, Error::Forbidden), "{err:?}");
    assert_eq!(first_login_audits(&h).await, 0);
}
