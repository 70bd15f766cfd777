//! The SCIM request sequences of Okta and Entra ID (see `scim.rs` for where they come from) on moto and a
//! fresh PostgreSQL database instead of the emulator and SQLite: the app is built in-process from a
//! configuration naming a moto pool (the AWS SDK adapter) and `TEST_POSTGRES_URL`, and after each step
//! both systems are read back: the database record (exists, `disabled_at` set or cleared) and moto's
//! `AdminGetUser` through the adapter (exists, `Enabled`).
//!
//! Needs `MOTO_SERVER_BIN` (or `.venv/bin/moto_server`) and PostgreSQL; without them these tests fail and
//! say so.

mod common;

use admin_provisioner_cognito::testing::{MotoPool, MotoServer, PoolOptions};
use admin_provisioner_core::domain::Actor;
use admin_provisioner_core::identity::IdentityProvider;
use admin_provisioner_core::scim_tokens as tokens;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// An app on its own moto pool and its own PostgreSQL database (dropped by [`MotoPg::finish`]), with a
/// bootstrapped first admin (so the SCIM person is never the last active admin) and a SCIM token.
struct MotoPg {
    t: TestApp,
    _moto: Arc<MotoServer>,
    pool: MotoPool,
    database: String,
    token: String,
}

async fn moto_pg(scim_client: &str) -> MotoPg {
    use sqlx::{Connection, Executor};
    let admin = postgres_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("this test needs PostgreSQL at TEST_POSTGRES_URL={admin}: {e}"));
    let database = format!("ap_m12_{}", uuid::Uuid::new_v4().simple());
    conn.execute(format!("CREATE DATABASE {database}").as_str())
        .await
        .unwrap();
    conn.close().await.ok();
    let (head, _) = admin.rsplit_once('/').unwrap();
    let database_url = format!("{head}/{database}");

    let moto = MotoServer::shared().unwrap_or_else(|e| panic!("{e:#}"));
    let pool = moto
        .create_pool(PoolOptions::default())
        .await
        .unwrap_or_else(|e| panic!("creating a moto pool: {e:#}"));
    // The app's SDK client takes its credentials from the default chain; moto accepts any.
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    let config = pool.provider.config().clone();
    let (user_pool_id, client_id) = (pool.user_pool_id.clone(), pool.client_id.clone());
    let t = bare_app_with(move |c| {
        c.database_url = database_url;
        c.cognito_user_pool_id = Some(user_pool_id);
        c.cognito_client_id = Some(client_id);
        c.aws_region = config.region.clone();
        c.cognito_endpoint_url = config.endpoint_url.clone();
        c.cognito_jwks_url = Some(config.effective_jwks_url());
        c.call_timeout_secs = 5;
    })
    .await;
    assert!(!t.app.config.uses_emulator(), "the app must be on moto");
    t.app
        .provisioner
        .bootstrap_admin(ADMIN_EMAIL, Some("test-bootstrap"))
        .await
        .unwrap();
    let (_, token) = tokens::create(t.app.store.as_ref(), &Actor::Operator, scim_client, None)
        .await
        .unwrap();
    MotoPg {
        t,
        _moto: moto,
        pool,
        database,
        token: token.expose().to_string(),
    }
}

impl MotoPg {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Res {
        let b = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.token));
        let req = match body {
            Some(v) => b
                .header("content-type", "application/scim+json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.t.call(req).await
    }

    /// Both systems' view of `email`: (database: exists, disabled), (moto: exists, enabled).
    async fn both(&self, email: &str) -> ((bool, bool), (bool, bool)) {
        let email = email.to_lowercase();
        let db = self
            .t
            .app
            .provisioner
            .admin_store()
            .find_admin_by_email(&email)
            .await
            .unwrap();
        let moto = match self.pool.provider.admin_get_user(&email).await {
            Ok(u) => Some(u),
            Err(admin_provisioner_core::identity::IdpError::UserNotFound) => None,
            Err(e) => panic!("moto AdminGetUser {email}: {e:?}"),
        };
        (
            (db.is_some(), db.is_some_and(|r| r.user.is_disabled())),
            (moto.is_some(), moto.is_some_and(|u| u.enabled)),
        )
    }

    async fn finish(self) {
        use sqlx::{Connection, Executor};
        let MotoPg { t, database, .. } = self;
        drop(t);
        if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
                .await;
        }
    }
}

fn enc(s: &str) -> String {
    s.replace(' ', "%20").replace('"', "%22")
}

/// Look up, create, deactivate with `deactivate`, reactivate with `reactivate`, delete; both systems agree
/// after each step.
async fn sequence(m: &MotoPg, email: &str, create: Value, deactivate: Value, reactivate: Value) {
    let filter = format!(
        "/scim/v2/Users?filter={}&startIndex=1&count=100",
        enc(&format!("userName eq \"{email}\""))
    );
    let res = m.call(Method::GET, &filter, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["totalResults"], 0, "{}", res.text);
    assert_eq!(m.both(email).await, ((false, false), (false, false)));

    let res = m.call(Method::POST, "/scim/v2/Users", Some(create)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let id = res.json()["id"].as_str().unwrap().to_string();
    assert_eq!(m.both(email).await, ((true, false), (true, true)), "after create");

    let res = m.call(Method::GET, &filter, None).await;
    assert_eq!(res.json()["totalResults"], 1, "{}", res.text);
    assert_eq!(res.json()["Resources"][0]["id"], id);

    let user = format!("/scim/v2/Users/{id}");
    let res = m.call(Method::PATCH, &user, Some(deactivate)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["active"], false);
    assert_eq!(m.both(email).await, ((true, true), (true, false)), "after deactivate");

    let res = m.call(Method::PATCH, &user, Some(reactivate)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["active"], true);
    assert_eq!(m.both(email).await, ((true, false), (true, true)), "after reactivate");

    let res = m.call(Method::DELETE, &user, None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    assert_eq!(m.both(email).await, ((false, false), (false, false)), "after delete");
    let res = m.call(Method::GET, &user, None).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.text);
}

#[tokio::test]
async fn the_okta_sequence_on_moto_and_postgres_keeps_both_systems_in_step() {
    let m = moto_pg("okta").await;
    let email = "okta.person@example.com";
    let patch =
        |active: bool| json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": active}}]});
    sequence(
        &m,
        email,
        json!({
            "schemas": [USER], "userName": email, "active": true,
            "name": {"givenName": "Okta", "familyName": "Person"},
            "emails": [{"primary": true, "value": email, "type": "work"}],
            "displayName": "Okta Person", "externalId": "00u1okta", "groups": [],
        }),
        patch(false),
        patch(true),
    )
    .await;
    m.finish().await;
}

#[tokio::test]
async fn the_entra_id_sequence_on_moto_and_postgres_keeps_both_systems_in_step() {
    let m = moto_pg("entra").await;
    let email = "Entra.Person@Example.com";
    let patch = |active: &str| json!({"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active", "value": active}]});
    sequence(
        &m,
        email,
        json!({
            "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": email, "active": true,
            "emails": [{"primary": true, "type": "work", "value": email}],
            "name": {"formatted": "Entra Person", "familyName": "Person", "givenName": "Entra"},
            "roles": [],
        }),
        patch("False"),
        patch("True"),
    )
    .await;
    m.finish().await;
}
