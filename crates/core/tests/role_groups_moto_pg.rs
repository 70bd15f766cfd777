//! Roles mirrored into Cognito groups on the production adapters: AWS Cognito through the AWS SDK
//! (against a local moto server) and PostgreSQL (a fresh database per test). The same walk and drift as
//! `tests/role_groups.rs`, with both systems checked after each step, and the table-derived fault matrix
//! of the role-change saga's group steps in the `Error` mode.

mod saga_support;

use admin_provisioner_cognito::testing::{MotoServer, PoolOptions};
use admin_provisioner_core::faults::FaultMode;
use admin_provisioner_core::identity::IdentityProvider;
use admin_provisioner_core::store::{SagaKind, Store};
use saga_support::groups::*;
use saga_support::*;
use sqlx::{Connection, Executor, PgConnection};
use std::sync::Arc;

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Moto + a fresh PostgreSQL database with mirroring on and the role groups created; dropped by
/// [`Fixture::finish`].
struct Fixture {
    h: Harness,
    db: String,
    _moto: Arc<MotoServer>,
}

impl Fixture {
    async fn new(settings: admin_provisioner_core::ProvisionerSettings) -> Self {
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("these tests need PostgreSQL (TEST_POSTGRES_URL={admin}): {e}"));
        let db = format!("ap_groups_test_{}", uuid::Uuid::new_v4().simple());
        conn.execute(format!("CREATE DATABASE {db}").as_str()).await.unwrap();
        conn.close().await.ok();
        let (base, _) = admin.rsplit_once('/').unwrap();
        let store: Arc<dyn Store> = admin_provisioner_store::connect(&format!("{base}/{db}")).await.unwrap();
        let moto = MotoServer::shared().expect("moto_server is needed for these tests");
        let pool = moto.create_pool(PoolOptions::default()).await.unwrap();
        let idp: Arc<dyn IdentityProvider> = Arc::new(pool.provider);
        let h = Harness::with_settings(idp, store, mirrored(settings));
        let created = h.p.ensure_role_groups().await.unwrap();
        assert_eq!(created.len(), 3, "{created:?}");
        Self { h, db, _moto: moto }
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

#[tokio::test]
async fn role_changes_move_database_and_groups_together_on_moto_and_postgres() {
    let f = Fixture::new(fast_settings()).await;
    role_walk(&f.h).await;
    f.finish().await;
}

#[tokio::test]
async fn drift_made_in_moto_is_found_and_repaired() {
    let f = Fixture::new(fast_settings()).await;
    let store: Arc<dyn admin_provisioner_core::reconcile::ReconcileStore> = f.h.raw_store.clone();
    drift_walk(&f.h, store).await;
    f.finish().await;
}

/// The role-change table's cells (group steps included) with a failing call, once and always, on moto +
/// PostgreSQL.
#[tokio::test]
async fn change_role_group_matrix_error_on_moto_and_postgres() {
    let clean = clean_change_role_log_mirrored().await;
    for cell in table_cells_mirrored(SagaKind::ChangeRole, &clean) {
        for times in [Some(1), None] {
            let f = Fixture::new(fast_settings()).await;
            run_change_role_fault_case(&f.h, cell.op, cell.skip, FaultMode::Error, times).await;
            f.finish().await;
        }
    }
}

/// The provisioning table's cells (`add_to_group` included) with a failing call, once and always, on
/// moto + PostgreSQL.
#[tokio::test]
async fn provision_group_matrix_error_on_moto_and_postgres() {
    let clean = clean_provision_log_mirrored().await;
    for cell in table_cells_mirrored(SagaKind::Provision, &clean) {
        for times in [Some(1), None] {
            let f = Fixture::new(fast_settings()).await;
            run_fault_case_at(&f.h, cell.op, cell.skip, FaultMode::Error, times).await;
            let ctx = format!("moto provision {cell:?} {times:?}");
            assert!(
                f.h.assert_groups_follow_role("victim@example.com", &ctx)
                    .await
                    .is_some(),
                "{ctx}"
            );
            f.finish().await;
        }
    }
}

/// A mirrored admin signs in on moto: the ID token carries `cognito:groups` with its role's group, and
/// after a role change the next sign-in carries the new one.
#[tokio::test]
async fn a_mirrored_admins_moto_id_token_carries_its_role_group() {
    use admin_provisioner_core::domain::{Password, Role};
    use admin_provisioner_core::identity::AuthOutcome;
    use admin_provisioner_core::Caller;
    let f = Fixture::new(fast_settings()).await;
    let email = "tokened@example.com";
    let admin =
        f.h.p
            .provision_admin_with_role(&Caller::Operator, email, Role::Viewer, None)
            .await
            .unwrap();
    // The invitation's temporary password is in moto's memory only: set a permanent one directly.
    let moto = MotoServer::shared().unwrap();
    let pool_id =
        f.h.raw_idp
            .token_settings()
            .issuer
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
    let client = moto.sdk_client(pool_id.split('_').next().unwrap());
    client
        .admin_set_user_password()
        .user_pool_id(&pool_id)
        .username(&admin.user.cognito_username)
        .password("Perm#Pass12345")
        .permanent(true)
        .send()
        .await
        .unwrap();
    let groups_in_token = || async {
        let tokens = match f
            .h
            .raw_idp
            .initiate_auth(email, &Password::new("Perm#Pass12345"))
            .await
            .unwrap()
        {
            AuthOutcome::Tokens(t) => t,
            other => panic!("{other:?}"),
        };
        let payload = tokens.id_token.expose().split('.').nth(1).unwrap().to_string();
        use base64::Engine;
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        serde_json::from_value::<Vec<String>>(claims["cognito:groups"].clone()).unwrap()
    };
    assert_eq!(groups_in_token().await, [group(Role::Viewer)]);
    f.h.p
        .change_role(&Caller::Operator, admin.user.id, Role::Admin, None)
        .await
        .unwrap();
    assert_eq!(groups_in_token().await, [group(Role::Admin)]);
    f.finish().await;
}
