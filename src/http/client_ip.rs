//! The one definition of "the client's IP", used by the rate limiter, the audit log and the request
//! log alike.
//!
//! It is the socket peer, unless the peer is a configured trusted proxy: then the right-most
//! `X-Forwarded-For` entry that is not itself a trusted proxy. With no trusted proxies (the default)
//! forwarding headers are ignored entirely, so a client cannot choose its own identity. Never use
//! actix's `realip_remote_addr()`, which believes the left-most entry from anyone.

use std::future::{Ready, ready};
use std::net::{IpAddr, Ipv4Addr};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn resolve(req: &HttpRequest, proxies: &TrustedProxies) -> ClientIp {
        let peer = req
            .peer_addr()
            .map(|a| a.ip().to_canonical())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        ClientIp(resolve(peer, &forwarded, proxies))
    }
}

/// `forwarded` holds the X-Forwarded-For header values in the order received.
pub fn resolve(peer: IpAddr, forwarded: &[&str], proxies: &TrustedProxies) -> IpAddr {
    if !proxies.contains(&peer) {
        return peer;
    }
    let mut nearest = peer;
    let hops = forwarded
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if proxies.contains(&ip) => nearest = ip,
            Some(ip) => return ip,
            // Garbage in the chain: nothing to its left can be believed.
            None => return nearest,
        }
    }
    nearest
}

/// An X-Forwarded-For entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    None
}

impl FromRequest for ClientIp {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ip = req
            .extensions()
            .get::<ClientIp>()
            .copied()
            .unwrap_or_else(|| {
                let proxies = req
                    .app_data::<std::sync::Arc<TrustedProxies>>()
                    .map(|p| (**p).clone())
                    .unwrap_or_default();
                ClientIp::resolve(req, &proxies)
            });
        ready(Ok(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> TrustedProxies {
        TrustedProxies(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_ignores_forwarded_for() {
        let got = resolve(ip("203.0.113.9"), &["1.1.1.1"], &nets(&[]));
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn trusted_peer_takes_rightmost_untrusted_entry() {
        let proxies = nets(&["10.0.0.0/8"]);
        let got = resolve(
            ip("10.0.0.2"),
            &["6.6.6.6, 198.51.100.7, 10.0.0.5"],
            &proxies,
        );
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn multiple_headers_are_one_list_in_order() {
        let proxies = nets(&["10.0.0.0/8"]);
        let got = resolve(ip("10.0.0.2"), &["6.6.6.6", "198.51.100.7"], &proxies);
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn all_trusted_gives_leftmost() {
        let proxies = nets(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(ip("10.0.0.2"), &["10.1.1.1, 10.2.2.2"], &proxies),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn garbage_stops_the_walk() {
        let proxies = nets(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(ip("10.0.0.2"), &["1.2.3.4, nonsense"], &proxies),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ports_and_brackets_and_mapped_addresses() {
        let proxies = nets(&["::1/128", "127.0.0.1/32"]);
        assert_eq!(
            resolve(ip("::1"), &["[2001:db8::7]:443"], &proxies),
            ip("2001:db8::7")
        );
        assert_eq!(
            resolve(ip("127.0.0.1"), &["192.0.2.1:8080"], &proxies),
            ip("192.0.2.1")
        );
        assert_eq!(
            resolve(ip("127.0.0.1"), &["::ffff:192.0.2.1"], &proxies),
            ip("192.0.2.1")
        );
    }
}
