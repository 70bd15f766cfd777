//! The one place where SDK errors become [`IdpError`]s.

use admin_provisioner_core::identity::IdpError;
use aws_sdk_cognitoidentityprovider::config::http::HttpResponse;
use aws_sdk_cognitoidentityprovider::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Longest error message passed on (characters); Cognito's own messages are far shorter.
const MAX_MESSAGE: usize = 300;

/// Maps any error of a Cognito SDK call to an [`IdpError`], consistently for every operation.
///
/// * A service error is mapped by its Cognito error code (the `__type` of the response, which is also the
///   name of the SDK's error variant), so modelled and unmodelled codes (e.g. `LimitExceededException`)
///   are treated alike. Without a code, HTTP 429 is [`IdpError::TooManyRequests`], HTTP 5xx and an
///   unreadable 2xx are [`IdpError::Unavailable`], anything else a permanent [`IdpError::Other`]; an
///   unknown code is a permanent [`IdpError::Other`] (transient on 5xx).
/// * A timeout (operation or attempt timeout, or a connector timeout) is [`IdpError::Timeout`]: the call
///   may or may not have taken effect.
/// * A dispatch failure (connection refused, DNS, TLS, credentials that could not be loaded) or an
///   unreadable response is [`IdpError::Unavailable`] (an unreadable HTTP 429 is
///   [`IdpError::TooManyRequests`]).
/// * A request that could not be built is a permanent [`IdpError::Other`] with code `RequestConstruction`.
///
/// `op` names the operation in messages. Every message is made single-line, bounded in length, and every
/// occurrence of a string in `secrets` (passwords, sessions, the client secret) is replaced by
/// `[REDACTED]`.
pub fn map_sdk_error<E>(op: &str, err: &SdkError<E, HttpResponse>, secrets: &[&str]) -> IdpError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            map_code(op, err.code(), err.message(), status, secrets)
        }
        SdkError::TimeoutError(_) => IdpError::Timeout(op.to_string()),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => IdpError::Timeout(op.to_string()),
        SdkError::DispatchFailure(_) => IdpError::Unavailable(format!(
            "{op}: could not reach Cognito: {}",
            one_line(&DisplayErrorContext(err).to_string(), secrets)
        )),
        SdkError::ResponseError(response) => match response.raw().status().as_u16() {
            429 => IdpError::TooManyRequests,
            status => IdpError::Unavailable(format!("{op}: unreadable response from Cognito (HTTP {status})")),
        },
        SdkError::ConstructionFailure(_) => IdpError::Other {
            code: "RequestConstruction".into(),
            message: format!("{op}: {}", one_line(&DisplayErrorContext(err).to_string(), secrets)),
            transient: false,
        },
        _ => IdpError::Unavailable(format!(
            "{op}: {}",
            one_line(&DisplayErrorContext(err).to_string(), secrets)
        )),
    }
}

/// Maps a Cognito error code (with or without the `Exception` suffix) to an [`IdpError`].
pub(crate) fn map_code(op: &str, code: Option<&str>, message: Option<&str>, status: u16, secrets: &[&str]) -> IdpError {
    let msg = one_line(message.unwrap_or(""), secrets);
    let msg_or = |fallback: &str| {
        if msg.is_empty() {
            fallback.to_string()
        } else {
            msg.clone()
        }
    };
    let Some(code) = code.map(|c| c.trim_end_matches("Exception")).filter(|c| !c.is_empty()) else {
        return match status {
            429 => IdpError::TooManyRequests,
            // A success status whose body could not be read: the call may well have taken effect.
            200..=299 => IdpError::Unavailable(format!("{op}: unreadable response from Cognito (HTTP {status})")),
            500..=599 => IdpError::Unavailable(format!("{op}: Cognito answered HTTP {status}")),
            _ => IdpError::Other {
                code: "Unknown".into(),
                message: format!("{op}: Cognito answered HTTP {status} without an error code"),
                transient: false,
            },
        };
    };
    match code {
        "UsernameExists" => IdpError::UsernameExists,
        "UserNotFound" => IdpError::UserNotFound,
        "InvalidPassword" => IdpError::InvalidPassword(msg_or("the password does not meet the pool's policy")),
        "InvalidParameter" => IdpError::InvalidParameter(msg_or("invalid parameter")),
        "NotAuthorized" => IdpError::NotAuthorized(msg_or("not authorized")),
        "UnsupportedUserState" => IdpError::UnsupportedUserState(msg_or("unsupported user state")),
        "CodeDeliveryFailure" => IdpError::CodeDeliveryFailure(msg_or("the message could not be delivered")),
        "CodeMismatch" => IdpError::CodeMismatch(msg_or("code mismatch")),
        "ExpiredCode" => IdpError::CodeMismatch(msg_or("the code has expired")),
        // VerifySoftwareToken's answer to a wrong code.
        "EnableSoftwareTokenMFA" => IdpError::CodeMismatch(msg_or("the code does not match the software token")),
        "PasswordHistoryPolicyViolation" => IdpError::PasswordHistoryPolicyViolation,
        "PasswordResetRequired" => IdpError::PasswordResetRequired(msg_or("password reset required")),
        "TooManyRequests" | "LimitExceeded" | "Throttling" | "RequestLimitExceeded" => IdpError::TooManyRequests,
        "ResourceNotFound" => IdpError::ResourceNotFound(msg_or("the user pool or app client does not exist")),
        "GroupExists" => IdpError::GroupExists(msg_or("a group with the name already exists")),
        "InternalError" | "InternalFailure" | "ServiceUnavailable" => {
            IdpError::Unavailable(format!("{op}: {}", msg_or("Cognito internal error")))
        }
        "RequestTimeout" => IdpError::Timeout(op.to_string()),
        // UserLambdaValidation, UnexpectedLambda, InvalidLambdaResponse, InvalidSmsRoleAccessPolicy,
        // InvalidSmsRoleTrustRelationship, InvalidEmailRoleAccessPolicy, OperationNotEnabled,
        // PreconditionNotMet, UserNotConfirmed, Forbidden, … : configuration or
        // state problems that a retry does not fix, unless the service said 5xx.
        other => IdpError::Other {
            code: other.to_string(),
            message: msg_or(other),
            transient: status >= 500,
        },
    }
}

/// Makes `s` safe to log: secrets redacted, control characters and line breaks turned into spaces,
/// whitespace collapsed, at most [`MAX_MESSAGE`] characters.
pub(crate) fn one_line(s: &str, secrets: &[&str]) -> String {
    let mut s = s.to_string();
    for secret in secrets.iter().filter(|x| !x.is_empty()) {
        s = s.replace(secret, "[REDACTED]");
    }
    let collapsed = s
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if collapsed.chars().count() > MAX_MESSAGE {
        let cut: String = collapsed.chars().take(MAX_MESSAGE).collect();
        format!("{cut}…")
    } else {
        collapsed
    }
}
