//! Refused requests → `rate_limit.exceeded` audit rows, off the request path: each [`Refusal`]
//! goes to the audit queue (`audit::AuditQueue`), which writes one chained row per
//! (IP, policy, minute) carrying the count.

use std::net::IpAddr;

use serde_json::json;

use crate::audit::{Action, Actor, Aggregated, AuditQueue, Event, Outcome, RequestMeta};

/// One refused request.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub ip: IpAddr,
    pub policy: &'static str,
    pub limit: u32,
    pub window_seconds: u64,
    pub method: String,
    pub path: String,
    pub request_id: Option<String>,
    /// The id the server generated for the request (kept beside a client-chosen one).
    pub server_request_id: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Clone)]
pub struct Reporter {
    queue: AuditQueue,
}

impl Reporter {
    /// Queues a refusal; never waits.
    pub fn report(&self, refusal: Refusal) {
        self.queue.report(aggregated(refusal));
    }
}

/// The reporter writing through `queue`.
pub fn spawn(queue: AuditQueue) -> Reporter {
    Reporter { queue }
}

fn aggregated(refusal: Refusal) -> Aggregated {
    Aggregated {
        meta: RequestMeta {
            ip: Some(refusal.ip),
            user_agent: refusal.user_agent,
            request_id: refusal.request_id,
            server_request_id: refusal.server_request_id,
        },
        event: Event::new(
            Action::RateLimitExceeded,
            Outcome::Denied,
            Actor::anonymous(),
        )
        .metadata(json!({
            "policy": refusal.policy,
            "limit": refusal.limit,
            "window_seconds": refusal.window_seconds,
            "method": refusal.method,
            "path": refusal.path,
        })),
        scope: refusal.policy.to_string(),
    }
}
