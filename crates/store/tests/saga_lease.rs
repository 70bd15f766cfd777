//! Two replicas on one PostgreSQL share a backlog of abandoned sagas: every saga is claimed by exactly
//! one of them (`claim_expired`: compare-and-set with `FOR UPDATE SKIP LOCKED`), and a claimed saga is
//! not claimable again until its lease expires. Fixed size: 60 sagas, batches of 5, two stores (two
//! connection pools, as two processes would have).
//!
//! Needs `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`); fails when the server
//! is unreachable, never skips.

use admin_provisioner_core::domain::{Actor, UserId};
use admin_provisioner_core::store::{SagaKind, SagaLog, SagaRecord, SagaState, SagaUpdate};
use chrono::{Duration, Utc};
use sqlx::{Connection, Executor, PgConnection};
use std::collections::HashMap;
use uuid::Uuid;

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let start = base.find("://").map_or(0, |i| i + 3);
    let end = base[start..].find('/').map_or(base.len(), |i| start + i);
    format!("{}/{name}{query}", &base[..end])
}

fn abandoned(i: usize) -> SagaRecord {
    let t = Utc::now() - Duration::minutes(10);
    let email = format!("abandoned{i}@example.com");
    SagaRecord {
        id: Uuid::new_v4(),
        kind: SagaKind::Provision,
        actor: Actor::Operator,
        email: email.clone(),
        email_normalized: email.clone(),
        user_id: UserId::new(),
        cognito_username: email,
        cognito_sub: None,
        identity_created_by_saga: false,
        invite_delivered: true,
        state: SagaState::IdentityCreating,
        attempts: 0,
        last_error: None,
        request_id: None,
        started_at: t,
        updated_at: t,
        owner: Some("dead-process:1:run".into()),
        lease_expires_at: Some(t + Duration::seconds(60)),
        scim: None,
        role: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_claim_each_abandoned_saga_exactly_once() {
    let admin_url =
        std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL unreachable: start it or set TEST_POSTGRES_URL");
    let name = format!("ap_lease_test_{}", Uuid::new_v4().simple());
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let url = with_database(&admin_url, &name);

    let a = admin_provisioner_store::connect(&url).await.unwrap();
    let b = admin_provisioner_store::connect(&url).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(a.begin(abandoned(i)).await.unwrap().id);
    }

    async fn drain(store: &dyn SagaLog, owner: &str) -> Vec<Uuid> {
        let mut mine = Vec::new();
        loop {
            let now = Utc::now();
            let batch = store
                .claim_expired(owner, now, now + Duration::seconds(60), None, 5)
                .await
                .unwrap();
            if batch.is_empty() {
                return mine;
            }
            for s in batch {
                assert_eq!(s.owner.as_deref(), Some(owner));
                mine.push(s.id);
                // "Settle" it, as its owner only (a lost lease would refuse this).
                let done = SagaUpdate {
                    state: Some(SagaState::Compensated),
                    expected_owner: Some(owner.to_string()),
                    ..Default::default()
                };
                store.update(s.id, done).await.unwrap();
            }
        }
    }
    let (got_a, got_b) = tokio::join!(drain(a.as_ref(), "replica-a"), drain(b.as_ref(), "replica-b"));

    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    for id in got_a.iter().chain(got_b.iter()) {
        *seen.entry(*id).or_default() += 1;
    }
    assert_eq!(seen.len(), 60, "a={} b={}", got_a.len(), got_b.len());
    assert!(seen.values().all(|n| *n == 1), "a saga was claimed twice");
    for id in &ids {
        let s = a.get(*id).await.unwrap().unwrap();
        assert_eq!(s.state, SagaState::Compensated);
    }
    // A replica that lost the lease cannot write: the other owner's CAS refuses it.
    let one = b.begin(abandoned(99)).await.unwrap();
    let now = Utc::now();
    let claimed = a
        .claim_expired("replica-a", now, now + Duration::seconds(60), Some(one.id), 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(b
        .claim_expired("replica-b", now, now, Some(one.id), 1)
        .await
        .unwrap()
        .is_empty());
    let stale = SagaUpdate {
        state: Some(SagaState::Compensated),
        expected_owner: Some("replica-b".into()),
        ..Default::default()
    };
    assert!(matches!(
        b.update(one.id, stale).await,
        Err(admin_provisioner_core::store::StoreError::LeaseLost(o)) if o == "replica-a"
    ));

    drop(a);
    drop(b);
    let _ = admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await;
}
