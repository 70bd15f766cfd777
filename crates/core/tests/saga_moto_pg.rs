//! The saga's fault matrix again, on the production adapters: AWS Cognito through the AWS SDK (against a
//! local moto server) and PostgreSQL (a fresh database per test). Same cases and assertions as
//! `tests/saga.rs`; see `saga_support::run_fault_case`.

mod saga_support;

use admin_provisioner_cognito::testing::{MotoServer, PoolOptions};
use admin_provisioner_core::faults::FaultMode;
use admin_provisioner_core::identity::{op as idp_op, IdentityProvider};
use admin_provisioner_core::store::Store;
use admin_provisioner_core::store::{op as store_op, SagaKind};
use admin_provisioner_core::{Caller, Error};
use saga_support::*;

/// One cell of a fault matrix on moto + a fresh PostgreSQL database: the fault once, then always.
macro_rules! matrix_case {
    ($runner:ident, $name:ident, $op:expr, $mode:expr) => {
        #[tokio::test]
        async fn $name() {
            for times in [Some(1), None] {
                let f = Fixture::new().await;
                $runner(&f.h, $op, $mode, times).await;
                f.finish().await;
            }
        }
    };
}
use sqlx::{Connection, Executor, PgConnection};
use std::sync::Arc;

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh PostgreSQL database, dropped by [`Fixture::finish`].
struct Fixture {
    h: Harness,
    db: String,
    _moto: Arc<MotoServer>,
}

impl Fixture {
    async fn new() -> Self {
        Self::with_settings(fast_settings()).await
    }

    async fn with_settings(settings: admin_provisioner_core::ProvisionerSettings) -> Self {
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("these tests need PostgreSQL (TEST_POSTGRES_URL={admin}): {e}"));
        let db = format!("ap_saga_test_{}", uuid::Uuid::new_v4().simple());
        conn.execute(format!("CREATE DATABASE {db}").as_str()).await.unwrap();
        conn.close().await.ok();
        let (base, _) = admin.rsplit_once('/').unwrap();
        let store: Arc<dyn Store> = admin_provisioner_store::connect(&format!("{base}/{db}")).await.unwrap();
        let moto = MotoServer::shared().expect("moto_server is needed for these tests");
        let pool = moto.create_pool(PoolOptions::default()).await.unwrap();
        let idp: Arc<dyn IdentityProvider> = Arc::new(pool.provider);
        Self {
            h: Harness::with_settings(idp, store, settings),
            db,
            _moto: moto,
        }
    }

    async fn finish(self) {
        let Fixture { h, db, _moto } = self;
        drop(h);
        if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
                .await;
        }
    }
}

// The fault matrix derived from the step tables (as in `tests/saga.rs`), on moto + PostgreSQL.

async fn provision_matrix(mode: FaultMode) {
    let f = Fixture::with_settings(matrix_settings()).await;
    let clean = clean_provision_log(&f.h).await;
    f.finish().await;
    for cell in table_cells(SagaKind::Provision, &clean) {
        for times in [Some(1), None] {
            let f = Fixture::with_settings(matrix_settings()).await;
            run_fault_case_at(&f.h, cell.op, cell.skip, mode, times).await;
            f.finish().await;
        }
    }
}

async fn remove_matrix(mode: FaultMode) {
    let f = Fixture::with_settings(matrix_settings()).await;
    let clean = clean_remove_log(&f.h).await;
    f.finish().await;
    for cell in table_cells(SagaKind::Remove, &clean) {
        for times in [Some(1), None] {
            let f = Fixture::with_settings(matrix_settings()).await;
            run_remove_fault_case(&f.h, cell.op, cell.skip, mode, times).await;
            f.finish().await;
        }
    }
}

async fn lifecycle_matrix(kind: SagaKind, mode: FaultMode) {
    let f = Fixture::with_settings(matrix_settings()).await;
    let clean = clean_lifecycle_log(&f.h, kind).await;
    f.finish().await;
    for cell in table_cells(kind, &clean) {
        for times in [Some(1), None] {
            let f = Fixture::with_settings(matrix_settings()).await;
            run_lifecycle_fault_case(&f.h, kind, cell.op, cell.skip, mode, times).await;
            f.finish().await;
        }
    }
}

// Disable and enable: the four fault modes in one test per saga (each cell is short; moto fixtures are
// the cost).
#[tokio::test]
async fn moto_pg_table_matrix_disable() {
    for mode in [
        FaultMode::Error,
        FaultMode::SucceedThenError,
        FaultMode::Hang,
        FaultMode::SucceedThenHang,
    ] {
        lifecycle_matrix(SagaKind::Disable, mode).await;
    }
}
#[tokio::test]
async fn moto_pg_table_matrix_enable() {
    for mode in [
        FaultMode::Error,
        FaultMode::SucceedThenError,
        FaultMode::Hang,
        FaultMode::SucceedThenHang,
    ] {
        lifecycle_matrix(SagaKind::Enable, mode).await;
    }
}

#[tokio::test]
async fn moto_pg_table_matrix_provision_error() {
    provision_matrix(FaultMode::Error).await;
}
#[tokio::test]
async fn moto_pg_table_matrix_provision_succeed_then_error() {
    provision_matrix(FaultMode::SucceedThenError).await;
}
#[tokio::test]
async fn moto_pg_table_matrix_provision_hang() {
    provision_matrix(FaultMode::Hang).await;
}
#[tokio::test]
async fn moto_pg_table_matrix_provision_succeed_then_hang() {
    provision_matrix(FaultMode::SucceedThenHang).await;
}
#[tokio::test]
async fn moto_pg_table_matrix_remove_error() {
    remove_matrix(FaultMode::Error).await;
}
#[tokio::test]
async fn moto_pg_table_matrix_remove_succeed_then_error() {
    remove_matrix(FaultMode::SucceedThenError).await;
}
#[tokio::test]
async fn moto_pg_table_matrix_remove_hang() {
    remove_matrix(FaultMode::Hang).await;
}
#[tokio::test]
async fn moto_pg_table_matrix_remove_succeed_then_hang() {
    remove_matrix(FaultMode::SucceedThenHang).await;
}

/// Concurrency on the production adapters: 20 provisions of one e-mail in different cases, one admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_pg_twenty_concurrent_provisions_give_one_admin() {
    let f = Fixture::new().await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let p = f.h.p.clone();
        let email = if i % 2 == 0 {
            "Kim.Concurrent@Example.com".to_string()
        } else {
            format!("kim.concurrent@example.{}", if i % 3 == 0 { "COM" } else { "com" })
        };
        tasks.push(tokio::spawn(async move {
            p.provision_new_admin(&Caller::Operator, &email, None).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::AdminExists) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(f.h.raw_store.list_admins().await.unwrap().len(), 1);
    assert_eq!(f.h.cognito_users().await.len(), 1);
    f.finish().await;
}

/// A pre-existing Cognito user in the real adapter is never deleted nor adopted.
#[tokio::test]
async fn moto_pg_foreign_user_is_left_alone() {
    let f = Fixture::new().await;
    let foreign = f.h.create_foreign_user("old.timer@example.com").await;
    // moto's UserCreateDate is "now": make the saga's intent clearly later than the ownership skew allows.
    let p = admin_provisioner_core::Provisioner::new(
        f.h.raw_idp.clone(),
        f.h.raw_store.clone(),
        Arc::new(Later(chrono::Duration::minutes(10))),
        fast_settings(),
    );
    let err = p
        .provision_new_admin(&Caller::Operator, "old.timer@example.com", None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ForeignIdentityExists), "{err:?}");
    assert_eq!(
        f.h.cognito_user("old.timer@example.com").await.unwrap().sub,
        foreign.sub
    );
    assert!(!f.h.db_has("old.timer@example.com").await);
    f.finish().await;
}

struct Later(chrono::Duration);
impl admin_provisioner_core::clock::Clock for Later {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + self.0
    }
}

matrix_case!(
    run_compensation_fault_case,
    moto_pg_undo_fault_admin_delete_user_error,
    idp_op::ADMIN_DELETE_USER,
    FaultMode::Error
);
matrix_case!(
    run_compensation_fault_case,
    moto_pg_undo_fault_admin_delete_user_succeed_then_error,
    idp_op::ADMIN_DELETE_USER,
    FaultMode::SucceedThenError
);
matrix_case!(
    run_compensation_fault_case,
    moto_pg_undo_fault_admin_delete_user_hang,
    idp_op::ADMIN_DELETE_USER,
    FaultMode::Hang
);
matrix_case!(
    run_compensation_fault_case,
    moto_pg_undo_fault_saga_update_error,
    store_op::SAGA_UPDATE,
    FaultMode::Error
);
