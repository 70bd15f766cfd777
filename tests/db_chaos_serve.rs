//! The store survives its database (issue 18, finding 8), from outside: two real `serve` processes on
//! one PostgreSQL database and the built-in emulator. While admins are created, listed and log in for
//! the first time, every session of the product's database is terminated (`pg_terminate_backend`, what a
//! restart, a failover or a proxy's idle kill does to the pools) every 0.5 s for 30 s. No request may
//! answer `5xx`, none may answer `403` (every caller is an active admin, or one who just chose their
//! password), and every first login must end `active` in the database.
//!
//! Fixed cost: 30 s of chaos plus start-up and the final check, about 40 s. The figures (requests per
//! kind, terminations) are printed; run with `--no-capture` to see them.

mod process;

use admin_provisioner_core::domain::UserStatus;
use process::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long sessions are terminated.
const CHAOS: Duration = Duration::from_secs(30);
/// Between two rounds of terminations.
const PERIOD: Duration = Duration::from_millis(500);
/// The password each new admin chooses at first login.
const NEW_PASSWORD: &str = "Chaos-Monkey-Passw0rd!";

/// Every answer, by request kind and status.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<(&'static str, u16), u64>>);

impl Tally {
    fn count(&self, kind: &'static str, status: u16) {
        *self.0.lock().unwrap().entry((kind, status)).or_default() += 1;
    }

    fn total(&self, kind: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, n)| n)
            .sum()
    }

    /// Answers that must never happen here: a server error or a refusal of an admin.
    fn wrong(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, status), _)| *status >= 500 || *status == 403 || *status == 401)
            .map(|((kind, status), n)| format!("{kind} {status} x{n}"))
            .collect()
    }
}

/// Terminates every session of database `name` from an outside connection; returns how many ended.
async fn terminate_sessions(outside: &mut sqlx::PgConnection, name: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()) t WHERE ended",
    )
    .bind(name)
    .fetch_one(outside)
    .await
    .unwrap()
}

fn temporary_password(d: &Deployment, email: &str) -> String {
    admin_provisioner_emulator::mailbox::Mailbox::new(d.dir.path().join("mailbox"))
        .latest_for(email)
        .unwrap()
        .unwrap_or_else(|| panic!("no invitation for {email}"))
        .temporary_password()
        .expect("a temporary password")
        .expose()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_every_database_session_is_terminated_every_half_second() {
    use sqlx::Connection;
    let d = Arc::new(Deployment::emulator_postgres().await);
    let database = d.postgres_database().unwrap().to_string();
    d.bootstrap_root().await;
    let servers = [d.serve(&[]), d.serve(&[])];
    let bases: Arc<Vec<String>> = Arc::new(servers.iter().map(|s| s.base_url.clone()).collect());
    let root = d.sign_in_root(&servers[0]).await;
    let client = reqwest::Client::new();
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + CHAOS;

    // The chaos: every session of the product's database, every half second.
    let killer = {
        let database = database.clone();
        tokio::spawn(async move {
            let mut outside = sqlx::PgConnection::connect(&postgres_admin_url()).await.unwrap();
            let (mut rounds, mut terminated) = (0u64, 0i64);
            while Instant::now() < deadline {
                tokio::time::sleep(PERIOD).await;
                terminated += terminate_sessions(&mut outside, &database).await;
                rounds += 1;
            }
            (rounds, terminated)
        })
    };

    // Creates: each new admin is handed to the first-login worker.
    let (created_tx, mut created_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let creator = {
        let (client, tally, bases, root) = (client.clone(), tally.clone(), bases.clone(), root.clone());
        tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < deadline {
                let email = format!("chaos-{n}@example.com");
                let base = &bases[n % bases.len()];
                let (status, body) = post_admin(&client, base, &root, &email).await.unwrap();
                tally.count("create", status);
                if (200..300).contains(&status) {
                    created_tx.send(email).unwrap();
                } else {
                    eprintln!("create {email}: {status} {body}");
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Lists, by the first admin.
    let lister = {
        let (client, tally, bases, root) = (client.clone(), tally.clone(), bases.clone(), root.clone());
        tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < deadline {
                let res = client
                    .get(format!("{}/api/admins", bases[n % bases.len()]))
                    .bearer_auth(&root)
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                if status != 200 {
                    eprintln!("list: {status} {}", res.text().await.unwrap_or_default());
                }
                tally.count("list", status);
                n += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // First logins, each followed at once by a request with the new admin's own token.
    let first_logins = {
        let (client, tally, bases, d) = (client.clone(), tally.clone(), bases.clone(), d.clone());
        tokio::spawn(async move {
            let mut done = Vec::new();
            let mut n = 0usize;
            while let Some(email) = created_rx.recv().await {
                if Instant::now() >= deadline {
                    break;
                }
                let base = &bases[(n + 1) % bases.len()];
                n += 1;
                let temp = temporary_password(&d, &email);
                let res = client
                    .post(format!("{base}/api/auth/new-password"))
                    .json(&json!({"username": email, "temporary_password": temp, "new_password": NEW_PASSWORD}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                tally.count("first_login", status);
                let Some(token) = body["id_token"].as_str() else {
                    eprintln!("first login {email}: {status} {body}");
                    continue;
                };
                done.push(email.clone());
                let res = client
                    .get(format!("{base}/api/admins?limit=1"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                if status != 200 {
                    eprintln!(
                        "{email}'s first request: {status} {}",
                        res.text().await.unwrap_or_default()
                    );
                }
                tally.count("new_admin_request", status);
            }
            done
        })
    };

    creator.await.unwrap();
    lister.await.unwrap();
    let logged_in = first_logins.await.unwrap();
    let (rounds, terminated) = killer.await.unwrap();
    let store = d.store().await;
    let mut not_active = Vec::new();
    for email in &logged_in {
        let record = store.find_admin_by_email(email).await.unwrap();
        if record.as_ref().map(|r| r.user.status) != Some(UserStatus::Active) {
            not_active.push(email.clone());
        }
    }
    println!(
        "db chaos: {rounds} rounds, {terminated} sessions terminated; requests: {} creates, {} lists, \
         {} first logins, {} requests by new admins; answers: {:?}",
        tally.total("create"),
        tally.total("list"),
        tally.total("first_login"),
        tally.total("new_admin_request"),
        tally.0.lock().unwrap()
    );

    assert!(
        rounds >= (CHAOS.as_millis() / PERIOD.as_millis()) as u64 - 2,
        "{rounds} rounds"
    );
    assert!(
        terminated > rounds as i64 / 2,
        "the rounds ended sessions: {terminated} in {rounds} rounds"
    );
    assert!(tally.total("create") >= 20 && !logged_in.is_empty(), "the load ran");
    assert_eq!(tally.wrong(), Vec::<String>::new(), "no 5xx and no refused admin");
    assert_eq!(not_active, Vec::<String>::new(), "every first login ends active");
    drop(servers);
    Arc::try_unwrap(d).ok().unwrap().finish().await;
}
