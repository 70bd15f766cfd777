//! The mailbox page (`/console/mailbox`, emulator mode only): the invitations the built-in emulator
//! "delivered".

use super::{error_page, render, Chrome};
use crate::http::error::ApiError;
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// How many of the newest invitations the Mailbox page shows (the folder may hold thousands).
const MAILBOX_PAGE_SIZE: usize = 100;

struct MessageView {
    to: String,
    to_lower: String,
    date: String,
    subject: String,
    body: String,
    temporary_password: Option<String>,
}

#[derive(Template)]
#[template(path = "console/mailbox.html")]
struct MailboxPage {
    chrome: Chrome,
    total: usize,
    dir: String,
    messages: Vec<MessageView>,
}

pub(super) async fn mailbox_page(State(state): State<AppState>) -> Response {
    let Some(emu) = state.app().emulator.clone() else {
        return error_page(
            &state,
            StatusCode::NOT_FOUND,
            "not_found",
            "The mailbox exists only with the built-in Cognito emulator; real Cognito e-mails invitations to their recipients.",
        );
    };
    let mailbox = emu.mailbox();
    let (messages, total) = match tokio::task::spawn_blocking(move || mailbox.recent(MAILBOX_PAGE_SIZE)).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            return error_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &format!("The mailbox folder cannot be read: {e}"),
            )
        }
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let page = MailboxPage {
        chrome: Chrome::signed_out(&state, "Mailbox", None),
        total,
        dir: emu.mailbox().dir().display().to_string(),
        messages: messages
            .iter()
            .map(|m| MessageView {
                to: m.to.clone(),
                to_lower: m.to.to_lowercase(),
                date: m.date.clone(),
                subject: m.subject.clone(),
                body: m.body.clone(),
                temporary_password: m.temporary_password().map(|p| p.expose().to_string()),
            })
            .collect(),
    };
    render(StatusCode::OK, &page)
}
