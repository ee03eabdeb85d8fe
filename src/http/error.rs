//! Rendering errors at the HTTP edge: RFC 9457 problem+json for the API, a readable page for the
//! console. The error types themselves live in `crate::error` (no actix there).
//!
//! `AppError` maps every failure to a status and a stable problem `type`. The `render_problems`
//! middleware makes *every* error response problem+json (including actix's own 404/405 and
//! middleware refusals), stamps the request id on it and logs 5xx causes — the body of a 5xx never
//! carries internal detail.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use serde::Serialize;

use super::request_id::RequestId;
use crate::clock::rfc3339;
pub use crate::error::{AppError, FieldError};

pub const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_BASE: &str = "https://rampart.dev/problems/";

impl AppError {
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let (slug, detail) = match self {
            AppError::Validation(_) => (
                "validation",
                "The request has invalid fields; see `errors`.".to_string(),
            ),
            AppError::BadRequest(detail) => ("bad-request", detail.clone()),
            AppError::Unauthorized => (
                "unauthorized",
                "Valid credentials are required.".to_string(),
            ),
            AppError::IdentityUnknown(detail) => ("identity-unknown", detail.clone()),
            AppError::StepUpRequired => (
                "step-up-required",
                "This operation needs a recent authentication: confirm your password (or a code \
                 from your authenticator) at POST /api/v1/auth/step-up, then send it again."
                    .to_string(),
            ),
            AppError::MfaRequired => (
                "mfa-required",
                "Admin operations need a session signed in with a second factor: enrol one at \
                 POST /api/v1/me/mfa/totp and sign in again with it."
                    .to_string(),
            ),
            AppError::EmailUnverified => (
                "email-unverified",
                "Confirm your email address first: use the link mailed to you (or ask for a new \
                 one at POST /api/v1/me/email/verification)."
                    .to_string(),
            ),
            AppError::Forbidden => (
                "forbidden",
                "You do not have permission for this action.".to_string(),
            ),
            AppError::NotFound => ("not-found", "The resource does not exist.".to_string()),
            AppError::Conflict(_) => (
                "conflict",
                "The request conflicts with existing data; see `errors`.".to_string(),
            ),
            AppError::PayloadTooLarge { limit } => (
                "payload-too-large",
                format!("The request body exceeds the limit of {limit} bytes."),
            ),
            AppError::TooManyFiles { max } => (
                "too-many-files",
                format!("At most {max} files may be sent in one request."),
            ),
            AppError::UnsupportedMediaType => (
                "unsupported-media-type",
                "Send the body as application/json.".to_string(),
            ),
            AppError::RequestTimeout => (
                "request-timeout",
                "The request body did not arrive in time.".to_string(),
            ),
            AppError::TooManyRequests { retry_after } => (
                "rate-limited",
                format!("Too many requests; retry after {retry_after} seconds."),
            ),
            AppError::QuotaExceeded {
                quota,
                period,
                limit,
                reset_at,
                ..
            } => (
                "quota-exceeded",
                format!(
                    "The {}ly quota `{quota}` ({limit} a {period}) is used up; it resets at {}.",
                    if *period == "day" { "dai" } else { period },
                    rfc3339(*reset_at)
                ),
            ),
            AppError::Unavailable { retry_after, .. } => (
                "unavailable",
                format!(
                    "The service is temporarily unavailable; retry after {retry_after} seconds."
                ),
            ),
            AppError::Internal(_) => (
                "internal",
                "An unexpected error occurred. Quote the request id when reporting it.".to_string(),
            ),
        };
        let errors = match self {
            AppError::Validation(errors) | AppError::Conflict(errors) => errors.clone(),
            _ => Vec::new(),
        };
        Problem {
            problem_type: format!("{TYPE_BASE}{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            request_id: None,
            errors,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::TooManyRequests { retry_after }
            | AppError::QuotaExceeded { retry_after, .. }
            | AppError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized | AppError::IdentityUnknown(_) | AppError::StepUpRequired => {
                StatusCode::UNAUTHORIZED
            }
            AppError::Forbidden | AppError::MfaRequired | AppError::EmailUnverified => {
                StatusCode::FORBIDDEN
            }
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge { .. } | AppError::TooManyFiles { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            AppError::TooManyRequests { .. } | AppError::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AppError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        let mut builder = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after() {
            builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if matches!(self, AppError::Unauthorized) {
            builder.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let AppError::QuotaExceeded {
            quota,
            limit,
            retry_after,
            ..
        } = self
        {
            // draft-ietf-httpapi-ratelimit-headers, as the per-IP limits send them: the quota is
            // spent until its window resets.
            builder.insert_header(("RateLimit-Limit", limit.to_string()));
            builder.insert_header(("RateLimit-Remaining", "0"));
            builder.insert_header(("RateLimit-Reset", retry_after.to_string()));
            builder.insert_header((
                "RateLimit-Policy",
                format!("{limit};w={};name=\"{quota}\"", retry_after),
            ));
        }
        let mut response = builder.content_type(PROBLEM_JSON).body(problem.to_json());
        response.extensions_mut().insert(problem);
        response
    }
}

/// The RFC 9457 body.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A generic problem for a status produced outside our handlers (404, 405, CORS refusal ...).
    pub fn for_status(status: StatusCode) -> Problem {
        let (slug, detail) = match status {
            StatusCode::NOT_FOUND => ("not-found", "No resource at this path."),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method-not-allowed",
                "This method is not allowed on this resource.",
            ),
            StatusCode::BAD_REQUEST => ("bad-request", "The request could not be understood."),
            StatusCode::PAYLOAD_TOO_LARGE => {
                ("payload-too-large", "The request body is too large.")
            }
            StatusCode::TOO_MANY_REQUESTS => ("rate-limited", "Too many requests."),
            StatusCode::REQUEST_TIMEOUT => (
                "request-timeout",
                "The request body did not arrive in time.",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported-media-type",
                "Send the body as application/json.",
            ),
            s if s.is_server_error() => (
                "internal",
                "An unexpected error occurred. Quote the request id when reporting it.",
            ),
            _ => ("error", "The request failed."),
        };
        Problem {
            problem_type: format!("{TYPE_BASE}{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.to_string(),
            request_id: None,
            errors: Vec::new(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                r#"{{"type":"{TYPE_BASE}internal","title":"Internal Server Error","status":500}}"#
            )
        })
    }
}

/// The readable page a console user gets for an error (the API gets problem+json).
#[derive(askama::Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage<'a> {
    pub status: u16,
    pub title: &'a str,
    pub message: &'a str,
    pub request_id: Option<&'a str>,
}

/// A generic message for an error status on a console page.
fn page_message(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "There is nothing at this address.",
        StatusCode::FORBIDDEN => "You may not do this. Nothing was changed.",
        StatusCode::METHOD_NOT_ALLOWED => "This page cannot be used that way.",
        StatusCode::TOO_MANY_REQUESTS => {
            "Too many requests from your address. Wait a little (see Retry-After) and try again."
        }
        StatusCode::PAYLOAD_TOO_LARGE => "What was sent is too large.",
        StatusCode::REQUEST_TIMEOUT => "What was sent took too long to arrive. Try again.",
        s if s.is_server_error() => {
            "Something went wrong on our side. Nothing was changed; try again, and quote the \
             reference below if it keeps happening."
        }
        _ => "The request could not be handled.",
    }
}

/// An HTML error page with `status` (Retry-After and the like are the caller's to add).
pub fn html_page(status: StatusCode, message: &str, request_id: Option<&str>) -> HttpResponse {
    use askama::Template;
    let page = ErrorPage {
        status: status.as_u16(),
        title: status.canonical_reason().unwrap_or("Error"),
        message,
        request_id,
    };
    let body = page.render().unwrap_or_else(|_| message.to_string());
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// Middleware: every error response leaves as problem+json with the request id, and every 5xx
/// cause is logged (with the request id, through the request span) instead of being sent.
///
/// Errors that inner middleware *return* (rather than render) are handled with a response mapper,
/// because the request cannot be kept alive across routing (actix needs it unshared).
pub async fn render_problems(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = req.extensions().get::<RequestId>().map(|id| id.0.clone());
    let console = super::headers::is_console_path(super::routed_path(&req));
    match next.call(req).await {
        Ok(res) => {
            if res.status().is_server_error() {
                match res.response().error() {
                    Some(error) => {
                        tracing::error!(error = ?error, status = res.status().as_u16(), "request failed")
                    }
                    None => tracing::error!(status = res.status().as_u16(), "request failed"),
                }
            }
            let (req, response) = res.map_into_boxed_body().into_parts();
            Ok(ServiceResponse::new(
                req,
                render(response, request_id.as_deref(), console),
            ))
        }
        Err(mut error) => {
            if error.as_response_error().status_code().is_server_error() {
                tracing::error!(error = ?error, "request failed");
            }
            error.add_response_mapper(move |res| render(res, request_id.as_deref(), console));
            Err(error)
        }
    }
}

/// Turns an error response into problem+json — or, on console paths, a readable HTML page —
/// keeping status and headers; leaves successes and pages already rendered alone.
fn render(res: HttpResponse, request_id: Option<&str>, console: bool) -> HttpResponse {
    let status = res.status();
    if !status.is_client_error() && !status.is_server_error() {
        return res;
    }
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    if is_html {
        return res;
    }
    if console {
        let mut page = html_page(status, page_message(status), request_id);
        for (name, value) in res.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                page.headers_mut().insert(name.clone(), value.clone());
            }
        }
        // A refusal that leaves a body unread closes the connection (see `limits`): keep that.
        if res.head().connection_type() == actix_web::http::ConnectionType::Close {
            page.head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
        }
        return page;
    }
    let mut problem = res
        .extensions()
        .get::<Problem>()
        .cloned()
        .unwrap_or_else(|| Problem::for_status(status));
    problem.request_id = request_id.map(str::to_string);
    let body = problem.to_json();
    let mut res = res.set_body(BoxBody::new(body));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res.headers_mut().remove(header::CONTENT_LENGTH);
    res
}
