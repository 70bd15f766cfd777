//! No SCIM request can take the service down (issue 18, findings 1, 2 and 9), seen from outside: a real
//! `admin-provisioner serve` process (SQLite and the built-in Cognito emulator) with a SCIM token issued
//! by the CLI, sent the requests that aborted it or kept it busy for seconds.
//!
//! * 1,000 nested parentheses (`GET /Users?filter=…`) and a chain of 1,500 `or`s (`POST /Users/.search`:
//!   30 KB, too long for a request target) overflowed the stack and aborted the process; now each is a
//!   `400 invalidFilter` naming the bound, and the same process answers `/healthz` afterwards;
//! * parsing time doubled with each level of parentheses (22 levels: seconds, `/healthz` waiting
//!   meanwhile); now a filter at the depth bound answers `200`, one level more is refused, and
//!   `/healthz` answers within 2 s while a burst of such filters is in flight;
//! * a SCIM body over the size limit answers `413` in the SCIM error shape, not the JSON API's envelope.
//!
//! The bounds themselves (length, depth, comparisons) and the linear parser are specified by the unit
//! tests and properties of `src/scim/filter.rs`. Fixed cost: four `serve` processes, a few seconds.

mod common;
mod process;

use admin_provisioner::scim::filter::{MAX_FILTER_CHARS, MAX_FILTER_DEPTH, MAX_FILTER_TERMS};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use process::{block_on, Deployment, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A `serve` process and a SCIM token for it.
struct Scim {
    deployment: Deployment,
    server: Server,
    token: String,
    client: reqwest::Client,
}

fn start() -> Scim {
    let deployment = Deployment::emulator_sqlite();
    let token = deployment
        .cli(&["scim-token", "create", "--name", "bounds"])
        .trim()
        .to_string();
    assert!(token.starts_with("scim_"), "not a SCIM token: {token:?}");
    let server = deployment.serve(&[]);
    Scim {
        deployment,
        server,
        token,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    }
}

/// Status and JSON body of an answer.
async fn answer(res: reqwest::Response) -> (StatusCode, Value) {
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(content_type, "application/scim+json", "{status} {body}");
    (status, body)
}

impl Scim {
    async fn list(&self, filter: &str) -> (StatusCode, Value) {
        let res = self
            .client
            .get(self.server.url("/scim/v2/Users"))
            .query(&[("filter", filter)])
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("an answer (the process is alive)");
        answer(res).await
    }

    async fn search(&self, filter: &str) -> (StatusCode, Value) {
        let res = self
            .client
            .post(self.server.url("/scim/v2/Users/.search"))
            .header("content-type", "application/scim+json")
            .bearer_auth(&self.token)
            .body(json!({"schemas": [SEARCH_REQUEST], "filter": filter}).to_string())
            .send()
            .await
            .expect("an answer (the process is alive)");
        answer(res).await
    }

    /// Asserts that the process is running and answers `/healthz` within 2 s.
    async fn assert_alive(&mut self) {
        let started = Instant::now();
        let res = self
            .client
            .get(self.server.url("/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .expect("/healthz answers within 2 s");
        assert!(res.status().is_success(), "/healthz: {}", res.status());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            self.server.child.try_wait().unwrap().is_none(),
            "serve exited: {}",
            self.server.log_text()
        );
        assert!(
            !self.server.log_text().contains("stack overflow"),
            "{}",
            self.server.log_text()
        );
    }
}

fn assert_invalid_filter(status: StatusCode, body: &Value, detail: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["schemas"], json!([ERROR_SCHEMA]), "{body}");
    assert_eq!(body["status"], "400", "{body}");
    assert_eq!(body["scimType"], "invalidFilter", "{body}");
    assert_eq!(body["detail"], detail, "{body}");
}

/// `n` nested groups around `userName eq "…"`, alternating `(` and `not (`.
fn nested(n: usize, user_name: &str) -> String {
    let open: String = (0..n).map(|i| if i % 2 == 0 { "(" } else { "not (" }).collect();
    format!("{open}userName eq \"{user_name}\"{}", ")".repeat(n))
}

#[test]
fn a_thousand_nested_parentheses_are_refused_and_the_process_stays_up() {
    block_on(async {
        let mut s = start();
        let filter = format!("{}userName eq \"a\"{}", "(".repeat(1000), ")".repeat(1000));
        let (status, body) = s.list(&filter).await;
        assert_invalid_filter(
            status,
            &body,
            &format!("the filter is 2015 characters long; at most {MAX_FILTER_CHARS} are allowed"),
        );
        // Within the length bound, far too deep: refused by depth.
        let (status, body) = s.list(&format!("{}id pr{}", "(".repeat(500), ")".repeat(500))).await;
        assert_invalid_filter(
            status,
            &body,
            &format!("the filter nests parentheses and brackets 500 deep; at most {MAX_FILTER_DEPTH} are allowed"),
        );
        s.assert_alive().await;
        s.deployment.finish().await;
    });
}

#[test]
fn a_chain_of_1500_ors_is_refused_and_the_process_stays_up() {
    block_on(async {
        let mut s = start();
        let chain = vec![r#"userName eq "a@example.com""#; 1500].join(" or ");
        let (status, body) = s.search(&chain).await;
        let chars = chain.chars().count();
        assert_invalid_filter(
            status,
            &body,
            &format!("the filter is {chars} characters long; at most {MAX_FILTER_CHARS} are allowed"),
        );
        // Within the length bound, too many comparisons.
        let short = vec!["id pr"; 100].join(" or ");
        let (status, body) = s.search(&short).await;
        assert_invalid_filter(
            status,
            &body,
            &format!("the filter has 100 comparisons; at most {MAX_FILTER_TERMS} are allowed"),
        );
        s.assert_alive().await;
        s.deployment.finish().await;
    });
}

#[test]
fn a_filter_at_the_depth_bound_answers_200_and_one_level_deeper_is_refused() {
    block_on(async {
        let mut s = start();
        let (status, body) = s.list(&nested(MAX_FILTER_DEPTH, "nobody@example.com")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["totalResults"], 0, "{body}");
        let (status, body) = s.search(&nested(MAX_FILTER_DEPTH, "nobody@example.com")).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        let (status, body) = s.list(&nested(MAX_FILTER_DEPTH + 1, "nobody@example.com")).await;
        assert_invalid_filter(
            status,
            &body,
            &format!(
                "the filter nests parentheses and brackets {} deep; at most {MAX_FILTER_DEPTH} are allowed",
                MAX_FILTER_DEPTH + 1
            ),
        );
        s.assert_alive().await;
        s.deployment.finish().await;
    });
}

/// The issue measured two requests at 22 levels keeping `/healthz` waiting 6.7 s. A burst of 16 deep
/// filters (22 levels, refused, and 10 levels, answered) is in flight while `/healthz` is asked.
#[test]
fn healthz_answers_while_a_burst_of_deep_filters_is_in_flight() {
    block_on(async {
        let mut s = start();
        let burst = {
            let s = &s;
            async move {
                let requests = (0..16).map(|i| async move {
                    let depth = if i % 2 == 0 { 22 } else { MAX_FILTER_DEPTH };
                    s.list(&nested(depth, &format!("n{i}@example.com"))).await.0
                });
                futures_util::future::join_all(requests).await
            }
        };
        let health = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let started = Instant::now();
            let res = reqwest::Client::new()
                .get(s.server.url("/healthz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .expect("/healthz answers within 2 s during the burst");
            (res.status().as_u16(), started.elapsed())
        };
        let (statuses, (health, waited)) = tokio::join!(burst, health);
        assert_eq!(health, 200);
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        for (i, status) in statuses.into_iter().enumerate() {
            let want = if i % 2 == 0 {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            assert_eq!(status, want, "request {i}");
        }
        s.assert_alive().await;
        s.deployment.finish().await;
    });
}

async fn scim_app() -> (common::TestApp, String) {
    let t = common::test_app().await;
    let (_, token) = admin_provisioner_core::scim_tokens::create(
        t.app.store.as_ref(),
        &admin_provisioner_core::domain::Actor::Operator,
        "bounds",
        None,
    )
    .await
    .unwrap();
    let token = token.expose().to_string();
    (t, token)
}

#[tokio::test]
async fn a_scim_body_over_the_limit_is_413_in_the_scim_error_shape() {
    let (t, token) = scim_app().await;
    let big = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "big@example.com",
        "displayName": "x".repeat(100 * 1024),
    });
    let res = t
        .call(
            Request::builder()
                .method(Method::POST)
                .uri("/scim/v2/Users")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/scim+json")
                .body(Body::from(big.to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", res.text);
    assert_eq!(res.header("content-type").as_deref(), Some("application/scim+json"));
    let body = res.json();
    assert_eq!(body["schemas"], json!([ERROR_SCHEMA]), "{body}");
    assert_eq!(body["status"], "413", "{body}");
    assert_eq!(body["detail"], "the request body is larger than 65536 bytes", "{body}");
    assert!(body.get("error").is_none(), "not the JSON API's envelope: {body}");
    assert!(
        t.app
            .provisioner
            .admin_store()
            .find_admin_by_email("big@example.com")
            .await
            .unwrap()
            .is_none(),
        "nothing was created"
    );
}

#[tokio::test]
async fn a_malformed_scim_query_parameter_is_400_in_the_scim_error_shape() {
    let (t, token) = scim_app().await;
    let res = t
        .call(
            Request::builder()
                .method(Method::GET)
                .uri("/scim/v2/Users?startIndex=first")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text);
    assert_eq!(res.header("content-type").as_deref(), Some("application/scim+json"));
    let body = res.json();
    assert_eq!(body["schemas"], json!([ERROR_SCHEMA]), "{body}");
    assert_eq!(body["status"], "400", "{body}");
    assert_eq!(body["scimType"], "invalidValue", "{body}");
}
