//! Named crash points with real processes: for every crash point of the provisioning saga, an
//! `admin-provisioner provision` run (the same saga code `serve` runs) is SIGKILLed exactly there; then a
//! real `admin-provisioner serve` starts, takes the abandoned saga over once its lease expires, and the
//! attempted e-mail is checked from outside (the emulator's state file and the SQLite database): in both
//! systems, linked, or in neither; no saga left unfinished.
//!
//! Fixed cost: one case per crash point (3, and 4 with `COGNITO_ROLE_GROUPS=true`), run in parallel; each waits one lease (17 s, the smallest
//! the start-up check allows with `CALL_TIMEOUT_SECS=1`), about 25 s in all.

use admin_provisioner_core::crash::{CRASH_AT_ENV, PROVISION_CRASH_POINTS, PROVISION_GROUPS_CRASH_POINTS};
use admin_provisioner_core::identity::{IdentityProvider, IdpError};
use admin_provisioner_emulator::{CognitoEmulator, EmulatorConfig};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EMAIL: &str = "crash.victim@example.com";

fn cmd(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_admin-provisioner"));
    c.current_dir(dir)
        .env_remove("COGNITO_USER_POOL_ID")
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env_remove(CRASH_AT_ENV)
        .env("MAILBOX_DIR", dir.join("mailbox"))
        .env("CALL_TIMEOUT_SECS", "1")
        .env("SAGA_LEASE_SECS", "17")
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("RECOVERY_INTERVAL_MS", "300");
    c
}

async fn crash_at(point: &'static str) {
    crash_at_with(point, false).await
}

/// [`crash_at`]; with `groups`, every process runs with `COGNITO_ROLE_GROUPS=true` (the provisioning
/// table has its `add_to_group` step) and the settled admin must be in exactly its role's group.
async fn crash_at_with(point: &'static str, groups: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let cmd = |dir: &Path| {
        let mut c = cmd(dir);
        c.env("COGNITO_ROLE_GROUPS", groups.to_string());
        c
    };
    let unfinished = |dir: &Path| {
        let out = cmd(dir).args(["sagas", "--unfinished", "--json"]).output().unwrap();
        assert!(
            out.status.success(),
            "sagas failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    };
    let out = cmd(&dir)
        .args(["provision", "--email", EMAIL, "--role", "viewer"])
        .env(CRASH_AT_ENV, point)
        .output()
        .unwrap();
    // The crash point fired: the process died of SIGKILL, not of an error.
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{point}: provision was not killed at its crash point: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let left = unfinished(&dir);
    if point != "provision.after_records" {
        assert_eq!(left.len(), 1, "{point}: {left:?}");
    }

    // A new process takes over once the dead owner's lease has expired.
    let mut serve = cmd(&dir)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !unfinished(&dir).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{point}: serve did not settle the saga"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    serve.kill().unwrap();
    serve.wait().unwrap();

    // From outside: the database file and the emulator's state file.
    let store = admin_provisioner_store::connect(&format!("sqlite://{}", dir.join("admin-provisioner.db").display()))
        .await
        .unwrap();
    let emu = CognitoEmulator::open(EmulatorConfig::file(
        dir.join("cognito-emulator.db"),
        dir.join("mailbox"),
    ))
    .await
    .unwrap();
    let record = store.find_admin_by_email(EMAIL).await.unwrap();
    let user = match emu.admin_get_user(EMAIL).await {
        Ok(u) => Some(u),
        Err(IdpError::UserNotFound) => None,
        Err(e) => panic!("{point}: {e}"),
    };
    match (&record, &user) {
        (Some(r), Some(u)) => assert_eq!(r.user.cognito_sub, u.sub, "{point}: linked to another user"),
        (None, None) => {}
        _ => panic!("{point}: not both-or-neither: records {record:?}, Cognito user {user:?}"),
    }
    // Crashes after the user exists roll forward (the invitee already has the e-mail).
    if point != "provision.after_intent" {
        assert!(record.is_some(), "{point}: the created user was not rolled forward");
    }
    if let (true, Some(r)) = (groups, &record) {
        assert_eq!(r.admin_info.role.as_str(), "viewer", "{point}");
        let mut in_groups = emu.admin_list_groups_for_user(EMAIL).await.unwrap();
        in_groups.retain(|g| g.starts_with("admin-provisioner-"));
        assert_eq!(
            in_groups,
            ["admin-provisioner-viewer"],
            "{point}: groups do not follow the role"
        );
    }
}

/// The same with roles mirrored into Cognito groups: one case per crash point of the provisioning table
/// with its `add_to_group` step (4), in parallel; the settled admin is in both systems or neither, and
/// in exactly its role's group.
#[test]
fn with_role_groups_sigkill_at_every_crash_point_then_restart_keeps_both_and_the_group() {
    assert_eq!(PROVISION_GROUPS_CRASH_POINTS.len(), 4);
    let runs: Vec<_> = PROVISION_GROUPS_CRASH_POINTS
        .iter()
        .map(|p| {
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(crash_at_with(p, true))
            })
        })
        .collect();
    for r in runs {
        r.join().unwrap();
    }
}

#[test]
fn sigkill_at_every_crash_point_then_restart_keeps_both_or_neither() {
    assert_eq!(PROVISION_CRASH_POINTS.len(), 3);
    let runs: Vec<_> = PROVISION_CRASH_POINTS
        .iter()
        .map(|p| {
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(crash_at(p))
            })
        })
        .collect();
    for r in runs {
        r.join().unwrap();
    }
}
