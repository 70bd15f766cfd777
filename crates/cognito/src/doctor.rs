//! Checks a user pool and app client for settings that break the provisioning flow.
//!
//! [`check`] calls `DescribeUserPool` and `DescribeUserPoolClient` (read-only; the IAM principal needs
//! `cognito-idp:DescribeUserPool` and `cognito-idp:DescribeUserPoolClient`) and returns one [`Finding`]
//! per problem. [`Severity::Blocking`] findings make the flow fail (login, invitation or expiry
//! tracking); [`Severity::Warning`] findings work but are risky in production.
//!
//! | code | severity | what |
//! |---|---|---|
//! | `invalid_user_pool_id` | blocking | the pool id is not `{region}_{id}` |
//! | `region_mismatch` | blocking | the pool id names another region than the configured one |
//! | `user_pool_not_found` | blocking | `DescribeUserPool` answered ResourceNotFound |
//! | `app_client_not_found` | blocking | `DescribeUserPoolClient` answered ResourceNotFound |
//! | `user_password_auth_disabled` | blocking | the app client lacks `ALLOW_USER_PASSWORD_AUTH` |
//! | `client_secret_missing` | blocking | the app client has a secret but none is configured |
//! | `client_secret_unexpected` | blocking | a secret is configured but the app client has none |
//! | `client_secret_mismatch` | blocking | the configured secret is not the app client's |
//! | `temporary_password_validity_mismatch` | blocking | `TemporaryPasswordValidityDays` ≠ `INVITE_VALIDITY_DAYS` |
//! | `invite_template_missing_placeholder` | blocking | the invitation e-mail lacks `{username}` or `{####}` |
//! | `mfa_sms_only` | blocking | `MfaConfiguration=ON` without software-token (TOTP) MFA: sign-in would end in an SMS challenge the product does not answer |
//! | `mfa_software_token_disabled` | warning | `MfaConfiguration=OPTIONAL` without software-token MFA: admins cannot enrol an authenticator (`REQUIRE_MFA` would lock them out) |
//! | `phone_number_usernames` | blocking | usernames must be phone numbers; the product uses e-mail addresses |
//! | `usernames_case_sensitive` | warning | `Ann@x.com` and `ann@x.com` can be two Cognito users |
//! | `custom_message_lambda` | warning | a CustomMessage trigger may rewrite the invitation |
//! | `cognito_default_email_sender` | warning | Cognito's own sender: about 50 e-mails a day per account |
//! | `self_sign_up_allowed` | warning | anyone can sign up to the pool (`AllowAdminCreateUserOnly=false`) |
//! | `role_group_missing` | warning | `COGNITO_ROLE_GROUPS=true` and a role group does not exist yet (`serve` creates it at start-up, with `cognito-idp:CreateGroup`) |
//! | `role_groups_not_permitted` | blocking | `COGNITO_ROLE_GROUPS=true` but the IAM principal may not read the groups (`cognito-idp:GetGroup`) |

use crate::{region_of_user_pool_id, validate_user_pool_id, CognitoConfig, CognitoIdentityProvider};
use admin_provisioner_core::identity::IdpError;
use aws_sdk_cognitoidentityprovider::types::{
    EmailSendingAccountType, ExplicitAuthFlowsType, UserPoolClientType, UserPoolMfaType, UserPoolType,
    UsernameAttributeType,
};
use std::fmt;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The provisioning flow does not work with this setting.
    Blocking,
    /// The flow works, but the setting is risky or limiting in production.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Blocking => "blocking",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in the pool or app-client settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Blocking or warning.
    pub severity: Severity,
    /// Stable snake_case identifier (see the module docs for the list).
    pub code: &'static str,
    /// One line for people: what is wrong and how to fix it.
    pub message: String,
}

impl Finding {
    fn blocking(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Blocking,
            code,
            message: message.into(),
        }
    }
    fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.severity, self.code, self.message)
    }
}

/// True when any finding is [`Severity::Blocking`].
pub fn has_blocking(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Blocking)
}

/// Reads the pool (`DescribeUserPool`) and the app client (`DescribeUserPoolClient`) and reports what
/// breaks the flow; `invite_validity_days` is the product's `INVITE_VALIDITY_DAYS`.
///
/// A missing pool or app client is reported as a blocking finding. Other errors (no permission to
/// describe, network, throttling) are returned as `Err`: nothing could be checked.
pub async fn check(provider: &CognitoIdentityProvider, invite_validity_days: u32) -> anyhow::Result<Vec<Finding>> {
    let config = provider.config();
    let mut findings = Vec::new();
    if let Err(e) = validate_user_pool_id(&config.user_pool_id) {
        findings.push(Finding::blocking(
            "invalid_user_pool_id",
            format!("{e}; set COGNITO_USER_POOL_ID"),
        ));
        return Ok(findings);
    }
    if let Some(pool_region) = region_of_user_pool_id(&config.user_pool_id) {
        if pool_region != config.region {
            findings.push(Finding::blocking(
                "region_mismatch",
                format!(
                    "the pool id {} is in region {pool_region} but AWS_REGION is {}; set AWS_REGION={pool_region}",
                    config.user_pool_id, config.region
                ),
            ));
        }
    }

    let pool = match provider
        .client()
        .describe_user_pool()
        .user_pool_id(&config.user_pool_id)
        .send()
        .await
    {
        Ok(out) => match out.user_pool {
            Some(pool) => pool,
            None => anyhow::bail!("DescribeUserPool returned no UserPool"),
        },
        Err(e) => match crate::map_sdk_error("DescribeUserPool", &e, &[]) {
            IdpError::ResourceNotFound(_) => {
                findings.push(Finding::blocking(
                    "user_pool_not_found",
                    format!(
                        "user pool {} does not exist in region {} (check COGNITO_USER_POOL_ID and AWS_REGION)",
                        config.user_pool_id, config.region
                    ),
                ));
                return Ok(findings);
            }
            other => anyhow::bail!("DescribeUserPool failed: {other} (the doctor needs cognito-idp:DescribeUserPool)"),
        },
    };

    let client = match provider
        .client()
        .describe_user_pool_client()
        .user_pool_id(&config.user_pool_id)
        .client_id(&config.client_id)
        .send()
        .await
    {
        Ok(out) => out.user_pool_client,
        Err(e) => {
            let secrets: Vec<&str> = config.client_secret.iter().map(|s| s.expose()).collect();
            match crate::map_sdk_error("DescribeUserPoolClient", &e, &secrets) {
                IdpError::ResourceNotFound(_) => {
                    findings.push(Finding::blocking(
                        "app_client_not_found",
                        format!(
                            "app client {} does not exist in pool {} (check COGNITO_CLIENT_ID)",
                            config.client_id, config.user_pool_id
                        ),
                    ));
                    None
                }
                other => anyhow::bail!(
                    "DescribeUserPoolClient failed: {other} (the doctor needs cognito-idp:DescribeUserPoolClient)"
                ),
            }
        }
    };

    findings.extend(evaluate(&pool, client.as_ref(), config, invite_validity_days));
    let mfa = pool.mfa_configuration();
    if matches!(mfa, Some(UserPoolMfaType::On | UserPoolMfaType::Optional)) {
        // DescribeUserPool does not say which factors are enabled; GetUserPoolMfaConfig does.
        let software_token = match provider
            .client()
            .get_user_pool_mfa_config()
            .user_pool_id(&config.user_pool_id)
            .send()
            .await
        {
            Ok(out) => out.software_token_mfa_configuration().is_some_and(|c| c.enabled()),
            Err(e) => anyhow::bail!(
                "GetUserPoolMfaConfig failed: {} (the doctor needs cognito-idp:GetUserPoolMfaConfig)",
                crate::map_sdk_error("GetUserPoolMfaConfig", &e, &[])
            ),
        };
        findings.extend(evaluate_mfa(mfa, software_token));
    }
    Ok(findings)
}

/// The IAM actions role mirroring (`COGNITO_ROLE_GROUPS=true`) needs, beyond the product's others.
pub const ROLE_GROUP_IAM_ACTIONS: &[&str] = &[
    "cognito-idp:CreateGroup",
    "cognito-idp:GetGroup",
    "cognito-idp:AdminAddUserToGroup",
    "cognito-idp:AdminRemoveUserFromGroup",
    "cognito-idp:AdminListGroupsForUser",
];

/// Role mirroring (`COGNITO_ROLE_GROUPS=true`): each of `groups` must exist (`GetGroup`). A missing one
/// is a warning (`serve` creates it at start-up); a refused `GetGroup` is blocking and names the IAM
/// actions the mirroring needs. Other errors are returned: nothing could be checked.
pub async fn check_role_groups(provider: &CognitoIdentityProvider, groups: &[String]) -> anyhow::Result<Vec<Finding>> {
    use admin_provisioner_core::identity::IdentityProvider;
    let mut findings = Vec::new();
    let actions = ROLE_GROUP_IAM_ACTIONS.join(", ");
    for group in groups {
        match provider.get_group(group).await {
            Ok(_) => {}
            Err(IdpError::ResourceNotFound(_)) => findings.push(Finding::warning(
                "role_group_missing",
                format!(
                    "Cognito group {group} does not exist: serve creates it at start-up (IAM: {actions}), or create it: \
                     aws cognito-idp create-group --user-pool-id {} --group-name {group}",
                    provider.config().user_pool_id
                ),
            )),
            Err(IdpError::NotAuthorized(m)) => {
                findings.push(Finding::blocking(
                    "role_groups_not_permitted",
                    format!("GetGroup {group} was refused ({m}): COGNITO_ROLE_GROUPS=true needs the IAM actions {actions}"),
                ));
                break;
            }
            Err(IdpError::Other { code, message, .. }) if code.contains("AccessDenied") => {
                findings.push(Finding::blocking(
                    "role_groups_not_permitted",
                    format!("GetGroup {group} was refused ({code}: {message}): COGNITO_ROLE_GROUPS=true needs the IAM actions {actions}"),
                ));
                break;
            }
            Err(e) => anyhow::bail!("GetGroup {group} failed: {e} (role mirroring needs {actions})"),
        }
    }
    Ok(findings)
}

/// The MFA checks: the product answers software-token (TOTP) challenges only. `MfaConfiguration=ON`
/// works when software-token MFA is enabled; with SMS alone it cannot sign anyone in.
pub fn evaluate_mfa(mfa: Option<&UserPoolMfaType>, software_token_enabled: bool) -> Vec<Finding> {
    match (mfa, software_token_enabled) {
        (Some(UserPoolMfaType::On), false) => vec![Finding::blocking(
            "mfa_sms_only",
            "the pool requires MFA (MfaConfiguration=ON) but software-token (TOTP) MFA is not enabled: every sign-in would end in an SMS challenge this product does not answer; enable it (SetUserPoolMfaConfig SoftwareTokenMfaConfiguration={Enabled=true}) or set MFA to OPTIONAL or OFF",
        )],
        (Some(UserPoolMfaType::Optional), false) => vec![Finding::warning(
            "mfa_software_token_disabled",
            "the pool's MFA is OPTIONAL but software-token (TOTP) MFA is not enabled: admins cannot enrol an authenticator, so REQUIRE_MFA=true would lock them out; enable it (SetUserPoolMfaConfig SoftwareTokenMfaConfiguration={Enabled=true})",
        )],
        _ => vec![],
    }
}

/// The checks themselves, on already fetched settings (`client` is `None` when it could not be found).
pub fn evaluate(
    pool: &UserPoolType,
    client: Option<&UserPoolClientType>,
    config: &CognitoConfig,
    invite_validity_days: u32,
) -> Vec<Finding> {
    let mut findings = Vec::new();

    if let Some(client) = client {
        let flows = client.explicit_auth_flows();
        let password_auth = flows.iter().any(|f| {
            matches!(
                f,
                ExplicitAuthFlowsType::AllowUserPasswordAuth | ExplicitAuthFlowsType::UserPasswordAuth
            )
        });
        if !password_auth {
            findings.push(Finding::blocking(
                "user_password_auth_disabled",
                format!(
                    "app client {} does not allow ALLOW_USER_PASSWORD_AUTH, so first login (InitiateAuth USER_PASSWORD_AUTH) fails; add it to the client's ExplicitAuthFlows",
                    config.client_id
                ),
            ));
        }
        match (client.client_secret(), &config.client_secret) {
            (Some(_), None) => findings.push(Finding::blocking(
                "client_secret_missing",
                "the app client has a secret but COGNITO_CLIENT_SECRET is not set, so every login fails; set it or use a client without a secret",
            )),
            (None, Some(_)) => findings.push(Finding::blocking(
                "client_secret_unexpected",
                "COGNITO_CLIENT_SECRET is set but the app client has no secret, so logins fail; unset it",
            )),
            (Some(actual), Some(configured)) if actual != configured.expose() => findings.push(Finding::blocking(
                "client_secret_mismatch",
                "COGNITO_CLIENT_SECRET is not the app client's secret, so every login fails; copy the client's current secret",
            )),
            _ => {}
        }
    }

    // Cognito's default is 7 days; 0 means the pool does not say (older pools used UnusedAccountValidityDays).
    let pool_days = pool
        .policies()
        .and_then(|p| p.password_policy())
        .map(|p| p.temporary_password_validity_days())
        .filter(|d| *d > 0)
        .or_else(|| {
            pool.admin_create_user_config()
                .map(|c| c.unused_account_validity_days())
                .filter(|d| *d > 0)
        })
        .unwrap_or(7);
    if i64::from(pool_days) != i64::from(invite_validity_days) {
        findings.push(Finding::blocking(
            "temporary_password_validity_mismatch",
            format!(
                "the pool's TemporaryPasswordValidityDays is {pool_days} but INVITE_VALIDITY_DAYS is {invite_validity_days}, so invite expiry is shown wrongly; make them equal"
            ),
        ));
    }

    let template = pool
        .admin_create_user_config()
        .and_then(|c| c.invite_message_template())
        .and_then(|t| t.email_message());
    if let Some(template) = template {
        let missing: Vec<&str> = ["{username}", "{####}"]
            .into_iter()
            .filter(|p| !template.contains(p))
            .collect();
        if !missing.is_empty() {
            findings.push(Finding::blocking(
                "invite_template_missing_placeholder",
                format!(
                    "the invitation e-mail template (AdminCreateUserConfig.InviteMessageTemplate.EmailMessage) lacks {}, so new admins cannot log in; include both {{username}} and {{####}}",
                    missing.join(" and ")
                ),
            ));
        }
    }

    let username_attrs = pool.username_attributes();
    if username_attrs.contains(&UsernameAttributeType::PhoneNumber)
        && !username_attrs.contains(&UsernameAttributeType::Email)
    {
        findings.push(Finding::blocking(
            "phone_number_usernames",
            "the pool uses phone numbers as usernames, but admins are created with their e-mail address; use a pool with e-mail or plain usernames",
        ));
    }

    match pool.username_configuration() {
        Some(c) if !c.case_sensitive() => {}
        Some(_) => findings.push(Finding::warning(
            "usernames_case_sensitive",
            "usernames are case-sensitive: users created outside this product as Ann@x.com and ann@x.com are different users; the product always uses lower case, but prefer a pool with CaseSensitive=false (fixed at pool creation)",
        )),
        None => findings.push(Finding::warning(
            "usernames_case_sensitive",
            "the pool has no UsernameConfiguration (created before case-insensitivity existed), so usernames are case-sensitive; the product always uses lower case, but prefer a new pool with CaseSensitive=false",
        )),
    }

    if pool.lambda_config().and_then(|l| l.custom_message()).is_some() {
        findings.push(Finding::warning(
            "custom_message_lambda",
            "a CustomMessage Lambda trigger is set: make sure its invitation still contains {username} and {####}",
        ));
    }

    let sender = pool.email_configuration().and_then(|e| e.email_sending_account());
    if sender.is_none() || sender == Some(&EmailSendingAccountType::CognitoDefault) {
        findings.push(Finding::warning(
            "cognito_default_email_sender",
            "the pool sends e-mail with Cognito's default sender, limited to about 50 e-mails a day per account; configure Amazon SES (EmailSendingAccount=DEVELOPER) for production",
        ));
    }

    let admin_only = pool
        .admin_create_user_config()
        .map(|c| c.allow_admin_create_user_only())
        .unwrap_or(false);
    if !admin_only {
        findings.push(Finding::warning(
            "self_sign_up_allowed",
            "anyone can sign up to this pool (AllowAdminCreateUserOnly=false); set it to true so only invited admins have accounts",
        ));
    }

    findings
}
