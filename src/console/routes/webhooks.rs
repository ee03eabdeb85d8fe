//! The webhook inbox pages: the filtered list of verified deliveries, one delivery (its body,
//! headers, verification and processing) and the replay of a failed one (confirm page, then a
//! CSRF-checked `POST` to `webhooks::replay`, audited with the admin as actor).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use uuid::Uuid;

use super::{CsrfForm, PAGE, chrome, filter_pairs, page, pager, redirect};
use crate::audit::Actor;
use crate::auth::request_meta;
use crate::console::ConsoleError;
use crate::console::pages::{
    ConfirmPage, WebhookDetail, WebhookForm, WebhookPage, WebhookRow, WebhooksPage,
};
use crate::console::session::Admin;
use crate::error::{AppError, FieldError};
use crate::http::pagination::parse_uuid_cursor;
use crate::http::path_id::PathId;
use crate::state::AppState;
use crate::webhooks::{EventQuery, Outcome, Provider, WebhookError, WebhookEvent};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/webhooks").route(web::get().to(webhooks)))
        .service(web::resource("/admin/webhooks/{id}").route(web::get().to(webhook)))
        .service(
            web::resource("/admin/webhooks/{id}/replay")
                .route(web::get().to(replay_confirm))
                .route(web::post().to(replay)),
        );
}

/// The outcomes a stored delivery can have (`duplicate` is only ever an answer to a sender).
const STORED_OUTCOMES: [Outcome; 3] = [Outcome::Processed, Outcome::Ignored, Outcome::Failed];

#[derive(Deserialize, Default)]
struct WebhookParams {
    provider: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

impl WebhookParams {
    /// The filters as typed (trimmed), for the form and for links that keep them.
    fn form(&self) -> WebhookForm {
        let v = |o: &Option<String>| o.as_deref().unwrap_or_default().trim().to_string();
        WebhookForm {
            provider: v(&self.provider),
            event_type: v(&self.event_type),
            outcome: v(&self.outcome),
            from: v(&self.from),
            to: v(&self.to),
            errors: Vec::new(),
        }
    }
}

/// The form's filters as an inbox query, or every field that is not valid. Unknown values are
/// refused (422), never read as "any".
fn to_query(form: &WebhookForm) -> Result<EventQuery, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut query = EventQuery::default();
    if !form.provider.is_empty() {
        match Provider::parse(&form.provider) {
            Some(p) => query.provider = Some(p.as_str().to_string()),
            None => errors.push(FieldError::new("provider", "must be stripe or clerk")),
        }
    }
    if !form.event_type.is_empty() {
        if is_event_type(&form.event_type) {
            query.event_type = Some(form.event_type.clone());
        } else {
            errors.push(FieldError::new(
                "type",
                "is not an event type (up to 255 letters, digits and _ . : -)",
            ));
        }
    }
    if !form.outcome.is_empty() {
        match STORED_OUTCOMES
            .into_iter()
            .find(|o| o.as_str() == form.outcome)
        {
            Some(o) => query.outcome = Some(o.as_str().to_string()),
            None => errors.push(FieldError::new(
                "outcome",
                "must be processed, ignored or failed",
            )),
        }
    }
    for (field, raw, slot) in [
        ("from", &form.from, &mut query.from),
        ("to", &form.to, &mut query.to),
    ] {
        if !raw.is_empty() {
            match crate::audit::parse_timestamp(raw) {
                Ok(at) => *slot = Some(at),
                Err(message) => errors.push(FieldError::new(field, message)),
            }
        }
    }
    if errors.is_empty() {
        Ok(query)
    } else {
        Err(errors)
    }
}

/// What the inbox stores as an event type: 1–255 of `[A-Za-z0-9_.:-]`.
fn is_event_type(text: &str) -> bool {
    (1..=255).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

async fn webhooks(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    params: web::Query<WebhookParams>,
) -> Result<HttpResponse, ConsoleError> {
    let params = params.into_inner();
    let mut form = params.form();
    let mut query = match to_query(&form) {
        Ok(query) => Some(query),
        Err(errors) => {
            form.errors = errors;
            None
        }
    };
    if let Some(q) = query.as_mut() {
        let cursor = |raw: &Option<String>| -> Result<Option<Uuid>, ()> {
            match raw.as_deref().filter(|c| !c.is_empty()) {
                None => Ok(None),
                Some(c) => parse_uuid_cursor(c).map(Some).ok_or(()),
            }
        };
        match (cursor(&params.before), cursor(&params.after)) {
            (Ok(before), Ok(after)) => {
                q.before_id = before;
                q.after_id = after;
            }
            _ => {
                form.errors.push(FieldError::new(
                    "page",
                    "The page link is not valid; start again from the first page",
                ));
                query = None;
            }
        }
    }
    let pairs = filter_pairs(&[
        ("provider", &form.provider),
        ("type", &form.event_type),
        ("outcome", &form.outcome),
        ("from", &form.from),
        ("to", &form.to),
    ]);
    let (rows, older, newer) = match query {
        Some(q) => {
            let paging_newer = q.after_id.is_some();
            let paging_older = q.before_id.is_some();
            let result = crate::webhooks::list(&state, q, PAGE).await?;
            let mut items = result.items;
            // `next` is the last row read when there are more beyond it: read oldest first when
            // paging newer, newest first otherwise.
            let (older, newer) = if paging_newer {
                items.reverse();
                (items.last().map(|e| e.id), result.next)
            } else {
                (
                    result.next,
                    items.first().map(|e| e.id).filter(|_| paging_older),
                )
            };
            let (older, newer) = pager("/admin/webhooks", &pairs, older, newer);
            (
                items.iter().map(WebhookRow::new).collect::<Vec<_>>(),
                older,
                newer,
            )
        }
        None => (Vec::new(), None, None),
    };
    let status = if form.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let providers = Provider::ALL
        .iter()
        .map(|p| (p.as_str(), p.as_str() == form.provider))
        .collect();
    let outcomes = STORED_OUTCOMES
        .iter()
        .map(|o| (o.as_str(), o.as_str() == form.outcome))
        .collect();
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Webhooks", "webhooks");
    page(
        status,
        &WebhooksPage {
            chrome,
            form,
            providers,
            outcomes,
            rows,
            older,
            newer,
            filtered: !pairs.is_empty(),
        },
        clear,
    )
}

/// A webhook service error as the console shows it.
fn console_error(error: WebhookError) -> ConsoleError {
    match error {
        WebhookError::NotFound => ConsoleError::NotFound,
        WebhookError::NotReplayable(outcome) => not_replayable(&outcome),
        other => ConsoleError::from(AppError::from(other)),
    }
}

fn not_replayable(outcome: &str) -> ConsoleError {
    ConsoleError::Conflict(format!(
        "This delivery is {outcome}: only failed deliveries can be replayed (a processed one \
         would be applied twice). Nothing was changed."
    ))
}

async fn webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<HttpResponse, ConsoleError> {
    let event = crate::webhooks::get(&state, PathId::of(&req)?)
        .await
        .map_err(console_error)?;
    let title = format!("Webhook {}", event.event_id);
    let (chrome, clear) = chrome(&state, &req, Some(&admin), title, "webhooks");
    page(
        StatusCode::OK,
        &WebhookPage {
            chrome,
            event: WebhookDetail::new(&event),
        },
        clear,
    )
}

/// The delivery, if it can be replayed (a readable 409 page otherwise).
async fn failed_event(state: &AppState, id: Uuid) -> Result<WebhookEvent, ConsoleError> {
    let event = crate::webhooks::get(state, id)
        .await
        .map_err(console_error)?;
    if event.outcome != Outcome::Failed.as_str() {
        return Err(not_replayable(&event.outcome));
    }
    Ok(event)
}

async fn replay_confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<HttpResponse, ConsoleError> {
    let event = failed_event(&state, PathId::of(&req)?).await?;
    let row = WebhookRow::new(&event);
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Replay webhook", "webhooks");
    page(
        StatusCode::OK,
        &ConfirmPage {
            chrome,
            heading: "Replay this delivery?".into(),
            message: "Its stored, verified body is processed again, as if it had just arrived. \
                      Do this after the cause of the failure is fixed; the replay is audited."
                .into(),
            facts: vec![
                ("Provider", row.provider.clone()),
                ("Type", row.event_type.clone()),
                ("Event id", row.event_id.clone()),
                ("Received", row.received.clone()),
                ("Failure", event.error.clone().unwrap_or_default()),
                ("Replays so far", row.replays.to_string()),
            ],
            action: format!("/admin/webhooks/{}/replay", row.id),
            button: "Replay delivery",
            danger: false,
            reason: false,
            reason_required: false,
            reason_value: String::new(),
            roles: Vec::new(),
            confirm_word: None,
            error: None,
            cancel: format!("/admin/webhooks/{}", row.id),
        },
        clear,
    )
}

async fn replay(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = PathId::of(&req)?;
    admin.check_form(&state, &req, &form.csrf_token)?;
    let event =
        crate::webhooks::replay(&state, id, Actor::admin(admin.user.id), request_meta(&req))
            .await
            .map_err(console_error)?;
    let location = format!("/admin/webhooks/{id}");
    Ok(if event.outcome == Outcome::Failed.as_str() {
        redirect(
            &state,
            &location,
            "error",
            &format!(
                "Replayed; it failed again: {}",
                event.error.unwrap_or_default()
            ),
        )
    } else {
        redirect(
            &state,
            &location,
            "ok",
            &format!("Replayed: the delivery is now {}.", event.outcome),
        )
    })
}
