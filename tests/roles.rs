//! Issue 21, roles: the permission table as ONE test table (operation × actor role × target role), run
//! against the three doors that change admins: the JSON API, the console and SCIM (in-process router,
//! built-in emulator + SQLite).
//!
//! The expected answer of each cell is written here from the issue's words, not read from the core:
//! * `owner`: everything;
//! * `admin`: every operation on admins and viewers; nothing on an owner, never giving the owner role;
//! * `viewer`: nothing (`403 forbidden`);
//! * a SCIM token acts as an `admin`.
//!
//! Each cell gets a fresh target admin (made by the operator with the cell's target role), asks the door,
//! and checks both the answer and the database: an allowed cell took effect, a refused one left the
//! target as it was. The console must also hide the refused operation's button.

mod common;

use admin_provisioner_core::domain::{Actor, AdminRecord, Role, UserId};
use admin_provisioner_core::scim_tokens as tokens;
use admin_provisioner_core::Caller;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::{json, Value};

/// An operation of the table, with the role a create or a role change gives.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Create,
    Resend,
    Disable,
    Enable,
    Remove,
    ChangeTo(Role),
}

const OPS: [Op; 7] = [
    Op::Create,
    Op::Resend,
    Op::Disable,
    Op::Enable,
    Op::Remove,
    Op::ChangeTo(Role::Viewer),
    Op::ChangeTo(Role::Owner),
];

/// The issue's permission table (independent of the core's).
fn allowed(actor: Role, op: Op, target: Role) -> bool {
    let gives_owner = matches!(op, Op::ChangeTo(Role::Owner));
    match actor {
        Role::Owner => true,
        Role::Admin => target != Role::Owner && !gives_owner,
        Role::Viewer => false,
    }
}

/// The three doors.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Door {
    Api,
    Console,
    Scim,
}

/// A signed-in actor at one door.
struct Actor2 {
    role: Role,
    token: String,
    cookie: String,
    csrf: String,
}

struct World {
    t: TestApp,
    actors: Vec<Actor2>,
    scim_token: String,
    n: std::cell::Cell<usize>,
}

fn form(path: &str, cookie: &str, body: String) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", "localhost")
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

fn scim(method: Method, path: &str, token: &str, body: Option<Value>) -> Request<Body> {
    let b = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    match body {
        Some(v) => b
            .header("content-type", "application/scim+json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

fn patch_op(path: &str, value: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "replace", "path": path, "value": value}]})
}

impl World {
    async fn new() -> Self {
        let t = test_app_with(|c| c.admin_rate_limit_per_minute = 0).await;
        let owner = t.admin().clone();
        let mut actors = Vec::new();
        for (role, email) in [
            (Role::Owner, owner.email.clone()),
            (Role::Admin, "actor-admin@example.com".to_string()),
            (Role::Viewer, "actor-viewer@example.com".to_string()),
        ] {
            let admin = if role == Role::Owner {
                owner.clone()
            } else {
                t.invite(&email).await;
                let a = t.activate(&email).await;
                let id = UserId(a.id.parse().unwrap());
                t.app
                    .provisioner
                    .change_role(&Caller::Operator, id, role, None)
                    .await
                    .unwrap();
                a
            };
            let res = t
                .call(form(
                    "/login",
                    "",
                    format!("email={}&password={NEW_PASSWORD}", email.replace('@', "%40")),
                ))
                .await;
            assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
            let cookie = res
                .headers
                .get_all("set-cookie")
                .iter()
                .find_map(|v| {
                    let v = v.to_str().ok()?;
                    v.strip_prefix("ap_session=")
                        .map(|rest| rest.split(';').next().unwrap().to_string())
                })
                .map(|v| format!("ap_session={v}"))
                .unwrap();
            let page = t.call(get_with_cookie("/console", &cookie)).await;
            let marker = r#"name="csrf" value=""#;
            let start = page.text.find(marker).unwrap() + marker.len();
            let csrf = page.text[start..start + page.text[start..].find('"').unwrap()].to_string();
            actors.push(Actor2 {
                role,
                token: admin.id_token.clone(),
                cookie,
                csrf,
            });
        }
        let (_, token) = tokens::create(t.app.store.as_ref(), &Actor::Operator, "idp", None)
            .await
            .unwrap();
        Self {
            t,
            actors,
            scim_token: token.expose().to_string(),
            n: std::cell::Cell::new(0),
        }
    }

    fn next_email(&self) -> String {
        self.n.set(self.n.get() + 1);
        format!("target-{}@example.com", self.n.get())
    }

    /// A fresh target admin of `role` (invited; disabled for an enable), made by the operator.
    async fn target(&self, role: Role, op: Op) -> AdminRecord {
        let p = &self.t.app.provisioner;
        let made = p
            .provision_admin_with_role(&Caller::Operator, &self.next_email(), role, None)
            .await
            .unwrap();
        if op == Op::Enable {
            p.disable_admin(&Caller::Operator, made.user.id, None).await.unwrap();
        }
        self.record(made.user.id).await.unwrap()
    }

    async fn record(&self, id: UserId) -> Option<AdminRecord> {
        self.t.app.provisioner.admin_store().get_admin(id).await.unwrap()
    }

    /// Asks `door` as `actor` (the SCIM door: as the SCIM token) to do `op` to a fresh target of role
    /// `target`; returns whether it took effect (checked in the database) and the HTTP status.
    async fn ask(&self, door: Door, actor: &Actor2, op: Op, target: Role) -> (bool, u16) {
        if op == Op::Create {
            let email = self.next_email();
            let status = match door {
                Door::Api => {
                    self.t
                        .post(
                            "/api/admins",
                            Some(&actor.token),
                            json!({"email": email, "role": target}),
                        )
                        .await
                        .status
                }
                Door::Console => {
                    self.t
                        .call(form(
                            "/console/admins",
                            &actor.cookie,
                            format!(
                                "csrf={}&email={}&role={}",
                                actor.csrf,
                                email.replace('@', "%40"),
                                target.as_str()
                            ),
                        ))
                        .await
                        .status
                }
                Door::Scim => {
                    self.t
                        .call(scim(
                            Method::POST,
                            "/scim/v2/Users",
                            &self.scim_token,
                            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                        "userName": email, "roles": [{"value": target.as_str(), "primary": true}]})),
                        ))
                        .await
                        .status
                }
            };
            let made = self.t.app.provisioner.admin_by_email(&email).await.unwrap();
            if let Some(r) = &made {
                assert_eq!(r.admin_info.role, target, "{door:?} create");
            }
            return (made.is_some(), status.as_u16());
        }
        let before = self.target(target, op).await;
        let id = before.user.id;
        if op == Op::Resend {
            // Past the resend cooldown of the target's invitation (tokens live an hour: 18 resend cells).
            self.t.clock.advance(chrono::Duration::seconds(61));
        }
        let console_action = match op {
            Op::Resend => "resend",
            Op::Disable => "disable",
            Op::Enable => "enable",
            Op::Remove => "remove",
            Op::ChangeTo(_) => "role",
            Op::Create => unreachable!(),
        };
        if door == Door::Console {
            // The console hides what the signed-in admin may not do.
            let query = format!("/console?q={}", before.user.email_normalized.replace('@', "%40"));
            let page = self.t.call(get_with_cookie(&query, &actor.cookie)).await;
            let action = format!("/console/admins/{id}/{console_action}");
            let shown = page.text.contains(&action)
                && match op {
                    Op::ChangeTo(r) => {
                        let row = &page.text[page.text.find(&action).unwrap()..];
                        let row = &row[..row.find("</form>").unwrap()];
                        row.contains(&format!(r#"value="{}""#, r.as_str()))
                    }
                    _ => true,
                };
            assert_eq!(
                shown,
                allowed(actor.role, op, target),
                "console shows {console_action} for a {target:?} to a {:?}",
                actor.role
            );
        }
        let status = match (door, op) {
            (Door::Api, Op::Resend) => {
                self.t
                    .post(
                        &format!("/api/admins/{id}/resend-invite"),
                        Some(&actor.token),
                        json!({}),
                    )
                    .await
                    .status
            }
            (Door::Api, Op::Disable | Op::Enable) => {
                self.t
                    .post(
                        &format!("/api/admins/{id}/{console_action}"),
                        Some(&actor.token),
                        json!({}),
                    )
                    .await
                    .status
            }
            (Door::Api, Op::Remove) => {
                self.t
                    .delete(&format!("/api/admins/{id}"), Some(&actor.token))
                    .await
                    .status
            }
            (Door::Api, Op::ChangeTo(r)) => {
                self.t
                    .call(request(
                        Method::PATCH,
                        &format!("/api/admins/{id}"),
                        Some(&actor.token),
                        Some(json!({"role": r})),
                    ))
                    .await
                    .status
            }
            (Door::Console, _) => {
                let extra = match op {
                    Op::ChangeTo(r) => format!("&role={}", r.as_str()),
                    _ => String::new(),
                };
                self.t
                    .call(form(
                        &format!("/console/admins/{id}/{console_action}"),
                        &actor.cookie,
                        format!("csrf={}{extra}", actor.csrf),
                    ))
                    .await
                    .status
            }
            (Door::Scim, Op::Resend) => unreachable!("SCIM has no resend"),
            (Door::Scim, Op::Disable | Op::Enable) => {
                self.t
                    .call(scim(
                        Method::PATCH,
                        &format!("/scim/v2/Users/{id}"),
                        &self.scim_token,
                        Some(patch_op("active", json!(op == Op::Enable))),
                    ))
                    .await
                    .status
            }
            (Door::Scim, Op::Remove) => {
                self.t
                    .call(scim(
                        Method::DELETE,
                        &format!("/scim/v2/Users/{id}"),
                        &self.scim_token,
                        None,
                    ))
                    .await
                    .status
            }
            (Door::Scim, Op::ChangeTo(r)) => {
                self.t
                    .call(scim(
                        Method::PATCH,
                        &format!("/scim/v2/Users/{id}"),
                        &self.scim_token,
                        Some(patch_op("roles", json!([{"value": r.as_str(), "primary": true}]))),
                    ))
                    .await
                    .status
            }
            (_, Op::Create) => unreachable!(),
        };
        let after = self.record(id).await;
        let took_effect = match (op, &after) {
            (Op::Remove, after) => after.is_none(),
            (_, None) => panic!("{door:?} {op:?}: the target vanished"),
            (Op::Resend, Some(a)) => a.admin_info.invites_sent > before.admin_info.invites_sent,
            (Op::Disable, Some(a)) => a.user.is_disabled(),
            (Op::Enable, Some(a)) => !a.user.is_disabled(),
            (Op::ChangeTo(r), Some(a)) => a.admin_info.role == r && (r != target || allowed(actor.role, op, target)),
            (Op::Create, _) => unreachable!(),
        };
        if !took_effect {
            assert_eq!(
                after.as_ref(),
                Some(&before),
                "{door:?} {op:?}: a refusal left the target as it was"
            );
        }
        (took_effect, status.as_u16())
    }
}

fn get_with_cookie(path: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("host", "localhost")
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap()
}

/// The one table, three doors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_permission_table_holds_on_the_api_the_console_and_scim() {
    let w = World::new().await;
    let mut cells = 0;
    for door in [Door::Api, Door::Console, Door::Scim] {
        for actor in &w.actors {
            // A SCIM token acts as an admin: its row of the table is the admin's.
            if door == Door::Scim && actor.role != Role::Admin {
                continue;
            }
            for op in OPS {
                if door == Door::Scim && op == Op::Resend {
                    continue;
                }
                for target in Role::ALL {
                    let expected = allowed(actor.role, op, target);
                    let (took_effect, status) = w.ask(door, actor, op, target).await;
                    let cell = format!(
                        "{door:?}: a {:?} doing {op:?} to a {target:?} answered {status}",
                        actor.role
                    );
                    assert_eq!(took_effect, expected, "{cell}");
                    match door {
                        Door::Console => assert_eq!(status, 303, "{cell}"),
                        _ if expected => assert!((200..300).contains(&status), "{cell}"),
                        _ => assert_eq!(status, 403, "{cell}"),
                    }
                    cells += 1;
                }
            }
        }
    }
    assert_eq!(cells, 3 * 7 * 3 * 2 + 6 * 3);
}

/// A viewer reads everything: the list, an admin, the audit log.
#[tokio::test]
async fn a_viewer_reads_lists_an_admin_and_the_audit_log() {
    let w = World::new().await;
    let viewer = w.actors.iter().find(|a| a.role == Role::Viewer).unwrap();
    let list = w.t.get("/api/admins", Some(&viewer.token)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let body = list.json();
    let roles: Vec<&str> = body["admins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["owner", "admin", "viewer"]);
    let one = list.json()["admins"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        w.t.get(&format!("/api/admins/{one}"), Some(&viewer.token)).await.status,
        StatusCode::OK
    );
    assert_eq!(w.t.get("/api/audit", Some(&viewer.token)).await.status, StatusCode::OK);
    let page = w.t.call(get_with_cookie("/console", &viewer.cookie)).await;
    assert!(page.text.contains(r#"id="read-only""#), "{}", page.text);
    assert!(!page.text.contains(r#"id="create-admin""#));
}

/// The last active owner cannot be demoted, disabled or removed (`409 last_owner`), and an owner cannot
/// change their own role (`403 self_action_forbidden`).
#[tokio::test]
async fn the_last_owner_stays_an_owner() {
    let w = World::new().await;
    let owner = &w.actors[0];
    let owner_id = w.t.admin().id.clone();
    let res =
        w.t.call(request(
            Method::PATCH,
            &format!("/api/admins/{owner_id}"),
            Some(&owner.token),
            Some(json!({"role": "admin"})),
        ))
        .await;
    assert_eq!(
        (res.status, res.code()),
        (StatusCode::FORBIDDEN, "self_action_forbidden".into())
    );
    // The operator is an owner too, but meets the guard.
    let id = UserId(owner_id.parse().unwrap());
    let p = &w.t.app.provisioner;
    for result in [
        p.change_role(&Caller::Operator, id, Role::Viewer, None)
            .await
            .map(|_| ()),
        p.disable_admin(&Caller::Operator, id, None).await.map(|_| ()),
        p.remove_admin(&Caller::Operator, id, None).await,
    ] {
        assert_eq!(result.unwrap_err().code(), "last_owner");
    }
    assert_eq!(w.record(id).await.unwrap().admin_info.role, Role::Owner);
    // An unknown role is a 400 that names the field, not a 403.
    let admin_id =
        w.t.app
            .provisioner
            .admin_by_email("actor-admin@example.com")
            .await
            .unwrap()
            .unwrap()
            .user
            .id;
    let res =
        w.t.call(request(
            Method::PATCH,
            &format!("/api/admins/{admin_id}"),
            Some(&owner.token),
            Some(json!({"role": "superuser"})),
        ))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text);
}

// ------------------------------------------------------------------------------------------ last owner, concurrently

/// One round's world: the built-in emulator and a fresh database (SQLite file or PostgreSQL database),
/// with roles mirrored into groups, and two active owners.
struct Duel {
    p: admin_provisioner_core::Provisioner,
    store: std::sync::Arc<dyn admin_provisioner_core::store::Store>,
    idp: std::sync::Arc<dyn admin_provisioner_core::identity::IdentityProvider>,
    pg_db: Option<String>,
    _dir: tempfile::TempDir,
}

fn pg_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

impl Duel {
    async fn new(postgres: bool) -> (Self, UserId, UserId) {
        use sqlx::{Connection, Executor};
        let dir = tempfile::tempdir().unwrap();
        let (url, pg_db) = if postgres {
            let admin = pg_admin_url();
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("this test needs PostgreSQL (TEST_POSTGRES_URL={admin}): {e}"));
            let db = format!("ap_duel_{}", uuid::Uuid::new_v4().simple());
            conn.execute(format!("CREATE DATABASE {db}").as_str()).await.unwrap();
            conn.close().await.ok();
            let (base, _) = admin.rsplit_once('/').unwrap();
            (format!("{base}/{db}"), Some(db))
        } else {
            (format!("sqlite://{}", dir.path().join("db.sqlite").display()), None)
        };
        let store = admin_provisioner_store::connect(&url).await.unwrap();
        let idp: std::sync::Arc<dyn admin_provisioner_core::identity::IdentityProvider> = std::sync::Arc::new(
            admin_provisioner_emulator::CognitoEmulator::open(admin_provisioner_emulator::EmulatorConfig::in_memory(
                dir.path().join("mailbox"),
            ))
            .await
            .unwrap(),
        );
        let settings = admin_provisioner_core::ProvisionerSettings {
            role_groups: Some("admin-provisioner-".into()),
            admin_actions_per_minute: 0,
            ..Default::default()
        };
        let p = admin_provisioner_core::Provisioner::new(
            idp.clone(),
            store.clone(),
            std::sync::Arc::new(admin_provisioner_core::clock::SystemClock),
            settings,
        );
        let duel = Self {
            p,
            store,
            idp,
            pg_db,
            _dir: dir,
        };
        let a = duel.active_owner("owner.a@example.com").await;
        let b = duel.active_owner("owner.b@example.com").await;
        (duel, a, b)
    }

    async fn active_owner(&self, email: &str) -> UserId {
        use admin_provisioner_core::store::{AuditAction, AuditEntry};
        let id = self
            .p
            .provision_admin_with_role(&Caller::Operator, email, Role::Owner, None)
            .await
            .unwrap()
            .user
            .id;
        let audit = AuditEntry {
            actor: Actor::Reconciler,
            action: AuditAction::ReconcileMarkActive,
            target: email.into(),
            outcome: "success: test".into(),
            request_id: None,
            at: self.p.now(),
        };
        self.store.mark_accepted(id, self.p.now(), audit).await.unwrap();
        id
    }

    async fn finish(self) {
        use sqlx::{Connection, Executor};
        let Duel { p, store, pg_db, .. } = self;
        drop((p, store));
        if let Some(db) = pg_db {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                let _ = conn
                    .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
                    .await;
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Blow {
    Demote,
    Disable,
    Remove,
}

async fn strike(p: &admin_provisioner_core::Provisioner, by: UserId, target: UserId, blow: Blow) -> Result<(), String> {
    let caller = Caller::Authorized(by);
    match blow {
        Blow::Demote => p.change_role(&caller, target, Role::Admin, None).await.map(|_| ()),
        Blow::Disable => p.disable_admin(&caller, target, None).await.map(|_| ()),
        Blow::Remove => p.remove_admin(&caller, target, None).await,
    }
    .map_err(|e| e.code().to_string())
}

/// Two active owners demote, disable or remove each other at the same instant, 20 rounds on each
/// database (every pair of blows at least twice): the last-owner guard (one transaction under the
/// guard's lock) lets at most one through, so at least one active owner always remains, the loser is
/// refused with a stable code, and the Cognito groups follow the roles.
async fn owners_duel(postgres: bool) {
    let blows = [Blow::Demote, Blow::Disable, Blow::Remove];
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..20 {
        let (duel, a, b) = Duel::new(postgres).await;
        let (x, y) = (blows[round % 3], blows[(round / 3) % 3]);
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let (p1, p2) = (duel.p.clone(), duel.p.clone());
        let (b1, b2) = (barrier.clone(), barrier.clone());
        let t1 = tokio::spawn(async move {
            b1.wait().await;
            strike(&p1, a, b, x).await
        });
        let t2 = tokio::spawn(async move {
            b2.wait().await;
            strike(&p2, b, a, y).await
        });
        let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
        let ctx = format!(
            "round {round} ({}): A {x:?} B -> {r1:?}, B {y:?} A -> {r2:?}",
            if postgres { "postgres" } else { "sqlite" }
        );
        assert!(r1.is_ok() || r2.is_ok(), "{ctx}: both refused");
        for r in [&r1, &r2] {
            if let Err(code) = r {
                assert!(
                    [
                        "last_owner",
                        "forbidden",
                        "last_admin",
                        "not_found",
                        "operation_in_progress"
                    ]
                    .contains(&code.as_str()),
                    "{ctx}: unexpected refusal {code}"
                );
            }
        }
        let admins = duel.store.list_admins().await.unwrap();
        let active_owners: Vec<&AdminRecord> = admins
            .iter()
            .filter(|r| r.admin_info.role == Role::Owner && r.user.is_active_admin())
            .collect();
        assert!(!active_owners.is_empty(), "{ctx}: no active owner left: {admins:?}");
        assert!(
            duel.store.list_unfinished().await.unwrap().is_empty(),
            "{ctx}: unfinished sagas"
        );
        for r in &admins {
            let groups = duel
                .idp
                .admin_list_groups_for_user(&r.user.cognito_username)
                .await
                .unwrap();
            assert_eq!(groups, [format!("admin-provisioner-{}", r.admin_info.role)], "{ctx}");
        }
        *outcomes
            .entry(format!(
                "{}/{}",
                r1.err().unwrap_or("ok".into()),
                r2.err().unwrap_or("ok".into())
            ))
            .or_default() += 1;
        duel.finish().await;
    }
    println!(
        "owner duels ({}): {outcomes:?}",
        if postgres { "postgres" } else { "sqlite" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_owner_guard_holds_under_simultaneous_requests_on_sqlite() {
    owners_duel(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_owner_guard_holds_under_simultaneous_requests_on_postgres() {
    owners_duel(true).await;
}
