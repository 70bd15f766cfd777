//! Unit tests with `aws-smithy-mocks`: the error mapping (one test per Cognito error the adapter handles,
//! fed through the SDK's real deserializer as Cognito's JSON error bodies), the success mappings, the
//! request shapes, SECRET_HASH and pool-id validation, and the doctor's checks.

use super::*;
use admin_provisioner_core::domain::TemporaryPassword;
use aws_sdk_cognitoidentityprovider::config::retry::RetryConfig;
use aws_sdk_cognitoidentityprovider::operation::admin_create_user::AdminCreateUserOutput;
use aws_sdk_cognitoidentityprovider::operation::describe_user_pool::DescribeUserPoolOutput;
use aws_sdk_cognitoidentityprovider::operation::describe_user_pool_client::DescribeUserPoolClientOutput;
use aws_sdk_cognitoidentityprovider::operation::initiate_auth::InitiateAuthOutput;
use aws_sdk_cognitoidentityprovider::operation::list_users::ListUsersOutput;
use aws_sdk_cognitoidentityprovider::operation::respond_to_auth_challenge::RespondToAuthChallengeOutput;
use aws_sdk_cognitoidentityprovider::primitives::DateTime as SmithyDateTime;
use aws_sdk_cognitoidentityprovider::types::{
    AdminCreateUserConfigType, EmailConfigurationType, EmailSendingAccountType, ExplicitAuthFlowsType,
    MessageTemplateType, PasswordPolicyType, UserPoolClientType, UserPoolPolicyType, UserPoolType, UserType,
    UsernameConfigurationType,
};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

const POOL: &str = "us-east-1_TestPool1";
const CLIENT_ID: &str = "1example23456789";

fn config() -> CognitoConfig {
    CognitoConfig::new(POOL, CLIENT_ID)
}

/// A provider over a mocked client; no retries, so one mocked answer is one call.
fn provider_with(rules: &[&Rule], config: CognitoConfig) -> CognitoIdentityProvider {
    let client = mock_client!(aws_sdk_cognitoidentityprovider, RuleMode::MatchAny, rules, |c| c
        .retry_config(RetryConfig::disabled()));
    CognitoIdentityProvider::from_client(client, config)
}

/// Cognito's JSON error body.
fn body(code: &str, message: &str) -> Option<String> {
    Some(serde_json::json!({ "__type": code, "message": message }).to_string())
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Create,
    Get,
    Delete,
    List,
    Auth,
    Respond,
}

/// Runs `op` against a mock that answers HTTP `status` with `body`, and returns the adapter's error.
async fn error_of(op: Op, status: u16, body: Option<String>) -> IdpError {
    let rule = match op {
        Op::Create => mock!(Client::admin_create_user)
            .sequence()
            .http_status(status, body)
            .build(),
        Op::Get => mock!(Client::admin_get_user)
            .sequence()
            .http_status(status, body)
            .build(),
        Op::Delete => mock!(Client::admin_delete_user)
            .sequence()
            .http_status(status, body)
            .build(),
        Op::List => mock!(Client::list_users).sequence().http_status(status, body).build(),
        Op::Auth => mock!(Client::initiate_auth)
            .sequence()
            .http_status(status, body)
            .build(),
        Op::Respond => mock!(Client::respond_to_auth_challenge)
            .sequence()
            .http_status(status, body)
            .build(),
    };
    let p = provider_with(&[&rule], config());
    let err = match op {
        Op::Create => p
            .admin_create_user(CreateUserRequest {
                username: "ann@example.com".into(),
                email: "ann@example.com".into(),
                temporary_password: Some(TemporaryPassword::new("Temp#Pass1234")),
                message_action: None,
            })
            .await
            .map(|_| ())
            .unwrap_err(),
        Op::Get => p.admin_get_user("ann@example.com").await.map(|_| ()).unwrap_err(),
        Op::Delete => p.admin_delete_user("ann@example.com").await.unwrap_err(),
        Op::List => p.list_users(None, 60).await.map(|_| ()).unwrap_err(),
        Op::Auth => p
            .initiate_auth("ann@example.com", &Password::new("Temp#Pass1234"))
            .await
            .map(|_| ())
            .unwrap_err(),
        Op::Respond => p
            .respond_to_new_password_challenge(
                "ann@example.com",
                &Secret::new("sess-123"),
                &Password::new("New#Pass5678"),
            )
            .await
            .map(|_| ())
            .unwrap_err(),
    };
    assert_eq!(rule.num_calls(), 1, "{op:?} must be called exactly once");
    err
}

fn assert_other(err: &IdpError, expected_code: &str) {
    match err {
        IdpError::Other {
            code,
            message,
            transient,
        } => {
            assert_eq!(code, expected_code);
            assert!(!message.is_empty());
            assert!(!transient, "{expected_code} must not be transient");
        }
        other => panic!("expected Other({expected_code}), got {other:?}"),
    }
    assert!(!err.is_transient());
}

// ---- one test per Cognito error ----

#[tokio::test]
async fn username_exists_maps_to_username_exists() {
    let e = error_of(
        Op::Create,
        400,
        body("UsernameExistsException", "User account already exists"),
    )
    .await;
    assert_eq!(e, IdpError::UsernameExists);
    assert!(!e.is_transient());
}

#[tokio::test]
async fn user_not_found_maps_to_user_not_found() {
    let e = error_of(Op::Get, 400, body("UserNotFoundException", "User does not exist.")).await;
    assert_eq!(e, IdpError::UserNotFound);
    assert!(!e.is_transient());
}

#[tokio::test]
async fn invalid_password_maps_to_invalid_password() {
    let e = error_of(
        Op::Respond,
        400,
        body(
            "InvalidPasswordException",
            "Password did not conform with policy: Password not long enough",
        ),
    )
    .await;
    assert_eq!(
        e,
        IdpError::InvalidPassword("Password did not conform with policy: Password not long enough".into())
    );
    assert!(!e.is_transient());
}

#[tokio::test]
async fn invalid_parameter_maps_to_invalid_parameter() {
    let e = error_of(
        Op::Create,
        400,
        body("InvalidParameterException", "Invalid email address format."),
    )
    .await;
    assert_eq!(e, IdpError::InvalidParameter("Invalid email address format.".into()));
    assert!(!e.is_transient());
}

#[tokio::test]
async fn not_authorized_maps_to_not_authorized() {
    let e = error_of(
        Op::Auth,
        400,
        body("NotAuthorizedException", "Incorrect username or password."),
    )
    .await;
    assert_eq!(e, IdpError::NotAuthorized("Incorrect username or password.".into()));
    assert!(!e.is_transient());
}

#[tokio::test]
async fn unsupported_user_state_maps_to_unsupported_user_state() {
    let e = error_of(
        Op::Create,
        400,
        body("UnsupportedUserStateException", "User status is CONFIRMED"),
    )
    .await;
    assert_eq!(e, IdpError::UnsupportedUserState("User status is CONFIRMED".into()));
    assert!(!e.is_transient());
}

#[tokio::test]
async fn code_delivery_failure_maps_to_code_delivery_failure() {
    let e = error_of(
        Op::Create,
        400,
        body("CodeDeliveryFailureException", "Unable to deliver message"),
    )
    .await;
    assert_eq!(e, IdpError::CodeDeliveryFailure("Unable to deliver message".into()));
    assert!(!e.is_transient());
}

#[tokio::test]
async fn code_mismatch_maps_to_code_mismatch() {
    let e = error_of(
        Op::Respond,
        400,
        body("CodeMismatchException", "Invalid code received for user"),
    )
    .await;
    assert_eq!(e, IdpError::CodeMismatch("Invalid code received for user".into()));
    assert!(!e.is_transient());
}

#[tokio::test]
async fn expired_code_maps_to_code_mismatch() {
    let e = error_of(
        Op::Respond,
        400,
        body(
            "ExpiredCodeException",
            "Invalid code provided, please request a code again.",
        ),
    )
    .await;
    assert_eq!(
        e,
        IdpError::CodeMismatch("Invalid code provided, please request a code again.".into())
    );
    assert!(!e.is_transient());
}

#[tokio::test]
async fn password_history_policy_violation_maps_to_its_variant() {
    let e = error_of(
        Op::Respond,
        400,
        body(
            "PasswordHistoryPolicyViolationException",
            "The password was used recently",
        ),
    )
    .await;
    assert_eq!(e, IdpError::PasswordHistoryPolicyViolation);
    assert!(!e.is_transient());
}

#[tokio::test]
async fn too_many_requests_maps_to_too_many_requests() {
    let e = error_of(Op::List, 400, body("TooManyRequestsException", "Rate exceeded")).await;
    assert_eq!(e, IdpError::TooManyRequests);
    assert!(e.is_transient());
}

#[tokio::test]
async fn limit_exceeded_maps_to_too_many_requests() {
    // Not modelled for AdminCreateUser: reaches the adapter as an unhandled error with its code.
    let e = error_of(
        Op::Create,
        400,
        body("LimitExceededException", "Attempt limit exceeded"),
    )
    .await;
    assert_eq!(e, IdpError::TooManyRequests);
    assert!(e.is_transient());
}

#[tokio::test]
async fn resource_not_found_maps_to_resource_not_found() {
    let e = error_of(
        Op::Delete,
        400,
        body(
            "ResourceNotFoundException",
            "User pool us-east-1_TestPool1 does not exist.",
        ),
    )
    .await;
    assert_eq!(
        e,
        IdpError::ResourceNotFound("User pool us-east-1_TestPool1 does not exist.".into())
    );
    assert!(!e.is_transient());
}

#[tokio::test]
async fn internal_error_maps_to_unavailable() {
    let e = error_of(Op::Get, 500, body("InternalErrorException", "Internal server error")).await;
    assert!(
        matches!(&e, IdpError::Unavailable(m) if m.contains("AdminGetUser")),
        "{e:?}"
    );
    assert!(e.is_transient());
}

#[tokio::test]
async fn user_lambda_validation_maps_to_permanent_other() {
    let e = error_of(
        Op::Create,
        400,
        body("UserLambdaValidationException", "PreSignUp failed with error nope."),
    )
    .await;
    assert_other(&e, "UserLambdaValidation");
}

#[tokio::test]
async fn unexpected_lambda_maps_to_permanent_other() {
    let e = error_of(Op::Create, 400, body("UnexpectedLambdaException", "Lambda threw")).await;
    assert_other(&e, "UnexpectedLambda");
}

#[tokio::test]
async fn invalid_lambda_response_maps_to_permanent_other() {
    let e = error_of(
        Op::Create,
        400,
        body("InvalidLambdaResponseException", "Invalid lambda response"),
    )
    .await;
    assert_other(&e, "InvalidLambdaResponse");
}

#[tokio::test]
async fn invalid_sms_role_access_policy_maps_to_permanent_other() {
    let e = error_of(
        Op::Create,
        400,
        body("InvalidSmsRoleAccessPolicyException", "Role cannot publish"),
    )
    .await;
    assert_other(&e, "InvalidSmsRoleAccessPolicy");
}

#[tokio::test]
async fn invalid_sms_role_trust_relationship_maps_to_permanent_other() {
    let e = error_of(
        Op::Create,
        400,
        body("InvalidSmsRoleTrustRelationshipException", "Role trust"),
    )
    .await;
    assert_other(&e, "InvalidSmsRoleTrustRelationship");
}

#[tokio::test]
async fn operation_not_enabled_maps_to_permanent_other() {
    let e = error_of(Op::Get, 400, body("OperationNotEnabledException", "Not enabled")).await;
    assert_other(&e, "OperationNotEnabled");
}

#[tokio::test]
async fn precondition_not_met_maps_to_permanent_other() {
    let e = error_of(
        Op::Create,
        400,
        body("PreconditionNotMetException", "Precondition not met"),
    )
    .await;
    assert_other(&e, "PreconditionNotMet");
}

#[tokio::test]
async fn password_reset_required_maps_to_its_variant() {
    let e = error_of(
        Op::Auth,
        400,
        body("PasswordResetRequiredException", "Password reset required for the user"),
    )
    .await;
    assert_eq!(
        e,
        IdpError::PasswordResetRequired("Password reset required for the user".into())
    );
    assert!(!e.is_transient());
}

// ---- password recovery, admin reset, global sign-out, admin MFA preference ----

#[tokio::test]
async fn forgot_password_sends_client_username_and_secret_hash() {
    let rule = mock!(Client::forgot_password)
        .match_requests(|r| {
            r.client_id() == Some(CLIENT_ID)
                && r.username() == Some("ann@example.com")
                && r.secret_hash() == Some(secret_hash("ann@example.com", CLIENT_ID, "shh").as_str())
        })
        .then_output(|| {
            aws_sdk_cognitoidentityprovider::operation::forgot_password::ForgotPasswordOutput::builder().build()
        });
    let mut cfg = config();
    cfg.client_secret = Some(Secret::new("shh"));
    let p = provider_with(&[&rule], cfg);
    p.forgot_password("ann@example.com").await.unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn forgot_password_errors_are_mapped() {
    let rule = mock!(Client::forgot_password)
        .sequence()
        .http_status(
            400,
            body("UserNotFoundException", "Username/client id combination not found."),
        )
        .http_status(
            400,
            body(
                "LimitExceededException",
                "Attempt limit exceeded, please try after some time.",
            ),
        )
        .http_status(
            400,
            body(
                "NotAuthorizedException",
                "User password cannot be reset in the current state.",
            ),
        )
        .build();
    let p = provider_with(&[&rule], config());
    assert_eq!(p.forgot_password("a@b.c").await.unwrap_err(), IdpError::UserNotFound);
    assert_eq!(p.forgot_password("a@b.c").await.unwrap_err(), IdpError::TooManyRequests);
    assert!(matches!(
        p.forgot_password("a@b.c").await.unwrap_err(),
        IdpError::NotAuthorized(_)
    ));
}

#[tokio::test]
async fn confirm_forgot_password_sends_code_and_password_and_maps_code_errors() {
    let ok = mock!(Client::confirm_forgot_password)
        .match_requests(|r| {
            r.client_id() == Some(CLIENT_ID)
                && r.username() == Some("ann@example.com")
                && r.confirmation_code() == Some("123456")
                && r.password() == Some("New#Pass5678")
        })
        .then_output(|| {
            aws_sdk_cognitoidentityprovider::operation::confirm_forgot_password::ConfirmForgotPasswordOutput::builder()
                .build()
        });
    let p = provider_with(&[&ok], config());
    p.confirm_forgot_password(
        "ann@example.com",
        &Secret::new("123456"),
        &Password::new("New#Pass5678"),
    )
    .await
    .unwrap();
    assert_eq!(ok.num_calls(), 1);

    let errors = mock!(Client::confirm_forgot_password)
        .sequence()
        .http_status(
            400,
            body(
                "CodeMismatchException",
                "Invalid verification code provided, please try again.",
            ),
        )
        .http_status(
            400,
            body(
                "ExpiredCodeException",
                "Invalid code provided, please request a code again.",
            ),
        )
        .http_status(
            400,
            body("InvalidPasswordException", "Password did not conform with policy"),
        )
        .http_status(400, body("NotAuthorizedException", "echo 654321 New#Pass5678"))
        .build();
    let p = provider_with(&[&errors], config());
    let (code, password) = (Secret::new("654321"), Password::new("New#Pass5678"));
    let call = || p.confirm_forgot_password("a@b.c", &code, &password);
    assert!(matches!(call().await.unwrap_err(), IdpError::CodeMismatch(_)));
    assert!(matches!(call().await.unwrap_err(), IdpError::CodeMismatch(_)));
    assert!(matches!(call().await.unwrap_err(), IdpError::InvalidPassword(_)));
    let echoed = call().await.unwrap_err().to_string();
    assert!(
        !echoed.contains("654321") && !echoed.contains("New#Pass5678"),
        "{echoed}"
    );
}

#[tokio::test]
async fn admin_reset_sign_out_and_mfa_preference_send_pool_and_username() {
    use aws_sdk_cognitoidentityprovider::operation::{
        admin_reset_user_password::AdminResetUserPasswordOutput,
        admin_set_user_mfa_preference::AdminSetUserMfaPreferenceOutput,
        admin_user_global_sign_out::AdminUserGlobalSignOutOutput,
    };
    let reset = mock!(Client::admin_reset_user_password)
        .match_requests(|r| r.user_pool_id() == Some(POOL) && r.username() == Some("ann"))
        .then_output(|| AdminResetUserPasswordOutput::builder().build());
    let sign_out = mock!(Client::admin_user_global_sign_out)
        .match_requests(|r| r.user_pool_id() == Some(POOL) && r.username() == Some("ann"))
        .then_output(|| AdminUserGlobalSignOutOutput::builder().build());
    let mfa = mock!(Client::admin_set_user_mfa_preference)
        .match_requests(|r| {
            r.user_pool_id() == Some(POOL)
                && r.username() == Some("ann")
                && r.software_token_mfa_settings()
                    .is_some_and(|s| !s.enabled() && !s.preferred_mfa())
        })
        .then_output(|| AdminSetUserMfaPreferenceOutput::builder().build());
    let p = provider_with(&[&reset, &sign_out, &mfa], config());
    p.admin_reset_user_password("ann").await.unwrap();
    p.admin_user_global_sign_out("ann").await.unwrap();
    p.admin_set_user_mfa_preference("ann", false).await.unwrap();
    assert_eq!((reset.num_calls(), sign_out.num_calls(), mfa.num_calls()), (1, 1, 1));

    let missing = mock!(Client::admin_reset_user_password)
        .sequence()
        .http_status(400, body("UserNotFoundException", "User does not exist."))
        .http_status(400, body("NotAuthorizedException", "User is disabled"))
        .build();
    let p = provider_with(&[&missing], config());
    assert_eq!(
        p.admin_reset_user_password("x").await.unwrap_err(),
        IdpError::UserNotFound
    );
    assert!(matches!(
        p.admin_reset_user_password("x").await.unwrap_err(),
        IdpError::NotAuthorized(_)
    ));
}

#[tokio::test]
async fn user_not_confirmed_maps_to_permanent_other() {
    let e = error_of(
        Op::Auth,
        400,
        body("UserNotConfirmedException", "User is not confirmed."),
    )
    .await;
    assert_other(&e, "UserNotConfirmed");
}

#[tokio::test]
async fn http_503_without_code_maps_to_unavailable() {
    let e = error_of(Op::List, 503, None).await;
    assert!(matches!(&e, IdpError::Unavailable(m) if m.contains("503")), "{e:?}");
    assert!(e.is_transient());
}

#[tokio::test]
async fn http_429_without_code_maps_to_too_many_requests() {
    let e = error_of(Op::Create, 429, None).await;
    assert_eq!(e, IdpError::TooManyRequests);
    assert!(e.is_transient());
}

#[tokio::test]
async fn unreadable_success_response_maps_to_unavailable() {
    // A 200 whose body is not JSON: the call may have taken effect, so it must not look permanent.
    let e = error_of(Op::Create, 200, Some("<html>proxy</html>".into())).await;
    assert!(matches!(e, IdpError::Unavailable(_)), "{e:?}");
    assert!(e.is_transient());
}

/// A client with the test defaults (dummy credentials) aimed at `endpoint`, `timeout` per operation.
fn real_client(endpoint: &str, timeout: Duration) -> Client {
    let conf = aws_sdk_cognitoidentityprovider::Config::builder()
        .with_test_defaults_v2()
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(timeout)
                .connect_timeout(timeout)
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

#[tokio::test]
async fn operation_timeout_maps_to_timeout() {
    // A server that accepts the connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            open.push(sock);
        }
    });
    let p = CognitoIdentityProvider::from_client(
        real_client(&format!("http://{addr}"), Duration::from_millis(300)),
        config(),
    );
    let e = p.admin_get_user("ann@example.com").await.unwrap_err();
    assert_eq!(e, IdpError::Timeout(op::ADMIN_GET_USER.into()));
    assert!(e.is_transient());
    hold.abort();
}

#[tokio::test]
async fn connection_refused_maps_to_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: nothing listens there now
    let p = CognitoIdentityProvider::from_client(
        real_client(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)),
        config(),
    );
    let e = p.admin_delete_user("ann@example.com").await.unwrap_err();
    assert!(
        matches!(&e, IdpError::Unavailable(m) if m.starts_with("AdminDeleteUser")),
        "{e:?}"
    );
    assert!(e.is_transient());
}

#[tokio::test]
async fn error_messages_never_carry_passwords_or_sessions() {
    // Pathological: a service echoing secrets back. The adapter redacts what it sent.
    let rule = mock!(Client::respond_to_auth_challenge)
        .sequence()
        .http_status(
            400,
            body(
                "NotAuthorizedException",
                "Invalid session sess-123 for New#Pass5678\nsecond line",
            ),
        )
        .build();
    let p = provider_with(&[&rule], config());
    let e = p
        .respond_to_new_password_challenge(
            "ann@example.com",
            &Secret::new("sess-123"),
            &Password::new("New#Pass5678"),
        )
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(!text.contains("sess-123") && !text.contains("New#Pass5678"), "{text}");
    assert!(!text.contains('\n'));
    assert_eq!(
        e,
        IdpError::NotAuthorized("Invalid session [REDACTED] for [REDACTED] second line".into())
    );
}

// ---- success mappings and request shapes ----

fn attr(name: &str, value: &str) -> AttributeType {
    AttributeType::builder().name(name).value(value).build().unwrap()
}

#[tokio::test]
async fn admin_create_user_sends_the_documented_request_and_maps_the_user() {
    let rule = mock!(Client::admin_create_user)
        .match_requests(|r| {
            let attrs = r.user_attributes();
            r.user_pool_id() == Some(POOL)
                && r.username() == Some("ann@example.com")
                && r.desired_delivery_mediums() == [DeliveryMediumType::Email]
                && attrs
                    .iter()
                    .any(|a| a.name() == "email" && a.value() == Some("Ann@Example.com"))
                && attrs
                    .iter()
                    .any(|a| a.name() == "email_verified" && a.value() == Some("true"))
                && r.temporary_password() == Some("Temp#Pass1234")
                && r.message_action().is_none()
        })
        .then_output(|| {
            AdminCreateUserOutput::builder()
                .user(
                    UserType::builder()
                        .username("ann@example.com")
                        .attributes(attr("sub", "0b1c2d3e-aaaa-bbbb-cccc-1234567890ab"))
                        .attributes(attr("email", "Ann@Example.com"))
                        .attributes(attr("email_verified", "true"))
                        .user_status(UserStatusType::ForceChangePassword)
                        .enabled(true)
                        .user_create_date(SmithyDateTime::from_secs(1_700_000_000))
                        .user_last_modified_date(SmithyDateTime::from_secs_and_nanos(1_700_000_001, 500_000_000))
                        .build(),
                )
                .build()
        });
    let p = provider_with(&[&rule], config());
    let user = p
        .admin_create_user(CreateUserRequest {
            username: "ann@example.com".into(),
            email: "Ann@Example.com".into(),
            temporary_password: Some(TemporaryPassword::new("Temp#Pass1234")),
            message_action: None,
        })
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(user.username, "ann@example.com");
    assert_eq!(user.sub, "0b1c2d3e-aaaa-bbbb-cccc-1234567890ab");
    assert_eq!(user.email.as_deref(), Some("Ann@Example.com"));
    assert_eq!(user.status, IdpUserStatus::ForceChangePassword);
    assert!(user.enabled);
    assert_eq!(user.created_at.timestamp(), 1_700_000_000);
    assert_eq!(user.last_modified_at.timestamp_millis(), 1_700_000_001_500);
}

#[tokio::test]
async fn admin_create_user_sends_message_actions() {
    let out = || {
        AdminCreateUserOutput::builder()
            .user(
                UserType::builder()
                    .username("u")
                    .attributes(attr("sub", "s"))
                    .user_status(UserStatusType::ForceChangePassword)
                    .enabled(true)
                    .build(),
            )
            .build()
    };
    let resend = mock!(Client::admin_create_user)
        .match_requests(|r| r.message_action() == Some(&MessageActionType::Resend) && r.temporary_password().is_none())
        .then_output(out);
    let suppress = mock!(Client::admin_create_user)
        .match_requests(|r| r.message_action() == Some(&MessageActionType::Suppress))
        .then_output(out);
    let p = provider_with(&[&resend, &suppress], config());
    for action in [MessageAction::Resend, MessageAction::Suppress] {
        p.admin_create_user(CreateUserRequest {
            username: "u".into(),
            email: "u@example.com".into(),
            temporary_password: None,
            message_action: Some(action),
        })
        .await
        .unwrap();
    }
    assert_eq!((resend.num_calls(), suppress.num_calls()), (1, 1));
}

#[tokio::test]
async fn list_users_clamps_the_limit_and_passes_the_token() {
    let rule = mock!(Client::list_users)
        .match_requests(|r| {
            r.limit() == Some(60) && r.pagination_token() == Some("page-2") && r.user_pool_id() == Some(POOL)
        })
        .then_output(|| {
            ListUsersOutput::builder()
                .users(
                    UserType::builder()
                        .username("bob")
                        .attributes(attr("sub", "sub-bob"))
                        .user_status(UserStatusType::Confirmed)
                        .enabled(false)
                        .build(),
                )
                .pagination_token("page-3")
                .build()
        });
    let p = provider_with(&[&rule], config());
    let page = p.list_users(Some("page-2".into()), 500).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(page.next_token.as_deref(), Some("page-3"));
    assert_eq!(page.users.len(), 1);
    assert_eq!(page.users[0].status, IdpUserStatus::Confirmed);
    assert!(!page.users[0].enabled);
}

fn config_with_secret() -> CognitoConfig {
    CognitoConfig {
        client_secret: Some(Secret::new("client-secret-123")),
        ..config()
    }
}

#[tokio::test]
async fn initiate_auth_returns_the_new_password_challenge_and_sends_secret_hash() {
    let expected_hash = secret_hash("ann@example.com", CLIENT_ID, "client-secret-123");
    let rule = mock!(Client::initiate_auth)
        .match_requests(move |r| {
            let p = r.auth_parameters().unwrap();
            r.auth_flow() == Some(&AuthFlowType::UserPasswordAuth)
                && r.client_id() == Some(CLIENT_ID)
                && p.get("USERNAME").map(String::as_str) == Some("ann@example.com")
                && p.get("PASSWORD").map(String::as_str) == Some("Temp#Pass1234")
                && p.get("SECRET_HASH") == Some(&expected_hash)
        })
        .then_output(|| {
            InitiateAuthOutput::builder()
                .challenge_name(ChallengeNameType::NewPasswordRequired)
                .session("sess-abc")
                .challenge_parameters("USER_ID_FOR_SRP", "7c9e6679-7425-40de-944b-e07fc1f90ae7")
                .challenge_parameters("requiredAttributes", "[]")
                .build()
        });
    let p = provider_with(&[&rule], config_with_secret());
    match p
        .initiate_auth("ann@example.com", &Password::new("Temp#Pass1234"))
        .await
        .unwrap()
    {
        AuthOutcome::NewPasswordRequired { session, username } => {
            assert_eq!(session.expose(), "sess-abc");
            assert_eq!(username, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
        }
        other => panic!("expected the challenge, got {other:?}"),
    }
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn initiate_auth_without_secret_sends_no_secret_hash_and_maps_tokens() {
    let rule = mock!(Client::initiate_auth)
        .match_requests(|r| !r.auth_parameters().unwrap().contains_key("SECRET_HASH"))
        .then_output(|| {
            InitiateAuthOutput::builder()
                .authentication_result(
                    AuthenticationResultType::builder()
                        .id_token("id.jwt")
                        .access_token("access.jwt")
                        .refresh_token("refresh")
                        .expires_in(3600)
                        .token_type("Bearer")
                        .build(),
                )
                .build()
        });
    let p = provider_with(&[&rule], config());
    match p.initiate_auth("ann@example.com", &Password::new("pw")).await.unwrap() {
        AuthOutcome::Tokens(t) => {
            assert_eq!(
                (t.id_token.expose(), t.access_token.expose(), t.refresh_token.expose()),
                ("id.jwt", "access.jwt", "refresh")
            );
            assert_eq!(t.expires_in, 3600);
        }
        other => panic!("expected tokens, got {other:?}"),
    }
}

#[tokio::test]
async fn initiate_auth_reports_other_challenges_as_unsupported() {
    let rule = mock!(Client::initiate_auth).then_output(|| {
        InitiateAuthOutput::builder()
            .challenge_name(ChallengeNameType::SmsMfa)
            .session("s")
            .build()
    });
    let p = provider_with(&[&rule], config());
    let e = p
        .initiate_auth("ann@example.com", &Password::new("pw"))
        .await
        .unwrap_err();
    assert_other(&e, "UnsupportedChallenge");
}

#[tokio::test]
async fn respond_sends_challenge_responses_with_secret_hash_and_maps_tokens() {
    let srp_user = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let expected_hash = secret_hash(srp_user, CLIENT_ID, "client-secret-123");
    let rule = mock!(Client::respond_to_auth_challenge)
        .match_requests(move |r| {
            let c = r.challenge_responses().unwrap();
            r.challenge_name() == Some(&ChallengeNameType::NewPasswordRequired)
                && r.session() == Some("sess-abc")
                && r.client_id() == Some(CLIENT_ID)
                && c.get("USERNAME").map(String::as_str) == Some(srp_user)
                && c.get("NEW_PASSWORD").map(String::as_str) == Some("New#Pass5678")
                && c.get("SECRET_HASH") == Some(&expected_hash)
        })
        .then_output(|| {
            RespondToAuthChallengeOutput::builder()
                .authentication_result(
                    AuthenticationResultType::builder()
                        .id_token("id.jwt")
                        .access_token("access.jwt")
                        .refresh_token("refresh")
                        .expires_in(3600)
                        .build(),
                )
                .build()
        });
    let p = provider_with(&[&rule], config_with_secret());
    let t = p
        .respond_to_new_password_challenge(srp_user, &Secret::new("sess-abc"), &Password::new("New#Pass5678"))
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(t.id_token.expose(), "id.jwt");
}

#[tokio::test]
async fn new_builds_a_client_with_explicit_timeouts_retries_and_region() {
    let mut cfg = CognitoConfig::new("eu-west-1_AbC123xyz", CLIENT_ID);
    cfg.region = "eu-west-1".into();
    cfg.endpoint_url = Some("http://127.0.0.1:9".into());
    cfg.call_timeout = Duration::from_secs(9);
    let p = CognitoIdentityProvider::new(cfg).await.unwrap();
    let c = p.client().config();
    assert_eq!(c.region().map(|r| r.as_ref()), Some("eu-west-1"));
    let t = c.timeout_config().unwrap();
    assert_eq!(t.operation_timeout(), Some(Duration::from_secs(9)));
    // One attempt, with the whole call timeout: the SDK does not retry (issue 7, finding 3: its 3
    // attempts ran inside each of the orchestrator's attempts).
    assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(9)));
    assert_eq!(t.connect_timeout(), Some(DEFAULT_CONNECT_TIMEOUT));
    assert_eq!(c.retry_config().unwrap().max_attempts(), 1);
    assert_eq!(MAX_ATTEMPTS, 1);
    assert_eq!(p.kind(), "cognito");
    assert_eq!(
        p.token_settings(),
        TokenSettings {
            issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123xyz".into(),
            client_id: CLIENT_ID.into()
        }
    );
    assert_eq!(
        p.config().effective_jwks_url(),
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123xyz/.well-known/jwks.json"
    );
}

#[tokio::test]
async fn new_rejects_an_invalid_pool_id() {
    let e = CognitoIdentityProvider::new(CognitoConfig::new("not-a-pool", CLIENT_ID))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("us-east-1_AbC123xyz"), "{e}");
}

// ---- pure functions ----

#[test]
fn secret_hash_known_answer() {
    // Computed independently: base64(hmac_sha256(b"client-secret-123", b"ann@example.com1example23456789")).
    assert_eq!(
        secret_hash("ann@example.com", "1example23456789", "client-secret-123"),
        "VG5wlUFSQ31+6HRT8KSksjQkXKIbStmXPVW9nwjeEmQ="
    );
}

#[test]
fn user_pool_id_validation() {
    for ok in [
        "us-east-1_AbC123xyz",
        "eu-central-2_x",
        "us-gov-west-1_Abc",
        "ap-southeast-4_ZZZ999",
        "cn-north-1_a1",
    ] {
        assert_eq!(validate_user_pool_id(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "us-east-1",
        "us-east-1_",
        "_AbC123",
        "us-east-1_AbC-123",
        "us-east-1_AbC_123",
        "useast1_AbC",
        "US-EAST-1_AbC",
        "us-east_AbC",
        "us-east-1_AbC 1",
        "us-east-1_AbCdefghijklmnopqrstuvwxyzAbCdefghijklmnopqrstuvwxyz",
    ] {
        let e = validate_user_pool_id(bad).unwrap_err();
        assert!(!e.contains('\n') && !e.is_empty(), "{bad}: {e}");
    }
    assert_eq!(region_of_user_pool_id("eu-west-3_Abc"), Some("eu-west-3"));
}

// ---- doctor ----

fn good_pool() -> UserPoolType {
    UserPoolType::builder()
        .id(POOL)
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(
                    PasswordPolicyType::builder()
                        .temporary_password_validity_days(7)
                        .build(),
                )
                .build(),
        )
        .username_configuration(
            UsernameConfigurationType::builder()
                .case_sensitive(false)
                .build()
                .unwrap(),
        )
        .admin_create_user_config(
            AdminCreateUserConfigType::builder()
                .allow_admin_create_user_only(true)
                .invite_message_template(
                    MessageTemplateType::builder()
                        .email_message("Your username is {username} and temporary password is {####}.")
                        .build(),
                )
                .build(),
        )
        .email_configuration(
            EmailConfigurationType::builder()
                .email_sending_account(EmailSendingAccountType::Developer)
                .build(),
        )
        .build()
}

fn good_client() -> UserPoolClientType {
    UserPoolClientType::builder()
        .client_id(CLIENT_ID)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .build()
}

#[tokio::test]
async fn doctor_on_a_good_pool_finds_nothing() {
    let pool = mock!(Client::describe_user_pool)
        .match_requests(|r| r.user_pool_id() == Some(POOL))
        .then_output(|| DescribeUserPoolOutput::builder().user_pool(good_pool()).build());
    let client = mock!(Client::describe_user_pool_client)
        .match_requests(|r| r.user_pool_id() == Some(POOL) && r.client_id() == Some(CLIENT_ID))
        .then_output(|| {
            DescribeUserPoolClientOutput::builder()
                .user_pool_client(good_client())
                .build()
        });
    let p = provider_with(&[&pool, &client], config());
    assert_eq!(doctor::check(&p, 7).await.unwrap(), vec![]);
}

#[test]
fn doctor_reports_each_problem() {
    let pool = UserPoolType::builder()
        .id(POOL)
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(
                    PasswordPolicyType::builder()
                        .temporary_password_validity_days(3)
                        .build(),
                )
                .build(),
        )
        .admin_create_user_config(
            AdminCreateUserConfigType::builder()
                .allow_admin_create_user_only(false)
                .invite_message_template(MessageTemplateType::builder().email_message("Hello {username}").build())
                .build(),
        )
        .email_configuration(
            EmailConfigurationType::builder()
                .email_sending_account(EmailSendingAccountType::CognitoDefault)
                .build(),
        )
        .mfa_configuration(aws_sdk_cognitoidentityprovider::types::UserPoolMfaType::On)
        .build();
    let client = UserPoolClientType::builder()
        .client_id(CLIENT_ID)
        .client_secret("s3cret")
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserSrpAuth)
        .build();
    let findings = doctor::evaluate(&pool, Some(&client), &config(), 7);
    let codes: Vec<(&str, doctor::Severity)> = findings.iter().map(|f| (f.code, f.severity)).collect();
    use doctor::Severity::*;
    assert_eq!(
        codes,
        vec![
            ("user_password_auth_disabled", Blocking),
            ("client_secret_missing", Blocking),
            ("temporary_password_validity_mismatch", Blocking),
            ("invite_template_missing_placeholder", Blocking),
            ("usernames_case_sensitive", Warning),
            ("cognito_default_email_sender", Warning),
            ("self_sign_up_allowed", Warning),
        ]
    );
    for f in &findings {
        assert!(!f.message.contains('\n') && !f.message.contains("s3cret"), "{f}");
    }
    assert!(findings[3].message.contains("{####}") && !findings[3].message.contains("lacks {username}"));
    assert!(doctor::has_blocking(&findings));
}

#[test]
fn doctor_accepts_mfa_on_with_software_tokens_and_refuses_sms_only() {
    use aws_sdk_cognitoidentityprovider::types::UserPoolMfaType;
    use doctor::Severity::*;
    let codes = |mfa, totp| -> Vec<(&'static str, doctor::Severity)> {
        doctor::evaluate_mfa(Some(&mfa), totp)
            .iter()
            .map(|f| (f.code, f.severity))
            .collect()
    };
    assert_eq!(codes(UserPoolMfaType::On, true), vec![]);
    assert_eq!(codes(UserPoolMfaType::On, false), vec![("mfa_sms_only", Blocking)]);
    assert_eq!(codes(UserPoolMfaType::Optional, true), vec![]);
    assert_eq!(
        codes(UserPoolMfaType::Optional, false),
        vec![("mfa_software_token_disabled", Warning)]
    );
    assert_eq!(codes(UserPoolMfaType::Off, false), vec![]);
    assert!(doctor::evaluate_mfa(Some(&UserPoolMfaType::On), false)[0]
        .message
        .contains("SMS"));
}

#[test]
fn doctor_checks_the_configured_secret() {
    let client = UserPoolClientType::builder()
        .client_id(CLIENT_ID)
        .client_secret("the-real-one")
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .build();
    let wrong = CognitoConfig {
        client_secret: Some(Secret::new("another")),
        ..config()
    };
    let codes: Vec<&str> = doctor::evaluate(&good_pool(), Some(&client), &wrong, 7)
        .iter()
        .map(|f| f.code)
        .collect();
    assert_eq!(codes, vec!["client_secret_mismatch"]);
    let right = CognitoConfig {
        client_secret: Some(Secret::new("the-real-one")),
        ..config()
    };
    assert!(doctor::evaluate(&good_pool(), Some(&client), &right, 7).is_empty());
    let codes: Vec<&str> = doctor::evaluate(&good_pool(), Some(&good_client()), &right, 7)
        .iter()
        .map(|f| f.code)
        .collect();
    assert_eq!(codes, vec!["client_secret_unexpected"]);
}

#[tokio::test]
async fn doctor_reports_a_missing_pool_and_client() {
    let pool = mock!(Client::describe_user_pool)
        .sequence()
        .http_status(400, body("ResourceNotFoundException", "User pool does not exist."))
        .build();
    let p = provider_with(&[&pool], config());
    let findings = doctor::check(&p, 7).await.unwrap();
    assert_eq!(
        findings.iter().map(|f| f.code).collect::<Vec<_>>(),
        vec!["user_pool_not_found"]
    );

    let pool = mock!(Client::describe_user_pool)
        .then_output(|| DescribeUserPoolOutput::builder().user_pool(good_pool()).build());
    let client = mock!(Client::describe_user_pool_client)
        .sequence()
        .http_status(
            400,
            body("ResourceNotFoundException", "User pool client does not exist."),
        )
        .build();
    let p = provider_with(&[&pool, &client], config());
    let findings = doctor::check(&p, 7).await.unwrap();
    assert_eq!(
        findings.iter().map(|f| f.code).collect::<Vec<_>>(),
        vec!["app_client_not_found"]
    );
}

#[tokio::test]
async fn doctor_reports_a_region_mismatch_and_an_invalid_pool_id() {
    let pool = mock!(Client::describe_user_pool)
        .then_output(|| DescribeUserPoolOutput::builder().user_pool(good_pool()).build());
    let client = mock!(Client::describe_user_pool_client).then_output(|| {
        DescribeUserPoolClientOutput::builder()
            .user_pool_client(good_client())
            .build()
    });
    let p = provider_with(
        &[&pool, &client],
        CognitoConfig {
            region: "eu-west-1".into(),
            ..config()
        },
    );
    let findings = doctor::check(&p, 7).await.unwrap();
    assert_eq!(
        findings.iter().map(|f| f.code).collect::<Vec<_>>(),
        vec!["region_mismatch"]
    );

    let p = provider_with(&[], CognitoConfig::new("nope", CLIENT_ID));
    let findings = doctor::check(&p, 7).await.unwrap();
    assert_eq!(
        findings.iter().map(|f| f.code).collect::<Vec<_>>(),
        vec!["invalid_user_pool_id"]
    );
}

#[tokio::test]
async fn doctor_fails_when_it_cannot_read_the_pool() {
    let pool = mock!(Client::describe_user_pool)
        .sequence()
        .http_status(400, body("AccessDeniedException", "not allowed to DescribeUserPool"))
        .build();
    let p = provider_with(&[&pool], config());
    let e = doctor::check(&p, 7).await.unwrap_err();
    assert!(e.to_string().contains("cognito-idp:DescribeUserPool"), "{e}");
}

// ------------------------------------------------------------------------------------------ groups

#[tokio::test]
async fn admin_list_groups_for_user_reads_every_page_and_sorts() {
    use aws_sdk_cognitoidentityprovider::operation::admin_list_groups_for_user::AdminListGroupsForUserOutput;
    use aws_sdk_cognitoidentityprovider::types::GroupType;
    let first = mock!(Client::admin_list_groups_for_user)
        .match_requests(|r| r.next_token().is_none() && r.limit() == Some(60) && r.username() == Some("ann"))
        .then_output(|| {
            AdminListGroupsForUserOutput::builder()
                .groups(GroupType::builder().group_name("zeta").build())
                .next_token("t2")
                .build()
        });
    let second = mock!(Client::admin_list_groups_for_user)
        .match_requests(|r| r.next_token() == Some("t2"))
        .then_output(|| {
            AdminListGroupsForUserOutput::builder()
                .groups(GroupType::builder().group_name("admin-provisioner-admin").build())
                .build()
        });
    let p = provider_with(&[&first, &second], config());
    let groups = p.admin_list_groups_for_user("ann").await.unwrap();
    assert_eq!(groups, ["admin-provisioner-admin", "zeta"]);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn group_calls_send_the_pool_user_and_group() {
    use aws_sdk_cognitoidentityprovider::operation::admin_add_user_to_group::AdminAddUserToGroupOutput;
    use aws_sdk_cognitoidentityprovider::operation::admin_remove_user_from_group::AdminRemoveUserFromGroupOutput;
    use aws_sdk_cognitoidentityprovider::operation::create_group::CreateGroupOutput;
    let add = mock!(Client::admin_add_user_to_group)
        .match_requests(|r| {
            r.user_pool_id() == Some(POOL) && r.username() == Some("ann") && r.group_name() == Some("g")
        })
        .then_output(|| AdminAddUserToGroupOutput::builder().build());
    let remove = mock!(Client::admin_remove_user_from_group)
        .match_requests(|r| {
            r.user_pool_id() == Some(POOL) && r.username() == Some("ann") && r.group_name() == Some("g")
        })
        .then_output(|| AdminRemoveUserFromGroupOutput::builder().build());
    let create = mock!(Client::create_group)
        .match_requests(|r| r.group_name() == Some("g") && r.description() == Some("d"))
        .then_output(|| CreateGroupOutput::builder().build());
    let p = provider_with(&[&add, &remove, &create], config());
    p.admin_add_user_to_group("ann", "g").await.unwrap();
    p.admin_remove_user_from_group("ann", "g").await.unwrap();
    p.create_group("g", "d").await.unwrap();
    assert_eq!((add.num_calls(), remove.num_calls(), create.num_calls()), (1, 1, 1));
}

#[tokio::test]
async fn group_errors_map_to_group_exists_and_resource_not_found() {
    let exists = mock!(Client::create_group)
        .sequence()
        .http_status(
            400,
            body("GroupExistsException", "A group with the name already exists"),
        )
        .build();
    let p = provider_with(&[&exists], config());
    assert!(matches!(
        p.create_group("g", "d").await.unwrap_err(),
        IdpError::GroupExists(_)
    ));
    let missing = mock!(Client::get_group)
        .sequence()
        .http_status(400, body("ResourceNotFoundException", "Group not found."))
        .build();
    let p = provider_with(&[&missing], config());
    assert_eq!(
        p.get_group("g").await.unwrap_err(),
        IdpError::ResourceNotFound("Group not found.".into())
    );
    let no_user = mock!(Client::admin_add_user_to_group)
        .sequence()
        .http_status(400, body("UserNotFoundException", "User does not exist."))
        .build();
    let p = provider_with(&[&no_user], config());
    assert_eq!(
        p.admin_add_user_to_group("x", "g").await.unwrap_err(),
        IdpError::UserNotFound
    );
}
