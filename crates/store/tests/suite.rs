//! The store's behaviour, specified once and run against both adapters.
//!
//! Every `async fn` taking a [`Db`] below is one behaviour; [`store_suite!`] instantiates each as a test in
//! `sqlite::` (a fresh database file in a temporary folder) and in `postgres::` (a fresh database created
//! through an admin connection, `TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`,
//! and dropped afterwards). The PostgreSQL tests fail, with a message saying why, when the server cannot
//! be reached: they never skip silently. Each adapter is wrapped as [`admin_provisioner_store::connect`]
//! returns it (`reconnecting()`), so the suite specifies the store the product runs. A few behaviours
//! exist only in PostgreSQL (its sessions can be terminated from outside): `postgres_only::`.

use admin_provisioner_core::domain::{Actor, AdminRecord, Role, UserId, UserStatus};
use admin_provisioner_core::store::Store;
use admin_provisioner_core::store::{
    AuditAction, AuditEntry, IdempotencyBegin, NewAdmin, SagaKind, SagaRecord, SagaState, SagaUpdate, StoreError,
    StoredResponse,
};
use admin_provisioner_store::{redact_url, truncate_to_micros, PostgresStore, SqliteStore};
use chrono::{DateTime, Duration, Utc};
use sqlx::{Connection, Executor, PgConnection, PgPool, SqlitePool};
use std::future::Future;
use std::sync::Arc;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------------------

/// A store under test plus raw access to its database.
struct Db {
    store: Arc<dyn Store>,
    raw: Raw,
}

/// The store's own pool, for raw SQL that the ports do not offer.
#[derive(Clone)]
enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Raw {
    /// Closes the store's pool (simulates a database that went away).
    async fn close(&self) {
        match self {
            Raw::Sqlite(pool) => pool.close().await,
            Raw::Postgres(pool) => pool.close().await,
        }
    }

    /// Runs `sql` (no parameters); `Err` carries the database's message.
    async fn exec(&self, sql: &str) -> Result<u64, String> {
        let result = match self {
            Raw::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|r| r.rows_affected()),
            Raw::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|r| r.rows_affected()),
        };
        result.map_err(|e| e.to_string())
    }

    /// Back-dates an idempotency claim (as if its process had died at `at`).
    async fn age_idempotency_claim(&self, scope: &str, key: &str, at: DateTime<Utc>) {
        let ts = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let sql = match self {
            Raw::Sqlite(_) => {
                format!("UPDATE idempotency_keys SET created_at = '{ts}' WHERE scope = '{scope}' AND key = '{key}'")
            }
            Raw::Postgres(_) => format!(
                "UPDATE idempotency_keys SET created_at = '{ts}'::timestamptz WHERE scope = '{scope}' AND key = '{key}'"
            ),
        };
        assert_eq!(self.exec(&sql).await.unwrap(), 1);
    }

    /// PostgreSQL: opens `n` connections of the store's pool at once and returns them to it idle.
    async fn open_idle_connections(&self, n: usize) {
        let Raw::Postgres(pool) = self else {
            panic!("only PostgreSQL sessions can be terminated")
        };
        let mut held = Vec::new();
        for _ in 0..n {
            held.push(pool.acquire().await.unwrap());
        }
        drop(held);
        // Returning a connection to the pool pings it in a background task: let those finish.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            pool.num_idle() >= n,
            "{} idle connections, expected {n}",
            pool.num_idle()
        );
    }

    /// PostgreSQL: terminates every session of the store's database (what a restart, a failover or a
    /// proxy's idle kill does to the pool), from a connection of its own; returns how many it ended.
    async fn terminate_every_session(&self) -> i64 {
        let Raw::Postgres(pool) = self else {
            panic!("only PostgreSQL sessions can be terminated")
        };
        let mut outside = PgConnection::connect_with(&pool.connect_options()).await.unwrap();
        let terminated: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) t WHERE ended",
        )
        .fetch_one(&mut outside)
        .await
        .unwrap();
        outside.close().await.ok();
        terminated
    }

    /// Runs a `SELECT` of one text value.
    async fn text(&self, sql: &str) -> String {
        match self {
            Raw::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Raw::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }

    /// Runs a `SELECT COUNT(*) …`.
    async fn count(&self, sql: &str) -> i64 {
        match self {
            Raw::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Raw::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }
}

/// Runs `test` against a fresh SQLite database file.
async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    let raw = Raw::Sqlite(store.pool().clone());
    test(Db {
        store: Arc::new(store.reconnecting()),
        raw,
    })
    .await;
}

/// Runs `test` against a fresh PostgreSQL database, dropped afterwards even if the test panics.
async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fresh = FreshPostgres::create().await;
    let store = PostgresStore::connect(&fresh.url).await.unwrap();
    let raw = Raw::Postgres(store.pool().clone());
    let outcome = tokio::spawn(test(Db {
        store: Arc::new(store.clone().reconnecting()),
        raw,
    }))
    .await;
    store.pool().close().await;
    fresh.drop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database created for one test.
struct FreshPostgres {
    admin_url: String,
    name: String,
    url: String,
}

impl FreshPostgres {
    async fn create() -> Self {
        let admin_url = postgres_admin_url();
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL store tests need a server: cannot connect to {}: {e}. \
                 Start PostgreSQL or set TEST_POSTGRES_URL to a connection allowed to CREATE DATABASE.",
                redact_url(&admin_url)
            )
        });
        let name = format!("ap_store_test_{}", Uuid::new_v4().simple());
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Self { admin_url, name, url }
    }

    async fn drop(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await;
            admin.close().await.ok();
        }
    }
}

/// `url` with its database name replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..authority_end])
}

/// Instantiates each behaviour once per backend.
macro_rules! store_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::run_sqlite(super::$test).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::run_postgres(super::$test).await;
                }
            )*
        }
    };
}

/// Behaviours of PostgreSQL alone: its sessions can be ended from outside (`pg_terminate_backend`).
mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_and_writes_succeed_after_every_session_of_the_pool_is_terminated() {
        super::run_postgres(super::reads_and_writes_succeed_after_every_session_of_the_pool_is_terminated).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_first_after_every_session_is_terminated_succeeds() {
        super::run_postgres(super::a_write_first_after_every_session_is_terminated_succeeds).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_succeed_while_sessions_are_terminated_repeatedly() {
        super::run_postgres(super::concurrent_calls_succeed_while_sessions_are_terminated_repeatedly).await;
    }
}

store_suite!(
    ping_succeeds,
    a_role_is_stored_changed_with_its_event_and_the_last_active_owner_is_kept,
    two_owners_demoting_disabling_and_removing_each_other_at_once_leave_one_owner,
    insert_admin_round_trips_every_field,
    lookups_find_the_admin_by_email_username_and_sub,
    email_uniqueness_is_case_insensitive,
    cognito_username_is_unique,
    cognito_sub_is_unique,
    a_clash_on_both_email_and_cognito_user_is_email_taken,
    insert_admin_with_an_unknown_inviter_writes_nothing,
    insert_admin_is_idempotent_by_id,
    insert_admin_with_a_known_id_but_another_username_is_rejected,
    insert_admin_completes_the_saga_in_the_same_transaction,
    replayed_insert_admin_still_completes_the_saga,
    failed_insert_admin_writes_nothing,
    insert_admin_with_an_unknown_saga_writes_nothing,
    admin_info_without_a_user_is_rejected,
    a_user_cannot_be_deleted_before_its_admin_info,
    mark_accepted_activates_and_keeps_the_first_accepted_at,
    mark_accepted_of_an_unknown_admin_is_not_found,
    record_invite_sent_counts_and_moves_the_expiry,
    record_invite_sent_of_an_unknown_admin_is_not_found,
    delete_admin_removes_both_records_and_advances_the_saga,
    delete_admin_of_an_unknown_admin_is_not_found,
    deleting_an_inviter_keeps_its_invitees,
    audit_events_are_listed_newest_first_up_to_the_limit,
    audit_log_rejects_update_and_delete,
    count_active_admins_counts_only_active_admins,
    the_last_active_admin_cannot_be_deleted,
    concurrent_deletes_never_remove_the_last_active_admin,
    list_admins_is_oldest_first,
    idempotency_key_is_claimed_completed_and_replayed,
    idempotency_abandon_releases_only_an_incomplete_key,
    idempotency_keys_are_scoped,
    an_abandoned_idempotency_claim_is_taken_over_after_its_ttl,
    saga_begin_is_idempotent_by_id,
    a_second_unfinished_saga_for_an_email_is_in_flight,
    a_stuck_saga_still_holds_its_email,
    an_email_is_free_again_once_its_saga_is_terminal,
    saga_update_applies_only_the_given_fields,
    saga_update_of_an_unknown_id_is_not_found,
    saga_update_with_a_stale_expected_state_is_refused,
    a_finished_saga_never_changes_state,
    list_unfinished_excludes_terminal_sagas_oldest_first,
    concurrent_inserts_of_one_email_create_exactly_one_admin,
    concurrent_saga_begins_for_one_email_admit_exactly_one,
    timestamps_are_truncated_to_microseconds,
    a_closed_pool_is_a_transient_unavailable_error,
    admin_pages_walk_every_admin_once_in_order_with_filters,
    unfinished_provision_pages_skip_sagas_whose_admin_is_stored,
    audit_pages_carry_the_actor_email_from_one_join,
    scim_user_names_are_unique_and_found_by_index_with_external_ids,
    end_sessions_sets_the_epoch_and_never_moves_it_back,
    disabling_ends_sessions_in_the_same_write_and_enabling_keeps_the_epoch,
    a_refused_disable_leaves_the_session_epoch_alone
);

// ---------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------

/// A fixed instant with whole microseconds, so it round-trips exactly.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T12:00:00.123456Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn new_admin(email: &str) -> NewAdmin {
    NewAdmin {
        id: UserId::new(),
        email: email.to_string(),
        email_normalized: email.to_lowercase(),
        cognito_username: email.to_lowercase(),
        cognito_sub: Uuid::new_v4().to_string(),
        invited_by: None,
        invited_at: t0(),
        invite_expires_at: t0() + Duration::days(7),
        invite_delivered: true,
        role: Default::default(),
    }
}

fn audit(action: AuditAction, target: &str) -> AuditEntry {
    AuditEntry {
        actor: Actor::Operator,
        action,
        target: target.to_string(),
        outcome: "success".to_string(),
        request_id: Some(format!("req-{}", Uuid::new_v4().simple())),
        at: t0(),
    }
}

fn saga(email: &str) -> SagaRecord {
    SagaRecord {
        id: Uuid::new_v4(),
        kind: SagaKind::Provision,
        actor: Actor::Operator,
        email: email.to_string(),
        email_normalized: email.to_lowercase(),
        user_id: UserId::new(),
        cognito_username: email.to_lowercase(),
        cognito_sub: None,
        identity_created_by_saga: false,
        invite_delivered: true,
        state: SagaState::Started,
        attempts: 0,
        last_error: None,
        request_id: Some("req-saga".to_string()),
        started_at: t0(),
        updated_at: t0(),
        owner: None,
        lease_expires_at: None,
        scim: None,
        role: None,
    }
}

async fn insert(db: &Db, email: &str) -> AdminRecord {
    db.store
        .insert_admin(
            new_admin(email),
            audit(AuditAction::CreateAdmin, &email.to_lowercase()),
            None,
        )
        .await
        .unwrap()
}

async fn audit_count(db: &Db) -> i64 {
    db.raw.count("SELECT COUNT(*) FROM audit_log").await
}

fn is_other(e: &StoreError) -> bool {
    matches!(e, StoreError::Other(_))
}

// ---------------------------------------------------------------------------------------------------------
// Admin records
// ---------------------------------------------------------------------------------------------------------

async fn ping_succeeds(db: Db) {
    db.store.ping().await.unwrap();
}

async fn insert_admin_round_trips_every_field(db: Db) {
    // Arrange
    let inviter = insert(&db, "boss@example.com").await;
    let mut new = new_admin("Ann.Smith@Example.COM");
    new.invited_by = Some(inviter.user.id);
    new.invite_delivered = false;

    // Act
    let before = Utc::now() - Duration::seconds(1);
    let inserted = db
        .store
        .insert_admin(new.clone(), audit(AuditAction::CreateAdmin, "ann"), None)
        .await
        .unwrap();
    let stored = db.store.get_admin(new.id).await.unwrap().expect("stored");

    // Assert
    assert_eq!(stored, inserted);
    let u = &stored.user;
    assert_eq!(u.id, new.id);
    assert_eq!(u.email, "Ann.Smith@Example.COM");
    assert_eq!(u.email_normalized, "ann.smith@example.com");
    assert_eq!(u.cognito_username, new.cognito_username);
    assert_eq!(u.cognito_sub, new.cognito_sub);
    assert_eq!(u.status, UserStatus::Invited);
    assert!(u.created_at >= before && u.created_at <= Utc::now());
    assert_eq!(u.updated_at, u.created_at);
    let a = &stored.admin_info;
    assert_eq!(a.user_id, new.id);
    assert_eq!(a.invited_by, Some(inviter.user.id));
    assert_eq!(a.invited_at, t0());
    assert_eq!(a.invite_expires_at, t0() + Duration::days(7));
    assert_eq!(a.invites_sent, 1);
    assert_eq!(a.last_invite_sent_at, t0());
    assert!(!a.invite_delivered);
    assert_eq!(a.accepted_at, None);
}

async fn lookups_find_the_admin_by_email_username_and_sub(db: Db) {
    let a = insert(&db, "Look@Example.com").await;

    assert_eq!(
        db.store.find_admin_by_email("look@example.com").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        db.store
            .find_admin_by_cognito_username("look@example.com")
            .await
            .unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        db.store.find_admin_by_cognito_sub(&a.user.cognito_sub).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(db.store.find_admin_by_email("nobody@example.com").await.unwrap(), None);
    assert_eq!(db.store.find_admin_by_cognito_username("nobody").await.unwrap(), None);
    assert_eq!(db.store.find_admin_by_cognito_sub("nobody").await.unwrap(), None);
    assert_eq!(db.store.get_admin(UserId::new()).await.unwrap(), None);
}

async fn email_uniqueness_is_case_insensitive(db: Db) {
    insert(&db, "ann@example.com").await;
    let mut other = new_admin("ANN@EXAMPLE.COM");
    other.cognito_username = Uuid::new_v4().to_string();

    let err = db
        .store
        .insert_admin(other, audit(AuditAction::CreateAdmin, "ann"), None)
        .await
        .unwrap_err();

    assert_eq!(err, StoreError::EmailTaken);
}

async fn cognito_username_is_unique(db: Db) {
    let first = insert(&db, "one@example.com").await;
    let mut other = new_admin("two@example.com");
    other.cognito_username = first.user.cognito_username.clone();

    let err = db
        .store
        .insert_admin(other, audit(AuditAction::CreateAdmin, "two"), None)
        .await
        .unwrap_err();

    assert_eq!(err, StoreError::CognitoUserTaken);
}

async fn cognito_sub_is_unique(db: Db) {
    let first = insert(&db, "one@example.com").await;
    let mut other = new_admin("two@example.com");
    other.cognito_sub = first.user.cognito_sub.clone();

    let err = db
        .store
        .insert_admin(other, audit(AuditAction::CreateAdmin, "two"), None)
        .await
        .unwrap_err();

    assert_eq!(err, StoreError::CognitoUserTaken);
}

async fn a_clash_on_both_email_and_cognito_user_is_email_taken(db: Db) {
    insert(&db, "both@example.com").await;

    // Same normalised e-mail, and the Cognito username derived from it: both unique indexes clash.
    let err = db
        .store
        .insert_admin(
            new_admin("Both@Example.com"),
            audit(AuditAction::CreateAdmin, "both"),
            None,
        )
        .await
        .unwrap_err();

    assert_eq!(err, StoreError::EmailTaken);
}

async fn insert_admin_with_an_unknown_inviter_writes_nothing(db: Db) {
    let mut new = new_admin("orphan@example.com");
    new.invited_by = Some(UserId::new());

    let err = db
        .store
        .insert_admin(new.clone(), audit(AuditAction::CreateAdmin, "orphan"), None)
        .await
        .unwrap_err();

    assert!(is_other(&err), "{err:?}");
    assert_eq!(db.store.get_admin(new.id).await.unwrap(), None);
    assert_eq!(db.raw.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(audit_count(&db).await, 0);
}

async fn insert_admin_is_idempotent_by_id(db: Db) {
    let new = new_admin("again@example.com");
    let first = db
        .store
        .insert_admin(new.clone(), audit(AuditAction::CreateAdmin, "again"), None)
        .await
        .unwrap();

    let second = db
        .store
        .insert_admin(new, audit(AuditAction::CreateAdmin, "again"), None)
        .await
        .unwrap();

    assert_eq!(second, first);
    assert_eq!(db.store.list_admins().await.unwrap().len(), 1);
    assert_eq!(audit_count(&db).await, 1, "a replay writes no second audit event");
}

async fn insert_admin_with_a_known_id_but_another_username_is_rejected(db: Db) {
    let first = insert(&db, "first@example.com").await;
    let mut clash = new_admin("second@example.com");
    clash.id = first.user.id;

    let err = db
        .store
        .insert_admin(clash, audit(AuditAction::CreateAdmin, "second"), None)
        .await
        .unwrap_err();

    assert!(is_other(&err), "{err:?}");
    assert_eq!(db.store.get_admin(first.user.id).await.unwrap(), Some(first));
}

async fn insert_admin_completes_the_saga_in_the_same_transaction(db: Db) {
    let s = db.store.begin(saga("sag@example.com")).await.unwrap();
    let mut new = new_admin("sag@example.com");
    new.id = s.user_id;

    db.store
        .insert_admin(new, audit(AuditAction::CreateAdmin, "sag"), Some(s.id))
        .await
        .unwrap();

    let after = db.store.get(s.id).await.unwrap().unwrap();
    assert_eq!(after.state, SagaState::Completed);
    assert!(after.updated_at > s.updated_at);
    assert!(db.store.list_unfinished().await.unwrap().is_empty());
    // The same write logs the linked Cognito user as the saga's own (the saga logs nothing between its
    // AdminCreateUser and this transaction).
    assert!(!s.identity_created_by_saga && s.cognito_sub.is_none());
    let linked = db.store.get_admin(s.user_id).await.unwrap().unwrap();
    assert!(after.identity_created_by_saga);
    assert_eq!(after.cognito_sub.as_deref(), Some(linked.user.cognito_sub.as_str()));
    assert_eq!(after.cognito_username, linked.user.cognito_username);
    assert_eq!(after.invite_delivered, linked.admin_info.invite_delivered);
}

async fn replayed_insert_admin_still_completes_the_saga(db: Db) {
    let s = db.store.begin(saga("replay@example.com")).await.unwrap();
    let mut new = new_admin("replay@example.com");
    new.id = s.user_id;
    db.store
        .insert_admin(new.clone(), audit(AuditAction::CreateAdmin, "replay"), None)
        .await
        .unwrap();
    assert_eq!(db.store.get(s.id).await.unwrap().unwrap().state, SagaState::Started);

    db.store
        .insert_admin(new, audit(AuditAction::CreateAdmin, "replay"), Some(s.id))
        .await
        .unwrap();

    assert_eq!(db.store.get(s.id).await.unwrap().unwrap().state, SagaState::Completed);
    assert_eq!(audit_count(&db).await, 1);
}

async fn failed_insert_admin_writes_nothing(db: Db) {
    insert(&db, "taken@example.com").await;
    let s = db.store.begin(saga("TAKEN@example.com")).await.unwrap();
    let mut new = new_admin("Taken@Example.com");
    new.cognito_username = "someone-else".to_string();

    let err = db
        .store
        .insert_admin(new.clone(), audit(AuditAction::CreateAdmin, "taken"), Some(s.id))
        .await;

    assert_eq!(err.unwrap_err(), StoreError::EmailTaken);
    assert_eq!(db.store.get(s.id).await.unwrap().unwrap().state, SagaState::Started);
    assert_eq!(db.store.get_admin(new.id).await.unwrap(), None);
    assert_eq!(audit_count(&db).await, 1, "only the first admin's audit event");
}

async fn insert_admin_with_an_unknown_saga_writes_nothing(db: Db) {
    let new = new_admin("nosaga@example.com");

    let err = db
        .store
        .insert_admin(
            new.clone(),
            audit(AuditAction::CreateAdmin, "nosaga"),
            Some(Uuid::new_v4()),
        )
        .await
        .unwrap_err();

    assert!(is_other(&err), "{err:?}");
    assert_eq!(db.store.get_admin(new.id).await.unwrap(), None);
    assert_eq!(audit_count(&db).await, 0);
}

async fn admin_info_without_a_user_is_rejected(db: Db) {
    let orphan = Uuid::new_v4();
    let sql = format!(
        "INSERT INTO admin_info (user_id, invited_by, invited_at, invite_expires_at, invites_sent, \
         last_invite_sent_at, invite_delivered, accepted_at) VALUES ('{orphan}', NULL, \
         '2024-05-01T12:00:00.000000Z', '2024-05-08T12:00:00.000000Z', 1, '2024-05-01T12:00:00.000000Z', TRUE, NULL)"
    );

    let err = db.raw.exec(&sql).await.unwrap_err();

    assert!(err.to_lowercase().contains("foreign key"), "{err}");
    assert_eq!(db.raw.count("SELECT COUNT(*) FROM admin_info").await, 0);
}

async fn a_user_cannot_be_deleted_before_its_admin_info(db: Db) {
    let a = insert(&db, "fk@example.com").await;

    let err = db
        .raw
        .exec(&format!("DELETE FROM users WHERE id = '{}'", a.user.id))
        .await
        .unwrap_err();

    assert!(err.to_lowercase().contains("foreign key"), "{err}");
    assert_eq!(db.store.get_admin(a.user.id).await.unwrap(), Some(a));
}

async fn mark_accepted_activates_and_keeps_the_first_accepted_at(db: Db) {
    let a = insert(&db, "acc@example.com").await;
    let first = t0() + Duration::hours(1);

    let accepted = db
        .store
        .mark_accepted(a.user.id, first, audit(AuditAction::FirstLoginCompleted, "acc"))
        .await
        .unwrap();
    let again = db
        .store
        .mark_accepted(
            a.user.id,
            first + Duration::hours(1),
            audit(AuditAction::FirstLoginCompleted, "acc"),
        )
        .await
        .unwrap();

    assert_eq!(accepted.user.status, UserStatus::Active);
    assert_eq!(accepted.admin_info.accepted_at, Some(first));
    assert_eq!(again.admin_info.accepted_at, Some(first));
    assert_eq!(again.user.status, UserStatus::Active);
    assert_eq!(db.store.get_admin(a.user.id).await.unwrap(), Some(again));
    let events = db.store.list_audit(10).await.unwrap();
    assert_eq!(events[0].entry.action, AuditAction::FirstLoginCompleted);
}

async fn mark_accepted_of_an_unknown_admin_is_not_found(db: Db) {
    let err = db
        .store
        .mark_accepted(UserId::new(), t0(), audit(AuditAction::FirstLoginCompleted, "x"))
        .await
        .unwrap_err();

    assert_eq!(err, StoreError::NotFound);
    assert_eq!(audit_count(&db).await, 0);
}

async fn record_invite_sent_counts_and_moves_the_expiry(db: Db) {
    let a = insert(&db, "resend@example.com").await;
    let sent = t0() + Duration::days(2);

    let after = db
        .store
        .record_invite_sent(
            a.user.id,
            sent,
            sent + Duration::days(7),
            false,
            audit(AuditAction::ResendInvite, "resend"),
        )
        .await
        .unwrap();

    assert_eq!(after.admin_info.invites_sent, 2);
    assert_eq!(after.admin_info.last_invite_sent_at, sent);
    assert_eq!(after.admin_info.invite_expires_at, sent + Duration::days(7));
    assert!(!after.admin_info.invite_delivered);
    assert_eq!(after.admin_info.invited_at, t0(), "the first invitation time stays");
    assert_eq!(db.store.get_admin(a.user.id).await.unwrap(), Some(after));
    assert_eq!(
        db.store.list_audit(1).await.unwrap()[0].entry.action,
        AuditAction::ResendInvite
    );
}

async fn record_invite_sent_of_an_unknown_admin_is_not_found(db: Db) {
    let err = db
        .store
        .record_invite_sent(UserId::new(), t0(), t0(), true, audit(AuditAction::ResendInvite, "x"))
        .await
        .unwrap_err();

    assert_eq!(err, StoreError::NotFound);
    assert_eq!(audit_count(&db).await, 0);
}

async fn delete_admin_removes_both_records_and_advances_the_saga(db: Db) {
    let a = insert(&db, "gone@example.com").await;
    let mut removal = saga("gone@example.com");
    removal.kind = SagaKind::Remove;
    removal.user_id = a.user.id;
    let removal = db.store.begin(removal).await.unwrap();

    db.store
        .delete_admin(a.user.id, audit(AuditAction::DeleteAdmin, "gone"), Some(removal.id))
        .await
        .unwrap();

    assert_eq!(db.store.get_admin(a.user.id).await.unwrap(), None);
    assert_eq!(db.raw.count("SELECT COUNT(*) FROM users").await, 0);
    assert_eq!(db.raw.count("SELECT COUNT(*) FROM admin_info").await, 0);
    assert_eq!(
        db.store.get(removal.id).await.unwrap().unwrap().state,
        SagaState::IdentityPendingDelete
    );
    assert_eq!(
        db.store.list_audit(1).await.unwrap()[0].entry.action,
        AuditAction::DeleteAdmin
    );
}

async fn delete_admin_of_an_unknown_admin_is_not_found(db: Db) {
    let err = db
        .store
        .delete_admin(UserId::new(), audit(AuditAction::DeleteAdmin, "x"), None)
        .await
        .unwrap_err();

    assert_eq!(err, StoreError::NotFound);
    assert_eq!(audit_count(&db).await, 0);
}

async fn deleting_an_inviter_keeps_its_invitees(db: Db) {
    let inviter = insert(&db, "inviter@example.com").await;
    let mut invitee = new_admin("invitee@example.com");
    invitee.invited_by = Some(inviter.user.id);
    let invitee = db
        .store
        .insert_admin(invitee, audit(AuditAction::CreateAdmin, "invitee"), None)
        .await
        .unwrap();

    db.store
        .delete_admin(inviter.user.id, audit(AuditAction::DeleteAdmin, "inviter"), None)
        .await
        .unwrap();

    let kept = db
        .store
        .get_admin(invitee.user.id)
        .await
        .unwrap()
        .expect("invitee kept");
    assert_eq!(kept.admin_info.invited_by, None);
    assert_eq!(kept.user, invitee.user);
}

// ---------------------------------------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------------------------------------

async fn audit_events_are_listed_newest_first_up_to_the_limit(db: Db) {
    let a = insert(&db, "aud@example.com").await;
    let mut failure = audit(AuditAction::CreateAdmin, "x@example.com");
    failure.outcome = "failure: admin_exists".to_string();
    failure.actor = Actor::Admin(a.user.id);
    failure.request_id = None;
    db.store.append_audit(failure.clone()).await.unwrap();
    db.store
        .append_audit(audit(AuditAction::BootstrapAdmin, "y@example.com"))
        .await
        .unwrap();

    let all = db.store.list_audit(100).await.unwrap();
    let two = db.store.list_audit(2).await.unwrap();

    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all[0].entry.action, AuditAction::BootstrapAdmin);
    assert_eq!(all[1].entry, failure, "every field round-trips");
    assert_eq!(
        all[2].entry.action,
        AuditAction::CreateAdmin,
        "insert_admin wrote its event"
    );
    assert_eq!(two, all[..2].to_vec());
    assert!(db.store.list_audit(0).await.unwrap().is_empty());
}

async fn audit_log_rejects_update_and_delete(db: Db) {
    insert(&db, "imm@example.com").await;

    let update = db
        .raw
        .exec("UPDATE audit_log SET outcome = 'tampered'")
        .await
        .unwrap_err();
    let delete = db.raw.exec("DELETE FROM audit_log").await.unwrap_err();

    assert!(update.contains("append-only"), "{update}");
    assert!(delete.contains("append-only"), "{delete}");
    let events = db.store.list_audit(10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].entry.outcome, "success");
}

// ---------------------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------------------

async fn count_active_admins_counts_only_active_admins(db: Db) {
    let a = insert(&db, "a@example.com").await;
    insert(&db, "b@example.com").await;
    assert_eq!(db.store.count_active_admins().await.unwrap(), 0);

    db.store
        .mark_accepted(a.user.id, t0(), audit(AuditAction::FirstLoginCompleted, "a"))
        .await
        .unwrap();

    assert_eq!(db.store.count_active_admins().await.unwrap(), 1);
}

async fn list_admins_is_oldest_first(db: Db) {
    let emails = ["c@example.com", "a@example.com", "b@example.com"];
    for e in emails {
        insert(&db, e).await;
    }

    let listed: Vec<String> = db
        .store
        .list_admins()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.user.email)
        .collect();

    assert_eq!(listed, emails);
}

// ---------------------------------------------------------------------------------------------------------
// Idempotency keys
// ---------------------------------------------------------------------------------------------------------

async fn idempotency_key_is_claimed_completed_and_replayed(db: Db) {
    let first = db.store.idempotency_begin("admin-1", "key-1", "hash-a").await.unwrap();
    let in_progress = db.store.idempotency_begin("admin-1", "key-1", "hash-a").await.unwrap();
    let response = StoredResponse {
        status: 201,
        body: r#"{"user":{}}"#.to_string(),
    };
    db.store
        .idempotency_complete("admin-1", "key-1", response.clone())
        .await
        .unwrap();
    let replay = db.store.idempotency_begin("admin-1", "key-1", "hash-b").await.unwrap();

    assert_eq!(first, IdempotencyBegin::Started);
    assert_eq!(
        in_progress,
        IdempotencyBegin::Existing {
            request_hash: "hash-a".into(),
            response: None
        }
    );
    assert_eq!(
        replay,
        IdempotencyBegin::Existing {
            request_hash: "hash-a".into(),
            response: Some(response)
        },
        "the first request's hash is reported, so the caller can detect a different body"
    );
    let unknown = db.store.idempotency_complete(
        "admin-1",
        "nope",
        StoredResponse {
            status: 200,
            body: "{}".into(),
        },
    );
    assert_eq!(unknown.await.unwrap_err(), StoreError::NotFound);
}

async fn idempotency_abandon_releases_only_an_incomplete_key(db: Db) {
    db.store.idempotency_begin("s", "open", "h").await.unwrap();
    db.store.idempotency_begin("s", "done", "h").await.unwrap();
    let response = StoredResponse {
        status: 201,
        body: "{}".into(),
    };
    db.store
        .idempotency_complete("s", "done", response.clone())
        .await
        .unwrap();

    db.store.idempotency_abandon("s", "open").await.unwrap();
    db.store.idempotency_abandon("s", "done").await.unwrap();
    db.store.idempotency_abandon("s", "never-used").await.unwrap();

    assert_eq!(
        db.store.idempotency_begin("s", "open", "h2").await.unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        db.store.idempotency_begin("s", "done", "h2").await.unwrap(),
        IdempotencyBegin::Existing {
            request_hash: "h".into(),
            response: Some(response)
        }
    );
}

async fn idempotency_keys_are_scoped(db: Db) {
    assert_eq!(
        db.store.idempotency_begin("alice", "k", "h").await.unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        db.store.idempotency_begin("bob", "k", "h").await.unwrap(),
        IdempotencyBegin::Started
    );
}

// ---------------------------------------------------------------------------------------------------------
// Saga log
// ---------------------------------------------------------------------------------------------------------

async fn saga_begin_is_idempotent_by_id(db: Db) {
    let mut s = saga("Saga@Example.com");
    s.cognito_sub = Some("sub-1".into());
    s.actor = Actor::Admin(UserId::new());
    s.last_error = Some("earlier".into());
    s.attempts = 2;

    let first = db.store.begin(s.clone()).await.unwrap();
    let mut changed = s.clone();
    changed.state = SagaState::Stuck;
    let second = db.store.begin(changed).await.unwrap();

    assert_eq!(first, s, "every field round-trips");
    assert_eq!(second, s, "the stored row wins");
    assert_eq!(db.store.get(s.id).await.unwrap(), Some(s));
    assert_eq!(db.raw.count("SELECT COUNT(*) FROM sagas").await, 1);
}

async fn a_second_unfinished_saga_for_an_email_is_in_flight(db: Db) {
    db.store.begin(saga("busy@example.com")).await.unwrap();

    let err = db.store.begin(saga("BUSY@example.com")).await.unwrap_err();

    assert_eq!(err, StoreError::SagaInFlight);
    let mut removal = saga("busy@example.com");
    removal.kind = SagaKind::Remove;
    assert_eq!(db.store.begin(removal).await.unwrap_err(), StoreError::SagaInFlight);
}

async fn a_stuck_saga_still_holds_its_email(db: Db) {
    let s = db.store.begin(saga("stuck@example.com")).await.unwrap();
    db.store
        .update(
            s.id,
            SagaUpdate {
                state: Some(SagaState::Stuck),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let err = db.store.begin(saga("stuck@example.com")).await.unwrap_err();

    assert_eq!(err, StoreError::SagaInFlight);
}

async fn an_email_is_free_again_once_its_saga_is_terminal(db: Db) {
    for terminal in [SagaState::Completed, SagaState::Compensated, SagaState::Aborted] {
        let s = db.store.begin(saga("free@example.com")).await.unwrap();
        db.store
            .update(
                s.id,
                SagaUpdate {
                    state: Some(terminal),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    let next = db.store.begin(saga("free@example.com")).await;

    assert!(next.is_ok(), "{next:?}");
    assert_eq!(db.store.list_unfinished().await.unwrap().len(), 1);
}

async fn saga_update_applies_only_the_given_fields(db: Db) {
    let mut s = saga("upd@example.com");
    s.last_error = Some("old".into());
    let s = db.store.begin(s).await.unwrap();

    let a = db
        .store
        .update(
            s.id,
            SagaUpdate {
                state: Some(SagaState::IdentityCreated),
                cognito_username: Some("cognito-uuid".into()),
                cognito_sub: Some("sub-9".into()),
                identity_created_by_saga: Some(true),
                invite_delivered: Some(false),
                last_error: None,
                add_attempts: 2,
                expected_state: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let b = db
        .store
        .update(
            s.id,
            SagaUpdate {
                last_error: Some(None),
                add_attempts: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let c = db
        .store
        .update(
            s.id,
            SagaUpdate {
                last_error: Some(Some("boom".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    assert_eq!(a.state, SagaState::IdentityCreated);
    assert_eq!(a.cognito_username, "cognito-uuid");
    assert_eq!(a.cognito_sub.as_deref(), Some("sub-9"));
    assert!(a.identity_created_by_saga);
    assert!(!a.invite_delivered);
    assert_eq!(a.last_error.as_deref(), Some("old"), "None leaves last_error alone");
    assert_eq!(a.attempts, 2);
    assert!(a.updated_at > s.updated_at);
    assert_eq!(
        (a.email.as_str(), a.user_id, a.started_at),
        (s.email.as_str(), s.user_id, s.started_at)
    );
    assert_eq!(b.last_error, None, "Some(None) clears it");
    assert_eq!(b.attempts, 3);
    assert_eq!(b.state, SagaState::IdentityCreated);
    assert_eq!(c.last_error.as_deref(), Some("boom"));
    assert_eq!(db.store.get(s.id).await.unwrap(), Some(c));
}

async fn saga_update_of_an_unknown_id_is_not_found(db: Db) {
    let err = db
        .store
        .update(Uuid::new_v4(), SagaUpdate::default())
        .await
        .unwrap_err();

    assert_eq!(err, StoreError::NotFound);
}

async fn list_unfinished_excludes_terminal_sagas_oldest_first(db: Db) {
    let mut ids = Vec::new();
    for (i, state) in [
        SagaState::IdentityCreating,
        SagaState::Completed,
        SagaState::Stuck,
        SagaState::Started,
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = saga(&format!("u{i}@example.com"));
        // Begun in reverse time order: the list must sort by started_at, not insertion.
        s.started_at = t0() - Duration::minutes(i as i64);
        let s = db.store.begin(s).await.unwrap();
        db.store
            .update(
                s.id,
                SagaUpdate {
                    state: Some(state),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        ids.push(s.id);
    }

    let unfinished: Vec<Uuid> = db
        .store
        .list_unfinished()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();

    assert_eq!(unfinished, vec![ids[3], ids[2], ids[0]]);
}

// ---------------------------------------------------------------------------------------------------------
// Concurrency and precision
// ---------------------------------------------------------------------------------------------------------

/// `race@example.com` with the letters' case chosen by the bits of `i`.
fn case_variant(i: usize) -> String {
    "race@example.com"
        .chars()
        .enumerate()
        .map(|(n, c)| {
            if (i >> (n % 8)) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

async fn concurrent_inserts_of_one_email_create_exactly_one_admin(db: Db) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = db.store.clone();
        tasks.spawn(async move {
            // Each request normalises to the same address and asks Cognito for the same username.
            let new = new_admin(&case_variant(i));
            store
                .insert_admin(new, audit(AuditAction::CreateAdmin, "race@example.com"), None)
                .await
        });
    }

    let results = tasks.join_all().await;

    let ok = results.iter().filter(|r| r.is_ok()).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::EmailTaken)))
        .count();
    assert_eq!((ok, taken), (1, 19), "{results:?}");
    assert_eq!(db.store.list_admins().await.unwrap().len(), 1);
    assert_eq!(audit_count(&db).await, 1);
}

async fn concurrent_saga_begins_for_one_email_admit_exactly_one(db: Db) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = db.store.clone();
        tasks.spawn(async move { store.begin(saga(&case_variant(i))).await });
    }

    let results = tasks.join_all().await;

    let ok = results.iter().filter(|r| r.is_ok()).count();
    let in_flight = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::SagaInFlight)))
        .count();
    assert_eq!((ok, in_flight), (1, 19), "{results:?}");
}

async fn timestamps_are_truncated_to_microseconds(db: Db) {
    let precise = DateTime::parse_from_rfc3339("2024-05-01T12:00:00.123456789Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut new = new_admin("nanos@example.com");
    new.invited_at = precise;

    let stored = db
        .store
        .insert_admin(new, audit(AuditAction::CreateAdmin, "nanos"), None)
        .await
        .unwrap();

    assert_eq!(stored.admin_info.invited_at, truncate_to_micros(precise));
    assert_eq!(stored.admin_info.invited_at.timestamp_subsec_nanos(), 123_456_000);
}

async fn a_closed_pool_is_a_transient_unavailable_error(db: Db) {
    db.raw.close().await;

    let err = db.store.get_admin(UserId::new()).await.unwrap_err();

    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.is_transient());
}

// ---------------------------------------------------------------------------------------------------------
// Dead connections (PostgreSQL)
// ---------------------------------------------------------------------------------------------------------

/// How many pooled connections the dead-connection tests kill: more than the store's attempts per call,
/// so only replacing every connection of the same age (not just retrying) gets a call through.
const IDLE_CONNECTIONS: usize = 6;

async fn reads_and_writes_succeed_after_every_session_of_the_pool_is_terminated(db: Db) {
    let a = insert(&db, "before@example.com").await;
    db.raw.open_idle_connections(IDLE_CONNECTIONS).await;

    let terminated = db.raw.terminate_every_session().await;

    assert!(
        terminated >= IDLE_CONNECTIONS as i64,
        "every pooled session was terminated: {terminated}"
    );
    // Reads, then each kind of write, each on whatever connection the pool hands out next.
    assert_eq!(db.store.get_admin(a.user.id).await.unwrap().unwrap().user.id, a.user.id);
    assert_eq!(db.store.list_admins().await.unwrap().len(), 1);
    let b = insert(&db, "after@example.com").await;
    let accepted = db
        .store
        .mark_accepted(b.user.id, t0(), audit(AuditAction::FirstLoginCompleted, "after"))
        .await
        .unwrap();
    assert_eq!(accepted.user.status, UserStatus::Active);
    let s = db.store.begin(saga("saga-after@example.com")).await.unwrap();
    let update = SagaUpdate {
        state: Some(SagaState::IdentityCreating),
        ..Default::default()
    };
    assert_eq!(
        db.store.update(s.id, update).await.unwrap().state,
        SagaState::IdentityCreating
    );
    db.store
        .append_audit(audit(AuditAction::ResendInvite, "after"))
        .await
        .unwrap();
    assert_eq!(db.store.list_admins().await.unwrap().len(), 2);
}

async fn a_write_first_after_every_session_is_terminated_succeeds(db: Db) {
    let a = insert(&db, "write-first@example.com").await;
    db.raw.open_idle_connections(IDLE_CONNECTIONS).await;

    let terminated = db.raw.terminate_every_session().await;
    let accepted = db
        .store
        .mark_accepted(a.user.id, t0(), audit(AuditAction::FirstLoginCompleted, "write-first"))
        .await;

    assert!(terminated >= IDLE_CONNECTIONS as i64, "terminated {terminated}");
    assert_eq!(accepted.unwrap().user.status, UserStatus::Active);
    assert_eq!(
        db.raw
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'first_login_completed'")
            .await,
        1,
        "written once"
    );
}

async fn concurrent_calls_succeed_while_sessions_are_terminated_repeatedly(db: Db) {
    let a = insert(&db, "busy@example.com").await;
    let killer = {
        let raw = db.raw.clone();
        tokio::spawn(async move {
            let mut terminated = 0;
            for _ in 0..5 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                terminated += raw.terminate_every_session().await;
            }
            terminated
        })
    };
    let mut calls = 0;
    let started = std::time::Instant::now();
    while !killer.is_finished() {
        let mut reads = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let store = db.store.clone();
            reads.spawn(async move { store.get_admin(a.user.id).await });
        }
        while let Some(read) = reads.join_next().await {
            assert_eq!(read.unwrap().unwrap().unwrap().user.id, a.user.id);
            calls += 1;
        }
    }
    let terminated = killer.await.unwrap();

    assert!(terminated > 0, "sessions were terminated: {terminated}");
    assert!(
        calls > 0 && started.elapsed() < std::time::Duration::from_secs(30),
        "{calls} calls"
    );
}

async fn saga_update_with_a_stale_expected_state_is_refused(db: Db) {
    let s = db.store.begin(saga("cas@example.com")).await.unwrap();
    let claim = SagaUpdate {
        state: Some(SagaState::Compensating),
        expected_state: Some(SagaState::IdentityCreated),
        ..Default::default()
    };
    let err = db.store.update(s.id, claim.clone()).await.unwrap_err();
    assert_eq!(err, StoreError::SagaStateChanged("started".into()));
    assert_eq!(db.store.get(s.id).await.unwrap().unwrap().state, SagaState::Started);

    let ok = SagaUpdate {
        expected_state: Some(SagaState::Started),
        ..claim
    };
    assert_eq!(db.store.update(s.id, ok).await.unwrap().state, SagaState::Compensating);
}

async fn a_finished_saga_never_changes_state(db: Db) {
    let s = db.store.begin(saga("done@example.com")).await.unwrap();
    let done = SagaUpdate {
        state: Some(SagaState::Completed),
        ..Default::default()
    };
    db.store.update(s.id, done.clone()).await.unwrap();
    let late = SagaUpdate {
        state: Some(SagaState::Compensated),
        ..Default::default()
    };
    let err = db.store.update(s.id, late).await.unwrap_err();
    assert_eq!(err, StoreError::SagaStateChanged("completed".into()));
    // Re-applying the same terminal state, or touching other fields, is still allowed.
    db.store.update(s.id, done).await.unwrap();
    assert_eq!(db.store.get(s.id).await.unwrap().unwrap().state, SagaState::Completed);
}

async fn activate(db: &Db, email: &str) -> AdminRecord {
    let a = insert(db, email).await;
    db.store
        .mark_accepted(a.user.id, t0(), audit(AuditAction::FirstLoginCompleted, email))
        .await
        .unwrap()
}

/// An active admin with `role`.
async fn with_role(db: &Db, email: &str, role: Role) -> AdminRecord {
    let a = activate(db, email).await;
    db.store
        .set_admin_role(a.user.id, role, audit(AuditAction::ChangeRole, email), None)
        .await
        .unwrap()
}

async fn a_role_is_stored_changed_with_its_event_and_the_last_active_owner_is_kept(db: Db) {
    let mut viewer = new_admin("viewer@example.com");
    viewer.role = Role::Viewer;
    let viewer = db
        .store
        .insert_admin(viewer, audit(AuditAction::CreateAdmin, "viewer@example.com"), None)
        .await
        .unwrap();
    assert_eq!(viewer.admin_info.role, Role::Viewer);
    let owner = with_role(&db, "owner@example.com", Role::Owner).await;
    let other = activate(&db, "other@example.com").await;
    assert_eq!(other.admin_info.role, Role::Admin);
    assert_eq!(owner.admin_info.role, Role::Owner);
    let events = |db: &Db| {
        let raw = db.raw.clone();
        async move {
            raw.count("SELECT COUNT(*) FROM events WHERE type = 'admin.role_changed'")
                .await
        }
    };
    assert_eq!(events(&db).await, 1);
    // The same role again: unchanged, no event.
    db.store
        .set_admin_role(
            owner.user.id,
            Role::Owner,
            audit(AuditAction::ChangeRole, "owner"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(events(&db).await, 1);
    // The last active owner: not demoted, disabled or removed; nothing written.
    let before = audit_count(&db).await;
    let demote = db
        .store
        .set_admin_role(
            owner.user.id,
            Role::Admin,
            audit(AuditAction::ChangeRole, "owner"),
            None,
        )
        .await;
    assert_eq!(demote.unwrap_err(), StoreError::LastOwner);
    let disable = db
        .store
        .set_admin_disabled(
            owner.user.id,
            Some(t0()),
            audit(AuditAction::DisableAdmin, "owner"),
            None,
        )
        .await;
    assert_eq!(disable.unwrap_err(), StoreError::LastOwner);
    let delete = db
        .store
        .delete_admin(owner.user.id, audit(AuditAction::DeleteAdmin, "owner"), None)
        .await;
    assert_eq!(delete.unwrap_err(), StoreError::LastOwner);
    assert_eq!(audit_count(&db).await, before);
    let stored = db.store.get_admin(owner.user.id).await.unwrap().unwrap();
    assert_eq!(stored.admin_info.role, Role::Owner);
    assert!(!stored.user.is_disabled());
    // With a second active owner the first may go.
    db.store
        .set_admin_role(
            other.user.id,
            Role::Owner,
            audit(AuditAction::ChangeRole, "other"),
            None,
        )
        .await
        .unwrap();
    let demoted = db
        .store
        .set_admin_role(
            owner.user.id,
            Role::Viewer,
            audit(AuditAction::ChangeRole, "owner"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(demoted.admin_info.role, Role::Viewer);
    assert_eq!(events(&db).await, 3);
    let data = db
        .raw
        .text("SELECT data FROM events WHERE type = 'admin.role_changed' ORDER BY id DESC LIMIT 1")
        .await;
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(data["role"], "viewer");
    assert_eq!(data["previous_role"], "owner");
    // An invited owner is no active owner: demoting them is not guarded.
    let mut invited = new_admin("invited-owner@example.com");
    invited.role = Role::Owner;
    let invited = db
        .store
        .insert_admin(invited, audit(AuditAction::CreateAdmin, "invited-owner"), None)
        .await
        .unwrap();
    db.store
        .set_admin_role(
            invited.user.id,
            Role::Admin,
            audit(AuditAction::ChangeRole, "invited"),
            None,
        )
        .await
        .unwrap();
    let missing = db
        .store
        .set_admin_role(UserId::new(), Role::Admin, audit(AuditAction::ChangeRole, "x"), None)
        .await;
    assert_eq!(missing.unwrap_err(), StoreError::NotFound);
}

/// The last-owner guard under simultaneous writes: two active owners (and an admin, so the last-admin
/// guard never answers first) each take the other out of the owners at the same instant: by a demotion,
/// a disable or a removal. 20 rounds: every round exactly one active owner remains, and the loser got
/// `LastOwner` with nothing written.
async fn two_owners_demoting_disabling_and_removing_each_other_at_once_leave_one_owner(db: Db) {
    let _admin = activate(&db, "keeper@example.com").await;
    for round in 0..20 {
        let a = with_role(&db, &format!("a{round}@example.com"), Role::Owner).await;
        let b = with_role(&db, &format!("b{round}@example.com"), Role::Owner).await;
        let store = db.store.clone();
        let take_out = move |id: UserId, how: usize| {
            let store = store.clone();
            async move {
                let entry = audit(AuditAction::ChangeRole, "race");
                match how {
                    0 => store.set_admin_role(id, Role::Admin, entry, None).await.map(|_| ()),
                    1 => store.set_admin_disabled(id, Some(t0()), entry, None).await.map(|_| ()),
                    _ => store.delete_admin(id, entry, None).await,
                }
            }
        };
        let (ra, rb) = tokio::join!(
            tokio::spawn(take_out(b.user.id, round % 3)),
            tokio::spawn(take_out(a.user.id, (round + 1) % 3)),
        );
        let results = [ra.unwrap(), rb.unwrap()];
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::LastOwner)))
            .count();
        assert_eq!(refused, 1, "round {round}: {results:?}");
        assert!(results.iter().any(Result::is_ok), "round {round}: {results:?}");
        let owners = db
            .raw
            .count(
                "SELECT COUNT(*) FROM users u JOIN admin_info a ON a.user_id = u.id \
                 WHERE a.role = 'owner' AND u.status = 'active' AND u.disabled_at IS NULL",
            )
            .await;
        assert_eq!(owners, 1, "round {round}");
        // The survivor steps down for the next round's pair.
        db.raw
            .exec("UPDATE admin_info SET role = 'admin' WHERE role = 'owner'")
            .await
            .unwrap();
    }
}

async fn the_last_active_admin_cannot_be_deleted(db: Db) {
    let only = activate(&db, "only@example.com").await;
    let invited = insert(&db, "invited@example.com").await;
    let before = audit_count(&db).await;
    let err = db
        .store
        .delete_admin(only.user.id, audit(AuditAction::DeleteAdmin, "only"), None)
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::LastAdmin);
    assert!(db.store.get_admin(only.user.id).await.unwrap().is_some());
    assert_eq!(audit_count(&db).await, before, "nothing written");
    // An invited (not active) admin can always be removed.
    db.store
        .delete_admin(invited.user.id, audit(AuditAction::DeleteAdmin, "invited"), None)
        .await
        .unwrap();
}

async fn concurrent_deletes_never_remove_the_last_active_admin(db: Db) {
    let a = activate(&db, "a@example.com").await;
    let b = activate(&db, "b@example.com").await;
    let (ra, rb) = tokio::join!(
        db.store
            .delete_admin(a.user.id, audit(AuditAction::DeleteAdmin, "a"), None),
        db.store
            .delete_admin(b.user.id, audit(AuditAction::DeleteAdmin, "b"), None),
    );
    let refused = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Err(StoreError::LastAdmin)))
        .count();
    assert_eq!((ra.is_ok() as u8 + rb.is_ok() as u8, refused), (1, 1), "{ra:?} {rb:?}");
    assert_eq!(db.store.count_active_admins().await.unwrap(), 1);
}

async fn an_abandoned_idempotency_claim_is_taken_over_after_its_ttl(db: Db) {
    assert_eq!(
        db.store.idempotency_begin("admin-1", "k-stale", "h1").await.unwrap(),
        IdempotencyBegin::Started
    );
    // Fresh claim: still in progress, for the same body; another body is still "Existing" (→ 422 upstream).
    assert!(matches!(
        db.store.idempotency_begin("admin-1", "k-stale", "h1").await.unwrap(),
        IdempotencyBegin::Existing { response: None, .. }
    ));
    // Age the claim past its TTL, as if its process had died 11 minutes ago.
    let old = admin_provisioner_store::truncate_to_micros(Utc::now() - Duration::minutes(11));
    db.raw.age_idempotency_claim("admin-1", "k-stale", old).await;
    assert!(matches!(
        db.store.idempotency_begin("admin-1", "k-stale", "h2").await.unwrap(),
        IdempotencyBegin::Existing { .. }
    ));
    assert_eq!(
        db.store.idempotency_begin("admin-1", "k-stale", "h1").await.unwrap(),
        IdempotencyBegin::Started
    );
}

async fn admin_pages_walk_every_admin_once_in_order_with_filters(db: Db) {
    use admin_provisioner_core::pages::StoredAdminFilter;
    let mut inserted = Vec::new();
    for i in 0..7 {
        inserted.push(insert(&db, &format!("page_{i}@example.com")).await.user.id);
    }
    insert(&db, "pageXother@example.com").await;
    let all = StoredAdminFilter {
        status: None,
        email_prefix: None,
        now: t0(),
    };
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = db.store.list_admins_page(&all, after, 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some((last.user.created_at, last.user.id));
        walked.extend(page.iter().map(|r| (r.user.created_at, r.user.id)));
    }
    assert_eq!(walked.len(), 8, "every admin once");
    assert!(walked.windows(2).all(|w| w[0] < w[1]), "oldest first, strictly");

    let prefixed = StoredAdminFilter {
        email_prefix: Some("page_".into()),
        ..all.clone()
    };
    let found: Vec<_> = db
        .store
        .list_admins_page(&prefixed, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.user.id)
        .collect();
    assert_eq!(found, inserted, "`_` is literal: pageXother does not match");

    let status = |s| StoredAdminFilter {
        status: Some(s),
        ..all.clone()
    };
    use admin_provisioner_core::domain::InviteStatus;
    assert_eq!(
        db.store
            .list_admins_page(&status(InviteStatus::Invited), None, 100)
            .await
            .unwrap()
            .len(),
        8
    );
    assert!(db
        .store
        .list_admins_page(&status(InviteStatus::Active), None, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(db
        .store
        .list_admins_page(&status(InviteStatus::Pending), None, 100)
        .await
        .unwrap()
        .is_empty());
    let later = StoredAdminFilter {
        status: Some(InviteStatus::Expired),
        now: t0() + Duration::days(8),
        ..all.clone()
    };
    assert_eq!(db.store.list_admins_page(&later, None, 100).await.unwrap().len(), 8);
    assert_eq!(db.store.count_admins_by_status(t0()).await.unwrap(), (0, 8, 0));
    assert_eq!(
        db.store.count_admins_by_status(t0() + Duration::days(8)).await.unwrap(),
        (0, 0, 8)
    );
}

async fn unfinished_provision_pages_skip_sagas_whose_admin_is_stored(db: Db) {
    use admin_provisioner_core::pages::UnfinishedFilter;
    let mut running = Vec::new();
    for i in 0..4 {
        running.push(db.store.begin(saga(&format!("run{i}@example.com"))).await.unwrap().id);
    }
    // A saga whose admin is already stored is not an unfinished line of the list.
    let stored = insert(&db, "stored@example.com").await;
    let mut s = saga("stored@example.com");
    s.user_id = stored.user.id;
    db.store.begin(s).await.unwrap();
    let any = UnfinishedFilter {
        stuck: None,
        email_prefix: None,
    };
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = db.store.list_unfinished_provisions_page(&any, after, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.started_at, last.id));
        walked.extend(page.iter().map(|s| s.id));
    }
    let mut expected = running.clone();
    expected.sort_by_key(|id| walked.iter().position(|w| w == id));
    assert_eq!(walked.len(), 4, "{walked:?}");
    assert_eq!(walked, expected);
    let stuck_only = UnfinishedFilter {
        stuck: Some(true),
        email_prefix: None,
    };
    assert!(db
        .store
        .list_unfinished_provisions_page(&stuck_only, None, 10)
        .await
        .unwrap()
        .is_empty());
    let prefixed = UnfinishedFilter {
        stuck: Some(false),
        email_prefix: Some("run2".into()),
    };
    let found = db
        .store
        .list_unfinished_provisions_page(&prefixed, None, 10)
        .await
        .unwrap();
    assert_eq!(found.iter().map(|s| s.id).collect::<Vec<_>>(), vec![running[2]]);
}

async fn audit_pages_carry_the_actor_email_from_one_join(db: Db) {
    let actor = insert(&db, "Actor@Example.com").await;
    let mut by_admin = audit(AuditAction::ResendInvite, "x@example.com");
    by_admin.actor = Actor::Admin(actor.user.id);
    db.store.append_audit(by_admin).await.unwrap();
    let mut by_gone = audit(AuditAction::ResendInvite, "y@example.com");
    by_gone.actor = Actor::Admin(UserId::new());
    db.store.append_audit(by_gone).await.unwrap();

    let first = db.store.list_audit_page(None, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].1, None, "an actor that no longer exists has no e-mail");
    assert_eq!(first[1].1.as_deref(), Some("Actor@Example.com"));
    let rest = db.store.list_audit_page(Some(first[1].0.id), 10).await.unwrap();
    assert_eq!(rest.len(), 1, "the operator's create_admin event");
    assert_eq!(rest[0].1, None);
    assert!(rest[0].0.id < first[1].0.id);
}

/// SCIM attributes: the lower-cased `userName` is unique among admins by the database's index
/// (`UserNameTaken`, nothing written), and `find_admins_by_scim_key` finds admins by e-mail or userName
/// and by externalId.
async fn scim_user_names_are_unique_and_found_by_index_with_external_ids(db: Db) {
    use admin_provisioner_core::store::ScimKey;
    let ann = insert(&db, "ann@example.com").await;
    let bob = insert(&db, "bob@example.com").await;
    let set = db
        .store
        .set_scim_attributes(
            ann.user.id,
            Some("00uANN".into()),
            Some("ann.l@corp.example".into()),
            Some("{}".into()),
        )
        .await
        .unwrap();
    assert_eq!(set.user.external_id.as_deref(), Some("00uANN"));
    let err = db
        .store
        .set_scim_attributes(
            bob.user.id,
            Some("00uBOB".into()),
            Some("ann.l@corp.example".into()),
            Some("{}".into()),
        )
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::UserNameTaken);
    let bob_now = db.store.get_admin(bob.user.id).await.unwrap().unwrap();
    assert_eq!(bob_now.user.external_id, None, "the refused write left nothing behind");

    let ids = |rows: Vec<AdminRecord>| rows.into_iter().map(|r| r.user.id).collect::<Vec<_>>();
    let by = |k: ScimKey| {
        let store = db.store.clone();
        async move { store.find_admins_by_scim_key(&k).await.unwrap() }
    };
    assert_eq!(
        ids(by(ScimKey::UserName("ann.l@corp.example".into())).await),
        vec![ann.user.id]
    );
    assert_eq!(
        ids(by(ScimKey::UserName("ann@example.com".into())).await),
        vec![ann.user.id],
        "by e-mail too"
    );
    assert_eq!(
        ids(by(ScimKey::UserName("bob@example.com".into())).await),
        vec![bob.user.id]
    );
    assert_eq!(ids(by(ScimKey::ExternalId("00uANN".into())).await), vec![ann.user.id]);
    assert!(
        by(ScimKey::ExternalId("00uann".into())).await.is_empty(),
        "externalId is case-exact"
    );
    assert!(by(ScimKey::UserName("nobody@example.com".into())).await.is_empty());
    // Clearing frees the userName for another admin.
    db.store
        .set_scim_attributes(ann.user.id, None, None, None)
        .await
        .unwrap();
    db.store
        .set_scim_attributes(bob.user.id, None, Some("ann.l@corp.example".into()), None)
        .await
        .unwrap();
    assert_eq!(
        ids(by(ScimKey::UserName("ann.l@corp.example".into())).await),
        vec![bob.user.id]
    );
}

// ---------------------------------------------------------------------------------------------------------
// Session epoch (issue 18)
// ---------------------------------------------------------------------------------------------------------

async fn end_sessions_sets_the_epoch_and_never_moves_it_back(db: Db) {
    let a = insert(&db, "epoch@example.com").await;
    assert_eq!(a.user.sessions_valid_after, None);
    let later = t0() + Duration::hours(1);

    let ended = db.store.end_sessions(a.user.id, later).await.unwrap();
    let earlier = db.store.end_sessions(a.user.id, t0()).await.unwrap();

    assert_eq!(ended.user.sessions_valid_after, Some(later));
    assert_eq!(
        earlier.user.sessions_valid_after,
        Some(later),
        "the epoch never moves back"
    );
    let stored = db.store.get_admin(a.user.id).await.unwrap().unwrap();
    assert_eq!(stored.user.sessions_valid_after, Some(later));
    assert_eq!(
        db.store.end_sessions(UserId::new(), t0()).await.unwrap_err(),
        StoreError::NotFound
    );
}

async fn disabling_ends_sessions_in_the_same_write_and_enabling_keeps_the_epoch(db: Db) {
    let a = insert(&db, "dis@example.com").await;
    let disabled_at = t0() + Duration::minutes(5);

    let disabled = db
        .store
        .set_admin_disabled(
            a.user.id,
            Some(disabled_at),
            audit(AuditAction::DisableAdmin, "dis"),
            None,
        )
        .await
        .unwrap();
    let enabled = db
        .store
        .set_admin_disabled(a.user.id, None, audit(AuditAction::EnableAdmin, "dis"), None)
        .await
        .unwrap();

    assert_eq!(disabled.user.disabled_at, Some(disabled_at));
    assert_eq!(disabled.user.sessions_valid_after, Some(disabled_at));
    assert_eq!(enabled.user.disabled_at, None);
    assert_eq!(
        enabled.user.sessions_valid_after,
        Some(disabled_at),
        "a token issued before the disable stays refused after enable"
    );
    assert_eq!(db.store.get_admin(a.user.id).await.unwrap(), Some(enabled));
}

async fn a_refused_disable_leaves_the_session_epoch_alone(db: Db) {
    // The only active admin: the disable is refused as a whole (last-admin guard), epoch included.
    let a = insert(&db, "only@example.com").await;
    db.store
        .mark_accepted(a.user.id, t0(), audit(AuditAction::FirstLoginCompleted, "only"))
        .await
        .unwrap();

    let err = db
        .store
        .set_admin_disabled(a.user.id, Some(t0()), audit(AuditAction::DisableAdmin, "only"), None)
        .await
        .unwrap_err();

    assert_eq!(err, StoreError::LastAdmin);
    let stored = db.store.get_admin(a.user.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.user.disabled_at, stored.user.sessions_valid_after),
        (None, None)
    );
}
