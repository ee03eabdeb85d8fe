//! Fixed-window counters: at most `limit` requests per client per window, the window starting at
//! the client's first request. In memory (one instance; time from the injected [`Clock`], so tests
//! move it) or in Redis (shared by every instance, through `actix-extensible-rate-limit`'s
//! `RedisBackend`: an atomic INCR + EXPIRE NX per request, windows timed by Redis).
//!
//! Windows are what makes an hourly budget hold for a client that spaces its requests: the
//! 1001st request of an hour is refused however it was spread, which a token bucket (GCRA)
//! with the same numbers does not guarantee.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use actix_extensible_rate_limit::backend::redis::RedisBackend;
use actix_extensible_rate_limit::backend::{Backend, SimpleInput};
use dashmap::DashMap;
use time::OffsetDateTime;

use super::model::{ClientKey, Policy, Standing, ceil_seconds};

/// One client's window: when it started (ms since the Unix epoch) and requests admitted in it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    start_ms: i64,
    count: u32,
}

/// In-memory windows for a fixed set of policies.
#[derive(Debug)]
pub struct MemoryWindows {
    maps: Vec<(Policy, DashMap<ClientKey, Slot>)>,
}

impl MemoryWindows {
    pub fn new(policies: &[Policy]) -> MemoryWindows {
        MemoryWindows {
            maps: policies.iter().map(|p| (*p, DashMap::new())).collect(),
        }
    }

    /// Counts one request of `key` against `policy` at `now`. Refused requests are not counted.
    pub fn hit(&self, policy: &Policy, key: ClientKey, now: OffsetDateTime) -> (bool, Standing) {
        let now_ms = millis(now);
        let window_ms = i64::try_from(policy.window.as_millis()).unwrap_or(i64::MAX);
        let Some((_, map)) = self.maps.iter().find(|(p, _)| p.name == policy.name) else {
            // Not a policy of this store: nothing to count against.
            return (true, standing(policy, policy.limit, policy.window));
        };
        let mut slot = map.entry(key).or_insert(Slot {
            start_ms: now_ms,
            count: 0,
        });
        if now_ms >= slot.start_ms.saturating_add(window_ms) || now_ms < slot.start_ms {
            *slot = Slot {
                start_ms: now_ms,
                count: 0,
            };
        }
        let left_ms = slot.start_ms.saturating_add(window_ms) - now_ms;
        let reset = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        if slot.count >= policy.limit {
            return (false, standing(policy, 0, reset));
        }
        slot.count += 1;
        (true, standing(policy, policy.limit - slot.count, reset))
    }

    /// Drops windows that have ended (a client that comes back starts a new one anyway).
    pub fn sweep(&self, now: OffsetDateTime) {
        let now_ms = millis(now);
        for (policy, map) in &self.maps {
            let window_ms = i64::try_from(policy.window.as_millis()).unwrap_or(i64::MAX);
            map.retain(|_, slot| slot.start_ms.saturating_add(window_ms) > now_ms);
            map.shrink_to_fit();
        }
    }

    /// Clients tracked, summed over the policies.
    pub fn len(&self) -> usize {
        self.maps.iter().map(|(_, m)| m.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn standing(policy: &Policy, remaining: u32, reset: Duration) -> Standing {
    Standing {
        policy: *policy,
        remaining,
        reset_seconds: ceil_seconds(reset),
    }
}

/// Windows kept in Redis, so that every instance spends the same budget. The connection is made
/// on first use and re-made by the connection manager after a failure.
pub struct RedisWindows {
    client: redis::Client,
    prefix: String,
    backend: tokio::sync::OnceCell<RedisBackend>,
    /// After a failure Redis is not asked again until this time (ms since the Unix epoch), so an
    /// outage costs requests nothing but the failed one.
    down_until_ms: AtomicI64,
}

/// Each Redis round trip is bounded: a slow Redis must not hold requests up.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a failed Redis is left alone before it is tried again.
pub const REDIS_RETRY_AFTER: Duration = Duration::from_secs(5);

impl RedisWindows {
    pub fn new(url: &str, prefix: &str) -> Result<RedisWindows, String> {
        let client = redis::Client::open(url).map_err(|e| format!("REDIS_URL: {e}"))?;
        Ok(RedisWindows {
            client,
            prefix: prefix.to_string(),
            backend: tokio::sync::OnceCell::new(),
            down_until_ms: AtomicI64::new(0),
        })
    }

    async fn backend(&self) -> Result<&RedisBackend, String> {
        self.backend
            .get_or_try_init(|| async {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(REDIS_TIMEOUT)
                    .set_response_timeout(REDIS_TIMEOUT)
                    .set_number_of_retries(1);
                let manager =
                    redis::aio::ConnectionManager::new_with_config(self.client.clone(), config)
                        .await
                        .map_err(|e| format!("cannot connect to Redis: {e}"))?;
                Ok(RedisBackend::builder(manager)
                    .key_prefix(Some(&self.prefix))
                    .build())
            })
            .await
    }

    /// Connects (if not yet connected) and round-trips once: for start-up checks.
    pub async fn ping(&self) -> Result<(), String> {
        let probe = Policy {
            name: "startup_probe",
            limit: u32::MAX,
            window: Duration::from_secs(1),
        };
        self.hit(
            &probe,
            ClientKey::of(std::net::Ipv4Addr::UNSPECIFIED.into(), false),
        )
        .await
        .map(|_| ())
    }

    /// Counts one request of `key` against `policy`.
    pub async fn hit(&self, policy: &Policy, key: ClientKey) -> Result<(bool, Standing), String> {
        let wall = millis(OffsetDateTime::now_utc());
        if wall < self.down_until_ms.load(Ordering::Relaxed) {
            return Err("Redis failed recently; not retried yet".into());
        }
        let result = self.hit_now(policy, key).await;
        if result.is_err() {
            let retry = i64::try_from(REDIS_RETRY_AFTER.as_millis()).unwrap_or(5000);
            self.down_until_ms.store(wall + retry, Ordering::Relaxed);
        }
        result
    }

    async fn hit_now(&self, policy: &Policy, key: ClientKey) -> Result<(bool, Standing), String> {
        let input = SimpleInput {
            interval: policy.window,
            max_requests: u64::from(policy.limit),
            key: format!("{}:{key}", policy.name),
        };
        let request = async {
            let backend = self.backend().await?;
            backend
                .request(input)
                .await
                .map_err(|e| format!("Redis: {e}"))
        };
        let (decision, output, _) = tokio::time::timeout(REDIS_TIMEOUT * 2, request)
            .await
            .map_err(|_| "Redis did not answer in time".to_string())??;
        let reset = output
            .reset
            .saturating_duration_since(actix_web::rt::time::Instant::now());
        let remaining = u32::try_from(output.remaining).unwrap_or(u32::MAX);
        Ok((decision.is_allowed(), standing(policy, remaining, reset)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_window_admits_its_limit_then_refuses_until_it_ends() {
        let policy = Policy::hour(3);
        let windows = MemoryWindows::new(&[policy]);
        let key = ClientKey::of("203.0.113.1".parse().unwrap(), false);
        let t0 = datetime!(2026-01-01 10:00 UTC);
        for (i, minutes) in [0, 20, 59].into_iter().enumerate() {
            let (ok, s) = windows.hit(&policy, key, t0 + time::Duration::minutes(minutes));
            assert!(ok);
            assert_eq!(s.remaining, 2 - i as u32);
        }
        let (ok, s) = windows.hit(
            &policy,
            key,
            t0 + time::Duration::minutes(59) + time::Duration::seconds(59),
        );
        assert!(!ok, "the 4th request of the hour is refused however spaced");
        assert_eq!(s.remaining, 0);
        assert_eq!(s.reset_seconds, 1);
        let (ok, s) = windows.hit(&policy, key, t0 + time::Duration::hours(1));
        assert!(ok, "a new window starts when the old one ends");
        assert_eq!(s.remaining, 2);
        assert_eq!(s.reset_seconds, 3600);
    }

    #[test]
    fn sweeping_forgets_ended_windows_only() {
        let policy = Policy::minute("global", 5);
        let windows = MemoryWindows::new(&[policy]);
        let t0 = datetime!(2026-01-01 10:00 UTC);
        for i in 0..1000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            windows.hit(&policy, ClientKey::of(ip.into(), false), t0);
        }
        let late = ClientKey::of("192.0.2.1".parse().unwrap(), false);
        windows.hit(&policy, late, t0 + time::Duration::seconds(30));
        assert_eq!(windows.len(), 1001);
        windows.sweep(t0 + time::Duration::seconds(60));
        assert_eq!(windows.len(), 1);
        windows.sweep(t0 + time::Duration::seconds(90));
        assert!(windows.is_empty());
    }
}
