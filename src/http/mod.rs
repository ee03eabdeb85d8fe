//! HTTP plumbing shared by every feature: errors, security headers, request ids, client IP,
//! limits, CORS, Host checking, control characters in text input, panic containment, the request
//! log and health endpoints.
//! No feature logic lives here.

pub mod client_ip;
pub mod cors;
pub mod error;
pub mod headers;
pub mod hosts;
pub mod limits;
pub mod openapi;
pub mod pagination;
pub mod panic;
pub mod path_id;
pub mod request_id;
pub mod request_log;
pub mod text_input;

use actix_web::dev::ServiceRequest;

/// The path as the router sees it: percent-decoded except `%2F`, `%25` and `%2B` (actix-router's
/// quoter). Rules keyed on a path (console or API, per-route limits) use this, not the raw path.
pub fn routed_path(req: &ServiceRequest) -> &str {
    req.match_info().as_str()
}

/// The pattern of the resource a request will be routed to (`/api/v1/auth/login`,
/// `/admin/users/{id}`), `None` when no resource matches (a 404). Available before routing, so the
/// middleware in front of the router decides on what the router will actually dispatch to.
pub fn routed_pattern(req: &ServiceRequest) -> Option<String> {
    req.resource_map().match_pattern(routed_path(req))
}
