//! Refused requests → `rate_limit.exceeded` audit rows, off the request path.
//!
//! A refusal must cost the refusing request nothing but a channel send: the middleware hands a
//! [`Refusal`] to a bounded channel (a full channel drops it and counts the drop), and one
//! background task coalesces what has queued up by (IP, policy) and records each group with
//! `Auditor::record_aggregated_as`, i.e. one chained row per (IP, policy, minute) carrying the
//! count. A flood of refusals therefore costs a handful of database writes a minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;
use tokio::sync::mpsc;

use crate::audit::{Action, Actor, Auditor, Event, Outcome, RequestMeta};
use crate::db::Pool;

/// Refusals waiting to be written; beyond this they are dropped (and counted).
pub const QUEUE: usize = 4096;
/// Refusals coalesced per round of writes.
const BATCH: usize = 1024;

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
    tx: mpsc::Sender<Refusal>,
    dropped: Arc<AtomicU64>,
}

impl Reporter {
    /// Queues a refusal; never waits.
    pub fn report(&self, refusal: Refusal) {
        if self.tx.try_send(refusal).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n + 1,
                    "rate-limit audit queue full; refusals dropped from the audit log"
                );
            }
        }
    }
}

/// Starts the background writer. It ends when every `Reporter` is gone.
pub fn spawn(pool: Pool, auditor: Auditor) -> Reporter {
    let (tx, mut rx) = mpsc::channel::<Refusal>(QUEUE);
    actix_web::rt::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            for (refusal, count) in coalesce(batch) {
                let auditor = auditor.clone();
                let result = pool
                    .run(move |conn| {
                        let meta = RequestMeta {
                            ip: Some(refusal.ip),
                            user_agent: refusal.user_agent.clone(),
                            request_id: refusal.request_id.clone(),
                            server_request_id: refusal.server_request_id.clone(),
                        };
                        let event = Event::new(
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
                        }));
                        auditor.record_aggregated_as(conn, &meta, event, refusal.policy, count)?;
                        Ok(())
                    })
                    .await;
                if let Err(error) = result {
                    tracing::warn!(error = %error, "could not record rate_limit.exceeded");
                }
            }
        }
    });
    Reporter {
        tx,
        dropped: Arc::new(AtomicU64::new(0)),
    }
}

/// Groups refusals by (IP, policy), keeping the first of each group and the group's size.
fn coalesce(batch: Vec<Refusal>) -> Vec<(Refusal, i64)> {
    let mut groups: HashMap<(IpAddr, &'static str), (Refusal, i64)> = HashMap::new();
    let mut order = Vec::new();
    for refusal in batch {
        let key = (refusal.ip, refusal.policy);
        match groups.get_mut(&key) {
            Some((_, count)) => *count += 1,
            None => {
                order.push(key);
                groups.insert(key, (refusal, 1));
            }
        }
    }
    order
        .into_iter()
        .filter_map(|key| groups.remove(&key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(ip: &str, policy: &'static str) -> Refusal {
        Refusal {
            ip: ip.parse().unwrap(),
            policy,
            limit: 10,
            window_seconds: 60,
            method: "POST".into(),
            path: "/api/v1/auth/login".into(),
            request_id: None,
            server_request_id: None,
            user_agent: None,
        }
    }

    #[test]
    fn refusals_coalesce_by_ip_and_policy_in_arrival_order() {
        let groups = coalesce(vec![
            refusal("192.0.2.1", "login"),
            refusal("192.0.2.2", "login"),
            refusal("192.0.2.1", "login"),
            refusal("192.0.2.1", "global"),
            refusal("192.0.2.1", "login"),
        ]);
        let summary: Vec<(String, &str, i64)> = groups
            .iter()
            .map(|(r, n)| (r.ip.to_string(), r.policy, *n))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("192.0.2.1".to_string(), "login", 3),
                ("192.0.2.2".to_string(), "login", 1),
                ("192.0.2.1".to_string(), "global", 1),
            ]
        );
    }
}
