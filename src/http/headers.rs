//! Security headers on every response — successes, errors, 404s and 405s alike.
//!
//! The API gets a CSP that allows nothing (`default-src 'none'`); console pages and their assets
//! get a `'self'`-only CSP with no inline script or style. HSTS is sent in production only (a
//! development server on plain http must not pin browsers to https for localhost).

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;

pub const API_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()";
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

#[derive(Debug, Clone, Copy)]
pub struct SecurityHeaders {
    pub enabled: bool,
    pub hsts: bool,
}

/// Paths served as console pages (HTML for people) rather than API.
pub fn is_console_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/") || path.starts_with("/static/")
}

pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let config = req
        .app_data::<Arc<SecurityHeaders>>()
        .map(|c| **c)
        .unwrap_or(SecurityHeaders {
            enabled: true,
            hsts: false,
        });
    let console = is_console_path(super::routed_path(&req));
    match next.call(req).await {
        Ok(mut res) => {
            apply(res.headers_mut(), config, console);
            Ok(res)
        }
        Err(mut error) => {
            error.add_response_mapper(move |mut res| {
                apply(res.headers_mut(), config, console);
                res
            });
            Err(error)
        }
    }
}

/// Adds the security headers to `headers` (also used for responses made outside the middleware
/// stack, such as the early 413 to `Expect: 100-continue`).
pub fn apply(headers: &mut HeaderMap, config: SecurityHeaders, console: bool) {
    if !config.enabled {
        return;
    }
    let fixed: [(HeaderName, &'static str); 6] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
        (
            HeaderName::from_static("permissions-policy"),
            PERMISSIONS_POLICY,
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let csp = if console { CONSOLE_CSP } else { API_CSP };
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
    }
    // Responses may carry tokens or personal data: never cache unless a handler (static assets)
    // decided otherwise.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if config.hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
}
