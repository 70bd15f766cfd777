//! Named crash points with real `serve` processes, on both backends: for every crash point of the
//! provisioning saga, on the built-in emulator + SQLite and on moto + PostgreSQL, an authenticated admin
//! sends a provisioning over HTTP to a real `admin-provisioner serve` that dies with SIGKILL exactly at
//! that point; a new `serve` starts, takes the abandoned saga over once the dead owner's lease has
//! expired, and the attempted e-mail is checked from outside (the database through the store adapter;
//! the emulator's state file, or moto through the AWS SDK): in both systems and linked, or in neither;
//! no ghost, no saga left unfinished.
//!
//! Fixed cost: 3 crash points × 2 backends = 6 cases, run in parallel; each waits one lease
//! (`SAGA_LEASE_SECS`, the smallest the start-up check allows: 17 s with `CALL_TIMEOUT_SECS=1` on the
//! emulator, 21 s with 2 s on moto), about 30–40 s in all.

mod process;

use admin_provisioner_core::crash::{CRASH_AT_ENV, PROVISION_CRASH_POINTS};
use admin_provisioner_core::store::SagaState;
use process::*;
use std::time::Duration;

async fn crash_serve_at(deployment: Deployment, point: &'static str) {
    let what = format!("{} {point}", label(&deployment));
    let victim = format!("victim.{}@example.com", point.replace(['.', '_'], "-"));
    deployment.bootstrap_root().await;

    // A server armed to die at `point`; the first admin signs in and provisions over HTTP.
    let mut doomed = deployment.serve(&[(CRASH_AT_ENV, point)]);
    let token = deployment.sign_in_root(&doomed).await;
    let client = reqwest::Client::new();
    let answer = post_admin(&client, &doomed.base_url, &token, &victim).await;
    assert!(answer.is_err(), "{what}: the request was answered: {answer:?}");
    // The crash point fired: the process died of SIGKILL, right after saying where.
    let status = doomed.wait_exit(Duration::from_secs(30));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{what}: {status:?}");
    assert!(
        doomed.log_text().contains(&format!("crash point {point} reached")),
        "{what}: {}",
        doomed.log_text()
    );

    let store = deployment.store().await;
    let sagas = store.list_for_email(&victim).await.unwrap();
    assert_eq!(sagas.len(), 1, "{what}: {sagas:?}");
    if point == "provision.after_records" {
        assert_eq!(sagas[0].state, SagaState::Completed, "{what}");
    } else {
        assert!(!sagas[0].state.is_terminal(), "{what}: {:?}", sagas[0].state);
    }

    // A new process takes over once the dead owner's lease has expired.
    let mut successor = deployment.serve(&[]);
    wait_no_unfinished(store.as_ref(), Duration::from_secs(deployment.lease_secs + 60), &what).await;
    successor.kill9();

    // From outside: both-or-neither, linked, no ghost.
    let idp = deployment.idp().await;
    let settled = assert_both_or_neither(
        store.as_ref(),
        idp.as_ref(),
        &[victim.clone(), ROOT_EMAIL.to_string()],
        &what,
    )
    .await;
    // Crashes after the user exists roll forward (the invitee already has the e-mail); before, nothing
    // is left.
    let rolled_forward = point != "provision.after_intent";
    assert_eq!(
        settled.both.contains(&victim),
        rolled_forward,
        "{what}: {settled:?}; sagas {:?}",
        store.list_for_email(&victim).await.unwrap()
    );
    let saga = store.get(sagas[0].id).await.unwrap().unwrap();
    println!(
        "{what}: saga {} ended {:?} ({:?})",
        saga.id, saga.state, saga.last_error
    );
    drop(store);
    deployment.finish().await;
}

#[test]
fn serve_killed_at_every_crash_point_on_both_backends_recovers_to_both_or_neither() {
    assert_eq!(PROVISION_CRASH_POINTS.len(), 3);
    let started = std::time::Instant::now();
    let cases = ["emulator+sqlite", "moto+postgres"]
        .into_iter()
        .flat_map(|backend| PROVISION_CRASH_POINTS.iter().map(move |point| (backend, *point)))
        .collect();
    let n = run_crash_cases(cases, crash_serve_at);
    println!(
        "{n} crash cases (3 points x 2 backends) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
