//! Repeatable refusals → aggregated audit rows, off the request path.
//!
//! A refusal (a rate-limited request, a webhook delivery with a bad signature) must cost the
//! refusing request nothing but a channel send: the caller hands an [`Aggregated`] event to a
//! bounded channel (a full channel drops it and counts the drop), and one background task
//! coalesces what has queued up by (IP, action, scope) and records each group with
//! `Auditor::record_aggregated_as`, i.e. one chained row per (IP, action, scope, minute) carrying
//! the count. A flood of refusals therefore costs a handful of database writes a minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::{Action, Auditor, Event, RequestMeta};
use crate::db::Pool;

/// Events waiting to be written; beyond this they are dropped (and counted).
pub const QUEUE: usize = 4096;
/// Events coalesced per round of writes.
const BATCH: usize = 1024;

/// One occurrence of a repeatable event, aggregated per (IP, action, `scope`, minute).
#[derive(Debug, Clone)]
pub struct Aggregated {
    pub meta: RequestMeta,
    pub event: Event,
    /// What the count is of, within the action: a rate-limit policy, a webhook provider.
    pub scope: String,
}

#[derive(Clone)]
pub struct AuditQueue {
    tx: mpsc::Sender<Aggregated>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for AuditQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditQueue")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl AuditQueue {
    /// Starts the background writer. It ends when every clone of the queue is gone.
    pub fn spawn(pool: Pool, auditor: Auditor) -> AuditQueue {
        let (tx, mut rx) = mpsc::channel::<Aggregated>(QUEUE);
        actix_web::rt::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                for (item, count) in coalesce(batch) {
                    let auditor = auditor.clone();
                    let action = item.event.action;
                    let result = pool
                        .run(move |conn| {
                            auditor.record_aggregated_as(
                                conn,
                                &item.meta,
                                item.event,
                                &item.scope,
                                count,
                            )?;
                            Ok(())
                        })
                        .await;
                    if let Err(error) = result {
                        tracing::warn!(error = %error, action = %action, "could not record an aggregated audit event");
                    }
                }
            }
        });
        AuditQueue {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues an event; never waits.
    pub fn report(&self, item: Aggregated) {
        let action = item.event.action;
        if self.tx.try_send(item).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n + 1,
                    action = %action,
                    "audit queue full; repeated refusals dropped from the audit log"
                );
            }
        }
    }
}

type GroupKey = (Option<IpAddr>, Action, String);

/// Groups events by (IP, action, scope), keeping the first of each group and the group's size.
fn coalesce(batch: Vec<Aggregated>) -> Vec<(Aggregated, i64)> {
    let mut groups: HashMap<GroupKey, (Aggregated, i64)> = HashMap::new();
    let mut order = Vec::new();
    for item in batch {
        let key = (item.meta.ip, item.event.action, item.scope.clone());
        match groups.get_mut(&key) {
            Some((_, count)) => *count += 1,
            None => {
                order.push(key.clone());
                groups.insert(key, (item, 1));
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
    use crate::audit::{Actor, Outcome};

    fn item(ip: &str, action: Action, scope: &str) -> Aggregated {
        Aggregated {
            meta: RequestMeta {
                ip: Some(ip.parse().unwrap()),
                ..RequestMeta::default()
            },
            event: Event::new(action, Outcome::Denied, Actor::anonymous()),
            scope: scope.into(),
        }
    }

    #[test]
    fn events_coalesce_by_ip_action_and_scope_in_arrival_order() {
        let groups = coalesce(vec![
            item("192.0.2.1", Action::RateLimitExceeded, "login"),
            item("192.0.2.2", Action::RateLimitExceeded, "login"),
            item("192.0.2.1", Action::RateLimitExceeded, "login"),
            item("192.0.2.1", Action::RateLimitExceeded, "global"),
            item("192.0.2.1", Action::WebhookRejected, "login"),
            item("192.0.2.1", Action::RateLimitExceeded, "login"),
        ]);
        let summary: Vec<(String, &str, &str, i64)> = groups
            .iter()
            .map(|(r, n)| {
                (
                    r.meta.ip.unwrap().to_string(),
                    r.event.action.as_str(),
                    r.scope.as_str(),
                    *n,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("192.0.2.1".to_string(), "rate_limit.exceeded", "login", 3),
                ("192.0.2.2".to_string(), "rate_limit.exceeded", "login", 1),
                ("192.0.2.1".to_string(), "rate_limit.exceeded", "global", 1),
                ("192.0.2.1".to_string(), "webhook.rejected", "login", 1),
            ]
        );
    }
}
