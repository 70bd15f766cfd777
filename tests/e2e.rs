//! End to end over a real socket: the story of the first two admins, through `serve` and reqwest.

mod common;

use admin_provisioner::app::Hooks;
use admin_provisioner_core::faults::{FaultMode, FaultPlan};
use admin_provisioner_core::identity::op;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

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

/// Graceful shutdown: once the shutdown future resolves, `serve` stops accepting connections at once but
/// lets a request already being handled finish with its normal answer, and returns only after that.
#[tokio::test]
async fn shutdown_refuses_new_connections_and_lets_an_in_flight_request_finish() {
    // Arrange: a first admin signed in; the next AdminCreateUser hangs until the saga's call timeout
    // (`fast_settings`: 5 s, 2 attempts), and the saga's retry then succeeds. That holds a
    // POST /api/admins inside the server for 5 s, and `hang_started` says exactly when it is there.
    let faults = FaultPlan::new();
    let settings = fast_settings();
    assert!(settings.call_timeout >= Duration::from_secs(5) && settings.max_attempts >= 2);
    let mut app = spawn_app_with(Hooks {
        faults: Some(faults.clone()),
        settings: Some(settings),
        ..Hooks::default()
    })
    .await;
    let client = reqwest::Client::new();
    app.app
        .provisioner
        .bootstrap_admin("first@example.com", Some("cli-bootstrap"))
        .await
        .unwrap();
    let token = first_login(&client, &app, "first@example.com").await;
    let creates_before = faults.calls(op::ADMIN_CREATE_USER);
    faults.fail(op::ADMIN_CREATE_USER, FaultMode::Hang, Some(1));

    // Act: the request is in flight (inside AdminCreateUser) when shutdown is triggered.
    let in_flight = tokio::spawn(
        client
            .post(app.url("/api/admins"))
            .bearer_auth(&token)
            .json(&json!({"email": "late@example.com"}))
            .send(),
    );
    tokio::time::timeout(Duration::from_secs(10), faults.hang_started())
        .await
        .expect("the request never reached AdminCreateUser");
    app.begin_shutdown();

    // Assert: new connections are refused while the request is still being handled...
    let addr = app.addr;
    let refused = tokio::time::timeout(Duration::from_secs(3), async move {
        // The serve task drops its listener as soon as it sees the signal; yield until it has run.
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "the port still accepts connections after shutdown began"
    );
    assert!(
        !in_flight.is_finished(),
        "the in-flight request ended before new connections were refused"
    );
    assert!(!app.server_finished(), "serve returned while a request was in flight");

    // ...which then completes with its normal answer,
    let res = tokio::time::timeout(Duration::from_secs(30), in_flight)
        .await
        .expect("the in-flight request did not complete")
        .unwrap()
        .expect("the in-flight request was cut off by the shutdown");
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], "late@example.com", "{body}");
    assert_eq!(
        faults.calls(op::ADMIN_CREATE_USER) - creates_before,
        2,
        "one hung attempt, then the retry"
    );
    let record = app
        .app
        .provisioner
        .admin_store()
        .find_admin_by_email("late@example.com")
        .await
        .unwrap();
    assert!(
        record.is_some(),
        "the admin created by the in-flight request is in the database"
    );

    // ...and `serve` returns once it has drained; the port stays closed.
    let stopped = tokio::time::timeout(Duration::from_secs(10), app.stop()).await;
    assert!(matches!(stopped, Ok(Ok(()))), "serve did not return after shutdown");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port answers after serve returned"
    );
}
