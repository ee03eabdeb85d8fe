//! Per-request context set by the outermost middleware: the request id (a well-formed incoming
//! `X-Request-Id` is honoured, otherwise a UUID v7), the server's own id for the request (always a
//! fresh UUID v7, whatever the client sent), the trusted client IP and the start time.
//! Everything inside — logs, problem bodies, the audit log — reads them from here.
//!
//! The client's id is kept so that a caller can correlate its own logs with ours; since the client
//! chooses it (two requests may claim the same one, or another request's), the audit log also
//! stores [`ServerRequestId`], which only the server makes.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use super::client_ip::{ClientIp, TrustedProxies};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The id the server generated for this request: unique, never chosen by the client. Equal to
/// the [`RequestId`] when the client sent none (or an unacceptable one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRequestId(pub String);

/// When the request entered the service (for the request log's latency).
#[derive(Debug, Clone, Copy)]
pub struct RequestStart(pub Instant);

impl RequestId {
    /// Accepts ids that are safe to echo and log: 1–128 characters of `[A-Za-z0-9._:-]`.
    pub fn parse(raw: &str) -> Option<RequestId> {
        let ok = !raw.is_empty()
            && raw.len() <= 128
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| RequestId(raw.to_string()))
    }

    pub fn generate() -> RequestId {
        RequestId(uuid::Uuid::now_v7().to_string())
    }
}

impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate);
        ready(Ok(id))
    }
}

/// Middleware (outermost): establishes the request's id, client IP and start time, and echoes the
/// id on the response — on errors too.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let server_id = RequestId::generate();
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(|| server_id.clone());
    let proxies = req
        .app_data::<Arc<TrustedProxies>>()
        .cloned()
        .unwrap_or_default();
    let client_ip = ClientIp::resolve(req.request(), &proxies);
    {
        let mut ext = req.extensions_mut();
        ext.insert(id.clone());
        ext.insert(ServerRequestId(server_id.0));
        ext.insert(client_ip);
        ext.insert(RequestStart(start));
    }
    let value = HeaderValue::from_str(&id.0).ok();
    match next.call(req).await {
        Ok(mut res) => {
            if let Some(value) = value {
                res.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            Ok(res)
        }
        Err(mut error) => {
            if let Some(value) = value {
                error.add_response_mapper(move |mut res| {
                    res.headers_mut().insert(REQUEST_ID_HEADER, value.clone());
                    res
                });
            }
            Err(error)
        }
    }
}
