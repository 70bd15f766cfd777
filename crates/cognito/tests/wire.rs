//! The built-in emulator on Cognito's wire protocol, from outside: real sockets, raw HTTP and the AWS SDK.
//!
//! * error shapes: a malformed body, an unknown target, an unimplemented operation and a 1 MB body each get
//!   Cognito's `{"__type", "message"}` answer (and the server keeps answering);
//! * an application's sign-in through the SDK: first login with `NEW_PASSWORD_REQUIRED`, `GetUser`,
//!   `REFRESH_TOKEN_AUTH`, `ChangePassword`, `GlobalSignOut`, admin sign-in and `AdminSetUserPassword`, the
//!   pool's descriptions (the product's `doctor` finds nothing blocking), the `.well-known` documents;
//! * a restart on the same state file keeps users, passwords, refresh tokens and the signing key;
//! * a differential test: one scenario sent as raw JSON to moto and to the emulator, responses compared
//!   field by field; every place moto departs from Cognito's documents is named in [`MOTO_DEVIATIONS`].
//!
//! Run: `cargo nextest run -p admin-provisioner-cognito --test wire` (the differential test needs
//! `moto_server`, see `testing`).

use admin_provisioner_cognito::testing::{MotoServer, PoolOptions};
use admin_provisioner_cognito::{CognitoConfig, CognitoIdentityProvider};
use admin_provisioner_emulator::{CognitoEmulator, EmulatorConfig};
use aws_sdk_cognitoidentityprovider::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata;
use aws_sdk_cognitoidentityprovider::types::{AuthFlowType, ChallengeNameType, MessageActionType};
use aws_sdk_cognitoidentityprovider::Client;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

const TEMP: &str = "Temp#Passw0rd";
const NEW: &str = "N3w#Password!";
const NEWER: &str = "N3wer#Password!";

/// A running wire endpoint over an emulator.
struct Wire {
    endpoint: String,
    pool_id: String,
    client_id: String,
    issuer: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves an emulator on a free loopback port, issuer `http://<address>/<pool id>`.
async fn start(config: EmulatorConfig) -> Wire {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let mut config = config;
    let issuer = format!("{endpoint}/{}", config.pool_id);
    config.issuer = Some(issuer.clone());
    let (pool_id, client_id) = (config.pool_id.clone(), config.client_id.clone());
    let emu = CognitoEmulator::open(config).await.unwrap();
    let server = tokio::spawn(admin_provisioner_emulator::wire::serve(
        emu,
        listener,
        std::future::pending(),
    ));
    Wire {
        endpoint,
        pool_id,
        client_id,
        issuer,
        server,
    }
}

async fn in_memory(dir: &Path) -> Wire {
    start(EmulatorConfig::in_memory(dir.join("mailbox"))).await
}

fn sdk(endpoint: &str) -> Client {
    let config = aws_sdk_cognitoidentityprovider::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "wire"))
        .retry_config(aws_sdk_cognitoidentityprovider::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// A raw call: (HTTP status, `x-amzn-ErrorType`, JSON body). Signed with a syntactically valid but fake
/// SigV4 header, as moto needs to route it.
async fn raw(endpoint: &str, target: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, Option<String>, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/cognito-idp/aws4_request, SignedHeaders=host, Signature=00",
        )
        .body(body);
    if let Some(op) = target {
        request = request.header("x-amz-target", format!("AWSCognitoIdentityProviderService.{op}"));
    }
    let response = request.send().await.expect("the endpoint answers");
    let status = response.status().as_u16();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(':').next().unwrap_or(s).to_string());
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "<not json>": text }));
    (status, error_type, json)
}

async fn call(endpoint: &str, op: &str, body: Value) -> (u16, Option<String>, Value) {
    raw(endpoint, Some(op), body.to_string()).await
}

/// The error code of a raw answer: `__type` without a `prefix#`.
fn code(answer: &(u16, Option<String>, Value)) -> String {
    let t = answer.2["__type"].as_str().unwrap_or("<none>");
    t.rsplit('#').next().unwrap_or(t).to_string()
}

fn assert_error(answer: &(u16, Option<String>, Value), status: u16, expected: &str) {
    assert_eq!(answer.0, status, "{answer:?}");
    assert_eq!(code(answer), expected, "{answer:?}");
    assert_eq!(answer.1.as_deref(), Some(expected), "x-amzn-ErrorType of {answer:?}");
    assert!(
        answer.2["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message: {answer:?}"
    );
}

#[tokio::test]
async fn malformed_unknown_unsupported_and_oversized_requests_get_cognitos_error_shape() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let wire = in_memory(dir.path()).await;
    let e = wire.endpoint.as_str();

    // Act
    let malformed = raw(e, Some("ListUsers"), "{\"UserPoolId\": ").await;
    let not_an_object = raw(e, Some("ListUsers"), "[1, 2]").await;
    let no_target = raw(e, None, "{}").await;
    let foreign_target = {
        let r = reqwest::Client::new()
            .post(format!("{e}/"))
            .header("x-amz-target", "DynamoDB_20120810.ListTables")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let header = r
            .headers()
            .get("x-amzn-errortype")
            .map(|v| v.to_str().unwrap().to_string());
        (status, header, r.json::<Value>().await.unwrap())
    };
    let unsupported = call(e, "DeleteUserPool", json!({"UserPoolId": wire.pool_id})).await;
    let big = format!("{{\"UserPoolId\": \"{}\"}}", "x".repeat(1024 * 1024));
    let oversized = raw(e, Some("ListUsers"), big).await;
    let wrong_pool = call(
        e,
        "AdminGetUser",
        json!({"UserPoolId": "us-east-1_Nope", "Username": "a"}),
    )
    .await;
    let missing_member = call(e, "AdminGetUser", json!({"UserPoolId": wire.pool_id})).await;
    let wrong_type = call(e, "AdminGetUser", json!({"UserPoolId": wire.pool_id, "Username": 7})).await;
    let after = call(e, "ListUsers", json!({"UserPoolId": wire.pool_id})).await;

    // Assert
    assert_error(&malformed, 400, "SerializationException");
    assert_error(&not_an_object, 400, "SerializationException");
    assert_error(&no_target, 400, "UnknownOperationException");
    assert_error(&foreign_target, 400, "UnknownOperationException");
    assert_error(&unsupported, 400, "UnsupportedOperationException");
    assert!(unsupported.2["message"].as_str().unwrap().contains("DeleteUserPool"));
    assert_error(&oversized, 413, "RequestEntityTooLargeException");
    assert_error(&wrong_pool, 400, "ResourceNotFoundException");
    assert_error(&missing_member, 400, "InvalidParameterException");
    assert!(missing_member.2["message"].as_str().unwrap().contains("'username'"));
    assert_error(&wrong_type, 400, "SerializationException");
    assert_eq!(after.0, 200, "the server still answers: {after:?}");
    assert_eq!(after.2, json!({"Users": []}));
}

#[tokio::test]
async fn an_application_signs_in_refreshes_changes_its_password_and_signs_out_through_the_sdk() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let wire = in_memory(dir.path()).await;
    let c = sdk(&wire.endpoint);
    let user = "ann@example.com";
    c.admin_create_user()
        .user_pool_id(&wire.pool_id)
        .username(user)
        .user_attributes(
            aws_sdk_cognitoidentityprovider::types::AttributeType::builder()
                .name("email")
                .value(user)
                .build()
                .unwrap(),
        )
        .temporary_password(TEMP)
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();

    // Act + Assert: first login.
    let first = c
        .initiate_auth()
        .client_id(&wire.client_id)
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", user)
        .auth_parameters("PASSWORD", TEMP)
        .send()
        .await
        .unwrap();
    assert_eq!(first.challenge_name(), Some(&ChallengeNameType::NewPasswordRequired));
    let params = first.challenge_parameters().unwrap();
    assert_eq!(params["USER_ID_FOR_SRP"], user);
    let attrs: Value = serde_json::from_str(&params["userAttributes"]).unwrap();
    assert_eq!(attrs["email"], user);
    let done = c
        .respond_to_auth_challenge()
        .client_id(&wire.client_id)
        .challenge_name(ChallengeNameType::NewPasswordRequired)
        .session(first.session().unwrap())
        .challenge_responses("USERNAME", user)
        .challenge_responses("NEW_PASSWORD", NEW)
        .send()
        .await
        .unwrap();
    let auth = done.authentication_result().unwrap();
    assert_eq!(auth.token_type(), Some("Bearer"));
    assert_eq!(auth.expires_in(), 3600);
    let access = auth.access_token().unwrap().to_string();
    let refresh = auth.refresh_token().unwrap().to_string();

    // GetUser with the access token.
    let me = c.get_user().access_token(&access).send().await.unwrap();
    assert_eq!(me.username(), user);
    assert!(me.user_attributes().iter().any(|a| a.name() == "sub"));

    // REFRESH_TOKEN_AUTH: new ID and access tokens, no new refresh token.
    let refreshed = c
        .initiate_auth()
        .client_id(&wire.client_id)
        .auth_flow(AuthFlowType::RefreshTokenAuth)
        .auth_parameters("REFRESH_TOKEN", &refresh)
        .send()
        .await
        .unwrap();
    let r = refreshed.authentication_result().unwrap();
    assert!(r.id_token().is_some() && r.access_token().is_some());
    assert!(r.refresh_token().is_none(), "Cognito sends no new refresh token");

    // ChangePassword: the previous password must be right.
    let wrong = c
        .change_password()
        .access_token(&access)
        .previous_password("Wr0ng#Password")
        .proposed_password(NEWER)
        .send()
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Some("NotAuthorizedException"));
    c.change_password()
        .access_token(&access)
        .previous_password(NEW)
        .proposed_password(NEWER)
        .send()
        .await
        .unwrap();
    let admin_login = c
        .admin_initiate_auth()
        .user_pool_id(&wire.pool_id)
        .client_id(&wire.client_id)
        .auth_flow(AuthFlowType::AdminUserPasswordAuth)
        .auth_parameters("USERNAME", user)
        .auth_parameters("PASSWORD", NEWER)
        .send()
        .await
        .unwrap();
    assert!(admin_login.authentication_result().is_some());
    let old = c
        .admin_initiate_auth()
        .user_pool_id(&wire.pool_id)
        .client_id(&wire.client_id)
        .auth_flow(AuthFlowType::AdminUserPasswordAuth)
        .auth_parameters("USERNAME", user)
        .auth_parameters("PASSWORD", NEW)
        .send()
        .await
        .unwrap_err();
    assert_eq!(old.code(), Some("NotAuthorizedException"));

    // GlobalSignOut: refresh tokens and access tokens of every session stop working for Cognito's calls.
    c.global_sign_out().access_token(&access).send().await.unwrap();
    let after_refresh = c
        .initiate_auth()
        .client_id(&wire.client_id)
        .auth_flow(AuthFlowType::RefreshTokenAuth)
        .auth_parameters("REFRESH_TOKEN", &refresh)
        .send()
        .await
        .unwrap_err();
    assert_eq!(after_refresh.code(), Some("NotAuthorizedException"));
    let after_get = c.get_user().access_token(&access).send().await.unwrap_err();
    assert_eq!(after_get.code(), Some("NotAuthorizedException"));
    assert_eq!(after_get.message(), Some("Access Token has been revoked"));
    let forged = c.get_user().access_token("not.a.token").send().await.unwrap_err();
    assert_eq!(forged.code(), Some("NotAuthorizedException"));

    // AdminSetUserPassword (permanent) and a sign-in with it.
    c.admin_set_user_password()
        .user_pool_id(&wire.pool_id)
        .username(user)
        .password("Set#ByAdm1n")
        .permanent(true)
        .send()
        .await
        .unwrap();
    let again = c
        .initiate_auth()
        .client_id(&wire.client_id)
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", user)
        .auth_parameters("PASSWORD", "Set#ByAdm1n")
        .send()
        .await
        .unwrap();
    let id_token = again.authentication_result().unwrap().id_token().unwrap().to_string();

    // The pool, its client, and the product's doctor on them.
    let pools = c.list_user_pools().max_results(10).send().await.unwrap();
    assert_eq!(pools.user_pools().len(), 1);
    assert_eq!(pools.user_pools()[0].id(), Some(wire.pool_id.as_str()));
    let clients = c
        .list_user_pool_clients()
        .user_pool_id(&wire.pool_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        clients.user_pool_clients()[0].client_id(),
        Some(wire.client_id.as_str())
    );
    let described = c.describe_user_pool().user_pool_id(&wire.pool_id).send().await.unwrap();
    assert_eq!(described.user_pool().unwrap().estimated_number_of_users(), 1);
    let provider = CognitoIdentityProvider::from_client(
        c.clone(),
        CognitoConfig {
            user_pool_id: wire.pool_id.clone(),
            client_id: wire.client_id.clone(),
            endpoint_url: Some(wire.endpoint.clone()),
            issuer: Some(wire.issuer.clone()),
            ..CognitoConfig::default()
        },
    );
    let findings = admin_provisioner_cognito::doctor::check(&provider, 7).await.unwrap();
    assert!(
        !admin_provisioner_cognito::doctor::has_blocking(&findings),
        "doctor finds nothing blocking: {findings:?}"
    );

    // The issuer's documents: a standard verifier finds the key from `iss`.
    let http = reqwest::Client::new();
    let discovery: Value = http
        .get(format!("{}/.well-known/openid-configuration", wire.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], wire.issuer.as_str());
    let jwks: jsonwebtoken::jwk::JwkSet = http
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(&id_token).unwrap().kid.unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[wire.issuer.as_str()]);
    validation.set_audience(&[wire.client_id.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(&id_token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["cognito:username"], user);
    let missing = http
        .get(format!("{}/us-east-1_Other/.well-known/jwks.json", wire.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn a_restart_on_the_same_state_keeps_users_passwords_refresh_tokens_and_the_key() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").join("cognito-emulator.db");
    let wire = start(EmulatorConfig::file(&state, dir.path().join("mailbox"))).await;
    let c = sdk(&wire.endpoint);
    let user = "bob@example.com";
    c.admin_create_user()
        .user_pool_id(&wire.pool_id)
        .username(user)
        .user_attributes(
            aws_sdk_cognitoidentityprovider::types::AttributeType::builder()
                .name("email")
                .value(user)
                .build()
                .unwrap(),
        )
        .temporary_password(TEMP)
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    c.admin_set_user_password()
        .user_pool_id(&wire.pool_id)
        .username(user)
        .password(NEW)
        .permanent(true)
        .send()
        .await
        .unwrap();
    let login = c
        .initiate_auth()
        .client_id(&wire.client_id)
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", user)
        .auth_parameters("PASSWORD", NEW)
        .send()
        .await
        .unwrap();
    let refresh = login
        .authentication_result()
        .unwrap()
        .refresh_token()
        .unwrap()
        .to_string();
    let jwks_before: Value = reqwest::get(format!("{}/.well-known/jwks.json", wire.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Act: stop the server (dropping the emulator), start a new one on the same file and another port.
    drop(c);
    drop(wire);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let wire = start(EmulatorConfig::file(&state, dir.path().join("mailbox"))).await;
    let c = sdk(&wire.endpoint);

    // Assert
    let got = c
        .admin_get_user()
        .user_pool_id(&wire.pool_id)
        .username(user)
        .send()
        .await
        .unwrap();
    assert_eq!(got.user_status().map(|s| s.as_str()), Some("CONFIRMED"));
    let login = c
        .initiate_auth()
        .client_id(&wire.client_id)
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", user)
        .auth_parameters("PASSWORD", NEW)
        .send()
        .await
        .unwrap();
    assert!(login.authentication_result().is_some(), "the password survives");
    let refreshed = c
        .initiate_auth()
        .client_id(&wire.client_id)
        .auth_flow(AuthFlowType::RefreshTokenAuth)
        .auth_parameters("REFRESH_TOKEN", &refresh)
        .send()
        .await
        .unwrap();
    assert!(
        refreshed.authentication_result().is_some(),
        "the refresh token survives"
    );
    let jwks_after: Value = reqwest::get(format!("{}/.well-known/jwks.json", wire.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_before, jwks_after, "the signing key survives");
}

// ------------------------------------------------------------------------------------------ differential

/// Where moto (5.2.5) departs from Cognito's documents in this scenario; the emulator follows the
/// documents. Each entry: (step label prefix, fragment of the difference, what Cognito does). The test
/// fails on a difference not named here, and on a named one that no longer shows (moto fixed it).
///
/// Not exercised here, known from the identity suite and the facts sheet: moto's RESEND replaces the user
/// (new `sub`) and in e-mail-as-username pools adds a second one; its REFRESH_TOKEN_AUTH does not check
/// `Enabled`; its `AdminUserGlobalSignOut` is ineffective in e-mail-as-username pools.
const MOTO_DEVIATIONS: &[(&str, &str, &str)] = &[
    (
        "create bad password",
        "moto answered 200",
        "AdminCreateUser checks TemporaryPassword against the pool's policy (InvalidPasswordException); moto accepts any",
    ),
    (
        "create",
        "User members",
        "UserType of a user without MFA has no MFAOptions; moto always adds an empty one",
    ),
    (
        "get",
        "members",
        "AdminGetUser of a user without MFA has no MFAOptions, PreferredMfaSetting or UserMFASettingList (the AWS CLI \
         reference's admin-get-user example); moto always adds them empty",
    ),
    (
        "login temporary password",
        "ChallengeParameters",
        "NEW_PASSWORD_REQUIRED carries USER_ID_FOR_SRP, requiredAttributes and userAttributes; moto sends USERNAME only",
    ),
    (
        "login:",
        "members",
        "a sign-in answered with tokens carries an empty ChallengeParameters map (the AWS CLI reference's initiate-auth \
         example); moto leaves it out",
    ),
];

/// The set of member names of a JSON object (sorted), for shape comparison.
fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn attribute_names(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["Name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One backend of the differential test.
struct Target {
    name: &'static str,
    endpoint: String,
    pool_id: String,
    client_id: String,
}

/// The scenario: each step's (label, raw answer). Usernames are fixed, so both backends see the same input.
async fn scenario(t: &Target) -> Vec<(String, (u16, Option<String>, Value))> {
    let e = t.endpoint.as_str();
    let pool = t.pool_id.as_str();
    let client = t.client_id.as_str();
    let create = |user: &str| {
        json!({
            "UserPoolId": pool, "Username": user, "TemporaryPassword": TEMP, "MessageAction": "SUPPRESS",
            "UserAttributes": [{"Name": "email", "Value": user}, {"Name": "email_verified", "Value": "true"}],
            "DesiredDeliveryMediums": ["EMAIL"],
        })
    };
    let mut steps = Vec::new();
    let mut step = |label: &str, answer| steps.push((label.to_string(), answer));
    step("create", call(e, "AdminCreateUser", create("dora@example.com")).await);
    step(
        "create duplicate",
        call(e, "AdminCreateUser", create("dora@example.com")).await,
    );
    step(
        "create bad password",
        call(e, "AdminCreateUser", {
            let mut r = create("eve@example.com");
            r["TemporaryPassword"] = json!("short");
            r
        })
        .await,
    );
    step(
        "get",
        call(
            e,
            "AdminGetUser",
            json!({"UserPoolId": pool, "Username": "dora@example.com"}),
        )
        .await,
    );
    step(
        "get missing",
        call(
            e,
            "AdminGetUser",
            json!({"UserPoolId": pool, "Username": "nobody@example.com"}),
        )
        .await,
    );
    step(
        "get unknown pool",
        call(
            e,
            "AdminGetUser",
            json!({"UserPoolId": "us-east-1_Nowhere99", "Username": "x"}),
        )
        .await,
    );
    step(
        "list filtered",
        call(
            e,
            "ListUsers",
            json!({"UserPoolId": pool, "Filter": "email = \"dora@example.com\"", "Limit": 10}),
        )
        .await,
    );
    step(
        "list prefix",
        call(
            e,
            "ListUsers",
            json!({"UserPoolId": pool, "Filter": "email ^= \"dor\""}),
        )
        .await,
    );
    step(
        "login wrong password",
        call(
            e,
            "InitiateAuth",
            json!({
                "ClientId": client, "AuthFlow": "USER_PASSWORD_AUTH",
                "AuthParameters": {"USERNAME": "dora@example.com", "PASSWORD": "Wr0ng#Password"},
            }),
        )
        .await,
    );
    let challenge = call(
        e,
        "InitiateAuth",
        json!({
            "ClientId": client, "AuthFlow": "USER_PASSWORD_AUTH",
            "AuthParameters": {"USERNAME": "dora@example.com", "PASSWORD": TEMP},
        }),
    )
    .await;
    let session = challenge.2["Session"].as_str().unwrap_or_default().to_string();
    step("login temporary password", challenge);
    let respond = |password: &str| {
        json!({
            "ClientId": client, "ChallengeName": "NEW_PASSWORD_REQUIRED", "Session": session,
            "ChallengeResponses": {"USERNAME": "dora@example.com", "NEW_PASSWORD": password},
        })
    };
    step(
        "new password breaking the policy",
        call(e, "RespondToAuthChallenge", respond("Password1234")).await,
    );
    step("new password", call(e, "RespondToAuthChallenge", respond(NEW)).await);
    step(
        "login",
        call(
            e,
            "InitiateAuth",
            json!({
                "ClientId": client, "AuthFlow": "USER_PASSWORD_AUTH",
                "AuthParameters": {"USERNAME": "dora@example.com", "PASSWORD": NEW},
            }),
        )
        .await,
    );
    step(
        "disable",
        call(
            e,
            "AdminDisableUser",
            json!({"UserPoolId": pool, "Username": "dora@example.com"}),
        )
        .await,
    );
    step(
        "login disabled",
        call(
            e,
            "InitiateAuth",
            json!({
                "ClientId": client, "AuthFlow": "USER_PASSWORD_AUTH",
                "AuthParameters": {"USERNAME": "dora@example.com", "PASSWORD": NEW},
            }),
        )
        .await,
    );
    step(
        "get disabled",
        call(
            e,
            "AdminGetUser",
            json!({"UserPoolId": pool, "Username": "dora@example.com"}),
        )
        .await,
    );
    step(
        "delete",
        call(
            e,
            "AdminDeleteUser",
            json!({"UserPoolId": pool, "Username": "dora@example.com"}),
        )
        .await,
    );
    step(
        "delete missing",
        call(
            e,
            "AdminDeleteUser",
            json!({"UserPoolId": pool, "Username": "dora@example.com"}),
        )
        .await,
    );
    step(
        "resend missing",
        call(
            e,
            "AdminCreateUser",
            json!({
                "UserPoolId": pool, "Username": "nobody@example.com", "MessageAction": "RESEND",
            }),
        )
        .await,
    );
    steps
}

#[tokio::test]
async fn moto_and_the_emulator_answer_the_same_scenario_with_the_same_shapes_and_error_codes() {
    // Arrange
    let moto = MotoServer::shared().unwrap_or_else(|e| panic!("{e:#}"));
    let pool = moto.create_pool(PoolOptions::default()).await.unwrap();
    let moto_target = Target {
        name: "moto",
        endpoint: moto.endpoint().to_string(),
        pool_id: pool.user_pool_id.clone(),
        client_id: pool.client_id.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let wire = in_memory(dir.path()).await;
    let emu_target = Target {
        name: "emulator",
        endpoint: wire.endpoint.clone(),
        pool_id: wire.pool_id.clone(),
        client_id: wire.client_id.clone(),
    };

    // Act
    let from_moto = scenario(&moto_target).await;
    let from_emu = scenario(&emu_target).await;

    // Assert: step by step, status and error code; for successes, the members (and nested members).
    let mut differences = Vec::new();
    for ((label, m), (_, x)) in from_moto.iter().zip(&from_emu) {
        let (m_code, x_code) = (code(m), code(x));
        if m.0 != x.0 || m_code != x_code {
            differences.push(format!(
                "{label}: {} answered {} {m_code}, {} answered {} {x_code}",
                moto_target.name, m.0, emu_target.name, x.0
            ));
            continue;
        }
        if m.0 != 200 {
            continue;
        }
        let (mb, xb) = (&m.2, &x.2);
        if keys(mb) != keys(xb) {
            differences.push(format!("{label}: members {:?} vs {:?}", keys(mb), keys(xb)));
        }
        for nested in ["User", "AuthenticationResult"] {
            if keys(&mb[nested]) != keys(&xb[nested]) {
                differences.push(format!(
                    "{label}: {nested} members {:?} vs {:?}",
                    keys(&mb[nested]),
                    keys(&xb[nested])
                ));
            }
        }
        for (name, a, b) in [
            ("UserStatus", &mb["UserStatus"], &xb["UserStatus"]),
            ("User.UserStatus", &mb["User"]["UserStatus"], &xb["User"]["UserStatus"]),
            ("Enabled", &mb["Enabled"], &xb["Enabled"]),
            ("ChallengeName", &mb["ChallengeName"], &xb["ChallengeName"]),
            (
                "Users.len",
                &json!(mb["Users"].as_array().map(Vec::len)),
                &json!(xb["Users"].as_array().map(Vec::len)),
            ),
            (
                "TokenType",
                &mb["AuthenticationResult"]["TokenType"],
                &xb["AuthenticationResult"]["TokenType"],
            ),
        ] {
            if a != b {
                differences.push(format!("{label}: {name} {a} vs {b}"));
            }
        }
        for attrs in ["UserAttributes", "Attributes"] {
            let (a, b) = (
                attribute_names(&mb[attrs])
                    .union(&attribute_names(&mb["User"][attrs]))
                    .cloned()
                    .collect::<BTreeSet<_>>(),
                attribute_names(&xb[attrs])
                    .union(&attribute_names(&xb["User"][attrs]))
                    .cloned()
                    .collect::<BTreeSet<_>>(),
            );
            if a != b {
                differences.push(format!("{label}: {attrs} names {a:?} vs {b:?}"));
            }
        }
        if keys(&mb["ChallengeParameters"]) != keys(&xb["ChallengeParameters"]) {
            differences.push(format!(
                "{label}: ChallengeParameters {:?} vs {:?}",
                keys(&mb["ChallengeParameters"]),
                keys(&xb["ChallengeParameters"])
            ));
        }
    }

    // Every difference must be a named moto deviation, and every named deviation must show.
    for d in &differences {
        println!("difference: {d}");
    }
    let named = |d: &String| {
        MOTO_DEVIATIONS
            .iter()
            .any(|(label, fragment, _)| d.starts_with(label) && d.contains(fragment))
    };
    let unexplained: Vec<&String> = differences.iter().filter(|d| !named(d)).collect();
    assert!(
        unexplained.is_empty(),
        "differences not named in MOTO_DEVIATIONS: {unexplained:#?}\n(all: {differences:#?})"
    );
    for (label, fragment, why) in MOTO_DEVIATIONS {
        assert!(
            differences.iter().any(|d| d.starts_with(label) && d.contains(fragment)),
            "the named moto deviation at {label:?} ({why}) no longer shows: moto changed, update MOTO_DEVIATIONS"
        );
    }
    // The emulator's side of each named difference, held to Cognito's documents.
    let challenge = &from_emu
        .iter()
        .find(|(l, _)| l == "login temporary password")
        .unwrap()
        .1
         .2;
    assert_eq!(
        keys(&challenge["ChallengeParameters"]),
        ["USER_ID_FOR_SRP", "requiredAttributes", "userAttributes"]
            .map(String::from)
            .into(),
    );
    let login = &from_emu.iter().find(|(l, _)| l == "login").unwrap().1 .2;
    assert_eq!(login["ChallengeParameters"], json!({}));
    let got = &from_emu.iter().find(|(l, _)| l == "get").unwrap().1 .2;
    assert!(got.get("MFAOptions").is_none());
    let refused = &from_emu.iter().find(|(l, _)| l == "create bad password").unwrap().1;
    assert_eq!(code(refused), "InvalidPasswordException");
}

/// The group operations on the wire, through the product's own AWS adapter (the SDK's deserializers):
/// `CreateGroup` (then `GroupExistsException`), `GetGroup` (`ResourceNotFoundException` for a missing
/// one), `AdminAddUserToGroup` (`UserNotFoundException` for a missing user), `AdminListGroupsForUser`,
/// `AdminRemoveUserFromGroup`; and the same group calls sent raw to moto and to the emulator answer with
/// the same status, error code and `Group` members.
#[tokio::test]
async fn group_operations_on_the_wire_match_the_adapter_and_moto() {
    use admin_provisioner_core::identity::{CreateUserRequest, IdentityProvider, IdpError, MessageAction};
    let dir = tempfile::tempdir().unwrap();
    let wire = in_memory(dir.path()).await;
    let provider = CognitoIdentityProvider::from_client(
        sdk(&wire.endpoint),
        CognitoConfig {
            user_pool_id: wire.pool_id.clone(),
            client_id: wire.client_id.clone(),
            endpoint_url: Some(wire.endpoint.clone()),
            issuer: Some(wire.issuer.clone()),
            ..CognitoConfig::default()
        },
    );
    provider
        .admin_create_user(CreateUserRequest {
            username: "gil@example.com".into(),
            email: "gil@example.com".into(),
            temporary_password: None,
            message_action: Some(MessageAction::Suppress),
        })
        .await
        .unwrap();
    assert!(matches!(
        provider.get_group("admin-provisioner-admin").await,
        Err(IdpError::ResourceNotFound(_))
    ));
    provider
        .create_group("admin-provisioner-admin", "admins")
        .await
        .unwrap();
    assert!(matches!(
        provider.create_group("admin-provisioner-admin", "").await,
        Err(IdpError::GroupExists(_))
    ));
    assert_eq!(
        provider
            .get_group("admin-provisioner-admin")
            .await
            .unwrap()
            .description
            .as_deref(),
        Some("admins")
    );
    assert_eq!(
        provider
            .admin_add_user_to_group("nobody@example.com", "admin-provisioner-admin")
            .await,
        Err(IdpError::UserNotFound)
    );
    provider
        .admin_add_user_to_group("gil@example.com", "admin-provisioner-admin")
        .await
        .unwrap();
    assert_eq!(
        provider.admin_list_groups_for_user("gil@example.com").await.unwrap(),
        ["admin-provisioner-admin"]
    );
    provider
        .admin_remove_user_from_group("gil@example.com", "admin-provisioner-admin")
        .await
        .unwrap();
    assert!(provider
        .admin_list_groups_for_user("gil@example.com")
        .await
        .unwrap()
        .is_empty());

    // The same raw calls against moto and the emulator.
    let moto = MotoServer::shared().unwrap_or_else(|e| panic!("{e:#}"));
    let pool = moto.create_pool(PoolOptions::default()).await.unwrap();
    let run = |endpoint: String, pool: String| async move {
        let e = endpoint.as_str();
        let mut out = Vec::new();
        out.push(
            call(
                e,
                "AdminCreateUser",
                json!({"UserPoolId": pool, "Username": "hal@example.com", "MessageAction": "SUPPRESS",
            "UserAttributes": [{"Name": "email", "Value": "hal@example.com"}]}),
            )
            .await,
        );
        out.push(call(e, "GetGroup", json!({"UserPoolId": pool, "GroupName": "g1"})).await);
        out.push(
            call(
                e,
                "CreateGroup",
                json!({"UserPoolId": pool, "GroupName": "g1", "Description": "d"}),
            )
            .await,
        );
        out.push(call(e, "CreateGroup", json!({"UserPoolId": pool, "GroupName": "g1"})).await);
        out.push(call(e, "GetGroup", json!({"UserPoolId": pool, "GroupName": "g1"})).await);
        out.push(
            call(
                e,
                "AdminAddUserToGroup",
                json!({"UserPoolId": pool, "GroupName": "g1", "Username": "hal@example.com"}),
            )
            .await,
        );
        out.push(
            call(
                e,
                "AdminAddUserToGroup",
                json!({"UserPoolId": pool, "GroupName": "g2", "Username": "hal@example.com"}),
            )
            .await,
        );
        out.push(
            call(
                e,
                "AdminAddUserToGroup",
                json!({"UserPoolId": pool, "GroupName": "g1", "Username": "nobody@example.com"}),
            )
            .await,
        );
        out.push(
            call(
                e,
                "AdminListGroupsForUser",
                json!({"UserPoolId": pool, "Username": "hal@example.com"}),
            )
            .await,
        );
        out.push(
            call(
                e,
                "AdminRemoveUserFromGroup",
                json!({"UserPoolId": pool, "GroupName": "g1", "Username": "hal@example.com"}),
            )
            .await,
        );
        out
    };
    let from_moto = run(moto.endpoint().to_string(), pool.user_pool_id.clone()).await;
    let from_emu = run(wire.endpoint.clone(), wire.pool_id.clone()).await;
    for (i, (m, x)) in from_moto.iter().zip(&from_emu).enumerate() {
        assert_eq!((m.0, code(m)), (x.0, code(x)), "call {i}: moto {m:?}, emulator {x:?}");
        if m.0 == 200 {
            assert_eq!(keys(&m.2), keys(&x.2), "call {i}: {m:?} vs {x:?}");
            // Moto leaves out RoleArn / Precedence when unset, as the emulator does.
            assert_eq!(keys(&m.2["Group"]), keys(&x.2["Group"]), "call {i}: {m:?} vs {x:?}");
        }
    }
    let listed = &from_emu[8].2["Groups"];
    assert_eq!(listed[0]["GroupName"], "g1", "{listed}");
}
