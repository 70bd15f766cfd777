//! Named crash points with real `serve` processes and roles mirrored into Cognito groups
//! (`COGNITO_ROLE_GROUPS=true`), on both backends (built-in emulator + SQLite, moto + PostgreSQL): for
//! every crash point of the provisioning table with its `add_to_group` step and of the role-change table
//! with its group steps, a real `serve` dies with SIGKILL exactly there while answering an authenticated
//! request (`POST /api/admins {email, role: viewer}` or `PATCH /api/admins/{id} {role: viewer}` of an
//! `admin`); a new `serve` takes the saga over once the dead owner's lease has expired, and both systems
//! are checked from outside: both-or-neither, no ghost, no saga unfinished, and every admin's Cognito
//! user in exactly the group of its database role.
//!
//! Fixed cost: (4 + 4) crash points × 2 backends = 16 cases, run as two tests of 8 in parallel; each
//! waits one lease (17 s on the emulator, 21 s on moto).

mod process;

use admin_provisioner_core::crash::{CHANGE_ROLE_GROUPS_CRASH_POINTS, CRASH_AT_ENV, PROVISION_GROUPS_CRASH_POINTS};
use admin_provisioner_core::identity::IdentityProvider;
use admin_provisioner_core::store::{SagaKind, SagaState, Store};
use process::*;
use serde_json::json;
use std::time::Duration;

const PREFIX: &str = "admin-provisioner-";

/// Every admin's Cognito user is in exactly the group of its database role.
async fn assert_groups_follow_roles(store: &dyn Store, idp: &dyn IdentityProvider, what: &str) {
    for r in store.list_admins().await.unwrap() {
        let mut groups = idp.admin_list_groups_for_user(&r.user.cognito_username).await.unwrap();
        groups.retain(|g| g.starts_with(PREFIX));
        assert_eq!(
            groups,
            [format!("{PREFIX}{}", r.admin_info.role)],
            "{what}: {} has role {} in the database",
            r.user.email,
            r.admin_info.role
        );
    }
}

fn mirrored(mut d: Deployment) -> Deployment {
    d.extra_env.push(("COGNITO_ROLE_GROUPS".into(), "true".into()));
    d
}

async fn crash_serve_at(deployment: Deployment, point: &'static str) {
    let deployment = mirrored(deployment);
    let what = format!("{} {point}", label(&deployment));
    let victim = format!("victim.{}@example.com", point.replace(['.', '_'], "-"));
    deployment.bootstrap_root().await;
    let change_role = point.starts_with("change_role.");
    if change_role {
        deployment.cli(&["provision", "--email", &victim, "--role", "admin"]);
    }
    let store = deployment.store().await;

    let mut doomed = deployment.serve(&[(CRASH_AT_ENV, point)]);
    let token = deployment.sign_in_root(&doomed).await;
    let client = reqwest::Client::new();
    let answer = if change_role {
        let id = store.find_admin_by_email(&victim).await.unwrap().unwrap().user.id;
        client
            .patch(format!("{}/api/admins/{id}", doomed.base_url))
            .bearer_auth(&token)
            .json(&json!({ "role": "viewer" }))
            .send()
            .await
    } else {
        client
            .post(format!("{}/api/admins", doomed.base_url))
            .bearer_auth(&token)
            .json(&json!({ "email": victim, "role": "viewer" }))
            .send()
            .await
    };
    assert!(answer.is_err(), "{what}: the request was answered: {answer:?}");
    let status = doomed.wait_exit(Duration::from_secs(30));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{what}: {status:?}");
    assert!(
        doomed.log_text().contains(&format!("crash point {point} reached")),
        "{what}: {}",
        doomed.log_text()
    );
    let sagas = store.list_for_email(&victim).await.unwrap();
    let kind = if change_role {
        SagaKind::ChangeRole
    } else {
        SagaKind::Provision
    };
    let saga = sagas
        .iter()
        .find(|s| s.kind == kind)
        .unwrap_or_else(|| panic!("{what}: no {kind:?} saga in {sagas:?}"))
        .clone();
    if point.ends_with("after_records") || point.ends_with("after_role_records") {
        assert_eq!(saga.state, SagaState::Completed, "{what}");
    } else {
        assert!(!saga.state.is_terminal(), "{what}: {:?}", saga.state);
    }

    let mut successor = deployment.serve(&[]);
    wait_no_unfinished(store.as_ref(), Duration::from_secs(deployment.lease_secs + 60), &what).await;
    successor.kill9();

    let idp = deployment.idp().await;
    let settled = assert_both_or_neither(
        store.as_ref(),
        idp.as_ref(),
        &[victim.clone(), ROOT_EMAIL.to_string()],
        &what,
    )
    .await;
    assert_groups_follow_roles(store.as_ref(), idp.as_ref(), &what).await;
    let role = store
        .find_admin_by_email(&victim)
        .await
        .unwrap()
        .map(|r| r.admin_info.role.as_str().to_string());
    let expected = match point {
        // Nothing happened yet: nothing is left.
        "provision.after_intent" => None,
        // The user exists: rolled forward, with its group.
        p if p.starts_with("provision.") => Some("viewer"),
        // The role was written: the change stands.
        "change_role.after_role_records" => Some("viewer"),
        // Not written: recovery undoes the group steps (no change is finished for a caller who has gone).
        _ => Some("admin"),
    };
    assert_eq!(role.as_deref(), expected, "{what}: {settled:?}");
    let saga = store.get(saga.id).await.unwrap().unwrap();
    println!(
        "{what}: saga {} ended {:?} ({:?})",
        saga.id, saga.state, saga.last_error
    );
    drop(store);
    deployment.finish().await;
}

fn cases(points: &'static [&'static str]) -> Vec<(&'static str, &'static str)> {
    ["emulator+sqlite", "moto+postgres"]
        .into_iter()
        .flat_map(|backend| points.iter().map(move |point| (backend, *point)))
        .collect()
}

#[test]
fn serve_killed_at_every_provision_point_with_role_groups_keeps_both_and_the_group() {
    assert_eq!(PROVISION_GROUPS_CRASH_POINTS.len(), 4);
    let n = run_crash_cases(cases(PROVISION_GROUPS_CRASH_POINTS), crash_serve_at);
    assert_eq!(n, 8);
}

#[test]
fn serve_killed_at_every_change_role_point_with_role_groups_moves_both_or_neither() {
    assert_eq!(CHANGE_ROLE_GROUPS_CRASH_POINTS.len(), 4);
    let n = run_crash_cases(cases(CHANGE_ROLE_GROUPS_CRASH_POINTS), crash_serve_at);
    assert_eq!(n, 8);
}
