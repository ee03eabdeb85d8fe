//! The rate limiter's vocabulary: which limits apply to a request ([`Policy`], [`RouteClass`]),
//! whose budget a request spends ([`ClientKey`]), and what a check decided ([`Verdict`]). No I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use actix_web::http::Method;

use crate::config::settings::RateLimitSettings;

/// Requests that spend no budget at all: liveness and readiness probes. `pattern` is the route
/// pattern the request resolves to ([`crate::http::routed_pattern`]), never the raw path, so only
/// what actually reaches the probes is exempt (`/health/../api/v1/auth/login` resolves to nothing).
pub fn is_exempt(pattern: Option<&str>) -> bool {
    matches!(pattern, Some("/health" | "/ready"))
}

/// The routes with a stricter per-IP limit of their own, on top of the global ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    Login,
    Register,
    Refresh,
    Password,
    /// Webhook deliveries: a generous budget of their own *instead of* the global ones (a
    /// provider's burst of retries comes from few addresses and must not eat a client's budget,
    /// nor be refused by it).
    Webhook,
}

impl RouteClass {
    pub const ALL: [RouteClass; 5] = [
        RouteClass::Login,
        RouteClass::Register,
        RouteClass::Refresh,
        RouteClass::Password,
        RouteClass::Webhook,
    ];

    /// The class of a request, from its method and the route pattern it resolves to
    /// ([`crate::http::routed_pattern`]: the pattern the router will match, whatever spelling of
    /// the path reached it — `%6cogin` is `login`). The console's sign-in form and both second
    /// steps share the API login's limit; step-up shares the password change's.
    pub fn of(method: &Method, pattern: Option<&str>) -> Option<RouteClass> {
        if method != Method::POST {
            return None;
        }
        match pattern? {
            // The second step of a sign-in is a sign-in attempt too (codes are guessed there).
            "/api/v1/auth/login"
            | "/admin/login"
            | "/api/v1/auth/exchange"
            | "/api/v1/auth/mfa"
            | "/admin/login/mfa" => Some(RouteClass::Login),
            "/api/v1/auth/register" => Some(RouteClass::Register),
            "/api/v1/auth/refresh" => Some(RouteClass::Refresh),
            "/api/v1/me/password"
            | "/api/v1/auth/step-up"
            | "/api/v1/auth/password-reset"
            | "/api/v1/auth/password-reset/complete" => Some(RouteClass::Password),
            // Link tokens are 256-bit: the limit is against floods, not guessing.
            "/api/v1/auth/verify-email" => Some(RouteClass::Refresh),
            "/api/v1/webhooks/stripe" | "/api/v1/webhooks/clerk" => Some(RouteClass::Webhook),
            _ => None,
        }
    }

    /// Whether requests of this class spend the global budgets too (every class but webhooks).
    pub fn spends_global(class: Option<RouteClass>) -> bool {
        class != Some(RouteClass::Webhook)
    }

    pub fn name(self) -> &'static str {
        match self {
            RouteClass::Login => "login",
            RouteClass::Register => "register",
            RouteClass::Refresh => "refresh",
            RouteClass::Password => "password",
            RouteClass::Webhook => "webhook",
        }
    }

    pub fn per_minute(self, settings: &RateLimitSettings) -> u32 {
        match self {
            RouteClass::Login => settings.login_per_minute,
            RouteClass::Register => settings.register_per_minute,
            RouteClass::Refresh => settings.refresh_per_minute,
            RouteClass::Password => settings.password_per_minute,
            RouteClass::Webhook => settings.webhook_per_minute,
        }
    }

    fn index(self) -> usize {
        match self {
            RouteClass::Login => 0,
            RouteClass::Register => 1,
            RouteClass::Refresh => 2,
            RouteClass::Password => 3,
            RouteClass::Webhook => 4,
        }
    }
}

/// A per-array lookup keyed by route class.
#[derive(Debug)]
pub struct PerClass<T>(pub [T; 5]);

impl<T> PerClass<T> {
    pub fn get(&self, class: RouteClass) -> &T {
        &self.0[class.index()]
    }
}

/// One limit: at most `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `global`, `global_hour`, or a route class name; stable (it names Redis keys and audit rows).
    pub name: &'static str,
    pub limit: u32,
    pub window: Duration,
}

impl Policy {
    pub fn minute(name: &'static str, limit: u32) -> Policy {
        Policy {
            name,
            limit,
            window: Duration::from_secs(60),
        }
    }

    pub fn hour(limit: u32) -> Policy {
        Policy {
            name: "global_hour",
            limit,
            window: Duration::from_secs(3600),
        }
    }
}

/// Whose budget a request spends: an IPv4 address, or the /64 an IPv6 address is in (one host
/// usually holds a whole /64, so counting single IPv6 addresses would let it mint budgets).
/// Under a flood of distinct clients the limiter coarsens keys to IPv4 /24 and IPv6 /48, which
/// bounds its memory at the price of sharing budgets between neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(u128);

impl ClientKey {
    pub fn of(ip: IpAddr, coarse: bool) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let mask: u32 = if coarse { 0xffff_ff00 } else { u32::MAX };
                let masked = Ipv4Addr::from(u32::from(v4) & mask);
                ClientKey(u128::from(masked.to_ipv6_mapped()))
            }
            IpAddr::V6(v6) => {
                let bits = if coarse { 48 } else { 64 };
                ClientKey(u128::from(v6) & (u128::MAX << (128 - bits)))
            }
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Ipv6Addr::from(self.0).to_canonical() {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}"),
        }
    }
}

/// Where one policy stands for one client after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub policy: Policy,
    pub remaining: u32,
    /// Seconds until the budget is whole again (the `RateLimit-Reset` value).
    pub reset_seconds: u64,
}

/// The outcome of checking every policy that applies to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Within every limit; `tightest` is the policy with the least budget left.
    Allowed { tightest: Standing },
    /// Over `standing.policy`'s limit: retry after `retry_after` seconds (at least 1).
    Denied {
        standing: Standing,
        retry_after: u64,
    },
}

/// Of two standings, the one that will refuse first: least remaining, then the longest wait.
pub fn tighter(a: Standing, b: Standing) -> Standing {
    if (b.remaining, std::cmp::Reverse(b.reset_seconds))
        < (a.remaining, std::cmp::Reverse(a.reset_seconds))
    {
        b
    } else {
        a
    }
}

/// Whole seconds, rounded up, and at least 1 (a `Retry-After` of 0 invites a hot loop).
pub fn ceil_seconds(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_ipv4_by_address() {
        let a = ClientKey::of(ip("2001:db8:1:2:aaaa::1"), false);
        let b = ClientKey::of(ip("2001:db8:1:2:ffff::9"), false);
        let c = ClientKey::of(ip("2001:db8:1:3::1"), false);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::");
        assert_ne!(
            ClientKey::of(ip("198.51.100.7"), false),
            ClientKey::of(ip("198.51.100.8"), false)
        );
        assert_eq!(
            ClientKey::of(ip("198.51.100.7"), false).to_string(),
            "198.51.100.7"
        );
        // An IPv4-mapped IPv6 address is the IPv4 client.
        assert_eq!(
            ClientKey::of(ip("::ffff:198.51.100.7"), false),
            ClientKey::of(ip("198.51.100.7"), false)
        );
    }

    #[test]
    fn coarse_keys_share_a_24_or_a_48() {
        assert_eq!(
            ClientKey::of(ip("198.51.100.7"), true),
            ClientKey::of(ip("198.51.100.200"), true)
        );
        assert_eq!(
            ClientKey::of(ip("198.51.100.7"), true).to_string(),
            "198.51.100.0"
        );
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1"), true),
            ClientKey::of(ip("2001:db8:1:ffff::1"), true)
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1::1"), true),
            ClientKey::of(ip("2001:db8:2::1"), true)
        );
    }

    #[test]
    fn route_classes_match_post_route_patterns() {
        assert_eq!(
            RouteClass::of(&Method::POST, Some("/api/v1/auth/login")),
            Some(RouteClass::Login)
        );
        assert_eq!(
            RouteClass::of(&Method::POST, Some("/admin/login")),
            Some(RouteClass::Login)
        );
        assert_eq!(
            RouteClass::of(&Method::GET, Some("/api/v1/auth/login")),
            None
        );
        assert_eq!(RouteClass::of(&Method::POST, None), None);
        assert_eq!(
            RouteClass::of(&Method::POST, Some("/api/v1/me/password")),
            Some(RouteClass::Password)
        );
        assert!(is_exempt(Some("/health")));
        assert!(!is_exempt(None));
    }

    #[test]
    fn the_tighter_standing_has_less_left_or_longer_to_wait() {
        let s = |remaining, reset_seconds| Standing {
            policy: Policy::minute("global", 60),
            remaining,
            reset_seconds,
        };
        assert_eq!(tighter(s(5, 10), s(3, 1)), s(3, 1));
        assert_eq!(tighter(s(3, 1), s(3, 50)), s(3, 50));
        assert_eq!(tighter(s(0, 9), s(4, 60)), s(0, 9));
        assert_eq!(ceil_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ceil_seconds(Duration::from_millis(2001)), 3);
        assert_eq!(ceil_seconds(Duration::ZERO), 1);
    }
}
