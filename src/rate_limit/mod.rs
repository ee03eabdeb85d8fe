//! Rate limits per client IP, and daily quotas per principal.
//!
//! **Boundary.** The HTTP layer calls [`Limiter::check`] (through [`middleware::limit`]) before a
//! request reaches its route; features call [`quota::consume`] inside the transaction of the
//! use-case that spends a quota. This module never decides who a client *is* (the key comes
//! from `http::client_ip::ClientIp`, the one definition of the client's IP) and never reads
//! another feature's tables.
//!
//! # Per-IP limits
//! Every request except `/health` and `/ready` spends from several budgets at once, all keyed by
//! [`ClientKey`] (the IPv4 address, or the IPv6 /64):
//! - `global`: RATE_LIMIT_PER_MINUTE, and the route's own class (login, register, refresh,
//!   password change) when it has one: actix-governor's GCRA limiters, built once per process —
//!   bursts of up to the limit, refilling evenly over the minute;
//! - `global_hour`: RATE_LIMIT_PER_HOUR, a fixed window from the client's first request, so the
//!   hourly budget holds however the requests are spread ([`window`]).
//!
//! With REDIS_URL every policy is also counted in a Redis window shared by all instances (the
//! local GCRA limiters stay as the first line, and as the only one if Redis fails: the shared
//! windows fail open, logged). The response carries `RateLimit-Limit`/`-Remaining`/`-Reset`
//! for the tightest policy and `RateLimit-Policy` listing them all; a refusal is a 429
//! problem+json with `Retry-After`, reported to the audit log as `rate_limit.exceeded`,
//! aggregated per (IP, policy, minute) by a background writer that never holds up a request.
//!
//! # Memory
//! The in-memory stores are swept every [`SWEEP_INTERVAL`] (`retain_recent` + `shrink_to_fit` on
//! the governor stores, ended windows dropped). When more than RATE_LIMIT_MAX_TRACKED_CLIENTS
//! clients are tracked, new keys are coarsened (IPv4 /24, IPv6 /48) until the sweep brings the
//! number back under 90 % of it.

pub mod middleware;
pub mod model;
pub mod quota;
pub mod report;
pub mod store;
pub mod window;

/// Audits a use-case's quota refusal after its transaction (`quota::audited`).
pub use self::quota::audited as quota_audited;
/// Spends one use of a daily quota inside the caller's transaction (`quota::consume`).
pub use self::quota::consume as consume_quota;
/// Every quota's use by a user in its current window (`quota::standing`).
pub use self::quota::standing as quota_standing;
pub use self::quota::{Period, QuotaKind, QuotaStanding};

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use actix_governor::governor::clock::{Clock as _, DefaultClock};
use actix_governor::governor::middleware::StateInformationMiddleware;
use actix_governor::governor::state::keyed::DefaultKeyedStateStore;
use actix_governor::{GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError};
use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;

pub use model::{ClientKey, Policy, RouteClass, Standing, Verdict};

use crate::clock::Clock;
use crate::config::settings::RateLimitSettings;
use crate::http::client_ip::ClientIp;
use model::{PerClass, ceil_seconds, tighter};
use window::{MemoryWindows, RedisWindows};

/// How often the in-memory stores are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

type Gcra = Arc<
    actix_governor::governor::RateLimiter<
        ClientKey,
        DefaultKeyedStateStore<ClientKey>,
        DefaultClock,
        StateInformationMiddleware,
    >,
>;

/// The one key extractor of the rate limiter: the request's trusted [`ClientIp`], as a
/// [`ClientKey`] (coarse while the limiter is saturated).
#[derive(Debug, Clone)]
pub struct ClientKeyExtractor {
    saturated: Arc<AtomicBool>,
}

impl ClientKeyExtractor {
    /// The key of a client at `ip` now (coarse while the limiter is saturated).
    pub fn key_for(&self, ip: std::net::IpAddr) -> ClientKey {
        ClientKey::of(ip, self.saturated.load(Ordering::Relaxed))
    }
}

impl KeyExtractor for ClientKeyExtractor {
    type Key = ClientKey;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<ClientKey, Self::KeyExtractionError> {
        let ip = req
            .extensions()
            .get::<ClientIp>()
            .copied()
            .ok_or_else(|| SimpleKeyExtractionError::new("client IP not established"))?;
        Ok(self.key_for(ip.0))
    }
}

/// A GCRA limiter of `limit` per minute with bursts of `limit` (actix-governor's
/// `requests_per_minute` sets only the refill rate: the burst must be set too).
fn gcra(extractor: &ClientKeyExtractor, limit: u32) -> Option<Gcra> {
    Some(
        GovernorConfigBuilder::default()
            .key_extractor(extractor.clone())
            .requests_per_minute(u64::from(limit))
            .burst_size(limit)
            .use_headers()
            .finish()?
            .limiter(),
    )
}

enum Windows {
    Memory(MemoryWindows),
    Redis(Box<RedisWindows>),
}

/// Per-IP rate limiting for one process. Build it once and share it (an `Arc`): every worker
/// must spend from the same budgets.
pub struct Limiter {
    extractor: ClientKeyExtractor,
    clock: Clock,
    quanta: DefaultClock,
    global: (Policy, Gcra),
    classes: PerClass<(Policy, Gcra)>,
    hour: Policy,
    windows: Windows,
    max_tracked: usize,
    reporter: std::sync::OnceLock<report::Reporter>,
    redis_failures: AtomicU64,
    /// `RateLimit-Policy` values, made once: for requests without a route class, and per class.
    policy_header: (String, PerClass<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("rate limit settings: {0}")]
    Invalid(String),
}

impl Limiter {
    /// The app's limiter, with its sweeper and audit reporter running (`None` when
    /// RATE_LIMIT_ENABLED=false). Built once per process: every worker spends from the same
    /// budgets.
    pub fn for_app(
        settings: &RateLimitSettings,
        queue: &crate::audit::AuditQueue,
        clock: &Clock,
    ) -> Result<Option<Arc<Limiter>>, SetupError> {
        if !settings.enabled {
            return Ok(None);
        }
        let limiter = Arc::new(Limiter::new(settings, clock.clone())?);
        limiter.spawn_sweeper();
        limiter.set_reporter(report::spawn(queue.clone()));
        Ok(Some(limiter))
    }

    pub fn new(settings: &RateLimitSettings, clock: Clock) -> Result<Limiter, SetupError> {
        let extractor = ClientKeyExtractor {
            saturated: Arc::new(AtomicBool::new(false)),
        };
        let build = |policy: Policy| -> Result<(Policy, Gcra), SetupError> {
            gcra(&extractor, policy.limit)
                .map(|g| (policy, g))
                .ok_or_else(|| SetupError::Invalid(format!("{}: limit must be > 0", policy.name)))
        };
        let global = build(Policy::minute("global", settings.per_minute))?;
        let [login, register, refresh, password, webhook] = RouteClass::ALL
            .map(|class| build(Policy::minute(class.name(), class.per_minute(settings))));
        let classes = PerClass([login?, register?, refresh?, password?, webhook?]);
        let hour = Policy::hour(settings.per_hour);
        let windows = match &settings.redis_url {
            Some(url) => Windows::Redis(Box::new(
                RedisWindows::new(
                    secrecy::ExposeSecret::expose_secret(url),
                    &settings.redis_key_prefix,
                )
                .map_err(SetupError::Invalid)?,
            )),
            None => Windows::Memory(MemoryWindows::new(&[hour])),
        };
        let header = |class: Option<RouteClass>| {
            let global_policies = if RouteClass::spends_global(class) {
                vec![global.0, hour]
            } else {
                Vec::new()
            };
            global_policies
                .into_iter()
                .chain(class.map(|c| classes.get(c).0))
                .map(|p| format!("{};w={}", p.limit, p.window.as_secs()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let policy_header = (
            header(None),
            PerClass(RouteClass::ALL.map(|c| header(Some(c)))),
        );
        Ok(Limiter {
            extractor,
            clock,
            quanta: DefaultClock::default(),
            global,
            classes,
            hour,
            windows,
            max_tracked: settings.max_tracked_clients,
            reporter: std::sync::OnceLock::new(),
            redis_failures: AtomicU64::new(0),
            policy_header,
        })
    }

    pub fn extractor(&self) -> &ClientKeyExtractor {
        &self.extractor
    }

    /// Every policy that applies to a request of `class`.
    pub fn policies(&self, class: Option<RouteClass>) -> Vec<Policy> {
        let mut out = if RouteClass::spends_global(class) {
            vec![self.global.0, self.hour]
        } else {
            Vec::new()
        };
        if let Some(class) = class {
            out.push(self.classes.get(class).0);
        }
        out
    }

    /// The `RateLimit-Policy` value for a request of `class` (`60;w=60, 1000;w=3600`).
    pub fn policy_header(&self, class: Option<RouteClass>) -> &str {
        match class {
            None => &self.policy_header.0,
            Some(class) => self.policy_header.1.get(class),
        }
    }

    /// Spends one request of `key` (a request of `class`, if it has one) from every budget.
    pub async fn check(&self, key: ClientKey, class: Option<RouteClass>) -> Verdict {
        let mut tightest: Option<Standing> = None;
        let spends_global = RouteClass::spends_global(class);
        let local = class
            .map(|c| self.classes.get(c))
            .into_iter()
            .chain(std::iter::once(&self.global).filter(|_| spends_global));
        for (policy, limiter) in local {
            let standing = match limiter.check_key(&key) {
                Ok(snapshot) => {
                    let remaining = snapshot.remaining_burst_capacity();
                    let refill = snapshot.quota().replenish_interval();
                    Standing {
                        policy: *policy,
                        remaining,
                        reset_seconds: ceil_seconds(
                            refill.saturating_mul(policy.limit.saturating_sub(remaining)),
                        ),
                    }
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.quanta.now());
                    return Verdict::Denied {
                        standing: Standing {
                            policy: *policy,
                            remaining: 0,
                            reset_seconds: ceil_seconds(
                                not_until.quota().replenish_interval().saturating_mul(
                                    NonZeroU32::get(not_until.quota().burst_size()),
                                ),
                            ),
                        },
                        retry_after: ceil_seconds(wait),
                    };
                }
            };
            tightest = Some(tightest.map_or(standing, |t| tighter(t, standing)));
        }
        let windowed = match &self.windows {
            Windows::Memory(_) if !spends_global => Vec::new(),
            Windows::Memory(memory) => vec![memory.hit(&self.hour, key, self.clock.now())],
            Windows::Redis(redis) => {
                let shared = self.policies(class);
                let hits = futures_util::future::join_all(
                    shared.iter().map(|policy| redis.hit(policy, key)),
                )
                .await;
                let mut out = Vec::with_capacity(hits.len());
                for hit in hits {
                    match hit {
                        Ok(hit) => out.push(hit),
                        Err(error) => self.redis_failed(&error),
                    }
                }
                out
            }
        };
        for (allowed, standing) in windowed {
            if !allowed {
                return Verdict::Denied {
                    retry_after: standing.reset_seconds.max(1),
                    standing,
                };
            }
            tightest = Some(tightest.map_or(standing, |t| tighter(t, standing)));
        }
        Verdict::Allowed {
            // The global policy always applies, so `tightest` is always set; the fallback only
            // keeps this total.
            tightest: tightest.unwrap_or(Standing {
                policy: self.global.0,
                remaining: self.global.0.limit,
                reset_seconds: 1,
            }),
        }
    }

    /// Shared windows fail open (the local limits still hold); say so, but not once per request.
    fn redis_failed(&self, error: &str) {
        let n = self.redis_failures.fetch_add(1, Ordering::Relaxed);
        if n.is_power_of_two() || n.is_multiple_of(1000) {
            tracing::warn!(
                error = %error,
                failures = n + 1,
                "shared rate limits unavailable; only this instance's limits apply"
            );
        }
    }

    /// Connects to Redis, if configured, and round-trips once.
    pub async fn check_shared_store(&self) -> Result<(), String> {
        match &self.windows {
            Windows::Memory(_) => Ok(()),
            Windows::Redis(redis) => redis.ping().await,
        }
    }

    /// Clients currently tracked in memory (the largest of the stores).
    pub fn tracked(&self) -> usize {
        let gcra = std::iter::once(&self.global.1)
            .chain(self.classes.0.iter().map(|(_, g)| g))
            .map(|g| g.len())
            .max()
            .unwrap_or(0);
        match &self.windows {
            Windows::Memory(memory) => gcra.max(memory.len()),
            Windows::Redis(_) => gcra,
        }
    }

    /// Forgets what no longer limits anybody, and (un)coarsens keys by the number tracked.
    pub fn sweep(&self) {
        for limiter in std::iter::once(&self.global.1).chain(self.classes.0.iter().map(|(_, g)| g))
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Windows::Memory(memory) = &self.windows {
            memory.sweep(self.clock.now());
        }
        let tracked = self.tracked();
        let saturated = &self.extractor.saturated;
        if tracked > self.max_tracked {
            if !saturated.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    tracked,
                    max = self.max_tracked,
                    "rate limiter saturated: keying new clients by IPv4 /24 and IPv6 /48"
                );
            }
        } else if tracked < self.max_tracked / 10 * 9 && saturated.swap(false, Ordering::Relaxed) {
            tracing::info!(tracked, "rate limiter no longer saturated");
        }
    }

    pub fn is_saturated(&self) -> bool {
        self.extractor.saturated.load(Ordering::Relaxed)
    }

    /// Starts the periodic sweep; it stops when the limiter is dropped.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(SWEEP_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else { break };
                limiter.sweep();
            }
        });
    }

    /// Where refusals are reported for the audit log (set once at start).
    pub fn set_reporter(&self, reporter: report::Reporter) {
        let _ = self.reporter.set(reporter);
    }

    pub fn reporter(&self) -> Option<&report::Reporter> {
        self.reporter.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn settings(max_tracked_clients: usize) -> RateLimitSettings {
        RateLimitSettings {
            enabled: true,
            per_minute: 60,
            per_hour: 1000,
            login_per_minute: 10,
            register_per_minute: 5,
            refresh_per_minute: 30,
            password_per_minute: 5,
            webhook_per_minute: 600,
            max_tracked_clients,
            redis_url: None,
            redis_key_prefix: "t:".into(),
        }
    }

    fn request_from(ip: &str) -> ServiceRequest {
        let req = actix_web::test::TestRequest::default().to_srv_request();
        req.extensions_mut()
            .insert(ClientIp(ip.parse::<IpAddr>().unwrap()));
        req
    }

    #[actix_web::test]
    async fn a_flood_of_distinct_clients_saturates_the_limiter_into_coarse_keys() {
        let limiter = Limiter::new(&settings(1000), Clock::system()).unwrap();
        let key = |req: &ServiceRequest| limiter.extractor().extract(req).unwrap();
        assert_eq!(
            key(&request_from("198.51.100.7")).to_string(),
            "198.51.100.7"
        );
        for i in 0..5000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let verdict = limiter.check(ClientKey::of(ip, false), None).await;
            assert!(matches!(verdict, Verdict::Allowed { .. }));
        }
        assert_eq!(limiter.tracked(), 5000);
        assert!(!limiter.is_saturated());
        limiter.sweep();
        assert!(
            limiter.is_saturated(),
            "more clients than allowed are tracked"
        );
        // New requests are keyed by their /24 (or /48): the key space stops growing per address.
        assert_eq!(
            key(&request_from("198.51.100.7")).to_string(),
            "198.51.100.0"
        );
        assert_eq!(
            key(&request_from("2001:db8:1:2::1")).to_string(),
            "2001:db8:1::"
        );
    }

    #[actix_web::test]
    async fn one_client_is_refused_by_the_first_budget_it_exhausts() {
        let clock = Clock::system();
        let limiter = Limiter::new(
            &RateLimitSettings {
                per_minute: 5,
                per_hour: 7,
                login_per_minute: 2,
                ..settings(1000)
            },
            clock.clone(),
        )
        .unwrap();
        let key = ClientKey::of("203.0.113.5".parse().unwrap(), false);
        let login = Some(RouteClass::Login);
        for remaining in [1, 0] {
            let Verdict::Allowed { tightest } = limiter.check(key, login).await else {
                panic!("allowed")
            };
            assert_eq!(
                (tightest.policy.name, tightest.remaining),
                ("login", remaining)
            );
        }
        let Verdict::Denied { standing, .. } = limiter.check(key, login).await else {
            panic!("the third login is refused")
        };
        assert_eq!(standing.policy.name, "login");
        // Other routes still have the global minute budget (2 of 5 spent by the logins).
        for _ in 0..3 {
            assert!(matches!(
                limiter.check(key, None).await,
                Verdict::Allowed { .. }
            ));
        }
        let Verdict::Denied { standing, .. } = limiter.check(key, None).await else {
            panic!("the minute budget is spent")
        };
        assert_eq!(standing.policy.name, "global");
    }
}
