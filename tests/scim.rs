//! SCIM 2.0 (`/scim/v2`) specifications: the request sequences Okta and Entra ID send, with Cognito and
//! the database checked after each step; faults through this door; SCIM tokens; the `disabled` state.
//!
//! The sequences follow the identity providers' SCIM documentation: Okta ("SCIM 2.0 protocol":
//! `GET /Users?filter=userName eq "…"&startIndex=1&count=100`, `POST /Users`, `PATCH` with
//! `{"op":"replace","value":{"active":false}}`, `DELETE` only when the app is set to delete), Entra ID
//! ("Tutorial: develop a SCIM endpoint": `GET /Users?filter=userName eq "…"`, `POST /Users` with
//! `externalId`, `PATCH` with `{"op":"Replace","path":"active","value":"False"}` and value paths such as
//! `emails[type eq "work"].value`, `DELETE`).

mod common;

use admin_provisioner_core::domain::Actor;
use admin_provisioner_core::faults::FaultMode;
use admin_provisioner_core::identity::op as idp_op;
use admin_provisioner_core::scim_tokens as tokens;
use admin_provisioner_core::store::{op as store_op, AuditAction};
use admin_provisioner_core::Error;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::{json, Value};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

async fn scim_token(t: &TestApp, name: &str) -> String {
    let (_, token) = tokens::create(t.app.store.as_ref(), &Actor::Operator, name, None)
        .await
        .unwrap();
    token.expose().to_string()
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

fn enc(s: &str) -> String {
    s.replace(' ', "%20").replace('"', "%22")
}

/// Both systems' view of `email`: (database: exists, disabled), (Cognito: exists, enabled).
async fn both(t: &TestApp, email: &str) -> ((bool, bool), (bool, bool)) {
    let db = t
        .app
        .provisioner
        .admin_store()
        .find_admin_by_email(&email.to_lowercase())
        .await
        .unwrap();
    let cognito = t.emulator_user(email).await;
    (
        (db.is_some(), db.is_some_and(|r| r.user.is_disabled())),
        (cognito.is_some(), cognito.is_some_and(|u| u.enabled)),
    )
}

impl TestApp {
    async fn emulator_user(&self, email: &str) -> Option<admin_provisioner_core::identity::IdpUser> {
        use admin_provisioner_core::identity::IdentityProvider;
        self.emulator().admin_get_user(&email.to_lowercase()).await.ok()
    }
}

#[tokio::test]
async fn the_okta_sequence_keeps_cognito_and_the_database_in_step() {
    let t = test_app().await;
    let token = scim_token(&t, "okta").await;
    let email = "okta.person@example.com";

    // Okta first looks the person up by userName.
    let res = t
        .call(scim(
            Method::GET,
            &format!(
                "/scim/v2/Users?filter={}&startIndex=1&count=100",
                enc(&format!("userName eq \"{email}\""))
            ),
            &token,
            None,
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["totalResults"], 0);
    assert_eq!(res.header("content-type").as_deref(), Some("application/scim+json"));

    // Create.
    let res = t
        .call(scim(
            Method::POST,
            "/scim/v2/Users",
            &token,
            Some(json!({
                "schemas": [USER], "userName": email, "active": true,
                "name": {"givenName": "Okta", "familyName": "Person"},
                "emails": [{"primary": true, "value": email, "type": "work"}],
                "displayName": "Okta Person", "externalId": "00u1okta", "groups": [],
            })),
        ))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let id = res.json()["id"].as_str().unwrap().to_string();
    assert!(res
        .header("location")
        .unwrap()
        .ends_with(&format!("/scim/v2/Users/{id}")));
    assert_eq!(res.json()["active"], true);
    assert_eq!(both(&t, email).await, ((true, false), (true, true)));
    assert_eq!(t.invitations_to(email), 1, "the Cognito invitation went out");

    // The same person again: 409 uniqueness.
    let dup = t
        .call(scim(
            Method::POST,
            "/scim/v2/Users",
            &token,
            Some(json!({"schemas": [USER], "userName": email.to_uppercase(), "emails": [{"value": email}]})),
        ))
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.text);
    assert_eq!(dup.json()["scimType"], "uniqueness");
    assert_eq!(dup.json()["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    assert_eq!(dup.json()["status"], "409");

    // Filter finds it (case-insensitively), with its externalId.
    let res = t
        .call(scim(
            Method::GET,
            &format!(
                "/scim/v2/Users?filter={}",
                enc(&format!("userName eq \"{}\"", email.to_uppercase()))
            ),
            &token,
            None,
        ))
        .await;
    assert_eq!(res.json()["totalResults"], 1, "{}", res.text);
    assert_eq!(res.json()["Resources"][0]["id"], id);
    assert_eq!(res.json()["Resources"][0]["externalId"], "00u1okta");

    // Deactivate, Okta's way.
    let patch =
        |active: bool| json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": active}}]});
    let res = t
        .call(scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            &token,
            Some(patch(false)),
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["active"], false);
    assert_eq!(both(&t, email).await, ((true, true), (true, false)));

    // Reactivate.
    let res = t
        .call(scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            &token,
            Some(patch(true)),
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(both(&t, email).await, ((true, false), (true, true)));

    // Delete.
    let res = t
        .call(scim(Method::DELETE, &format!("/scim/v2/Users/{id}"), &token, None))
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    assert_eq!(both(&t, email).await, ((false, false), (false, false)));
    let res = t
        .call(scim(Method::GET, &format!("/scim/v2/Users/{id}"), &token, None))
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);

    // Every step is audited as the SCIM client.
    let audit = t.app.provisioner.admin_store().list_audit(100).await.unwrap();
    let by_okta: Vec<AuditAction> = audit
        .iter()
        .filter(|e| e.entry.actor == Actor::Scim("okta".into()) && e.entry.outcome == "success")
        .map(|e| e.entry.action)
        .collect();
    for action in [
        AuditAction::CreateAdmin,
        AuditAction::DisableAdmin,
        AuditAction::EnableAdmin,
        AuditAction::DeleteAdmin,
    ] {
        assert!(
            by_okta.contains(&action),
            "{action:?} not audited as scim:okta: {by_okta:?}"
        );
    }
}

#[tokio::test]
async fn the_entra_id_sequence_keeps_cognito_and_the_database_in_step() {
    let t = test_app().await;
    let token = scim_token(&t, "entra").await;
    let email = "Entra.Person@Example.com";

    let res = t
        .call(scim(
            Method::GET,
            &format!("/scim/v2/Users?filter={}", enc(&format!("userName eq \"{email}\""))),
            &token,
            None,
        ))
        .await;
    assert_eq!(res.json()["totalResults"], 0, "{}", res.text);

    // Entra ID's create: userPrincipalName as userName, externalId, a work e-mail.
    let res = t
        .call(scim(
            Method::POST,
            "/scim/v2/Users",
            &token,
            Some(json!({
                "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
                "userName": email, "active": true,
                "emails": [{"primary": true, "type": "work", "value": email}],
                "name": {"formatted": "Entra Person", "familyName": "Person", "givenName": "Entra"},
                "roles": [],
            })),
        ))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let id = res.json()["id"].as_str().unwrap().to_string();
    assert_eq!(both(&t, email).await, ((true, false), (true, true)));

    // Entra ID also filters by externalId, and updates attributes by value path.
    let res = t
        .call(scim(
            Method::GET,
            &format!(
                "/scim/v2/Users?filter={}",
                enc("externalId eq \"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef\" or emails[type eq \"home\"]")
            ),
            &token,
            None,
        ))
        .await;
    assert_eq!(res.json()["Resources"][0]["id"], id, "{}", res.text);
    let res = t
        .call(scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            &token,
            Some(json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "entra.person@example.com"},
                {"op": "Replace", "path": "name.familyName", "value": "Person-Smith"},
            ]})),
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);

    // Deactivate, Entra ID's way: a path and the string "False".
    let patch = |active: &str| json!({"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active", "value": active}]});
    let res = t
        .call(scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            &token,
            Some(patch("False")),
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["active"], false);
    assert_eq!(both(&t, email).await, ((true, true), (true, false)));
    // A repeat is harmless.
    let res = t
        .call(scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            &token,
            Some(patch("False")),
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);

    let res = t
        .call(scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            &token,
            Some(patch("True")),
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(both(&t, email).await, ((true, false), (true, true)));

    let res = t
        .call(scim(Method::DELETE, &format!("/scim/v2/Users/{id}"), &token, None))
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    assert_eq!(both(&t, email).await, ((false, false), (false, false)));
}

#[tokio::test]
async fn a_fault_during_a_scim_create_leaves_both_systems_as_they_were() {
    let t = test_app().await;
    let token = scim_token(&t, "okta").await;
    let email = "faulty.create@example.com";
    t.faults.fail(idp_op::ADMIN_CREATE_USER, FaultMode::Error, None);

    let res = t
        .call(scim(
            Method::POST,
            "/scim/v2/Users",
            &token,
            Some(json!({"schemas": [USER], "userName": email, "emails": [{"value": email}]})),
        ))
        .await;

    assert!(t.faults.fired(idp_op::ADMIN_CREATE_USER) > 0, "the fault fired");
    assert_eq!(res.status, StatusCode::BAD_GATEWAY, "{}", res.text);
    assert_eq!(res.json()["status"], "502");
    assert_eq!(both(&t, email).await, ((false, false), (false, false)));
}

#[tokio::test]
async fn a_fault_during_a_scim_deactivate_leaves_both_systems_as_they_were() {
    let t = test_app().await;
    let token = scim_token(&t, "okta").await;
    let email = "faulty.disable@example.com";
    let id = t.invite(email).await;
    let deactivate = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": false}}]});

    // Cognito refuses AdminDisableUser: the database change is undone.
    t.faults.fail(idp_op::ADMIN_DISABLE_USER, FaultMode::Error, None);
    let res = t
        .call(scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            &token,
            Some(deactivate.clone()),
        ))
        .await;
    assert!(t.faults.fired(idp_op::ADMIN_DISABLE_USER) > 0, "the fault fired");
    assert_eq!(res.status, StatusCode::BAD_GATEWAY, "{}", res.text);
    assert_eq!(both(&t, email).await, ((true, false), (true, true)));

    // Cognito disabled the user but the answer was lost every time: undone in both systems.
    t.faults.clear();
    t.faults
        .fail(idp_op::ADMIN_DISABLE_USER, FaultMode::SucceedThenError, None);
    let res = t
        .call(scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            &token,
            Some(deactivate.clone()),
        ))
        .await;
    assert!(t.faults.fired(idp_op::ADMIN_DISABLE_USER) > 0, "the fault fired");
    assert_eq!(res.status, StatusCode::BAD_GATEWAY, "{}", res.text);
    assert_eq!(both(&t, email).await, ((true, false), (true, true)));

    // The database write fails: Cognito is never touched.
    t.faults.clear();
    let disable_calls = t.faults.calls(idp_op::ADMIN_DISABLE_USER);
    t.faults.fail(store_op::SET_ADMIN_DISABLED, FaultMode::Error, None);
    let res = t
        .call(scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            &token,
            Some(deactivate.clone()),
        ))
        .await;
    assert!(t.faults.fired(store_op::SET_ADMIN_DISABLED) > 0, "the fault fired");
    assert!(res.status.is_server_error(), "{}", res.text);
    assert_eq!(t.faults.calls(idp_op::ADMIN_DISABLE_USER), disable_calls);
    assert_eq!(both(&t, email).await, ((true, false), (true, true)));

    // Without faults it works, and the saga log holds no unfinished saga.
    t.faults.clear();
    let res = t
        .call(scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            &token,
            Some(deactivate),
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(both(&t, email).await, ((true, true), (true, false)));
    assert!(t.app.provisioner.saga_log().list_unfinished().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_disabled_admin_is_refused_at_once_and_cannot_log_in_until_enabled() {
    let t = test_app().await;
    let email = "second.admin@example.com";
    t.invite(email).await;
    let second = t.activate(email).await;
    assert_eq!(
        t.get("/api/admins", Some(&second.id_token)).await.status,
        StatusCode::OK
    );

    let res = t
        .post(
            &format!("/api/admins/{}/disable", second.id),
            Some(t.token()),
            json!({}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["status"], "disabled");

    // The token they already hold is refused on the next call; a new login is refused by Cognito.
    assert_eq!(
        t.get("/api/admins", Some(&second.id_token)).await.status,
        StatusCode::FORBIDDEN
    );
    let login = t
        .post(
            "/api/auth/login",
            None,
            json!({"email": email, "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{}", login.text);

    let res = t
        .post(&format!("/api/admins/{}/enable", second.id), Some(t.token()), json!({}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["status"], "active");
    // The token issued before the disable stays refused (the disable ended its session); a new sign-in
    // works (this test's clock stands still: move it past the disable's second, as real time would).
    let old = t.get("/api/admins", Some(&second.id_token)).await;
    assert_eq!(
        (old.status, old.code().as_str()),
        (StatusCode::UNAUTHORIZED, "session_ended")
    );
    t.clock.advance(chrono::Duration::seconds(1));
    let fresh = t.login(email, NEW_PASSWORD).await;
    assert_eq!(t.get("/api/admins", Some(&fresh)).await.status, StatusCode::OK);

    // Events for both changes.
    let events = t.get("/api/events", Some(t.token())).await.json();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(
        kinds.contains(&"admin.disabled") && kinds.contains(&"admin.enabled"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_disabled() {
    let t = test_app().await;
    let token = scim_token(&t, "okta").await;

    let res = t
        .post(
            &format!("/api/admins/{}/disable", t.admin().id),
            Some(t.token()),
            json!({}),
        )
        .await;
    // Through the API the last admin is also the caller: self-protection answers first.
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text);
    assert_eq!(res.code(), "self_action_forbidden");

    // Through SCIM (an identity provider, not the admin) the last-admin guard answers.
    let res = t
        .call(scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{}", t.admin().id),
            &token,
            Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": false}]})),
        ))
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.text);
    assert_eq!(res.json()["detail"].as_str().unwrap(), Error::LastAdmin.to_string());
    assert_eq!(both(&t, ADMIN_EMAIL).await, ((true, false), (true, true)));

    // A change of attributes together with the refused disable: nothing half-written.
    let res = t
        .call(scim(
            Method::PATCH,
            &format!("/scim/v2/Users/{}", t.admin().id),
            &token,
            Some(json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "externalId", "value": "ext-new"},
                {"op": "replace", "path": "active", "value": false}]})),
        ))
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.text);
    let res = t
        .call(scim(
            Method::GET,
            &format!("/scim/v2/Users/{}", t.admin().id),
            &token,
            None,
        ))
        .await;
    assert!(res.json().get("externalId").is_none(), "{}", res.text);
}

#[tokio::test]
async fn a_scim_token_grants_the_scim_endpoints_only_and_a_revoked_one_nothing() {
    let t = test_app().await;
    let token = scim_token(&t, "okta").await;

    // An admin's Cognito token is not a SCIM token, and a SCIM token is not an API token.
    let res = t.call(scim(Method::GET, "/scim/v2/Users", t.token(), None)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.json()["status"], "401");
    assert_eq!(
        t.get("/api/admins", Some(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(t.get("/scim/v2/Users", None).await.status, StatusCode::UNAUTHORIZED);

    assert_eq!(
        t.call(scim(Method::GET, "/scim/v2/Users", &token, None)).await.status,
        StatusCode::OK
    );
    // Stored only as a hash.
    let listed = t.app.store.list_scim_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!format!("{listed:?}").contains(&token));

    tokens::revoke(t.app.store.as_ref(), &Actor::Operator, "okta", None)
        .await
        .unwrap();
    let res = t.call(scim(Method::GET, "/scim/v2/Users", &token, None)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn scim_bodies_are_scim_json_or_json_and_anything_else_is_415_in_the_scim_shape() {
    let t = test_app().await;
    let token = scim_token(&t, "okta").await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/scim/v2/Users")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/plain")
        .body(Body::from("userName=x"))
        .unwrap();
    let res = t.call(req).await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(res.json()["status"], "415");

    let res = t
        .call(scim(
            Method::GET,
            &format!("/scim/v2/Users?filter={}", enc("userName eq")),
            &token,
            None,
        ))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json()["scimType"], "invalidFilter");

    for path in [
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/Schemas",
        "/scim/v2/ResourceTypes",
    ] {
        let res = t.call(scim(Method::GET, path, &token, None)).await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text);
    }
}

// ---------------------------------------------------------------------------------------------------
// The console's Disable / Enable buttons and SCIM tokens page
// ---------------------------------------------------------------------------------------------------

fn console_form(path: &str, cookie: &str, fields: &[(&str, &str)]) -> Request<Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(Body::from(body))
        .unwrap()
}

fn console_get(path: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("host", "localhost")
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap()
}

fn set_cookie(res: &Res, name: &str) -> Option<String> {
    res.headers.get_all("set-cookie").iter().find_map(|v| {
        v.to_str()
            .unwrap()
            .strip_prefix(&format!("{name}="))
            .map(|rest| rest.split(';').next().unwrap().to_string())
    })
}

/// Signs the first admin in through the console form: the session cookie and the page's CSRF token.
async fn console_sign_in(t: &TestApp) -> (String, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("email", ADMIN_EMAIL), ("password", NEW_PASSWORD)])
        .finish();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header("host", "localhost")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let res = t.call(req).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let cookie = format!("ap_session={}", set_cookie(&res, "ap_session").unwrap());
    let page = t.call(console_get("/console", &cookie)).await;
    let marker = r#"name="csrf" value=""#;
    let start = page.text.find(marker).expect("a CSRF field") + marker.len();
    let csrf = page.text[start..start + page.text[start..].find('"').unwrap()].to_string();
    (cookie, csrf)
}

/// Follows a console 303: the flash it set, shown on the page it points to.
async fn follow(t: &TestApp, res: &Res, cookie: &str) -> Res {
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let to = res.header("location").unwrap();
    let flash = set_cookie(res, "ap_flash").expect("a flash message");
    t.call(console_get(&to, &format!("{cookie}; ap_flash={flash}"))).await
}

/// The admins page's line of `email`.
fn row<'a>(page: &'a str, email: &str) -> &'a str {
    let start = page
        .find(&format!(r#"data-email="{email}""#))
        .unwrap_or_else(|| panic!("no line for {email}"));
    let end = page[start..].find("</tr>").unwrap();
    &page[start..start + end]
}

#[tokio::test]
async fn the_console_disables_and_enables_an_admin_in_both_systems() {
    let t = test_app().await;
    let email = "console.disabled@example.com";
    t.invite(email).await;
    let second = t.activate(email).await;
    let (cookie, csrf) = console_sign_in(&t).await;

    let page = t.call(console_get("/console", &cookie)).await;
    let line = row(&page.text, email);
    assert!(
        line.contains(&format!("/console/admins/{}/disable", second.id)),
        "{line}"
    );
    assert!(line.contains("data-confirm=\"Disable "), "{line}");
    assert!(!line.contains("/enable\""), "{line}");
    // No Disable button on one's own line.
    assert!(!row(&page.text, ADMIN_EMAIL).contains("/disable\""));

    // Without the CSRF token: refused, nothing changed.
    let res = t
        .call(console_form(
            &format!("/console/admins/{}/disable", second.id),
            &cookie,
            &[],
        ))
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(both(&t, email).await, ((true, false), (true, true)));

    let res = t
        .call(console_form(
            &format!("/console/admins/{}/disable", second.id),
            &cookie,
            &[("csrf", &csrf)],
        ))
        .await;
    let page = follow(&t, &res, &cookie).await;
    assert!(
        page.text.contains("was disabled in Cognito and the database"),
        "{}",
        page.text
    );
    assert_eq!(both(&t, email).await, ((true, true), (true, false)));
    let line = row(&page.text, email);
    assert!(line.contains(">disabled<"), "{line}");
    assert!(
        line.contains(&format!("/console/admins/{}/enable", second.id)),
        "{line}"
    );
    assert!(!line.contains("/disable\""), "{line}");
    assert_eq!(
        t.get("/api/admins", Some(&second.id_token)).await.status,
        StatusCode::FORBIDDEN
    );

    let res = t
        .call(console_form(
            &format!("/console/admins/{}/enable", second.id),
            &cookie,
            &[("csrf", &csrf)],
        ))
        .await;
    let page = follow(&t, &res, &cookie).await;
    assert!(page.text.contains("was enabled again"), "{}", page.text);
    assert_eq!(both(&t, email).await, ((true, false), (true, true)));
    assert!(row(&page.text, email).contains(">active<"));
    t.login(email, NEW_PASSWORD).await;

    // Disabling oneself is refused with a message; the last-admin guard answers in plain words too.
    let res = t
        .call(console_form(
            &format!("/console/admins/{}/disable", t.admin().id),
            &cookie,
            &[("csrf", &csrf)],
        ))
        .await;
    let page = follow(&t, &res, &cookie).await;
    assert!(
        page.text.contains("You cannot disable or remove your own account"),
        "{}",
        page.text
    );
    assert_eq!(both(&t, ADMIN_EMAIL).await, ((true, false), (true, true)));

    // Removing oneself likewise (the console allowed it before the rule moved into the core).
    let res = t
        .call(console_form(
            &format!("/console/admins/{}/remove", t.admin().id),
            &cookie,
            &[("csrf", &csrf)],
        ))
        .await;
    let page = follow(&t, &res, &cookie).await;
    assert!(
        page.text.contains("You cannot disable or remove your own account"),
        "{}",
        page.text
    );
    assert_eq!(both(&t, ADMIN_EMAIL).await, ((true, false), (true, true)));
}

#[tokio::test]
async fn the_console_scim_tokens_page_shows_a_token_once_and_revokes_it() {
    let logs = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let t = test_app().await;
    let (cookie, csrf) = console_sign_in(&t).await;

    let page = t.call(console_get("/console/scim-tokens", &cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("No SCIM tokens yet"), "{}", page.text);
    assert!(
        page.text.contains(r#"href="/console/scim-tokens""#),
        "linked from the nav"
    );

    // A bad name: refused with a message, nothing stored.
    let res = t
        .call(console_form(
            "/console/scim-tokens",
            &cookie,
            &[("csrf", &csrf), ("name", "Not OK")],
        ))
        .await;
    let page = follow(&t, &res, &cookie).await;
    assert!(page.text.contains("invalid SCIM token name"), "{}", page.text);
    assert!(t.app.store.list_scim_tokens().await.unwrap().is_empty());

    let res = t
        .call(console_form(
            "/console/scim-tokens",
            &cookie,
            &[("csrf", &csrf), ("name", "okta")],
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    let marker = r#"id="scim-token-value" class="secret" type="text" readonly value=""#;
    let start = res.text.find(marker).expect("the token on the page") + marker.len();
    let token = res.text[start..start + res.text[start..].find('"').unwrap()].to_string();
    assert!(token.starts_with(tokens::TOKEN_PREFIX), "{token}");

    // It authenticates the SCIM endpoints.
    assert_eq!(
        t.call(scim(Method::GET, "/scim/v2/Users", &token, None)).await.status,
        StatusCode::OK
    );
    // The list shows the token's facts, never the token; the same name again is refused.
    let page = t.call(console_get("/console/scim-tokens", &cookie)).await;
    assert!(page.text.contains(r#"data-name="okta""#), "{}", page.text);
    assert!(page.text.contains("/console/scim-tokens/okta/revoke"));
    assert!(!page.text.contains(&token));
    let res = t
        .call(console_form(
            "/console/scim-tokens",
            &cookie,
            &[("csrf", &csrf), ("name", "okta")],
        ))
        .await;
    let page = follow(&t, &res, &cookie).await;
    assert!(page.text.contains("already exists"), "{}", page.text);
    assert!(!page.text.contains(&token));
    let listed = t.app.store.list_scim_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some(), "{listed:?}");
    assert_eq!(listed[0].created_by, t.admin().id.to_string());

    // Revoke without CSRF: refused; with it: the token is refused from then on.
    let res = t
        .call(console_form("/console/scim-tokens/okta/revoke", &cookie, &[]))
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(
        t.call(scim(Method::GET, "/scim/v2/Users", &token, None)).await.status,
        StatusCode::OK
    );
    let res = t
        .call(console_form(
            "/console/scim-tokens/okta/revoke",
            &cookie,
            &[("csrf", &csrf)],
        ))
        .await;
    let page = follow(&t, &res, &cookie).await;
    assert!(page.text.contains("SCIM token okta was revoked"), "{}", page.text);
    assert!(page.text.contains(">revoked<"), "{}", page.text);
    assert!(!page.text.contains("/console/scim-tokens/okta/revoke"));
    assert_eq!(
        t.call(scim(Method::GET, "/scim/v2/Users", &token, None)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let audit = t.app.store.list_audit(50).await.unwrap();
    for action in [AuditAction::CreateScimToken, AuditAction::RevokeScimToken] {
        assert!(
            audit
                .iter()
                .any(|e| e.entry.action == action && e.entry.target == "scim-token:okta"),
            "{audit:?}"
        );
    }
    let text = logs.text();
    assert!(!text.is_empty());
    assert!(!text.contains(&token), "the token was logged");
}

/// A `userName` changed by PUT is found by `userName eq` (an indexed lookup), stays unique (409
/// `uniqueness` for another User, by the database index), and unfiltered and non-indexed filters page
/// through every admin with the right `totalResults`.
#[tokio::test]
async fn renamed_user_names_are_unique_and_every_filter_pages_through_all_admins() {
    let t = test_app().await;
    let token = scim_token(&t, "okta").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let email = format!("scim.{i}@example.com");
        let res = t
            .call(scim(
                Method::POST,
                "/scim/v2/Users",
                &token,
                Some(
                    json!({"schemas": [USER], "userName": email, "externalId": format!("ext-{i}"),
                            "emails": [{"value": email, "primary": true}]}),
                ),
            ))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        ids.push(res.json()["id"].as_str().unwrap().to_string());
    }
    let list = |filter: &str, start: u32, count: u32| {
        let q = if filter.is_empty() {
            format!("/scim/v2/Users?startIndex={start}&count={count}")
        } else {
            format!("/scim/v2/Users?filter={}&startIndex={start}&count={count}", enc(filter))
        };
        let t = &t;
        let token = token.clone();
        async move {
            let res = t.call(scim(Method::GET, &q, &token, None)).await;
            assert_eq!(res.status, StatusCode::OK, "{q}: {}", res.text);
            res.json()
        }
    };

    // Rename scim.3 by PUT; the new userName is found, the old one no longer as a userName.
    let res = t
        .call(scim(
            Method::PUT,
            &format!("/scim/v2/Users/{}", ids[3]),
            &token,
            Some(
                json!({"schemas": [USER], "userName": "Renamed.Three@Corp.example", "externalId": "ext-3",
                        "emails": [{"value": "scim.3@example.com", "primary": true}]}),
            ),
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let found = list(r#"userName eq "renamed.three@corp.example""#, 1, 10).await;
    assert_eq!(found["totalResults"], 1, "{found}");
    assert_eq!(found["Resources"][0]["id"], ids[3].as_str());
    assert_eq!(found["Resources"][0]["userName"], "Renamed.Three@Corp.example");
    let either = list(r#"userName eq "scim.1@example.com" or externalId eq "ext-5""#, 1, 10).await;
    let got: Vec<&str> = either["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[1].as_str(), ids[5].as_str()], "oldest first, each once");
    let both_ways = list(
        &format!(r#"id eq "{}" and userName eq "scim.2@example.com""#, ids[2]),
        1,
        10,
    )
    .await;
    assert_eq!(both_ways["totalResults"], 1);
    let none = list(
        &format!(r#"id eq "{}" and userName eq "scim.1@example.com""#, ids[2]),
        1,
        10,
    )
    .await;
    assert_eq!(none["totalResults"], 0);
    assert_eq!(list(r#"id eq "not-a-uuid""#, 1, 10).await["totalResults"], 0);

    // Another User may not take the renamed userName (any case), nor another admin's e-mail.
    for taken in ["RENAMED.three@corp.example", "scim.0@example.com"] {
        let res = t
            .call(scim(
                Method::PATCH,
                &format!("/scim/v2/Users/{}", ids[6]),
                &token,
                Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "userName", "value": taken}]})),
            ))
            .await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{taken}: {}", res.text);
        assert_eq!(res.json()["scimType"], "uniqueness");
    }
    let six = t
        .call(scim(Method::GET, &format!("/scim/v2/Users/{}", ids[6]), &token, None))
        .await;
    assert_eq!(
        six.json()["userName"],
        "scim.6@example.com",
        "the refused PATCH changed nothing"
    );

    // Unfiltered and non-indexed filters: windows of the whole table, totals over all of it (the
    // bootstrapped admin is the eighth).
    let mut walked = Vec::new();
    let mut start = 1;
    loop {
        let page = list("", start, 3).await;
        assert_eq!(page["totalResults"], 8);
        let items = page["Resources"].as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        assert!(items.len() <= 3);
        walked.extend(items.into_iter().map(|r| r["id"].as_str().unwrap().to_string()));
        start += 3;
    }
    assert_eq!(walked.len(), 8);
    assert!(ids.iter().all(|id| walked.contains(id)), "every admin once");
    let sw = list(r#"userName sw "SCIM.""#, 2, 2).await;
    assert_eq!(sw["totalResults"], 6, "{sw}");
    assert_eq!(sw["startIndex"], 2);
    assert_eq!(sw["itemsPerPage"], 2);
    assert_eq!(sw["Resources"][0]["id"], ids[1].as_str());
}

/// Issuing SCIM tokens spends the signed-in admin's budget of changes (`ADMIN_RATE_LIMIT_PER_MINUTE`), in
/// the core like every other change: past it the console says when to come back and no token is stored.
#[tokio::test]
async fn console_token_creation_past_the_admins_budget_is_refused_and_stores_nothing() {
    let t = test_app_with(|c| c.admin_rate_limit_per_minute = 2).await;
    let (cookie, csrf) = console_sign_in(&t).await;
    for name in ["one", "two", "three"] {
        let res = t
            .call(console_form(
                "/console/scim-tokens",
                &cookie,
                &[("csrf", &csrf), ("name", name)],
            ))
            .await;
        if name == "three" {
            let page = follow(&t, &res, &cookie).await;
            assert!(page.text.contains("many changes to admins"), "{}", page.text);
        } else {
            assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        }
    }
    let names: Vec<String> = t
        .app
        .store
        .list_scim_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.contains(&"three".to_string()));
}
