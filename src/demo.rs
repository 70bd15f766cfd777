//! `admin-provisioner demo`: the whole flow on a fresh temporary database and emulator, step by step.
//!
//! Nothing here is simulated beyond the emulator itself: it runs the same [`Provisioner`] operations the
//! HTTP API runs, on an SQLite file and an emulator state in a temporary folder that is deleted at the
//! end. Temporary passwords are masked and tokens are never printed, only their verified claims.

use crate::app::{App, Hooks};
use crate::config::Config;
use admin_provisioner_core::domain::{Password, Secret, Tokens};

use admin_provisioner_core::{Caller, LoginOutcome, Provisioner};
use admin_provisioner_emulator::mailbox::Mailbox;
use anyhow::{anyhow, Context};
use std::io::Write;

/// Runs the demo, writing the numbered steps to `out`.
pub async fn run(out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let config = Config::embedded_in(dir.path());
    let app = App::build_with(config, Hooks::default()).await?;
    let p = &app.provisioner;
    let mailbox = Mailbox::new(&app.config.mailbox_dir);
    let mut n = 0;
    let mut step = |out: &mut dyn Write, text: String| -> anyhow::Result<()> {
        n += 1;
        writeln!(out, "\n{n}. {text}")?;
        Ok(())
    };

    writeln!(
        out,
        "admin-provisioner demo: SQLite at {} and the built-in Cognito emulator",
        app.config.database_url
    )?;

    step(
        out,
        "The operator creates the very first admin: `admin-provisioner bootstrap-admin --email alice@example.com`."
            .into(),
    )?;
    let alice = p.bootstrap_admin("Alice@Example.com", Some("demo")).await?;
    writeln!(out, "   Saga {} recorded its intent, then called Cognito AdminCreateUser(Username=alice@example.com, email_verified=true, DesiredDeliveryMediums=EMAIL).", alice.saga_id)?;
    writeln!(
        out,
        "   Cognito user {} (sub {}) is in FORCE_CHANGE_PASSWORD.",
        alice.user.cognito_username, alice.user.cognito_sub
    )?;
    writeln!(
        out,
        "   Database: User {} + AdminInfo (invited by operator, expires {}), status {}.",
        alice.user.id,
        alice.admin_info.invite_expires_at.format("%Y-%m-%d %H:%M UTC"),
        alice.invite.status.as_str()
    )?;

    step(
        out,
        "Cognito e-mails Alice her invitation (the emulator delivers it to the local mailbox):".into(),
    )?;
    let alice_temp = show_mail(out, &mailbox, "alice@example.com")?;

    let alice_tokens = first_login(
        out,
        &mut step,
        p,
        "alice@example.com",
        &alice_temp,
        "Alice-Chooses-4-Real!",
    )
    .await?;
    let alice_claims = show_claims(out, &app, &alice_tokens).await?;

    step(
        out,
        "Alice, now an authenticated admin, clicks \"Create New Admin\" and enters bob@example.com.".into(),
    )?;
    let caller = Caller::Token {
        sub: alice_claims["sub"].as_str().unwrap_or_default().to_string(),
        username: alice_claims["cognito:username"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        issued_at: alice_claims["iat"]
            .as_i64()
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .unwrap_or_default(),
    };
    writeln!(out, "   The API verified her ID token (RS256, kid, iss, aud, exp) and the database confirmed she is an active admin.")?;
    let bob = p.provision_new_admin(&caller, "bob@example.com", Some("demo")).await?;
    writeln!(out, "   Saga {}: intent recorded (identity_creating) -> Cognito AdminCreateUser -> User + AdminInfo written and the saga completed, with its Cognito user, in one transaction.", bob.saga_id)?;
    writeln!(
        out,
        "   Bob: User {} linked to Cognito user {} (sub {}), invited by {}, status {}.",
        bob.user.id,
        bob.user.cognito_username,
        bob.user.cognito_sub,
        alice.user.id,
        bob.invite.status.as_str()
    )?;

    step(out, "Bob receives his invitation e-mail:".into())?;
    let bob_temp = show_mail(out, &mailbox, "bob@example.com")?;
    let bob_tokens = first_login(out, &mut step, p, "bob@example.com", &bob_temp, "Bob-Picks-A-G00d-One").await?;
    show_claims(out, &app, &bob_tokens).await?;

    step(
        out,
        "Both admins are fully set up. The admin list and the audit log now read:".into(),
    )?;
    for a in p.list_admin_views().await? {
        writeln!(out, "   {:<20} {:<8} (id {})", a.email, a.status.as_str(), a.id)?;
    }
    for (e, _) in p.audit_page(None, 50).await?.into_iter().rev() {
        writeln!(
            out,
            "   audit: {:<22} {:<20} by {:<36} {}",
            e.entry.action.as_str(),
            e.entry.target,
            e.entry.actor.audit_name(),
            e.entry.outcome
        )?;
    }
    writeln!(
        out,
        "\nDemo finished: every step above ran against the real code paths; the temporary folder is removed."
    )?;
    Ok(())
}

fn show_mail(out: &mut dyn Write, mailbox: &Mailbox, email: &str) -> anyhow::Result<String> {
    let msg = mailbox
        .latest_for(email)?
        .ok_or_else(|| anyhow!("no invitation e-mail for {email}"))?;
    writeln!(out, "   To: {}\n   Subject: {}", msg.to, msg.subject)?;
    for line in msg.masked_body().lines().filter(|l| !l.trim().is_empty()) {
        writeln!(out, "   | {line}")?;
    }
    let temp = msg
        .temporary_password()
        .ok_or_else(|| anyhow!("the invitation has no temporary password"))?;
    Ok(temp.expose().to_string())
}

async fn first_login(
    out: &mut dyn Write,
    step: &mut dyn FnMut(&mut dyn Write, String) -> anyhow::Result<()>,
    p: &Provisioner,
    email: &str,
    temp: &str,
    new_password: &str,
) -> anyhow::Result<Tokens> {
    step(
        out,
        format!("{email} opens the console and logs in with the temporary password."),
    )?;
    let outcome = p.login(email, &Password::new(temp), Some("demo")).await?;
    let (session, username) = match outcome {
        LoginOutcome::NewPasswordRequired { session, username } => (session, username),
        _ => return Err(anyhow!("expected NEW_PASSWORD_REQUIRED")),
    };
    writeln!(out, "   Cognito InitiateAuth(USER_PASSWORD_AUTH) answers ChallengeName=NEW_PASSWORD_REQUIRED with a session valid for 3 minutes.")?;
    writeln!(out, "   Trying a weak password first:")?;
    match p
        .complete_new_password(&username, &session, &Password::new("password"), Some("demo"))
        .await
    {
        Err(e) => writeln!(out, "   -> refused ({}): {e}", e.code())?,
        Ok(_) => return Err(anyhow!("a weak password was accepted")),
    }
    step(out, format!("{email} is forced to choose a new password that meets the policy (8+ characters, upper, lower, digit, symbol)."))?;
    let outcome = p
        .complete_new_password(&username, &session, &Password::new(new_password), Some("demo"))
        .await?;
    let tokens = match outcome {
        LoginOutcome::Tokens(tokens) => tokens,
        LoginOutcome::MfaSetup { session, username } => {
            writeln!(out, "   Cognito RespondToAuthChallenge(NEW_PASSWORD_REQUIRED) sets the password; the pool has MFA on, so it answers ChallengeName=MFA_SETUP.")?;
            let enrolment = p.begin_mfa_in_challenge(&username, &session).await?;
            step(out, format!("{email} scans the QR code of {} with an authenticator app (AssociateSoftwareToken gave a 160-bit TOTP secret; the product keeps no copy).", enrolment.otpauth_uri.expose().split('?').next().unwrap_or("otpauth://")))?;
            let now = u64::try_from(p.now().timestamp()).unwrap_or(0);
            let code = admin_provisioner_core::totp::code_at(enrolment.secret_code.expose(), now)?;
            let next = enrolment
                .session
                .ok_or_else(|| anyhow!("MFA_SETUP without a session"))?;
            match p
                .verify_mfa_in_challenge(&username, &next, &Secret::new(code), Some("demo"))
                .await?
            {
                LoginOutcome::Tokens(tokens) => {
                    writeln!(out, "   VerifySoftwareToken accepts the app's first code; RespondToAuthChallenge(MFA_SETUP) completes the sign-in. Every later sign-in asks for a code (SOFTWARE_TOKEN_MFA).")?;
                    tokens
                }
                other => return Err(anyhow!("unexpected challenge {:?}", other.challenge_name())),
            }
        }
        other => return Err(anyhow!("unexpected challenge {:?}", other.challenge_name())),
    };
    writeln!(out, "   Cognito RespondToAuthChallenge succeeds: the user is CONFIRMED and receives ID, access and refresh tokens (expire in {} s).", tokens.expires_in)?;
    writeln!(
        out,
        "   Database: User.status = active, AdminInfo.accepted_at set, audit event first_login_completed."
    )?;
    Ok(tokens)
}

async fn show_claims(out: &mut dyn Write, app: &App, tokens: &Tokens) -> anyhow::Result<serde_json::Value> {
    // The same verifier the API uses (JWKS, RS256, kid, exp, iss, token_use, aud / client_id) ...
    let state = crate::http::AppState::new(app.clone());
    for token in [&tokens.id_token, &tokens.access_token] {
        state
            .verify(token.expose())
            .await
            .map_err(|e| anyhow!("token refused: {e:?}"))?;
    }
    // ... then the verified payloads are decoded for display.
    let claims = payload(tokens.id_token.expose())?;
    let access = payload(tokens.access_token.expose())?;
    writeln!(out, "   Verified ID token claims (the token itself is never printed):")?;
    for k in ["iss", "sub", "aud", "token_use", "cognito:username", "email", "exp"] {
        if let Some(v) = claims.get(k) {
            writeln!(out, "     {k}: {v}")?;
        }
    }
    writeln!(
        out,
        "   Verified access token claims: token_use={} client_id={} username={}",
        access["token_use"], access["client_id"], access["username"]
    )?;
    Ok(claims)
}

/// The JSON payload of a JWT that was already verified.
fn payload(token: &str) -> anyhow::Result<serde_json::Value> {
    use base64::Engine;
    let part = token.split('.').nth(1).ok_or_else(|| anyhow!("not a JWT"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part)?;
    Ok(serde_json::from_slice(&bytes)?)
}
