//! Specifications of the reconciler, on the built-in emulator + SQLite and on moto (AWS SDK) +
//! PostgreSQL. Every drift is made by hand — through the emulator's or the AWS SDK's own admin calls and
//! the store's API, outside the product's flows — then `reconcile` must name it with the right code,
//! `--repair` must fix only the safe ones, and a second run must report exactly what was left.

use admin_provisioner_cognito::testing::{MotoServer, PoolOptions};
use admin_provisioner_core::clock::SystemClock;
use admin_provisioner_core::domain::{Actor, Password, UserId};
use admin_provisioner_core::faults::{FaultMode, FaultPlan, FaultRule, FaultyIdentityProvider, Store};
use admin_provisioner_core::identity::{op as idp_op, CreateUserRequest, IdentityProvider, IdpError, MessageAction};
use admin_provisioner_core::reconcile::{
    Background, DriftKind, Finding, ReconcileSettings, ReconcileStore, Reconciler, Repair, Report, Tick,
};
use admin_provisioner_core::store::{AuditAction, AuditEntry};
use admin_provisioner_core::{Caller, Provisioner, ProvisionerSettings};
use admin_provisioner_emulator::{CognitoEmulator, EmulatorConfig, ImportUser};
use aws_sdk_cognitoidentityprovider::types::AttributeType;
use sqlx::{Connection, Executor, PgConnection};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

fn settings() -> ProvisionerSettings {
    ProvisionerSettings {
        call_timeout: Duration::from_secs(5),
        max_attempts: 3,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..ProvisionerSettings::default()
    }
}

fn fast_reconcile(repair: bool) -> ReconcileSettings {
    ReconcileSettings {
        repair,
        list_users_per_second: 0.0,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..ReconcileSettings::default()
    }
}

/// Changes made to Cognito outside the product: the emulator's admin calls, or the AWS SDK against moto.
enum Hand {
    Emulator(Arc<CognitoEmulator>),
    Moto {
        client: aws_sdk_cognitoidentityprovider::Client,
        pool: String,
    },
}

impl Hand {
    async fn delete(&self, username: &str) {
        match self {
            Hand::Emulator(e) => e.admin_delete_user(username).await.unwrap(),
            Hand::Moto { client, pool } => {
                client
                    .admin_delete_user()
                    .user_pool_id(pool)
                    .username(username)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    async fn create(&self, username: &str) {
        match self {
            Hand::Emulator(e) => {
                e.admin_create_user(CreateUserRequest {
                    username: username.into(),
                    email: username.into(),
                    temporary_password: None,
                    message_action: Some(MessageAction::Suppress),
                })
                .await
                .unwrap();
            }
            Hand::Moto { client, pool } => {
                client
                    .admin_create_user()
                    .user_pool_id(pool)
                    .username(username)
                    .user_attributes(AttributeType::builder().name("email").value(username).build().unwrap())
                    .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    async fn set_permanent_password(&self, username: &str) {
        match self {
            Hand::Emulator(e) => e
                .admin_set_user_password(username, &Password::new("Perm4nent!pass"), true)
                .await
                .unwrap(),
            Hand::Moto { client, pool } => {
                client
                    .admin_set_user_password()
                    .user_pool_id(pool)
                    .username(username)
                    .password("Perm4nent!pass")
                    .permanent(true)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    async fn reset_password(&self, username: &str) {
        match self {
            Hand::Emulator(e) => e.admin_reset_user_password(username).await.unwrap(),
            Hand::Moto { client, pool } => {
                client
                    .admin_reset_user_password()
                    .user_pool_id(pool)
                    .username(username)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    async fn disable(&self, username: &str) {
        match self {
            Hand::Emulator(e) => e.admin_disable_user(username).await.unwrap(),
            Hand::Moto { client, pool } => {
                client
                    .admin_disable_user()
                    .user_pool_id(pool)
                    .username(username)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    async fn set_email(&self, username: &str, email: &str) {
        match self {
            Hand::Emulator(e) => e.admin_update_user_email(username, email).await.unwrap(),
            Hand::Moto { client, pool } => {
                client
                    .admin_update_user_attributes()
                    .user_pool_id(pool)
                    .username(username)
                    .user_attributes(AttributeType::builder().name("email").value(email).build().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

struct Fixture {
    p: Provisioner,
    store: Arc<dyn Store>,
    idp: Arc<dyn IdentityProvider>,
    hand: Hand,
    emulator: Option<Arc<CognitoEmulator>>,
    pg_db: Option<String>,
    _moto: Option<Arc<MotoServer>>,
    _dir: tempfile::TempDir,
}

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

async fn fresh_pg() -> (Arc<dyn Store>, String, String) {
    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("these tests need PostgreSQL (TEST_POSTGRES_URL={admin}): {e}"));
    let db = format!("ap_reconcile_test_{}", uuid::Uuid::new_v4().simple());
    conn.execute(format!("CREATE DATABASE {db}").as_str()).await.unwrap();
    conn.close().await.ok();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{db}");
    (admin_provisioner_store::connect(&url).await.unwrap(), db, url)
}

impl Fixture {
    async fn emulator_sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let emu = Arc::new(
            CognitoEmulator::open(EmulatorConfig::in_memory(dir.path().join("mailbox")))
                .await
                .unwrap(),
        );
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let store = admin_provisioner_store::connect(&url).await.unwrap();
        Self::assemble(
            emu.clone(),
            store,
            Hand::Emulator(emu.clone()),
            Some(emu),
            None,
            None,
            dir,
        )
    }

    async fn emulator_postgres() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let emu = Arc::new(
            CognitoEmulator::open(EmulatorConfig::in_memory(dir.path().join("mailbox")))
                .await
                .unwrap(),
        );
        let (store, db, _) = fresh_pg().await;
        Self::assemble(
            emu.clone(),
            store,
            Hand::Emulator(emu.clone()),
            Some(emu),
            Some(db),
            None,
            dir,
        )
    }

    async fn moto_postgres() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let moto = MotoServer::shared().expect("moto_server is needed for these tests");
        let pool = moto.create_pool(PoolOptions::default()).await.unwrap();
        let hand = Hand::Moto {
            client: moto.sdk_client(&pool.provider.config().region),
            pool: pool.user_pool_id.clone(),
        };
        let (store, db, _) = fresh_pg().await;
        Self::assemble(Arc::new(pool.provider), store, hand, None, Some(db), Some(moto), dir)
    }

    fn assemble(
        idp: Arc<dyn IdentityProvider>,
        store: Arc<dyn Store>,
        hand: Hand,
        emulator: Option<Arc<CognitoEmulator>>,
        pg_db: Option<String>,
        moto: Option<Arc<MotoServer>>,
        dir: tempfile::TempDir,
    ) -> Self {
        let p = Provisioner::new(idp.clone(), store.clone(), Arc::new(SystemClock), settings());
        Self {
            p,
            store,
            idp,
            hand,
            emulator,
            pg_db,
            _moto: moto,
            _dir: dir,
        }
    }

    fn reconciler(&self, s: ReconcileSettings) -> Reconciler {
        let store: Arc<dyn ReconcileStore> = self.store.clone();
        Reconciler::new(self.p.clone(), store, s)
    }

    async fn reconcile(&self, repair: bool) -> Report {
        self.reconciler(fast_reconcile(repair)).run(&mut |_| {}).await.unwrap()
    }

    async fn provision(&self, email: &str) -> (UserId, String) {
        let a = self
            .p
            .provision_new_admin(&Caller::Operator, email, None)
            .await
            .unwrap();
        (a.user.id, a.user.cognito_username)
    }

    fn audit(&self, action: AuditAction, target: &str) -> AuditEntry {
        AuditEntry {
            actor: Actor::Operator,
            action,
            target: target.into(),
            outcome: "success: by hand in a test".into(),
            request_id: None,
            at: chrono::Utc::now(),
        }
    }

    async fn finish(self) {
        let Fixture { p, store, pg_db, .. } = self;
        drop((p, store));
        if let Some(db) = pg_db {
            if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
                let _ = conn
                    .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
                    .await;
            }
        }
    }
}

/// (kind, code, e-mail) of every finding.
fn codes(r: &Report) -> BTreeSet<(String, String, String)> {
    r.findings
        .iter()
        .map(|f| {
            (
                f.kind.code().to_string(),
                f.code.clone(),
                f.email.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

fn finding<'a>(r: &'a Report, code: &str) -> &'a Finding {
    r.findings
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("no finding {code} in {:#?}", r.findings))
}

/// The whole specification, on one pair of adapters.
async fn every_drift_kind_is_found_and_only_the_safe_ones_are_repaired(f: Fixture) {
    // Arrange: one healthy admin and one of each drift, made by hand outside the product's flows.
    f.provision("healthy@example.com").await;

    let (ghost_id, ghost_user) = f.provision("ghost@example.com").await;
    f.store
        .delete_admin(ghost_id, f.audit(AuditAction::DeleteAdmin, "ghost@example.com"), None)
        .await
        .unwrap();

    let (orphan_id, orphan_user) = f.provision("orphan@example.com").await;
    f.hand.delete(&orphan_user).await;

    let (_, relinked_user) = f.provision("relinked@example.com").await;
    f.hand.delete(&relinked_user).await;
    f.hand.create(&relinked_user).await;
    let relinked_sub = f.idp.admin_get_user(&relinked_user).await.unwrap().sub;

    let (confirmed_id, confirmed_user) = f.provision("confirmed@example.com").await;
    f.hand.set_permanent_password(&confirmed_user).await;

    let (reset_id, reset_user) = f.provision("reset@example.com").await;
    f.hand.set_permanent_password(&reset_user).await;
    f.store
        .mark_accepted(
            reset_id,
            chrono::Utc::now(),
            f.audit(AuditAction::FirstLoginCompleted, "reset@example.com"),
        )
        .await
        .unwrap();
    f.hand.reset_password(&reset_user).await;

    let (_, disabled_user) = f.provision("disabled@example.com").await;
    f.hand.disable(&disabled_user).await;

    let (_, email_user) = f.provision("email@example.com").await;
    f.hand.set_email(&email_user, "someone.else@example.com").await;

    f.hand.create("foreign@example.com").await;
    let foreign_sub = f.idp.admin_get_user("foreign@example.com").await.unwrap().sub;

    // Act 1: report only.
    let first = f.reconcile(false).await;

    // Assert 1: every kind with its code; nothing changed; foreign is not drift.
    let expected_first = set(&[
        ("ghost", "ghost_never_logged_in", "ghost@example.com"),
        ("orphan", "orphan_cognito_user_missing", "orphan@example.com"),
        ("relinked", "relinked_sub_changed", "relinked@example.com"),
        ("status", "status_confirmed_not_recorded", "confirmed@example.com"),
        ("status", "status_reset_required_for_active", "reset@example.com"),
        ("status", "status_cognito_disabled", "disabled@example.com"),
        ("email", "email_mismatch", "email@example.com"),
        ("foreign", "foreign_user", "foreign@example.com"),
    ]);
    assert_eq!(codes(&first), expected_first, "{:#?}", first.findings);
    assert_eq!(first.summary.needs_attention, 7, "foreign is information only");
    assert_eq!(first.summary.counts["foreign"], 1);
    assert_eq!(first.summary.cognito_users, 8);
    assert_eq!(first.summary.database_admins, 7);
    assert_eq!(finding(&first, "ghost_never_logged_in").repair, Repair::Available);
    assert_eq!(
        finding(&first, "status_confirmed_not_recorded").repair,
        Repair::Available
    );
    assert_eq!(finding(&first, "orphan_cognito_user_missing").repair, Repair::Manual);
    let orphan = finding(&first, "orphan_cognito_user_missing");
    assert_eq!(orphan.admin_id.as_deref(), Some(orphan_id.to_string().as_str()));
    assert!(
        orphan.fix.contains(&format!("DELETE /api/admins/{orphan_id}")),
        "{}",
        orphan.fix
    );
    let relinked = finding(&first, "relinked_sub_changed");
    assert_eq!(relinked.cognito_sub.as_deref(), Some(relinked_sub.as_str()));
    assert_ne!(relinked.db_cognito_sub, relinked.cognito_sub);
    assert!(
        f.idp.admin_get_user(&ghost_user).await.is_ok(),
        "a report changes nothing"
    );

    // Act 2: repair.
    let repaired = f.reconcile(true).await;

    // Assert 2: the two safe repairs applied and audited; everything else untouched.
    assert_eq!(finding(&repaired, "ghost_never_logged_in").repair, Repair::Applied);
    assert_eq!(
        finding(&repaired, "status_confirmed_not_recorded").repair,
        Repair::Applied
    );
    assert_eq!(repaired.summary.repaired, 2);
    assert_eq!(repaired.summary.needs_attention, 5);
    assert_eq!(f.idp.admin_get_user(&ghost_user).await, Err(IdpError::UserNotFound));
    let confirmed = f.store.get_admin(confirmed_id).await.unwrap().unwrap();
    assert_eq!(confirmed.user.status.as_str(), "active");
    assert!(confirmed.admin_info.accepted_at.is_some());
    assert_eq!(
        f.idp.admin_get_user("foreign@example.com").await.unwrap().sub,
        foreign_sub
    );
    assert_eq!(f.idp.admin_get_user(&relinked_user).await.unwrap().sub, relinked_sub);
    assert!(
        f.store.get_admin(orphan_id).await.unwrap().is_some(),
        "the orphan stays"
    );
    let audit = f.store.list_audit(100).await.unwrap();
    let by_reconciler: BTreeSet<(String, String)> = audit
        .iter()
        .filter(|e| e.entry.actor == Actor::Reconciler)
        .map(|e| (e.entry.action.as_str().to_string(), e.entry.target.clone()))
        .collect();
    assert_eq!(
        by_reconciler,
        [
            ("reconcile_delete_ghost".to_string(), "ghost@example.com".to_string()),
            ("reconcile_mark_active".to_string(), "confirmed@example.com".to_string()),
        ]
        .into_iter()
        .collect()
    );

    // Act 3 / Assert 3: a second run reports exactly what was left on purpose.
    let second = f.reconcile(true).await;
    let mut left = expected_first.clone();
    left.remove(&(
        "ghost".into(),
        "ghost_never_logged_in".into(),
        "ghost@example.com".into(),
    ));
    left.remove(&(
        "status".into(),
        "status_confirmed_not_recorded".into(),
        "confirmed@example.com".into(),
    ));
    assert_eq!(codes(&second), left, "{:#?}", second.findings);
    assert_eq!(second.summary.repaired, 0);
    assert_eq!(second.summary.needs_attention, 5);
    f.finish().await;
}

#[tokio::test]
async fn emulator_sqlite_every_drift_kind_is_found_and_only_the_safe_ones_are_repaired() {
    every_drift_kind_is_found_and_only_the_safe_ones_are_repaired(Fixture::emulator_sqlite().await).await;
}

#[tokio::test]
async fn moto_postgres_every_drift_kind_is_found_and_only_the_safe_ones_are_repaired() {
    every_drift_kind_is_found_and_only_the_safe_ones_are_repaired(Fixture::moto_postgres().await).await;
}

#[tokio::test]
async fn a_ghost_that_already_set_a_password_is_reported_but_never_deleted() {
    let f = Fixture::emulator_sqlite().await;
    let (id, username) = f.provision("quick@example.com").await;
    f.hand.set_permanent_password(&username).await;
    f.store
        .delete_admin(id, f.audit(AuditAction::DeleteAdmin, "quick@example.com"), None)
        .await
        .unwrap();
    let r = f.reconcile(true).await;
    assert_eq!(codes(&r), set(&[("ghost", "ghost_has_logged_in", "quick@example.com")]));
    assert_eq!(finding(&r, "ghost_has_logged_in").repair, Repair::Manual);
    assert!(f.idp.admin_get_user(&username).await.is_ok());
    f.finish().await;
}

#[tokio::test]
async fn a_clean_pool_reports_nothing() {
    let f = Fixture::emulator_sqlite().await;
    f.provision("a@example.com").await;
    f.provision("b@example.com").await;
    let r = f.reconcile(false).await;
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(r.is_clean());
    assert_eq!((r.summary.cognito_users, r.summary.database_admins), (2, 2));
    f.finish().await;
}

fn import(n: usize, prefix: &str) -> Vec<ImportUser> {
    (0..n)
        .map(|i| ImportUser {
            username: format!("{prefix}{i:04}@example.com"),
            sub: uuid::Uuid::new_v4().to_string(),
            email: format!("{prefix}{i:04}@example.com"),
            status: "CONFIRMED".into(),
            enabled: true,
        })
        .collect()
}

#[tokio::test]
async fn a_throttled_pool_of_more_than_60_users_is_read_completely() {
    // Arrange: 150 foreign users (3 pages), 2 admins; ListUsers limited to 2 calls a second while the
    // reconciler is allowed to go faster, so it must wait out TooManyRequests.
    let f = Fixture::emulator_sqlite().await;
    f.provision("a@example.com").await;
    f.provision("z@example.com").await;
    let emu = f.emulator.clone().unwrap();
    emu.import_users(&import(150, "foreign")).await.unwrap();
    emu.set_list_users_rate_limit(Some(2));
    let r = f
        .reconciler(ReconcileSettings {
            list_users_per_second: 1000.0,
            sort_run_len: 50, // spill to disk too
            ..fast_reconcile(false)
        })
        .run(&mut |_| {})
        .await
        .unwrap();
    assert!(emu.list_users_refused() > 0, "the rate limit never fired");
    assert!(r.summary.throttled > 0);
    assert_eq!(r.summary.cognito_users, 152);
    assert_eq!(r.summary.list_users_pages, 3);
    assert_eq!(r.summary.counts["foreign"], 150);
    assert!(r.is_clean());
    f.finish().await;
}

#[tokio::test]
async fn the_reconciler_paces_list_users_under_the_quota() {
    // 4 pages at 5 calls a second: at least 3 intervals of 200 ms.
    let f = Fixture::emulator_sqlite().await;
    f.emulator
        .clone()
        .unwrap()
        .import_users(&import(200, "u"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let r = f
        .reconciler(ReconcileSettings {
            list_users_per_second: 5.0,
            ..fast_reconcile(false)
        })
        .run(&mut |_| {})
        .await
        .unwrap();
    assert_eq!(r.summary.list_users_pages, 4);
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    f.finish().await;
}

#[tokio::test]
async fn moto_a_pool_of_more_than_60_users_is_read_completely_through_throttling() {
    // moto does not throttle: TooManyRequests is injected on the first two ListUsers calls.
    let f = Fixture::moto_postgres().await;
    for i in 0..65 {
        f.hand.create(&format!("user{i:02}@example.com")).await;
    }
    let plan = FaultPlan::new();
    plan.add(FaultRule {
        op: idp_op::LIST_USERS.into(),
        mode: FaultMode::Error,
        remaining: Some(2),
        idp_error: Some(IdpError::TooManyRequests),
        store_error: None,
        skip: 1,
    });
    let faulty: Arc<dyn IdentityProvider> = Arc::new(FaultyIdentityProvider::new(f.idp.clone(), plan.clone()));
    let p = Provisioner::new(faulty, f.store.clone(), Arc::new(SystemClock), settings());
    let store: Arc<dyn ReconcileStore> = f.store.clone();
    let r = Reconciler::new(p, store, fast_reconcile(false))
        .run(&mut |_| {})
        .await
        .unwrap();
    assert_eq!(r.summary.throttled, 2, "both injected faults fired");
    assert_eq!(r.summary.cognito_users, 65);
    assert_eq!(r.summary.list_users_pages, 2);
    assert_eq!(r.summary.counts["foreign"], 65);
    f.finish().await;
}

#[tokio::test]
async fn two_replicas_on_postgres_never_run_the_background_reconciler_at_once() {
    // Arrange: one PostgreSQL database, two "replicas" (own store connections, own holder ids) and a slow
    // pool (ListUsers at 2 calls a second over 3 pages: a run lasts about a second).
    let f = Fixture::emulator_postgres().await;
    f.emulator
        .clone()
        .unwrap()
        .import_users(&import(130, "u"))
        .await
        .unwrap();
    let replica = |holder: &str| {
        let store: Arc<dyn ReconcileStore> = f.store.clone();
        let r = Reconciler::new(
            f.p.clone(),
            store,
            ReconcileSettings {
                list_users_per_second: 2.0,
                ..fast_reconcile(false)
            },
        );
        Background::new(r, holder.to_string(), Duration::from_secs(3600))
    };
    let (a, b) = (replica("replica-a"), replica("replica-b"));

    // Act: both tick at the same moment.
    let (ta, tb) = tokio::join!(a.tick(), b.tick());

    // Assert: exactly one ran; the other skipped, and keeps skipping while the lease is held.
    let ran = [&ta, &tb].iter().filter(|t| matches!(t, Ok(Tick::Ran(_)))).count();
    assert_eq!(ran, 1, "{ta:?} / {tb:?}");
    let (winner, loser) = if matches!(ta, Ok(Tick::Ran(_))) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(loser.tick().await.unwrap(), Tick::Skipped);
    // The holder may run again; after it releases, the other takes over.
    assert!(matches!(winner.tick().await.unwrap(), Tick::Ran(_)));
    winner.release().await;
    assert!(matches!(loser.tick().await.unwrap(), Tick::Ran(_)));
    f.finish().await;
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_a_live_one_is_not() {
    let f = Fixture::emulator_sqlite().await;
    let now = chrono::Utc::now();
    let ttl = chrono::Duration::seconds(60);
    assert!(f.store.try_acquire_lease("reconciler", "a", now, ttl).await.unwrap());
    assert!(!f.store.try_acquire_lease("reconciler", "b", now, ttl).await.unwrap());
    assert!(
        f.store.try_acquire_lease("reconciler", "a", now, ttl).await.unwrap(),
        "renewal"
    );
    let later = now + chrono::Duration::seconds(61);
    assert!(f.store.try_acquire_lease("reconciler", "b", later, ttl).await.unwrap());
    assert!(!f.store.try_acquire_lease("reconciler", "a", later, ttl).await.unwrap());
    f.finish().await;
}

#[tokio::test]
async fn the_keyset_stream_is_in_byte_order_on_both_databases() {
    for f in [Fixture::emulator_sqlite().await, Fixture::emulator_postgres().await] {
        // Usernames that locale collations order differently from bytes.
        for email in [
            "b@example.com",
            "a.z@example.com",
            "é@example.com",
            "_@example.com",
            "az@example.com",
        ] {
            f.provision(email).await;
        }
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = f
                .store
                .admins_after_cognito_username(after.as_deref(), 2)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|a| a.user.cognito_username.clone());
            seen.extend(page.into_iter().map(|a| a.user.cognito_username));
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        assert_eq!(seen.len(), 5, "{seen:?}");
        f.finish().await;
    }
}

#[test]
fn kind_codes_are_stable() {
    assert_eq!(
        DriftKind::ALL.map(|k| k.code()),
        [
            "ghost",
            "orphan",
            "relinked",
            "status",
            "email",
            "foreign",
            "role_group_mismatch"
        ]
    );
    assert!(!DriftKind::Foreign.is_drift());
}
