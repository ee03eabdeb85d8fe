//! Control characters in text input are refused at the edge, once, for every route.
//!
//! PostgreSQL cannot store NUL in `text` (a query carrying one fails, and the request became a
//! 500), and no field of ours means anything with a C0 control character in it. So before a
//! handler runs, this middleware looks at every text input a client sends: the path as routed,
//! the query string (percent-decoded), and urlencoded-form and JSON bodies (decoded keys and
//! string values, at any depth; a body without a content type counts as JSON when it parses as
//! JSON). NUL and the C0 controls other than tab, line feed and carriage
//! return are refused — multi-line fields (an admin's "reason") keep working.
//!
//! The refusal names the field and never repeats its value: a 422 problem on the API, a readable
//! page on the console, 404 for a path (no resource has such a name). Sign-in answers as a wrong
//! password does (401 on the API, the console's "those details did not work"), so control
//! characters tell a client nothing about accounts.
//!
//! Bodies are read by `limits::limit_body` first (capped and within the body deadline); this
//! module only looks at [`BufferedBody`]. Other content types (raw bytes, files) pass untouched,
//! and so do the bodies of raw-body routes (`limits::RawBodyRoutes`: webhook deliveries, verified
//! on their exact bytes by their handler, which stores them as bytes) and streamed multipart
//! bodies (`limits::StreamedBodyRoutes`: never buffered; `http::multipart` checks the text part).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError};

use super::error::{AppError, FieldError};
use super::limits::BufferedBody;
use super::request_id::RequestId;

/// Whether `c` may appear in text input: anything but NUL and the C0 controls other than
/// tab, line feed and carriage return.
pub fn is_allowed(c: char) -> bool {
    !c.is_ascii_control() || matches!(c, '\t' | '\n' | '\r') || c == '\u{7f}'
}

fn clean(text: &str) -> bool {
    text.chars().all(is_allowed)
}

/// Where a control character was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offence {
    Path,
    /// A query parameter, form field or JSON member: its name as shown to the client.
    Field(String),
}

/// A field name that is safe to show back: the client's own name when it is a plain identifier
/// (with `.`/`[n]` for nested JSON), else the part of the request it came from.
fn shown_name(name: &str, fallback: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']'));
    if plain {
        name.to_string()
    } else {
        fallback.to_string()
    }
}

/// The first control character in urlencoded pairs (a query string or a form body).
pub fn check_urlencoded(raw: &[u8], part: &str) -> Option<Offence> {
    url::form_urlencoded::parse(raw).find_map(|(key, value)| {
        if !clean(&key) {
            Some(Offence::Field(part.to_string()))
        } else if !clean(&value) {
            Some(Offence::Field(shown_name(&key, part)))
        } else {
            None
        }
    })
}

/// The first control character in a JSON document's keys and string values. A body that is not
/// JSON is left to the extractor (400).
pub fn check_json(raw: &[u8]) -> Option<Offence> {
    let value: serde_json::Value = serde_json::from_slice(raw).ok()?;
    walk(&value, "")
}

fn walk(value: &serde_json::Value, at: &str) -> Option<Offence> {
    let here = || shown_name(at, "body");
    match value {
        serde_json::Value::String(s) if !clean(s) => Some(Offence::Field(here())),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| walk(item, &format!("{at}[{i}]"))),
        serde_json::Value::Object(members) => members.iter().find_map(|(key, item)| {
            if !clean(key) {
                return Some(Offence::Field(here()));
            }
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            walk(item, &path)
        }),
        _ => None,
    }
}

fn is_form(req: &ServiceRequest) -> bool {
    content_type(req).is_some_and(|ct| ct == "application/x-www-form-urlencoded")
}

/// JSON by its content type — or without one: routes that read an optional JSON body from raw
/// bytes (admin actions) do not insist on the header.
fn is_json(req: &ServiceRequest) -> bool {
    match content_type(req) {
        None => true,
        Some(ct) => {
            ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
        }
    }
}

fn content_type(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// The first control character in any text input of `req`.
pub fn offence(req: &ServiceRequest) -> Option<Offence> {
    if !clean(super::routed_path(req)) {
        return Some(Offence::Path);
    }
    if let Some(found) = check_urlencoded(req.query_string().as_bytes(), "query") {
        return Some(found);
    }
    let raw = req
        .app_data::<std::sync::Arc<super::limits::RawBodyRoutes>>()
        .is_some_and(|raw| {
            raw.limit_of(super::routed_pattern(req).as_deref())
                .is_some()
        });
    if raw
        || req
            .extensions()
            .get::<super::limits::StreamedBody>()
            .is_some()
    {
        return None;
    }
    let body = req
        .extensions()
        .get::<BufferedBody>()
        .map(|b| b.0.clone())?;
    if body.is_empty() {
        return None;
    }
    if is_form(req) {
        check_urlencoded(&body, "form")
    } else if is_json(req) {
        check_json(&body)
    } else {
        None
    }
}

const MESSAGE: &str = "must not contain control characters (such as NUL)";
const SIGN_IN_FAILED: &str = "Those details did not work. Check them and try again (admins only; \
                              repeated failures lock the account for a while).";

/// Middleware: refuses a request whose text input carries a control character (see the module
/// documentation), before any handler or database sees it.
pub async fn refuse_control_characters(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(found) = offence(&req) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let pattern = super::routed_pattern(&req);
    let console = super::headers::is_console_path(super::routed_path(&req));
    let sign_in = req.method() == Method::POST
        && matches!(
            pattern.as_deref(),
            Some("/api/v1/auth/login" | "/admin/login")
        );
    let field = match &found {
        Offence::Path => None,
        Offence::Field(name) => Some(name.clone()),
    };
    tracing::info!(
        field = field.as_deref().unwrap_or("(path)"),
        "request refused: control character in text input"
    );
    let request_id = req.extensions().get::<RequestId>().map(|id| id.0.clone());
    let response = match (field, console, sign_in) {
        (None, _, _) => return Ok(req.error_response(AppError::NotFound).map_into_boxed_body()),
        (Some(_), true, true) => super::error::html_page(
            StatusCode::UNAUTHORIZED,
            SIGN_IN_FAILED,
            request_id.as_deref(),
        ),
        (Some(_), false, true) => AppError::Unauthorized.error_response(),
        (Some(field), true, false) => super::error::html_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("The field “{field}” {MESSAGE}. Nothing was changed."),
            request_id.as_deref(),
        ),
        (Some(field), false, false) => {
            AppError::Validation(vec![FieldError::new(field, MESSAGE)]).error_response()
        }
    };
    Ok(req.into_response(response).map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_c0_controls_are_found_in_keys_and_values_at_any_depth() {
        assert_eq!(
            check_urlencoded(b"q=ok&actor=a%00b", "query"),
            Some(Offence::Field("actor".into()))
        );
        assert_eq!(
            check_urlencoded(b"q=a%01", "query"),
            Some(Offence::Field("q".into()))
        );
        assert_eq!(
            check_urlencoded(b"a%00=1", "query"),
            Some(Offence::Field("query".into()))
        );
        assert_eq!(
            check_urlencoded(b"reason=line%0D%0Anext%09tab", "form"),
            None
        );
        assert_eq!(check_urlencoded(b"q=%E2%82%AC+%7F", "query"), None);
        assert_eq!(
            check_json(br#"{"a":{"b":["x","y\u0000"]}}"#),
            Some(Offence::Field("a.b[1]".into()))
        );
        assert_eq!(
            check_json(br#"{"k\u001b":1}"#),
            Some(Offence::Field("body".into()))
        );
        assert_eq!(
            check_json(br#"{"password":"p\u0000"}"#),
            Some(Offence::Field("password".into()))
        );
        assert_eq!(check_json(br#"{"reason":"a\r\nb\tc"}"#), None);
        assert_eq!(check_json(b"not json \0"), None);
        assert_eq!(
            check_json(br#"{"na me":"\u0000"}"#),
            Some(Offence::Field("body".into()))
        );
    }
}
