//! Cursor pagination of `GET /api/admins` and `GET /api/audit`: bounded pages, filters, and a walk that shows
//! every admin exactly once while admins are added and removed between the pages.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Fetches one page; returns (ids, next cursor).
async fn admins_page(t: &TestApp, query: &str) -> (Vec<(String, String)>, Option<String>) {
    admins_page_as(t, t.token(), query).await
}

/// [`admins_page`] with another token.
async fn admins_page_as(t: &TestApp, token: &str, query: &str) -> (Vec<(String, String)>, Option<String>) {
    let res = t.get(&format!("/api/admins?{query}"), Some(token)).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let body = res.json();
    let ids = body["admins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_string(),
                a["email"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (ids, body["next"].as_str().map(str::to_string))
}

#[tokio::test]
async fn walking_every_page_shows_each_admin_exactly_once_while_admins_come_and_go() {
    // One admin creates over 40 others here: lift the per-caller creation limit (tested in edge.rs).
    let t = test_app_with(|c| c.admin_rate_limit_per_minute = 0).await;
    // Arrange: 30 admins that stay, 12 that will be removed during the walk.
    let mut stable = vec![t.admin().id.clone()];
    for i in 0..30 {
        stable.push(t.invite(&format!("stay{i:02}@example.com")).await);
    }
    let mut doomed = Vec::new();
    for i in 0..12 {
        doomed.push(t.invite(&format!("doomed{i:02}@example.com")).await);
    }
    // Remove from both ends so removals land both behind and ahead of the cursor.
    let mut removal_order = Vec::new();
    while !doomed.is_empty() {
        removal_order.push(doomed.remove(0));
        if let Some(last) = doomed.pop() {
            removal_order.push(last);
        }
    }

    // Act: walk pages of 4; between pages add one admin and remove one.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut added = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=4&cursor={c}"),
            None => "limit=4".to_string(),
        };
        let (ids, next) = admins_page(&t, &query).await;
        assert!(ids.len() <= 4, "a page never exceeds its limit");
        for (id, _) in ids {
            *seen.entry(id).or_default() += 1;
        }
        pages += 1;
        added.push(t.invite(&format!("added{pages:02}@example.com")).await);
        if let Some(id) = removal_order.pop() {
            let res = t.delete(&format!("/api/admins/{id}"), Some(t.token())).await;
            assert_eq!(res.status, 204, "{}", res.text);
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
        assert!(pages < 100, "the walk ends");
    }

    // Assert: nothing twice; every admin that existed throughout, exactly once.
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "shown more than once: {twice:?}");
    for id in &stable {
        assert_eq!(seen.get(id), Some(&1), "stable admin {id} shown exactly once");
    }
    assert!(pages >= 8, "the walk really was paginated ({pages} pages)");
    assert!(removal_order.is_empty(), "every removal happened during the walk");
    let known: HashSet<&String> = stable.iter().chain(added.iter()).collect();
    for id in seen.keys() {
        let was_doomed = !known.contains(id);
        // A removed admin may have been shown before its removal, never after (it is gone from the store).
        if was_doomed {
            let res = t.get(&format!("/api/admins/{id}"), Some(t.token())).await;
            assert_eq!(res.status, 404, "removed admins are gone");
        }
    }
}

#[tokio::test]
async fn filters_by_status_and_email_prefix_and_pages_stay_bounded() {
    let t = test_app().await;
    for i in 0..5 {
        t.invite(&format!("team.{i}@example.com")).await;
    }
    t.invite("other@example.com").await;

    let (first, next) = admins_page(&t, "limit=2").await;
    assert_eq!(first.len(), 2);
    assert!(next.is_some());

    let (active, next) = admins_page(&t, "status=active").await;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].0, t.admin().id);
    assert!(next.is_none());

    let (invited, _) = admins_page(&t, "status=invited&limit=200").await;
    assert_eq!(invited.len(), 6);

    let (team, _) = admins_page(&t, "email_prefix=TEAM.").await;
    let emails: Vec<&str> = team.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(
        emails,
        (0..5).map(|i| format!("team.{i}@example.com")).collect::<Vec<_>>(),
        "oldest first, case-insensitive prefix"
    );
    // `_` and `%` are literal in the prefix, not wildcards.
    assert!(admins_page(&t, "email_prefix=team_").await.0.is_empty());
    assert!(admins_page(&t, "email_prefix=%25").await.0.is_empty());
    assert!(admins_page(&t, "status=pending").await.0.is_empty());

    // Disabled admins: only under `status=disabled`, no longer under their earlier status.
    assert!(admins_page(&t, "status=disabled").await.0.is_empty());
    let team1 = team[1].0.clone();
    let res = t
        .post(
            &format!("/api/admins/{team1}/disable"),
            Some(t.token()),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let (disabled, next) = admins_page(&t, "status=disabled").await;
    assert_eq!(disabled, vec![(team1.clone(), "team.1@example.com".to_string())]);
    assert!(next.is_none());
    let (invited, _) = admins_page(&t, "status=invited&limit=200").await;
    assert_eq!(invited.len(), 5, "a disabled admin is not listed as invited");
    assert!(invited.iter().all(|(id, _)| *id != team1));
    let res = t.get("/api/admins?status=retired", Some(t.token())).await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(
        res.text.contains("disabled"),
        "the error lists the statuses: {}",
        res.text
    );
    let res = t
        .post(
            &format!("/api/admins/{team1}/enable"),
            Some(t.token()),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(admins_page(&t, "status=disabled").await.0.is_empty());

    // Expired after the validity period.
    // Expired after the validity period (asked of the provisioner: the clock move also expires tokens).
    t.clock.advance(chrono::Duration::days(30));
    let expired = t
        .app
        .provisioner
        .list_admin_page(&admin_provisioner_core::pages::AdminListQuery {
            status: Some(admin_provisioner_core::domain::InviteStatus::Expired),
            limit: 200,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        expired.admins.len(),
        6,
        "the re-enabled admin is invited (expired) again"
    );
    assert!(expired.next.is_none());
}

#[tokio::test]
async fn bad_list_parameters_are_refused_with_invalid_request() {
    let t = test_app().await;
    for query in [
        "limit=0",
        "limit=201",
        "limit=x",
        "status=sleeping",
        "cursor=not-a-cursor",
    ] {
        let res = t.get(&format!("/api/admins?{query}"), Some(t.token())).await;
        assert_eq!(res.status, 400, "{query}: {}", res.text);
        assert_eq!(res.code(), "invalid_request", "{query}");
    }
    let res = t.get("/api/audit?cursor=bogus", Some(t.token())).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.code(), "invalid_request");
}

#[tokio::test]
async fn the_audit_log_pages_newest_first_with_actor_emails() {
    let t = test_app().await;
    for i in 0..7 {
        t.invite(&format!("audited{i}@example.com")).await;
    }
    let all = t.get("/api/audit?limit=1000", Some(t.token())).await.json();
    let all_ids: Vec<i64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(all.get("next").is_none());

    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/audit?limit=3&cursor={c}"),
            None => "/api/audit?limit=3".to_string(),
        };
        let body: Value = t.get(&path, Some(t.token())).await.json();
        let events = body["events"].as_array().unwrap();
        assert!(events.len() <= 3);
        for e in events {
            walked.push(e["id"].as_i64().unwrap());
            if e["action"] == "create_admin" {
                assert_eq!(e["actor"], t.admin().id.as_str());
                assert_eq!(e["actor_email"], ADMIN_EMAIL, "the join finds the acting admin");
            }
        }
        match body["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(walked, all_ids, "pages concatenate to the whole log, newest first");
    assert!(walked.windows(2).all(|w| w[0] > w[1]));
    assert!(walked.len() >= 8);
}
