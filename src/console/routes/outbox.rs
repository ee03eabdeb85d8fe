//! The mail outbox (`/admin/outbox`): mails still pending and mails that failed, newest first,
//! the recipient masked (`a***@example.org`: enough to recognise a case, no address list for
//! whoever looks over a shoulder); a failed mail can be put back in the queue (CSRF-checked,
//! audited with the admin as actor). Sent mails are not listed (their bodies are emptied anyway).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{CsrfForm, PAGE, chrome, page, redirect};
use crate::audit::Actor;
use crate::auth::request_meta;
use crate::console::ConsoleError;
use crate::console::pages::{OutboxPage, OutboxRowView};
use crate::console::session::Admin;
use crate::email::Status;
use crate::error::{AppError, FieldError};
use crate::http::pagination::parse_uuid_cursor;
use crate::http::path_id::PathId;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/outbox").route(web::get().to(outbox)))
        .service(web::resource("/admin/outbox/{id}/retry").route(web::post().to(retry)));
}

#[derive(Deserialize, Default)]
struct OutboxParams {
    status: Option<String>,
    before: Option<String>,
}

async fn outbox(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    params: web::Query<OutboxParams>,
) -> Result<HttpResponse, ConsoleError> {
    let params = params.into_inner();
    let status_text = params.status.unwrap_or_default().trim().to_string();
    let status = match status_text.as_str() {
        "" => None,
        "pending" => Some(Status::Pending),
        "failed" => Some(Status::Failed),
        _ => {
            return Err(AppError::Validation(vec![FieldError::new(
                "status",
                "must be pending or failed",
            )])
            .into());
        }
    };
    let before = params.before.as_deref().and_then(parse_uuid_cursor);
    let (rows, pending, failed) =
        crate::email::open_mails(&state, status, before, PAGE + 1).await?;
    let more = rows.len() > usize::try_from(PAGE).unwrap_or(usize::MAX);
    let rows: Vec<OutboxRowView> = rows
        .iter()
        .take(usize::try_from(PAGE).unwrap_or(usize::MAX))
        .map(OutboxRowView::new)
        .collect();
    let older = more.then(|| {
        let last = rows.last().map(|r| r.id.clone()).unwrap_or_default();
        let mut link = format!("/admin/outbox?before={last}");
        if !status_text.is_empty() {
            link.push_str(&format!("&status={status_text}"));
        }
        link
    });
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Mail outbox", "outbox");
    page(
        StatusCode::OK,
        &OutboxPage {
            chrome,
            status: status_text,
            rows,
            pending,
            failed,
            older,
        },
        clear,
    )
}

async fn retry(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = PathId::of(&req)?;
    admin.check_form(&state, &req, &form.csrf_token)?;
    match crate::email::retry(&state, id, Actor::admin(admin.user.id), request_meta(&req)).await {
        Ok(()) => Ok(redirect(
            &state,
            "/admin/outbox",
            "ok",
            "The mail is queued again; the sender picks it up within seconds.",
        )),
        Err(AppError::Conflict(_)) => Err(ConsoleError::Conflict(
            "Only a failed mail can be retried; this one is pending or was sent.".into(),
        )),
        Err(other) => Err(other.into()),
    }
}
