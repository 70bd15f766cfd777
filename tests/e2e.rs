//! End to end over a real socket: the story of the first two admins, through `serve` and reqwest.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Logs in with the temporary password, answers NEW_PASSWORD_REQUIRED, and returns the ID token.
async fn first_login(client: &reqwest::Client, app: &SpawnedApp, email: &str) -> String {
    let temp = app.temp_password(email);
    let challenge: Value = client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": email, "password": temp}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(challenge["challenge"], "NEW_PASSWORD_REQUIRED", "{challenge}");
    let res = client
        .post(app.url("/api/auth/new-password"))
        .json(
            &json!({"username": challenge["username"], "session": challenge["session"], "new_password": NEW_PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    tokens["id_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_first_admin_invites_a_second_who_signs_in_and_the_audit_log_tells_the_story() {
    // Arrange: a server on a free port, and the first admin bootstrapped as the CLI does.
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    app.app
        .provisioner
        .bootstrap_admin("first@example.com", Some("cli-bootstrap"))
        .await
        .unwrap();

    // Act: first login, an invitation, the invitee's first login.
    let first_token = first_login(&client, &app, "first@example.com").await;
    let created = client
        .post(app.url("/api/admins"))
        .bearer_auth(&first_token)
        .json(&json!({"email": "second@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(created.headers().contains_key("x-request-id"));
    let second_token = first_login(&client, &app, "second@example.com").await;

    // Assert: the second admin is an active admin, and the audit log shows each step.
    let list = client
        .get(app.url("/api/admins"))
        .bearer_auth(&second_token)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let list: Value = list.json().await.unwrap();
    let statuses: Vec<(&str, &str)> = list["admins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["email"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        vec![("first@example.com", "active"), ("second@example.com", "active")]
    );

    let audit: Value = client
        .get(app.url("/api/audit"))
        .bearer_auth(&second_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut steps: Vec<(String, String)> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    steps.reverse();
    let expected = [
        ("bootstrap_admin", "first@example.com"),
        ("first_login_completed", "first@example.com"),
        ("create_admin", "second@example.com"),
        ("first_login_completed", "second@example.com"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(a, t)| (a.to_string(), t.to_string())).collect();
    assert_eq!(steps, expected);

    app.stop().await.unwrap();
}

#[tokio::test]
async fn serve_stops_gracefully_when_shutdown_resolves() {
    let app = spawn_app().await;
    let url = app.url("/healthz");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), StatusCode::OK);

    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), app.stop()).await;

    assert!(matches!(stopped, Ok(Ok(()))), "serve did not return after shutdown");
    assert!(
        reqwest::get(&url).await.is_err(),
        "the port still answers after shutdown"
    );
}
