//! Issue 18, "every surface through one core", checked from outside on real `serve` processes (built-in
//! emulator + SQLite): what was found at the SCIM door and at the JSON API no longer holds.
//!
//! * A SCIM create is one saga: two simultaneous `POST /Users` with one `userName` create exactly one
//!   admin, and the `409` leaves nothing behind in either system (20 rounds).
//! * `userName` and `emails` uniqueness cannot be bypassed by the Unicode spelling of an address or by
//!   naming another admin's address.
//! * Limits and self-protection are the core's, so they are the same on every door: SCIM creates spend
//!   the SCIM token's budget; the API refuses an admin disabling or removing themselves.

mod process;

use process::*;
use serde_json::{json, Value};
use std::time::Duration;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Rounds of the SCIM concurrency test (each: two creates at the same instant, then both systems checked).
const SCIM_RACE_ROUNDS: usize = 20;

/// A SCIM token made with the CLI (`scim-token create`), as an operator would.
fn scim_token(d: &Deployment, name: &str) -> String {
    d.cli(&["scim-token", "create", "--name", name]).trim().to_string()
}

async fn scim_post(client: &reqwest::Client, server: &Server, token: &str, body: Value) -> (u16, Value) {
    let res = client
        .post(server.url("/scim/v2/Users"))
        .bearer_auth(token)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn scim_get(client: &reqwest::Client, server: &Server, token: &str, path_and_query: &str) -> (u16, Value) {
    let res = client
        .get(server.url(path_and_query))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// How many e-mails the emulator's mailbox holds for `email`.
fn mails_to(mailbox: &admin_provisioner_emulator::mailbox::Mailbox, email: &str) -> usize {
    mailbox
        .messages()
        .unwrap()
        .iter()
        .filter(|m| m.to.eq_ignore_ascii_case(email))
        .count()
}

fn filter(expr: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!("/scim/v2/Users?filter={encoded}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_scim_creates_with_one_user_name_make_one_admin_and_leave_nothing_behind_a_409() {
    let d = Deployment::emulator_sqlite();
    d.bootstrap_root().await;
    let token = scim_token(&d, "okta");
    let server = d.serve(&[]);
    let client = reqwest::Client::new();
    let mut attempted = vec![process::ROOT_EMAIL.to_string()];
    for round in 0..SCIM_RACE_ROUNDS {
        // A userName that is not an address (Entra ID's UPN-less set-ups), and two different e-mails.
        let user_name = format!("person-{round}");
        let (a, b) = (format!("a{round}@example.com"), format!("b{round}@example.com"));
        attempted.extend([a.clone(), b.clone()]);
        let body = |email: &str| {
            json!({"schemas": [USER], "userName": user_name, "externalId": format!("ext-{email}"),
                   "emails": [{"value": email, "primary": true, "type": "work"}], "active": true})
        };
        let (ra, rb) = tokio::join!(
            scim_post(&client, &server, &token, body(&a)),
            scim_post(&client, &server, &token, body(&b))
        );
        let mut statuses = [ra.0, rb.0];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "round {round}: {ra:?} / {rb:?}");
        let (loser, winner) = if ra.0 == 409 { (&ra, &rb) } else { (&rb, &ra) };
        assert_eq!(loser.1["scimType"], "uniqueness", "round {round}: {loser:?}");
        // The identity provider finds exactly the created User, with its SCIM attributes.
        let (status, list) = scim_get(
            &client,
            &server,
            &token,
            &filter(&format!("userName eq \"{user_name}\"")),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(list["totalResults"], 1, "round {round}: {list}");
        assert_eq!(list["Resources"][0]["id"], winner.1["id"]);
        assert_eq!(list["Resources"][0]["userName"], user_name.as_str());
        assert!(list["Resources"][0]["externalId"].as_str().unwrap().starts_with("ext-"));
    }
    let store = d.store().await;
    let idp = d.idp().await;
    let settled = assert_both_or_neither(store.as_ref(), idp.as_ref(), &attempted, "SCIM race").await;
    assert_eq!(settled.both.len(), 1 + SCIM_RACE_ROUNDS, "{settled:?}");
    assert_eq!(settled.neither.len(), SCIM_RACE_ROUNDS, "{settled:?}");
    // Nobody was e-mailed for a create that answered 409: the claim came before Cognito.
    let mailbox = admin_provisioner_emulator::mailbox::Mailbox::new(d.dir.path().join("mailbox"));
    for email in &attempted {
        let mails = mails_to(&mailbox, email);
        let expected = usize::from(settled.both.contains(email));
        assert_eq!(mails, expected, "{email}: {mails} invitation(s)");
    }
}

#[tokio::test]
async fn the_unicode_spelling_of_an_address_or_another_admins_address_is_refused_at_the_scim_door() {
    let d = Deployment::emulator_sqlite();
    d.bootstrap_root().await;
    let token = scim_token(&d, "entra");
    let server = d.serve(&[]);
    let client = reqwest::Client::new();
    let user = |name: &str, emails: &[&str]| {
        json!({"schemas": [USER], "userName": name,
               "emails": emails.iter().map(|e| json!({"value": e, "type": "work"})).collect::<Vec<_>>()})
    };

    let (status, body) = scim_post(&client, &server, &token, user("idn@xn--bcher-kva.example", &[])).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = scim_post(&client, &server, &token, user("idn@bücher.example", &[])).await;
    assert_eq!((status, body["scimType"].as_str()), (409, Some("uniqueness")), "{body}");
    let (status, body) = scim_post(&client, &server, &token, user("IDN@BÜCHER.example", &[])).await;
    assert_eq!(status, 409, "{body}");
    let (_, list) = scim_get(&client, &server, &token, &filter("userName eq \"idn@bücher.example\"")).await;
    assert_eq!(list["totalResults"], 1, "{list}");

    // A full-width look-alike of an admin's address, as a userName: not an address itself (400), and
    // with a fresh address in `emails` its key is still the admin's (409).
    let (status, body) = scim_post(&client, &server, &token, user("ｉｄｎ@xn--bcher-kva.example", &[])).await;
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{body}"
    );
    let (status, body) = scim_post(
        &client,
        &server,
        &token,
        user("ｉｄｎ@xn--bcher-kva.example", &["fresh@example.com"]),
    )
    .await;
    assert_eq!((status, body["scimType"].as_str()), (409, Some("uniqueness")), "{body}");

    // `emails` naming another admin's address: refused on create and on PATCH.
    let (status, body) = scim_post(&client, &server, &token, user("someone", &[process::ROOT_EMAIL])).await;
    assert_eq!((status, body["scimType"].as_str()), (409, Some("uniqueness")), "{body}");
    let (status, created) = scim_post(&client, &server, &token, user("other@example.com", &[])).await;
    assert_eq!(status, 201, "{created}");
    let res = client
        .patch(server.url(&format!("/scim/v2/Users/{}", created["id"].as_str().unwrap())))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "emails", "value": [{"value": "IDN@bücher.example"}]}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 409);
    // Nothing half-written: the refused PATCH left the User as it was.
    let (_, after) = scim_get(
        &client,
        &server,
        &token,
        &format!("/scim/v2/Users/{}", created["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(after["emails"], created["emails"], "{after}");
}

#[tokio::test]
async fn scim_creates_spend_the_tokens_budget_like_any_actor() {
    let d = Deployment::emulator_sqlite();
    d.bootstrap_root().await;
    let token = scim_token(&d, "okta");
    let server = d.serve(&[("ADMIN_RATE_LIMIT_PER_MINUTE", "3")]);
    let client = reqwest::Client::new();
    for i in 0..3 {
        let email = format!("budget{i}@example.com");
        let (status, body) = scim_post(&client, &server, &token, json!({"schemas": [USER], "userName": email})).await;
        assert_eq!(status, 201, "{body}");
    }
    let res = client
        .post(server.url("/scim/v2/Users"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(json!({"schemas": [USER], "userName": "budget3@example.com"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{body}"
    );
    // Refused before any side effect: no invitation went out for the fourth.
    let mailbox = admin_provisioner_emulator::mailbox::Mailbox::new(d.dir.path().join("mailbox"));
    assert_eq!(mails_to(&mailbox, "budget3@example.com"), 0);
}

#[tokio::test]
async fn an_admin_can_neither_disable_nor_remove_themselves_through_the_api() {
    let d = Deployment::emulator_sqlite();
    d.bootstrap_root().await;
    let server = d.serve(&[]);
    let token = d.sign_in_root(&server).await;
    let client = reqwest::Client::new();
    // A second admin, so that the last-admin guard is not what answers.
    let (status, _) = post_admin(&client, &server.url(""), &token, "second@example.com")
        .await
        .unwrap();
    assert_eq!(status, 201);
    let me = client
        .get(server.url("/api/admins?email_prefix=root"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let my_id = me["admins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == process::ROOT_EMAIL)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (method, path) in [
        (reqwest::Method::POST, format!("/api/admins/{my_id}/disable")),
        (reqwest::Method::DELETE, format!("/api/admins/{my_id}")),
    ] {
        let res = client
            .request(method, server.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "self_action_forbidden", "{path}: {body}");
    }
    // Still an admin, in both systems.
    let res = client
        .get(server.url("/api/admins"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
