//! Named crash points of the disable and enable sagas with real `serve` processes, on both backends: an
//! authenticated admin provisions a victim (and, for the enable saga, disables it) through a real
//! `admin-provisioner serve`, then asks it to disable (enable) the victim; the server dies with SIGKILL
//! exactly at the point. A new `serve` takes the abandoned saga over once the dead owner's lease has
//! expired; then the victim is checked from outside (the database through the store adapter; the
//! emulator's state, or moto through the AWS SDK): its database `disabled_at` and its Cognito `Enabled`
//! agree, and it ended where the saga's table says a crash there must end.
//!
//! Fixed cost: 4 + 3 crash points × 2 backends = 14 cases, 8 in parallel per backend test; each waits one
//! lease (as in `saga_crash_serve.rs`): about 20 s on emulator + SQLite, 35 s on moto + PostgreSQL.

mod process;

use admin_provisioner_core::crash::{CRASH_AT_ENV, DISABLE_CRASH_POINTS, ENABLE_CRASH_POINTS};
use admin_provisioner_core::store::{SagaKind, SagaState};
use process::*;
use serde_json::json;
use std::time::Duration;

/// `POST /api/admins/{id}/{verb}`: `Ok(status)`, or `Err` when no answer came (the server died).
async fn post_verb(
    client: &reqwest::Client,
    base_url: &str,
    token: &str,
    id: &str,
    verb: &str,
) -> Result<u16, reqwest::Error> {
    let res = client
        .post(format!("{base_url}/api/admins/{id}/{verb}"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await?;
    Ok(res.status().as_u16())
}

/// Whether a crash at `point` must leave the victim disabled once recovery has settled the saga.
fn disabled_after(point: &str) -> bool {
    match point {
        // Nothing happened yet: aborted.
        "disable.after_intent" => false,
        // The database said disabled (in the transaction that logged the step): rolled forward.
        "disable.after_disable_records" | "disable.after_disable_user" | "disable.after_completed" => true,
        // The victim was disabled before the enable saga; the intent says AdminEnableUser may have run,
        // it did not: the probe finds Cognito still disabled and nothing is undone.
        "enable.after_intent" => true,
        // Cognito enabled the user: rolled forward (the records are enabled by recovery).
        "enable.after_enable_user" | "enable.after_enable_records" => false,
        other => panic!("unknown crash point {other}"),
    }
}

async fn crash_lifecycle_at(deployment: Deployment, point: &'static str) {
    let what = format!("{} {point}", label(&deployment));
    let kind = if point.starts_with("disable.") {
        SagaKind::Disable
    } else {
        SagaKind::Enable
    };
    let victim = format!("victim.{}@example.com", point.replace(['.', '_'], "-"));
    deployment.bootstrap_root().await;

    // A server armed to die at `point`: provisioning (and the set-up disable of the enable cases) never
    // passes it.
    let mut doomed = deployment.serve(&[(CRASH_AT_ENV, point)]);
    let token = deployment.sign_in_root(&doomed).await;
    let client = reqwest::Client::new();
    let (status, body) = post_admin(&client, &doomed.base_url, &token, &victim).await.unwrap();
    assert_eq!(status, 201, "{what}: {body}");
    let id = body["user"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no id in {body}"))
        .to_string();
    if kind == SagaKind::Enable {
        let set_up = post_verb(&client, &doomed.base_url, &token, &id, "disable")
            .await
            .unwrap();
        assert_eq!(set_up, 200, "{what}: the set-up disable");
    }
    let verb = if kind == SagaKind::Disable { "disable" } else { "enable" };
    let answer = post_verb(&client, &doomed.base_url, &token, &id, verb).await;
    assert!(answer.is_err(), "{what}: the request was answered: {answer:?}");
    let status = doomed.wait_exit(Duration::from_secs(30));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{what}: {status:?}");
    assert!(
        doomed.log_text().contains(&format!("crash point {point} reached")),
        "{what}: {}",
        doomed.log_text()
    );

    let store = deployment.store().await;
    let sagas: Vec<_> = store
        .list_for_email(&victim)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.kind == kind)
        .collect();
    let saga = sagas
        .last()
        .unwrap_or_else(|| panic!("{what}: no {kind:?} saga"))
        .clone();
    if matches!(point, "disable.after_completed" | "enable.after_enable_records") {
        assert_eq!(saga.state, SagaState::Completed, "{what}");
    } else {
        assert!(!saga.state.is_terminal(), "{what}: {:?}", saga.state);
    }

    // A new process takes over once the dead owner's lease has expired.
    let mut successor = deployment.serve(&[]);
    wait_no_unfinished(store.as_ref(), Duration::from_secs(deployment.lease_secs + 60), &what).await;
    successor.kill9();

    // From outside: both systems hold the victim, linked, and agree on its state.
    let idp = deployment.idp().await;
    let settled = assert_both_or_neither(
        store.as_ref(),
        idp.as_ref(),
        &[victim.clone(), ROOT_EMAIL.to_string()],
        &what,
    )
    .await;
    assert!(settled.both.contains(&victim), "{what}: {settled:?}");
    let record = store.find_admin_by_email(&victim).await.unwrap().unwrap();
    let user = idp.admin_get_user(&record.user.cognito_username).await.unwrap();
    let expected = disabled_after(point);
    assert_eq!(
        (record.user.is_disabled(), !user.enabled),
        (expected, expected),
        "{what}: (database disabled, Cognito disabled); saga {:?}",
        store.get(saga.id).await.unwrap()
    );
    let end = store.get(saga.id).await.unwrap().unwrap();
    println!("{what}: saga {} ended {:?} ({:?})", end.id, end.state, end.last_error);
    drop(store);
    deployment.finish().await;
}

fn run_all(backend: &'static str) {
    assert_eq!(DISABLE_CRASH_POINTS.len() + ENABLE_CRASH_POINTS.len(), 7);
    let started = std::time::Instant::now();
    let cases = DISABLE_CRASH_POINTS
        .iter()
        .chain(ENABLE_CRASH_POINTS)
        .map(|point| (backend, *point))
        .collect();
    let n = run_crash_cases(cases, crash_lifecycle_at);
    println!(
        "{n} disable/enable crash cases on {backend} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn disable_and_enable_killed_at_every_crash_point_on_emulator_sqlite_recover_consistently() {
    run_all("emulator+sqlite");
}

#[test]
fn disable_and_enable_killed_at_every_crash_point_on_moto_postgres_recover_consistently() {
    run_all("moto+postgres");
}
