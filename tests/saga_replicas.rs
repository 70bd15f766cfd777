//! Two replicas on one PostgreSQL: two real `admin-provisioner serve` processes, sharing one database and
//! one Cognito (a moto pool), recover the same backlog of abandoned sagas at the same moment (both are
//! running before the dead owners' leases expire). Each saga is settled exactly once, by one replica; no
//! admin is duplicated, no user is deleted twice, and the guarantee holds from outside.
//!
//! The backlog is real: `admin-provisioner provision` processes SIGKILLed at the crash points that
//! leave a saga unfinished (26 each at `after_intent` and `after_create_user`: 52 sagas). To have undos
//! to share as well, 10 more are killed at `after_create_user` (their Cognito users exist) and then
//! moved to `compensating` by SQL with their user logged, the write a run that had decided to undo makes:
//! that one transition is fabricated, since no crash point sits inside compensation. Recovery must
//! delete exactly those 10 users, once each.
//!
//! Fixed cost: 62 CLI processes (4 at a time), then one lease (21 s) and the recovery; about 40 s.

mod process;

use admin_provisioner_core::identity::op as idp_op;
use admin_provisioner_core::store::{AuditAction, SagaState};
use process::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const PER_POINT: usize = 26;
const UNDOS: usize = 10;
const POINTS: [&str; 2] = ["provision.after_intent", "provision.after_create_user"];

/// `(saga id, final state)` of each "recovered an unfinished saga" line of a replica's log.
fn recoveries(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter(|l| l.contains("recovered an unfinished saga"))
        .filter_map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")))
                    .map(|v| v.trim_matches('"').to_string())
            };
            Some((field("saga_id")?, field("state")?))
        })
        .collect()
}

#[test]
fn two_replicas_settle_a_backlog_of_abandoned_sagas_each_exactly_once() {
    let started = Instant::now();
    block_on(run());
    println!("two replicas: {:.1} s", started.elapsed().as_secs_f64());
}

async fn run() {
    let d = Deployment::moto_postgres().await;
    // The schema exists before the killed processes race to migrate it.
    d.cli(&["sagas", "--json"]);

    // The backlog: real processes killed at crash points, 4 at a time.
    let mut jobs: Vec<(String, &'static str)> = Vec::new();
    for point in POINTS {
        for i in 0..PER_POINT {
            jobs.push((format!("backlog.{}.{i}@example.com", point.replace('.', "-")), point));
        }
    }
    let undo_emails: Vec<String> = (0..UNDOS).map(|i| format!("backlog.undo.{i}@example.com")).collect();
    for e in &undo_emails {
        jobs.push((e.clone(), "provision.after_create_user"));
    }
    let killed_at = Instant::now();
    std::thread::scope(|s| {
        for chunk in jobs.chunks(jobs.len().div_ceil(4)) {
            let d = &d;
            s.spawn(move || {
                for (email, point) in chunk {
                    d.provision_killed_at(email, point);
                }
            });
        }
    });
    let backlog_secs = killed_at.elapsed().as_secs_f64();
    let store = d.store().await;
    let idp = d.idp().await;
    let undo_ids = fabricate_compensating(&d, idp.as_ref(), &undo_emails).await;
    let backlog = store.list_unfinished().await.unwrap();
    assert_eq!(backlog.len(), jobs.len(), "every killed run left its saga unfinished");
    for e in &undo_emails {
        assert!(
            idp.admin_get_user(e).await.is_ok(),
            "{e}: the user to undo must exist before recovery"
        );
    }
    let by_email: BTreeMap<String, (uuid::Uuid, SagaState)> = backlog
        .iter()
        .map(|s| (s.email_normalized.clone(), (s.id, s.state)))
        .collect();

    // Two replicas, both polling before the leases expire.
    let mut a = d.serve(&[]);
    let mut b = d.serve(&[]);
    wait_no_unfinished(store.as_ref(), Duration::from_secs(d.lease_secs + 90), "two replicas").await;
    let deletes = a.idp_calls(idp_op::ADMIN_DELETE_USER).await + b.idp_calls(idp_op::ADMIN_DELETE_USER).await;
    let (pid_a, pid_b) = (a.pid(), b.pid());
    a.kill9();
    b.kill9();

    // Each saga settled exactly once, by one replica.
    let (log_a, log_b) = (recoveries(&a.log_text()), recoveries(&b.log_text()));
    let mut settled_by: BTreeMap<String, Vec<char>> = BTreeMap::new();
    for (who, log) in [('A', &log_a), ('B', &log_b)] {
        for (id, state) in log.iter() {
            if matches!(state.as_str(), "completed" | "compensated" | "aborted") {
                settled_by.entry(id.clone()).or_default().push(who);
            }
        }
    }
    for s in &backlog {
        let by = settled_by.get(&s.id.to_string()).cloned().unwrap_or_default();
        assert_eq!(
            by.len(),
            1,
            "saga {} ({}) settled {} times: {by:?}",
            s.id,
            s.email,
            by.len()
        );
    }
    let (n_a, n_b) = (
        settled_by.values().filter(|v| v == &&vec!['A']).count(),
        settled_by.values().filter(|v| v == &&vec!['B']).count(),
    );
    assert!(n_a > 0 && n_b > 0, "both replicas took part: A {n_a}, B {n_b}");
    // The saga log names one of the two replicas as the last owner of each.
    for s in &backlog {
        let now = store.get(s.id).await.unwrap().unwrap();
        if let Some(owner) = &now.owner {
            assert!(
                owner.contains(&format!(":{pid_a}:")) || owner.contains(&format!(":{pid_b}:")),
                "saga {} owned by {owner}, not a replica ({pid_a}, {pid_b})",
                s.id
            );
        }
    }

    // No double compensation: exactly one AdminDeleteUser per undone saga, across both replicas.
    assert_eq!(deletes, UNDOS as u64, "AdminDeleteUser calls across the replicas");
    for id in &undo_ids {
        let s = store.get(*id).await.unwrap().unwrap();
        assert_eq!(s.state, SagaState::Compensated, "{}: {:?}", s.email, s.last_error);
    }

    // From outside: both-or-neither, linked, no ghost, no duplicate.
    let emails: Vec<String> = jobs.iter().map(|(e, _)| e.clone()).collect();
    let settled = assert_both_or_neither(store.as_ref(), idp.as_ref(), &emails, "two replicas").await;
    for (email, point) in &jobs {
        let expect_both = !undo_emails.contains(email) && *point == "provision.after_create_user";
        assert_eq!(
            settled.both.contains(email),
            expect_both,
            "{email} ({point}, was {:?})",
            by_email.get(email)
        );
    }
    // One creation in the audit log per admin rolled forward; none for the others.
    let audit = store.list_audit(10_000).await.unwrap();
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    for e in &audit {
        if e.entry.action == AuditAction::CreateAdmin && e.entry.outcome == "success" {
            *created.entry(e.entry.target.clone()).or_default() += 1;
        }
    }
    for email in &emails {
        let n = created.get(email).copied().unwrap_or(0);
        assert_eq!(
            n,
            usize::from(settled.both.contains(email)),
            "{email}: {n} create_admin audit rows"
        );
    }
    let admins: BTreeSet<String> = store
        .list_admins()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.user.email_normalized)
        .collect();
    assert_eq!(admins.len(), settled.both.len(), "no duplicate admin");

    println!(
        "two replicas: backlog of {} abandoned sagas ({} points x {PER_POINT} + {UNDOS} undos) made by {} SIGKILLed \
         processes in {backlog_secs:.1} s; replica A settled {n_a}, B {n_b}; {deletes} AdminDeleteUser; {} rolled \
         forward, {} in neither",
        backlog.len(),
        POINTS.len(),
        jobs.len(),
        settled.both.len(),
        settled.neither.len()
    );
    drop(store);
    d.finish().await;
}

/// Moves the sagas of `emails` (killed after creating their Cognito user) to `compensating` directly in
/// the database, with the user logged as the saga's own: the write of a run that decided to undo and
/// died before deleting the user.
async fn fabricate_compensating(
    d: &Deployment,
    idp: &dyn admin_provisioner_core::identity::IdentityProvider,
    emails: &[String],
) -> Vec<uuid::Uuid> {
    use sqlx::{Connection, Executor, Row};
    let store = d.store().await;
    let mut ids = Vec::new();
    let mut conn = sqlx::PgConnection::connect(&d.database_url).await.unwrap();
    let table: String = sqlx::query(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables \
         WHERE table_name IN ('sagas', 'saga_log', 'provisioning_sagas') ORDER BY table_name LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .expect("the saga table")
    .get(0);
    for e in emails {
        let sagas = store.list_for_email(e).await.unwrap();
        assert_eq!(sagas.len(), 1, "{e}");
        assert_eq!(sagas[0].state, SagaState::IdentityCreating, "{e}");
        let user = idp.admin_get_user(e).await.unwrap();
        let n = conn
            .execute(
                sqlx::query(&format!(
                    "UPDATE {table} SET state = 'compensating', last_error = 'injected: undo decided', \
                     cognito_username = $2, cognito_sub = $3, identity_created_by_saga = TRUE WHERE id = $1"
                ))
                .bind(sagas[0].id)
                .bind(&user.username)
                .bind(&user.sub),
            )
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 1);
        ids.push(sagas[0].id);
    }
    conn.close().await.ok();
    ids
}
