//! The request span and the one log line per finished request.
//!
//! tracing-actix-web's default span records `realip_remote_addr()` (which trusts any client's
//! X-Forwarded-For) and the full target with its query string; this builder records the trusted
//! client IP and the path only. No header value is ever recorded, so Authorization, Cookie,
//! Set-Cookie and X-API-Key cannot reach the logs through here.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;

use super::client_ip::ClientIp;
use super::request_id::{RequestId, RequestStart, ServerRequestId};

pub struct RampartRootSpan;

impl RootSpanBuilder for RampartRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let ext = request.extensions();
        let request_id = ext
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        // The client's X-Request-Id when it sent one: logged, but the server's own id is logged
        // too, so a client cannot make two requests' lines look like one.
        let server_request_id = ext
            .get::<ServerRequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        let client_ip = ext
            .get::<ClientIp>()
            .map(|ip| ip.0.to_string())
            .unwrap_or_default();
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "(unmatched)".into());
        tracing::info_span!(
            "request",
            request_id = %request_id,
            server_request_id = %server_request_id,
            method = %request.method(),
            route = %route,
            path = %request.path(),
            client_ip = %client_ip,
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, latency_ms) = match outcome {
            Ok(res) => {
                let latency = res
                    .request()
                    .extensions()
                    .get::<RequestStart>()
                    .map(|s| s.0.elapsed().as_secs_f64() * 1000.0);
                (res.status().as_u16(), latency)
            }
            Err(error) => (error.as_response_error().status_code().as_u16(), None),
        };
        span.record("status", status);
        span.in_scope(|| {
            tracing::info!(
                status,
                latency_ms = latency_ms.unwrap_or_default(),
                "request finished"
            )
        });
    }
}
