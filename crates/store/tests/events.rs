//! The outbox and the webhook queue, run against SQLite and PostgreSQL (a fresh database per test;
//! PostgreSQL through `TEST_POSTGRES_URL`, failing, never skipping, when it cannot be reached).

use admin_provisioner_core::domain::{Actor, UserId};
use admin_provisioner_core::store::Store;
use admin_provisioner_core::store::{
    AuditAction, AuditEntry, NewAdmin, SagaKind, SagaRecord, SagaState, SagaUpdate, StoreError,
};
use admin_provisioner_store::events::{AttemptOutcome, Event};
use admin_provisioner_store::{truncate_to_micros, EventLog, PostgresStore, SqliteStore};
use chrono::{Duration, Utc};
use sqlx::{Connection, Executor, PgConnection};
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use uuid::Uuid;

struct Db {
    store: Arc<dyn Store>,
    events: EventLog,
}

impl Db {
    fn is_postgres(&self) -> bool {
        matches!(self.events, EventLog::Postgres(..))
    }

    async fn exec(&self, sql: &str) {
        match &self.events {
            EventLog::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
            EventLog::Postgres(pool, _) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        }
        .unwrap();
    }

    async fn all_events(&self) -> Vec<Event> {
        self.events.list_after(0, 1000).await.unwrap()
    }
}

async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}", dir.path().join("e.db").display()))
        .await
        .unwrap();
    let events = store.event_log();
    test(Db {
        store: Arc::new(store),
        events,
    })
    .await;
}

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .unwrap_or_else(|e| panic!("these tests need PostgreSQL at TEST_POSTGRES_URL: {e}"));
    let name = format!("ap_events_test_{}", Uuid::new_v4().simple());
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let base = admin_url();
    let (head, _) = base.rsplit_once('/').unwrap();
    let store = PostgresStore::connect(&format!("{head}/{name}")).await.unwrap();
    let events = store.event_log();
    let outcome = tokio::spawn(test(Db {
        store: Arc::new(store.clone()),
        events,
    }))
    .await;
    store.pool().close().await;
    let _ = admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::run_sqlite(super::$test).await; }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::run_postgres(super::$test).await; }
        )* }
    };
}

suite!(
    each_lifecycle_change_writes_exactly_one_event_in_order,
    a_change_refused_inside_its_transaction_writes_no_event,
    an_event_that_cannot_be_written_rolls_the_change_back,
    a_commit_that_fails_after_the_event_was_written_leaves_neither,
    list_after_pages_by_id,
    claims_lease_only_the_oldest_pending_event_of_each_admin,
    an_expired_lease_is_claimed_again_and_the_late_finisher_loses,
    concurrent_claimers_make_each_attempt_once,
    append_writes_a_queued_event_of_any_type,
);

fn new_admin(email: &str) -> NewAdmin {
    let now = truncate_to_micros(Utc::now());
    NewAdmin {
        id: UserId::new(),
        email: email.to_string(),
        email_normalized: email.to_lowercase(),
        cognito_username: email.to_lowercase(),
        cognito_sub: Uuid::new_v4().to_string(),
        invited_by: None,
        invited_at: now,
        invite_expires_at: now + Duration::days(7),
        invite_delivered: true,
        role: Default::default(),
    }
}

fn audit(action: AuditAction, target: &str) -> AuditEntry {
    AuditEntry {
        actor: Actor::Operator,
        action,
        target: target.to_string(),
        outcome: "success".into(),
        request_id: Some("req-7".into()),
        at: truncate_to_micros(Utc::now()),
    }
}

fn saga(email: &str) -> SagaRecord {
    let now = truncate_to_micros(Utc::now());
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
        request_id: Some("req-9".into()),
        started_at: now,
        updated_at: now,
        owner: None,
        lease_expires_at: None,
        scim: None,
        role: None,
    }
}

fn to(state: SagaState) -> SagaUpdate {
    SagaUpdate {
        state: Some(state),
        ..SagaUpdate::default()
    }
}

fn outcome(delivered: bool) -> AttemptOutcome {
    AttemptOutcome {
        delivered,
        status: Some(if delivered { 204 } else { 503 }),
        error: (!delivered).then(|| "receiver answered 503".to_string()),
        url: "http://127.0.0.1/hook".into(),
        started_at: Utc::now(),
        duration: std::time::Duration::from_millis(3),
        retry_at: Utc::now() - Duration::seconds(1),
    }
}

async fn each_lifecycle_change_writes_exactly_one_event_in_order(db: Db) {
    // Arrange: two admins (the second keeps the first from being the last active one).
    let first = db
        .store
        .insert_admin(
            new_admin("first@example.com"),
            audit(AuditAction::BootstrapAdmin, "first@example.com"),
            None,
        )
        .await
        .unwrap();
    let s = db.store.begin(saga("second@example.com")).await.unwrap();
    let mut second = new_admin("Second@Example.com");
    second.id = s.user_id;
    second.invited_by = Some(first.user.id);

    // Act: every kind of change, and the repeats that change nothing.
    let second = db
        .store
        .insert_admin(
            second.clone(),
            audit(AuditAction::CreateAdmin, "second@example.com"),
            Some(s.id),
        )
        .await
        .unwrap();
    let mut again = NewAdmin {
        id: second.user.id,
        cognito_username: second.user.cognito_username.clone(),
        ..new_admin("second@example.com")
    };
    again.cognito_sub = second.user.cognito_sub.clone();
    db.store
        .insert_admin(again, audit(AuditAction::CreateAdmin, "second@example.com"), Some(s.id))
        .await
        .unwrap();
    db.store
        .record_invite_sent(
            second.user.id,
            Utc::now(),
            Utc::now() + Duration::days(7),
            false,
            audit(AuditAction::ResendInvite, "second@example.com"),
        )
        .await
        .unwrap();
    for _ in 0..2 {
        db.store
            .mark_accepted(
                first.user.id,
                Utc::now(),
                audit(AuditAction::FirstLoginCompleted, "first@example.com"),
            )
            .await
            .unwrap();
    }
    let failed = db.store.begin(saga("third@example.com")).await.unwrap();
    db.store
        .update(failed.id, to(SagaState::IdentityCreating))
        .await
        .unwrap();
    db.store.update(failed.id, to(SagaState::Stuck)).await.unwrap();
    db.store.update(failed.id, to(SagaState::Compensated)).await.unwrap();
    let removal = db.store.begin(SagaRecord {
        kind: SagaKind::Remove,
        user_id: second.user.id,
        ..saga("second@example.com")
    });
    let removal = removal.await.unwrap();
    db.store
        .delete_admin(
            second.user.id,
            audit(AuditAction::DeleteAdmin, "second@example.com"),
            Some(removal.id),
        )
        .await
        .unwrap();
    db.store.update(removal.id, to(SagaState::Aborted)).await.unwrap();

    // Assert: one event per change, ids increasing, nothing for the repeats.
    let events = db.all_events().await;
    let kinds: Vec<(&str, Uuid)> = events.iter().map(|e| (e.kind.as_str(), e.admin_id)).collect();
    assert_eq!(
        kinds,
        vec![
            ("admin.invited", first.user.id.0),
            ("admin.invited", second.user.id.0),
            ("admin.invite_resent", second.user.id.0),
            ("admin.activated", first.user.id.0),
            ("admin.provisioning_failed", failed.user_id.0),
            ("admin.removed", second.user.id.0),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    // The payload carries the records and who acted.
    let invited = &events[1].data;
    assert_eq!(invited["email"], "Second@Example.com");
    assert_eq!(invited["status"], "invited");
    assert_eq!(invited["actor"], "operator");
    assert_eq!(invited["user"]["cognito_sub"], second.user.cognito_sub.as_str());
    assert_eq!(invited["admin_info"]["invited_by"], first.user.id.to_string());
    assert_eq!(events[2].data["admin_info"]["invites_sent"], 2);
    assert_eq!(events[2].data["admin_info"]["invite_delivered"], false);
    assert_eq!(events[3].data["status"], "active");
    assert_eq!(events[4].data["saga_id"], failed.id.to_string());
    assert_eq!(events[4].data["state"], "stuck");
    assert_eq!(events[4].email, "third@example.com");
    assert_eq!(
        events[5].data["status"], "invited",
        "removed carries the records as they were"
    );
    // Every event is queued for webhook delivery.
    let stats = db.events.delivery_stats().await.unwrap();
    assert_eq!(stats.pending, 6);
}

async fn a_change_refused_inside_its_transaction_writes_no_event(db: Db) {
    // A saga undone by recovery refuses the slow saga's records: the whole transaction rolls back.
    let s = db.store.begin(saga("late@example.com")).await.unwrap();
    db.store.update(s.id, to(SagaState::Compensating)).await.unwrap();
    let mut late = new_admin("late@example.com");
    late.id = s.user_id;
    let err = db
        .store
        .insert_admin(late, audit(AuditAction::CreateAdmin, "late@example.com"), Some(s.id))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    // The last active admin is not removed; an unknown admin's resend is NotFound.
    let only = db
        .store
        .insert_admin(
            new_admin("only@example.com"),
            audit(AuditAction::BootstrapAdmin, "only@example.com"),
            None,
        )
        .await
        .unwrap();
    db.store
        .mark_accepted(
            only.user.id,
            Utc::now(),
            audit(AuditAction::FirstLoginCompleted, "only@example.com"),
        )
        .await
        .unwrap();
    let before = db.all_events().await.len();
    assert_eq!(
        db.store
            .delete_admin(only.user.id, audit(AuditAction::DeleteAdmin, "only@example.com"), None)
            .await,
        Err(StoreError::LastAdmin)
    );
    assert_eq!(
        db.store
            .record_invite_sent(
                UserId::new(),
                Utc::now(),
                Utc::now(),
                true,
                audit(AuditAction::ResendInvite, "x")
            )
            .await
            .unwrap_err(),
        StoreError::NotFound
    );

    let kinds: Vec<String> = db.all_events().await.into_iter().map(|e| e.kind).collect();
    assert_eq!(before, 2);
    assert_eq!(kinds, vec!["admin.invited", "admin.activated"]);
    assert!(db
        .store
        .find_admin_by_email("late@example.com")
        .await
        .unwrap()
        .is_none());
}

async fn an_event_that_cannot_be_written_rolls_the_change_back(db: Db) {
    // Arrange: two active admins, and an events table that refuses `admin.removed` (the fault).
    let a = db
        .store
        .insert_admin(
            new_admin("a@example.com"),
            audit(AuditAction::BootstrapAdmin, "a@example.com"),
            None,
        )
        .await
        .unwrap();
    let b = db
        .store
        .insert_admin(
            new_admin("b@example.com"),
            audit(AuditAction::CreateAdmin, "b@example.com"),
            None,
        )
        .await
        .unwrap();
    if db.is_postgres() {
        db.exec(
            "CREATE FUNCTION refuse_removed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.type = 'admin.removed' THEN RAISE EXCEPTION 'injected: events refused'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_removed BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_removed();",
        )
        .await;
    } else {
        db.exec(
            "CREATE TRIGGER refuse_removed BEFORE INSERT ON events WHEN NEW.type = 'admin.removed' \
             BEGIN SELECT RAISE(ABORT, 'injected: events refused'); END;",
        )
        .await;
    }

    // Act
    let err = db
        .store
        .delete_admin(b.user.id, audit(AuditAction::DeleteAdmin, "b@example.com"), None)
        .await
        .unwrap_err();

    // Assert: the fault fired, and the removal did not happen.
    assert!(err.to_string().contains("injected: events refused"), "{err}");
    assert!(db.store.get_admin(b.user.id).await.unwrap().is_some());
    assert!(db.store.get_admin(a.user.id).await.unwrap().is_some());
    let audits = db.store.list_audit(10).await.unwrap();
    assert!(audits.iter().all(|e| e.entry.action != AuditAction::DeleteAdmin));
    assert_eq!(db.all_events().await.len(), 2);
}

async fn a_commit_that_fails_after_the_event_was_written_leaves_neither(db: Db) {
    // A fault at the very end of the transaction, after the event row was inserted: PostgreSQL with a
    // deferred constraint trigger (fires at COMMIT), SQLite with a trigger on the event row itself
    // that fails only after the row and its delivery were inserted (AFTER INSERT).
    if db.is_postgres() {
        db.exec(
            "CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             RAISE EXCEPTION 'injected: commit refused'; END $$; \
             CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON events DEFERRABLE INITIALLY DEFERRED \
             FOR EACH ROW EXECUTE FUNCTION fail_at_commit();",
        )
        .await;
    } else {
        db.exec(
            "CREATE TRIGGER fail_at_commit AFTER INSERT ON events \
             BEGIN SELECT RAISE(ABORT, 'injected: commit refused'); END;",
        )
        .await;
    }

    let err = db
        .store
        .insert_admin(
            new_admin("x@example.com"),
            audit(AuditAction::BootstrapAdmin, "x@example.com"),
            None,
        )
        .await
        .unwrap_err();

    assert!(err.to_string().contains("injected: commit refused"), "{err}");
    assert!(db.store.find_admin_by_email("x@example.com").await.unwrap().is_none());
    assert!(db.store.list_audit(10).await.unwrap().is_empty());
    assert!(db.all_events().await.is_empty());
    assert_eq!(db.events.delivery_stats().await.unwrap().pending, 0);
}

async fn list_after_pages_by_id(db: Db) {
    for i in 0..5 {
        let email = format!("p{i}@example.com");
        db.store
            .insert_admin(new_admin(&email), audit(AuditAction::CreateAdmin, &email), None)
            .await
            .unwrap();
    }
    let all = db.all_events().await;
    assert_eq!(all.len(), 5);
    let page1 = db.events.list_after(0, 2).await.unwrap();
    let page2 = db.events.list_after(page1[1].id, 2).await.unwrap();
    let page3 = db.events.list_after(page2[1].id, 2).await.unwrap();
    let ids: Vec<i64> = page1.iter().chain(&page2).chain(&page3).map(|e| e.id).collect();
    assert_eq!(ids, all.iter().map(|e| e.id).collect::<Vec<_>>());
    assert!(db.events.list_after(all[4].id, 2).await.unwrap().is_empty());
    assert_eq!(db.events.last_id().await.unwrap(), all[4].id);
}

/// Two admins: `a` with three events (invited, resent, activated), `b` with one.
async fn two_admins_with_events(db: &Db) -> (UserId, UserId) {
    let a = db
        .store
        .insert_admin(
            new_admin("a@example.com"),
            audit(AuditAction::BootstrapAdmin, "a@example.com"),
            None,
        )
        .await
        .unwrap();
    let b = db
        .store
        .insert_admin(
            new_admin("b@example.com"),
            audit(AuditAction::CreateAdmin, "b@example.com"),
            None,
        )
        .await
        .unwrap();
    db.store
        .record_invite_sent(
            a.user.id,
            Utc::now(),
            Utc::now() + Duration::days(7),
            true,
            audit(AuditAction::ResendInvite, "a@example.com"),
        )
        .await
        .unwrap();
    db.store
        .mark_accepted(
            a.user.id,
            Utc::now(),
            audit(AuditAction::FirstLoginCompleted, "a@example.com"),
        )
        .await
        .unwrap();
    (a.user.id, b.user.id)
}

async fn claims_lease_only_the_oldest_pending_event_of_each_admin(db: Db) {
    let (a, b) = two_admins_with_events(&db).await;
    let lease = std::time::Duration::from_secs(60);
    let kinds = |batch: &[admin_provisioner_store::events::Delivery]| -> Vec<(String, Uuid, i32)> {
        batch
            .iter()
            .map(|d| (d.event.kind.clone(), d.event.admin_id, d.attempt))
            .collect()
    };

    // The heads of both admins, once; another replica gets nothing while the leases live.
    let first = db.events.claim_deliveries("r1", Utc::now(), lease, 10).await.unwrap();
    assert_eq!(
        kinds(&first),
        vec![("admin.invited".into(), a.0, 1), ("admin.invited".into(), b.0, 1)]
    );
    assert!(db
        .events
        .claim_deliveries("r2", Utc::now(), lease, 10)
        .await
        .unwrap()
        .is_empty());

    // a's head fails: it comes back (attempt 2) before a's next event; b's delivered head frees nothing.
    assert!(db
        .events
        .finish_delivery(first[0].event.id, 1, "r1", &outcome(false))
        .await
        .unwrap());
    assert!(db
        .events
        .finish_delivery(first[1].event.id, 1, "r1", &outcome(true))
        .await
        .unwrap());
    let second = db.events.claim_deliveries("r2", Utc::now(), lease, 10).await.unwrap();
    assert_eq!(kinds(&second), vec![("admin.invited".into(), a.0, 2)]);
    assert!(db
        .events
        .finish_delivery(second[0].event.id, 2, "r2", &outcome(true))
        .await
        .unwrap());
    let third = db.events.claim_deliveries("r1", Utc::now(), lease, 10).await.unwrap();
    assert_eq!(kinds(&third), vec![("admin.invite_resent".into(), a.0, 1)]);

    // A retry that is not yet due is not claimed.
    let mut later = outcome(false);
    later.retry_at = Utc::now() + Duration::seconds(60);
    assert!(db
        .events
        .finish_delivery(third[0].event.id, 1, "r1", &later)
        .await
        .unwrap());
    assert!(db
        .events
        .claim_deliveries("r1", Utc::now(), lease, 10)
        .await
        .unwrap()
        .is_empty());

    let stats = db.events.delivery_stats().await.unwrap();
    assert_eq!((stats.pending, stats.delivered, stats.attempts), (2, 2, 4));
}

async fn an_expired_lease_is_claimed_again_and_the_late_finisher_loses(db: Db) {
    let _ = two_admins_with_events(&db).await;
    let lease = std::time::Duration::from_secs(5);
    let dead = db.events.claim_deliveries("dead", Utc::now(), lease, 1).await.unwrap();
    assert_eq!(dead.len(), 1);
    // Before expiry nobody else gets it; after, another replica does (attempt 2).
    assert!(db
        .events
        .claim_deliveries("alive", Utc::now() + Duration::seconds(4), lease, 1)
        .await
        .unwrap()
        .iter()
        .all(|d| d.event.id != dead[0].event.id));
    let taken = db
        .events
        .claim_deliveries("alive", Utc::now() + Duration::seconds(6), lease, 10)
        .await
        .unwrap();
    let retaken = taken.iter().find(|d| d.event.id == dead[0].event.id).unwrap();
    assert_eq!(retaken.attempt, 2);
    // The first holder's late answer is logged but does not decide the state.
    assert!(!db
        .events
        .finish_delivery(dead[0].event.id, 1, "dead", &outcome(true))
        .await
        .unwrap());
    assert!(db
        .events
        .finish_delivery(retaken.event.id, 2, "alive", &outcome(true))
        .await
        .unwrap());
    let stats = db.events.delivery_stats().await.unwrap();
    assert_eq!(stats.attempts, 2);
}

async fn concurrent_claimers_make_each_attempt_once(db: Db) {
    // 30 admins with one event each, drained by four replicas at once.
    for i in 0..30 {
        let email = format!("c{i}@example.com");
        db.store
            .insert_admin(new_admin(&email), audit(AuditAction::CreateAdmin, &email), None)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for r in 0..4 {
        let events = db.events.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("replica-{r}");
            let mut mine = Vec::new();
            loop {
                let batch = events
                    .claim_deliveries(&owner, Utc::now(), std::time::Duration::from_secs(60), 3)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                for d in batch {
                    assert!(events
                        .finish_delivery(d.event.id, d.attempt, &owner, &outcome(true))
                        .await
                        .unwrap());
                    mine.push(d.event.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 30, "each event attempted exactly once: {all:?}");
    assert_eq!(unique.len(), 30);
    let stats = db.events.delivery_stats().await.unwrap();
    assert_eq!((stats.pending, stats.delivered, stats.attempts), (0, 30, 30));
}

/// PostgreSQL: ids become visible in id order. A second writer's event waits for the first writer's
/// commit, so a reader that saw id N can never later find an uncommitted id below N appear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_event_ids_are_assigned_in_commit_order() {
    run_postgres(|db| async move {
        let EventLog::Postgres(pool, _) = db.events.clone() else {
            unreachable!()
        };
        let insert = "INSERT INTO events (type, admin_id, email, data, occurred_at) \
                      VALUES ('admin.invited', gen_random_uuid(), 'x@example.com', '{}', now()) RETURNING id";
        let mut first = pool.begin().await.unwrap();
        let first_id: i64 = sqlx::query_scalar(insert).fetch_one(&mut *first).await.unwrap();
        let second = tokio::spawn({
            let pool = pool.clone();
            async move { sqlx::query_scalar::<_, i64>(insert).fetch_one(&pool).await.unwrap() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!second.is_finished(), "the second writer waits for the first commit");
        assert_eq!(
            db.events.last_id().await.unwrap(),
            0,
            "nothing is visible before the commit"
        );
        first.commit().await.unwrap();
        let second_id = second.await.unwrap();
        assert!(second_id > first_id);
        let ids: Vec<i64> = db.all_events().await.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![first_id, second_id]);
    })
    .await;
}

/// PostgreSQL: each committed event is announced on `<schema>_events`; a rolled-back change is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifies_each_committed_event_and_nothing_for_a_rollback() {
    run_postgres(|db| async move {
        assert_eq!(db.events.notify_channel().as_deref(), Some("admin_provisioner_events"));
        let mut listener = db.events.listen().await.unwrap().unwrap();
        let a = db
            .store
            .insert_admin(
                new_admin("n@example.com"),
                audit(AuditAction::BootstrapAdmin, "n@example.com"),
                None,
            )
            .await
            .unwrap();
        // A refused change (the last active admin) rolls back: no notification for it.
        db.store
            .mark_accepted(
                a.user.id,
                Utc::now(),
                audit(AuditAction::FirstLoginCompleted, "n@example.com"),
            )
            .await
            .unwrap();
        assert_eq!(
            db.store
                .delete_admin(a.user.id, audit(AuditAction::DeleteAdmin, "n@example.com"), None)
                .await,
            Err(StoreError::LastAdmin)
        );

        let mut got = Vec::new();
        while let Ok(Ok(n)) = tokio::time::timeout(std::time::Duration::from_millis(700), listener.recv()).await {
            let v: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
            got.push((
                v["id"].as_i64().unwrap(),
                v["type"].as_str().unwrap().to_string(),
                v["admin_id"].clone(),
            ));
        }
        let events = db.all_events().await;
        assert_eq!(
            got,
            events
                .iter()
                .map(|e| (e.id, e.kind.clone(), serde_json::Value::String(e.admin_id.to_string())))
                .collect::<Vec<_>>()
        );
        assert_eq!(got.len(), 2, "invited and activated, nothing for the refused removal");
    })
    .await;
}

async fn append_writes_a_queued_event_of_any_type(db: Db) {
    let admin = Uuid::new_v4();
    let data = serde_json::json!({"cognito": "missing", "database": "active"});
    let id = db
        .events
        .append(
            admin_provisioner_store::events::ADMIN_DRIFT_DETECTED,
            admin,
            "d@example.com",
            &data,
        )
        .await
        .unwrap();
    let events = db.all_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].id, events[0].kind.as_str(), events[0].admin_id),
        (id, "admin.drift_detected", admin)
    );
    assert_eq!(events[0].data, data);
    assert_eq!(db.events.delivery_stats().await.unwrap().pending, 1);
}
