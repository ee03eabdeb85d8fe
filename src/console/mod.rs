//! The admin console: server-rendered pages for people, in the same actix app as the API.
//!
//! **Boundary.** Owns console sign-in (`admin_sessions`, the cookie, CSRF — see [`session`]), the
//! page handlers ([`routes`]), their askama structs ([`pages`]), the dashboard chart, the CSV
//! export and the static assets. Every rule it applies comes from the features' service
//! functions (`accounts::admin`, `api_keys`, `sessions`, `audit`, `webhooks`) that the admin JSON
//! API and the CLI call too: the console decides nothing about users, keys, sessions or webhook
//! deliveries itself.
//!
//! Pages are `GET`; every state change is a `POST` from a confirmation page (no JavaScript
//! `confirm`), carrying the session's CSRF token, checked for a same-origin `Origin`/`Referer`,
//! audited with the admin as actor, then redirected (303) to a page showing a flash message.
//! Signed-out or non-admin visitors are sent to `/admin/login`.

pub mod assets;
pub mod chart;
pub mod export;
pub mod pages;
pub mod routes;
pub mod session;
pub mod step_up;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};

use crate::error::AppError;

/// Why a console request did not get its page.
#[derive(Debug)]
pub enum ConsoleError {
    /// Not signed in (or the session is over): to the sign-in page.
    SignIn,
    /// Signed in with one factor while admins need two: to the enrolment page.
    EnrolMfa,
    /// Refused, with a sentence for the person (CSRF, another origin, a rule).
    Forbidden(&'static str),
    NotFound,
    /// The object is not in a state the action applies to, with a sentence for the person.
    Conflict(String),
    App(AppError),
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsoleError::SignIn => f.write_str("sign-in required"),
            ConsoleError::EnrolMfa => f.write_str("second factor enrolment required"),
            ConsoleError::Forbidden(why) => write!(f, "forbidden: {why}"),
            ConsoleError::NotFound => f.write_str("not found"),
            ConsoleError::Conflict(why) => write!(f, "conflict: {why}"),
            ConsoleError::App(e) => write!(f, "{e}"),
        }
    }
}

impl From<AppError> for ConsoleError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::NotFound => ConsoleError::NotFound,
            other => ConsoleError::App(other),
        }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignIn | ConsoleError::EnrolMfa => StatusCode::SEE_OTHER,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::Conflict(_) => StatusCode::CONFLICT,
            ConsoleError::App(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ConsoleError::SignIn => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/admin/login"))
                .finish(),
            ConsoleError::EnrolMfa => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/admin/mfa"))
                .finish(),
            ConsoleError::Forbidden(why) => {
                crate::http::error::html_page(StatusCode::FORBIDDEN, why, None)
            }
            ConsoleError::NotFound => crate::http::error::html_page(
                StatusCode::NOT_FOUND,
                "There is nothing at this address (or it was removed).",
                None,
            ),
            ConsoleError::Conflict(why) => {
                crate::http::error::html_page(StatusCode::CONFLICT, why, None)
            }
            ConsoleError::App(e) => {
                if e.status_code().is_server_error() {
                    tracing::error!(error = %e, "console request failed");
                }
                let message = match e {
                    AppError::Validation(errors) | AppError::Conflict(errors) => errors
                        .first()
                        .map(|f| format!("{} {}", f.field, f.message))
                        .unwrap_or_else(|| "The request was not valid.".into()),
                    AppError::Forbidden => "You may not do this. Nothing was changed.".into(),
                    AppError::Unavailable { .. } => {
                        "The service is busy or its database is unreachable. Nothing was \
                         changed; try again in a moment."
                            .into()
                    }
                    other if other.status_code().is_server_error() => {
                        "Something went wrong on our side. Nothing was changed.".into()
                    }
                    other => other.problem().detail,
                };
                let mut res = crate::http::error::html_page(e.status_code(), &message, None);
                if let AppError::Unavailable { retry_after, .. }
                | AppError::TooManyRequests { retry_after } = e
                    && let Ok(v) = header::HeaderValue::from_str(&retry_after.to_string())
                {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
                res
            }
        }
    }
}

/// Mounts the console pages and its static assets.
pub fn mount(cfg: &mut actix_web::web::ServiceConfig) {
    routes::routes(cfg);
    assets::routes(cfg);
}
