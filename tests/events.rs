//! `GET /api/events`: every lifecycle change of the whole flow, once, in order, for an admin only;
//! pagination, validation and long-polling.

mod common;

use admin_provisioner_core::faults::FaultMode;
use admin_provisioner_core::identity::op;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn kinds(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["type"].as_str().unwrap(), e["email"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn the_whole_flow_emits_one_event_per_change_and_only_an_admin_reads_them() {
    // Arrange: the first admin bootstrapped and signed in (invited, activated).
    let t = test_app().await;

    // Act: invite, resend, activate, a failed provisioning, an invitation revoked.
    let id = t.invite("second@example.com").await;
    t.clock.advance(chrono::Duration::seconds(61));
    let res = t
        .post(&format!("/api/admins/{id}/resend-invite"), Some(t.token()), json!({}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    t.activate("second@example.com").await;
    t.faults.fail(op::ADMIN_CREATE_USER, FaultMode::Error, None);
    let res = t
        .post("/api/admins", Some(t.token()), json!({"email": "down@example.com"}))
        .await;
    assert_eq!(res.status, StatusCode::BAD_GATEWAY, "the fault fired");
    t.faults.clear();
    let revoked = t.invite("third@example.com").await;
    assert_eq!(
        t.delete(&format!("/api/admins/{revoked}"), Some(t.token()))
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    // Assert
    let page = t.get("/api/events", Some(t.token())).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let page = page.json();
    assert_eq!(
        kinds(&page),
        vec![
            "admin.invited root.admin@example.com",
            "admin.activated root.admin@example.com",
            "admin.invited second@example.com",
            "admin.invite_resent second@example.com",
            "admin.activated second@example.com",
            "admin.provisioning_failed down@example.com",
            "admin.invited third@example.com",
            "admin.removed third@example.com",
        ]
    );
    let events = page["events"].as_array().unwrap();
    assert_eq!(events[2]["admin_id"], id.as_str());
    assert_eq!(events[2]["data"]["actor"], t.admin().id.as_str(), "who invited");
    assert!(events[2]["data"]["request_id"].is_string());
    assert_eq!(events[5]["data"]["state"], "compensated");
    assert_eq!(page["next_after"], events.last().unwrap()["id"]);

    // Nobody else reads them.
    let anonymous = t.get("/api/events", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.code(), "unauthorized");
}

#[tokio::test]
async fn events_are_paged_by_after_and_limit() {
    let t = test_app().await;
    t.invite("a@example.com").await;
    t.invite("b@example.com").await;

    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = t
            .get(&format!("/api/events?after={after}&limit=2"), Some(t.token()))
            .await
            .json();
        let batch = page["events"].as_array().unwrap().clone();
        if batch.is_empty() {
            assert_eq!(page["next_after"], after, "an empty page keeps the cursor");
            break;
        }
        assert!(batch.len() <= 2);
        seen.extend(batch.iter().map(|e| e["id"].as_i64().unwrap()));
        after = page["next_after"].as_i64().unwrap();
    }
    let all = t.get("/api/events", Some(t.token())).await.json();
    let ids: Vec<i64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(seen, ids);
    assert_eq!(ids.len(), 4);
}

#[tokio::test]
async fn events_are_paged_by_the_contracts_cursor_and_next_is_absent_on_the_last_page() {
    let t = test_app().await;
    t.invite("a@example.com").await;
    t.invite("b@example.com").await;
    let all = t.get("/api/events", Some(t.token())).await.json();
    assert!(all.get("next").is_none(), "a page that is not full has no next: {all}");
    let ids: Vec<i64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();

    let mut seen = Vec::new();
    let mut path = "/api/events?limit=3".to_string();
    let mut pages = 0;
    loop {
        pages += 1;
        let page = t.get(&path, Some(t.token())).await.json();
        seen.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/api/events?limit=3&cursor={next}"),
            None => break,
        }
        assert!(pages < 10, "the walk ends");
    }
    assert_eq!(seen, ids);

    let both = t.get("/api/events?after=1&cursor=1", Some(t.token())).await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST, "{}", both.text);
    let forged = t.get("/api/events?cursor=not-a-cursor", Some(t.token())).await;
    assert_eq!(forged.code(), "invalid_request");
}

#[tokio::test]
async fn bad_paging_parameters_are_400_invalid_request() {
    let t = test_app().await;
    for query in ["after=-1", "after=abc", "limit=0", "limit=1001", "wait=31", "wait=-1"] {
        let res = t.get(&format!("/api/events?{query}"), Some(t.token())).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{query}: {}", res.text);
        assert_eq!(res.code(), "invalid_request", "{query}");
        assert!(!res.json()["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_an_event_is_committed() {
    // Arrange: a reader that has seen everything so far.
    let t = test_app().await;
    let last = t.get("/api/events", Some(t.token())).await.json()["next_after"]
        .as_i64()
        .unwrap();

    // Act: it waits up to 20 s; an invitation is committed 300 ms later.
    let started = Instant::now();
    let path = format!("/api/events?after={last}&wait=20");
    let (page, _) = tokio::join!(t.get(&path, Some(t.token())), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        t.invite("late@example.com").await
    });

    // Assert: the answer came with the event, long before the 20 s.
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(kinds(&page.json()), vec!["admin.invited late@example.com"]);
}

#[tokio::test]
async fn a_long_poll_with_nothing_new_answers_empty_after_the_wait() {
    let t = test_app().await;
    let last = t.get("/api/events", Some(t.token())).await.json()["next_after"]
        .as_i64()
        .unwrap();

    let started = Instant::now();
    let page = t
        .get(&format!("/api/events?after={last}&wait=1"), Some(t.token()))
        .await;

    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.json()["events"], json!([]));
    assert_eq!(page.json()["next_after"], last);
}

#[tokio::test]
async fn the_openapi_document_lists_the_events_route() {
    let t = test_app().await;
    let doc = t.get("/openapi.json", None).await.json();
    assert!(doc["paths"]["/api/events"]["get"].is_object(), "{}", doc["paths"]);
}
