//! Console page handlers, one module per section (mirroring `templates/console/`): extract →
//! check (admin, CSRF) → one service call → a page or a redirect with a flash message. This file
//! holds the route table and the plumbing every section shares (page rendering, flash messages,
//! the pager links, user lookups).

mod audit;
mod dashboard;
mod identities;
mod keys;
mod mfa;
mod outbox;
pub use mfa::MfaView;
mod sessions;
mod sign_in;
mod users;
mod webhooks;

use std::collections::HashMap;

use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::ConsoleError;
use super::pages::{Chrome, Flash, link};
use super::session::Admin;
use crate::accounts::admin as users_admin;
use crate::audit::AuditEntry;
use crate::console::session::CookieNames;
use crate::error::AppError;
use crate::http::pagination::uuid_cursor;
use crate::state::AppState;

/// Rows per console table page.
const PAGE: i64 = 50;

pub fn routes(cfg: &mut web::ServiceConfig) {
    dashboard::routes(cfg);
    sign_in::routes(cfg);
    audit::routes(cfg);
    users::routes(cfg);
    keys::routes(cfg);
    mfa::routes(cfg);
    outbox::routes(cfg);
    sessions::routes(cfg);
    webhooks::routes(cfg);
    identities::routes(cfg);
}

// --- plumbing -------------------------------------------------------------------------------------

/// [`page`] for the console's middleware (step-up).
pub(crate) fn render_page(
    status: StatusCode,
    template: &impl Template,
    clear_flash: Option<Cookie<'static>>,
) -> Result<HttpResponse, ConsoleError> {
    page(status, template, clear_flash)
}

/// [`chrome`] for the console's middleware (step-up).
pub(crate) fn chrome_for(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    title: &str,
) -> (Chrome, Option<Cookie<'static>>) {
    chrome(state, req, Some(admin), title.to_string(), "")
}

/// A rendered page, clearing the flash cookie if the page showed it.
fn page(
    status: StatusCode,
    template: &impl Template,
    clear_flash: Option<Cookie<'static>>,
) -> Result<HttpResponse, ConsoleError> {
    let body = template
        .render()
        .map_err(|e| ConsoleError::App(AppError::internal(anyhow::anyhow!("template: {e}"))))?;
    let mut res = HttpResponse::build(status);
    res.content_type("text/html; charset=utf-8");
    if let Some(cookie) = clear_flash {
        res.cookie(cookie);
    }
    Ok(res.body(body))
}

/// The chrome of a page, with the flash message left by the previous action (and the cookie
/// that clears it).
fn chrome(
    state: &AppState,
    req: &HttpRequest,
    admin: Option<&Admin>,
    title: impl Into<String>,
    section: &'static str,
) -> (Chrome, Option<Cookie<'static>>) {
    let names = &CookieNames::for_settings(&state.settings);
    let flash = req.cookie(names.flash).and_then(|c| {
        let raw = percent_decode(c.value());
        let (kind, text) = raw.split_once('|')?;
        let kind = if kind == "error" { "error" } else { "ok" };
        Some(Flash {
            kind,
            text: text.chars().take(300).collect(),
        })
    });
    let clear = flash.as_ref().map(|_| names.removal(names.flash));
    (
        Chrome {
            title: title.into(),
            section,
            admin: admin.map(|a| a.user.username.clone()),
            csrf: admin.map(|a| a.csrf.clone()).unwrap_or_default(),
            flash,
        },
        clear,
    )
}

fn percent_decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("m={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// 303 to `location`, leaving a flash message for the page there.
fn redirect(state: &AppState, location: &str, kind: &str, text: &str) -> HttpResponse {
    let names = &CookieNames::for_settings(&state.settings);
    let value: String =
        url::form_urlencoded::byte_serialize(format!("{kind}|{text}").as_bytes()).collect();
    let mut cookie = names.cookie(names.flash, value);
    cookie.set_max_age(actix_web::cookie::time::Duration::seconds(60));
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_string()))
        .cookie(cookie)
        .finish()
}

/// The non-empty filters of a list page, as query pairs.
fn filter_pairs<'a>(filters: &[(&'a str, &String)]) -> Vec<(&'a str, String)> {
    filters
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, (*v).clone()))
        .collect()
}

/// The "older" and "newer" links of a newest-first list page, keeping its filters.
fn pager(
    path: &str,
    pairs: &[(&str, String)],
    older: Option<Uuid>,
    newer: Option<Uuid>,
) -> (Option<String>, Option<String>) {
    let with = |key: &'static str, id: Uuid| {
        let mut p = pairs.to_vec();
        p.push((key, uuid_cursor(id)));
        link(path, p)
    };
    (
        older.map(|id| with("before", id)),
        newer.map(|id| with("after", id)),
    )
}

/// A user filter typed into a form (username or id): the id, or a message when nobody has that
/// name. A name that matches nobody filters to nothing rather than to everything.
async fn named_user(
    state: &AppState,
    raw: &str,
) -> Result<(Option<Uuid>, Option<String>), ConsoleError> {
    if raw.is_empty() {
        return Ok((None, None));
    }
    let lookup = raw.to_string();
    let found = state
        .pool
        .run(move |conn| users_admin::resolve_user(conn, &lookup))
        .await?;
    Ok(match found {
        Some(id) => (Some(id), None),
        None => (
            Some(Uuid::nil()),
            Some(format!("There is no user named {raw}.")),
        ),
    })
}

/// Usernames for every user id among these audit rows' actors and targets.
fn names_for(
    conn: &mut diesel::PgConnection,
    entries: &[AuditEntry],
) -> Result<HashMap<Uuid, String>, AppError> {
    let ids: Vec<Uuid> = entries
        .iter()
        .flat_map(|e| [e.actor_id.as_deref(), e.target_id.as_deref()])
        .flatten()
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    users_admin::usernames(conn, &ids)
}

/// A form that carries only the session's CSRF token.
#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

/// The form of a confirmation page: its CSRF token, a reason, and (for role changes) the role.
#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf_token: String,
    reason: Option<String>,
    role: Option<String>,
    /// The typed confirmation of an irreversible action (the username).
    confirm: Option<String>,
}
