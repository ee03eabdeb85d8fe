//! HTTP plumbing shared by every feature: errors, security headers, request ids, client IP,
//! limits, CORS, Host checking, panic containment, the request log and health endpoints.
//! No feature logic lives here.

pub mod client_ip;
pub mod cors;
pub mod error;
pub mod headers;
pub mod health;
pub mod hosts;
pub mod limits;
pub mod openapi;
pub mod pagination;
pub mod panic;
pub mod request_id;
pub mod request_log;
