//! The rate-limit middleware: spends the request from the client's budgets before routing, adds
//! the `RateLimit-*` headers, and turns a refusal into a 429 problem with `Retry-After`.
//!
//! Which budgets apply is decided on the route pattern the request resolves to (the resource
//! map matched against the path as the router decodes it), never on the raw path: every
//! spelling that reaches the login handler spends the login budget, and only what reaches
//! `/health` or `/ready` is exempt.

use std::sync::Arc;

use actix_governor::KeyExtractor;
use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;

use super::model::{RouteClass, Standing, Verdict, is_exempt};
use super::report::Refusal;
use super::{Limiter, Policy};
use crate::error::AppError;
use crate::http::client_ip::ClientIp;
use crate::http::request_id::{RequestId, ServerRequestId};

pub const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
pub const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // `None` when RATE_LIMIT_ENABLED=false.
    let pattern = crate::http::routed_pattern(&req);
    let limiter = match req.app_data::<Option<Arc<Limiter>>>() {
        Some(Some(limiter)) if !is_exempt(pattern.as_deref()) => limiter.clone(),
        _ => {
            return next
                .call(req)
                .await
                .map(ServiceResponse::map_into_boxed_body);
        }
    };
    let key = limiter.extractor().extract(&req)?;
    let class = RouteClass::of(req.method(), pattern.as_deref());
    let verdict = limiter.check(key, class).await;
    let policy = limiter.policy_header(class);
    match verdict {
        Verdict::Allowed { tightest } => {
            let mut res = next.call(req).await?.map_into_boxed_body();
            // A quota refusal carries its own RateLimit-* headers (the quota is what binds).
            if !res.headers().contains_key(LIMIT) {
                set_headers(res.headers_mut(), &tightest, policy);
            }
            Ok(res)
        }
        Verdict::Denied {
            standing,
            retry_after,
        } => {
            if let Some(reporter) = limiter.reporter() {
                reporter.report(refusal(&req, &standing.policy));
            }
            let mut res = req
                .error_response(AppError::TooManyRequests { retry_after })
                .map_into_boxed_body();
            set_headers(res.headers_mut(), &standing, policy);
            Ok(res)
        }
    }
}

fn set_headers(headers: &mut HeaderMap, standing: &Standing, policy: &str) {
    headers.insert(LIMIT, HeaderValue::from(standing.policy.limit));
    headers.insert(REMAINING, HeaderValue::from(standing.remaining));
    headers.insert(RESET, HeaderValue::from(standing.reset_seconds));
    if let Ok(value) = HeaderValue::from_str(policy) {
        headers.insert(POLICY, value);
    }
}

fn refusal(req: &ServiceRequest, policy: &Policy) -> Refusal {
    let ext = req.extensions();
    Refusal {
        ip: ext
            .get::<ClientIp>()
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |ip| ip.0),
        policy: policy.name,
        limit: policy.limit,
        window_seconds: policy.window.as_secs(),
        method: req.method().as_str().chars().take(16).collect(),
        // Attacker-chosen: bounded here, and scrubbed again when written.
        path: req.path().chars().take(200).collect(),
        request_id: ext.get::<RequestId>().map(|id| id.0.clone()),
        server_request_id: ext.get::<ServerRequestId>().map(|id| id.0.clone()),
        user_agent: req.headers().get(header::USER_AGENT).map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(512)
                .collect()
        }),
    }
}
