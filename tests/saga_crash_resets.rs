//! Named crash points of the password-reset and MFA-reset sagas with real `serve` processes: an owner
//! asks a real `admin-provisioner serve` to reset an active admin's password (MFA); the server dies with
//! SIGKILL exactly at the point. A new `serve` takes the abandoned saga over once the dead owner's lease
//! has expired; then the victim is checked from outside (the database through the store adapter; the
//! emulator's state, or moto through the AWS SDK). Every point lies after the intent, which logs "the
//! Cognito call may have run", and a reset cannot be taken back, so every case ends reset in both systems:
//! Cognito `RESET_REQUIRED` (password), the database's sessions ended (and the MFA enrolment cleared), the
//! saga completed.
//!
//! Fixed cost: 4 + 4 points on emulator + SQLite and the 4 password points on moto + PostgreSQL, in
//! parallel per test; each waits one lease (17 s on the emulator, 21 s on moto).

mod process;

use admin_provisioner_core::crash::{CRASH_AT_ENV, RESET_MFA_CRASH_POINTS, RESET_PASSWORD_CRASH_POINTS};
use admin_provisioner_core::store::{SagaKind, SagaState};
use admin_provisioner_emulator::mailbox::Mailbox;
use process::*;
use serde_json::json;
use std::time::Duration;

const VICTIM_PASSWORD: &str = "Victim-Pass-77";

/// Gives the invited `email` a password (emulator: the first-login challenge with the mailed temporary
/// password; moto, which sends no mail: `AdminSetUserPassword`, then a sign-in), so they are active.
async fn activate(d: &Deployment, server: &Server, email: &str) {
    let client = reqwest::Client::new();
    let res = match &d.cognito {
        Cognito::Emulator => {
            let temp = Mailbox::new(d.dir.path().join("mailbox"))
                .latest_for(email)
                .unwrap()
                .and_then(|m| m.temporary_password())
                .expect("an invitation")
                .expose()
                .to_string();
            client
                .post(server.url("/api/auth/new-password"))
                .json(&json!({"username": email, "temporary_password": temp, "new_password": VICTIM_PASSWORD}))
                .send()
                .await
                .unwrap()
        }
        Cognito::Moto { server: moto, pool } => {
            moto.sdk_client(&pool.provider.config().region)
                .admin_set_user_password()
                .user_pool_id(&pool.user_pool_id)
                .username(email)
                .password(VICTIM_PASSWORD)
                .permanent(true)
                .send()
                .await
                .unwrap();
            client
                .post(server.url("/api/auth/login"))
                .json(&json!({"email": email, "password": VICTIM_PASSWORD}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(res.status().as_u16(), 200, "{email}: {}", res.text().await.unwrap());
}

async fn crash_reset_at(deployment: Deployment, point: &'static str) {
    let what = format!("{} {point}", label(&deployment));
    let (kind, verb) = if point.starts_with("reset_password.") {
        (SagaKind::ResetPassword, "reset-password")
    } else {
        (SagaKind::ResetMfa, "reset-mfa")
    };
    let victim = format!("victim.{}@example.com", point.replace(['.', '_'], "-"));
    deployment.bootstrap_root().await;

    let mut doomed = deployment.serve(&[(CRASH_AT_ENV, point)]);
    let token = deployment.sign_in_root(&doomed).await;
    let client = reqwest::Client::new();
    let (status, body) = post_admin(&client, &doomed.base_url, &token, &victim).await.unwrap();
    assert_eq!(status, 201, "{what}: {body}");
    let id = body["user"]["id"].as_str().unwrap().to_string();
    activate(&deployment, &doomed, &victim).await;
    let store = deployment.store().await;
    let record = store.find_admin_by_email(&victim).await.unwrap().unwrap();
    assert!(record.user.is_active_admin(), "{what}: the victim is active");
    store
        .set_mfa_enrolled(record.user.id, Some(chrono::Utc::now()))
        .await
        .unwrap();

    let answer = client
        .post(format!("{}/api/admins/{id}/{verb}", doomed.base_url))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await;
    assert!(answer.is_err(), "{what}: the request was answered: {answer:?}");
    let status = doomed.wait_exit(Duration::from_secs(30));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{what}: {status:?}");
    assert!(
        doomed.log_text().contains(&format!("crash point {point} reached")),
        "{what}: {}",
        doomed.log_text()
    );
    let saga = store
        .list_for_email(&victim)
        .await
        .unwrap()
        .into_iter()
        .rfind(|s| s.kind == kind)
        .unwrap_or_else(|| panic!("{what}: no {kind:?} saga"));
    if point.ends_with("_records") {
        assert_eq!(saga.state, SagaState::Completed, "{what}");
    } else {
        assert!(!saga.state.is_terminal(), "{what}: {:?}", saga.state);
    }

    let mut successor = deployment.serve(&[]);
    wait_no_unfinished(store.as_ref(), Duration::from_secs(deployment.lease_secs + 60), &what).await;
    successor.kill9();

    let end = store.get(saga.id).await.unwrap().unwrap();
    assert_eq!(end.state, SagaState::Completed, "{what}: {:?}", end.last_error);
    let record = store.find_admin_by_email(&victim).await.unwrap().unwrap();
    assert!(record.user.sessions_valid_after.is_some(), "{what}: sessions not ended");
    if kind == SagaKind::ResetMfa {
        assert_eq!(record.user.mfa_enrolled_at, None, "{what}");
    } else {
        let idp = deployment.idp().await;
        let user = idp.admin_get_user(&record.user.cognito_username).await.unwrap();
        assert_eq!(user.status.as_cognito(), "RESET_REQUIRED", "{what}");
    }
    println!("{what}: saga {} ended {:?}", end.id, end.state);
    drop(store);
    deployment.finish().await;
}

#[test]
fn resets_killed_at_every_crash_point_on_emulator_sqlite_are_finished() {
    assert_eq!(RESET_PASSWORD_CRASH_POINTS.len() + RESET_MFA_CRASH_POINTS.len(), 8);
    let cases = RESET_PASSWORD_CRASH_POINTS
        .iter()
        .chain(RESET_MFA_CRASH_POINTS)
        .map(|p| ("emulator+sqlite", *p))
        .collect();
    run_crash_cases(cases, crash_reset_at);
}

#[test]
fn password_reset_killed_at_every_crash_point_on_moto_postgres_is_finished() {
    let cases = RESET_PASSWORD_CRASH_POINTS
        .iter()
        .map(|p| ("moto+postgres", *p))
        .collect();
    run_crash_cases(cases, crash_reset_at);
}
