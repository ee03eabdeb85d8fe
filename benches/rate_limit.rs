//! Memory and CPU cost of the in-memory rate limiter (issue 6's benchmark): resident memory after
//! one million distinct client keys, what the periodic sweep gives back, the bound that
//! saturation puts on a flood of distinct clients, and the time of one check.
//!
//! `cargo bench --bench rate_limit` (prints a table; not a criterion bench: memory is not time).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use rampart::clock::Clock;
use rampart::config::settings::RateLimitSettings;
use rampart::rate_limit::{ClientKey, Limiter, Verdict};

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
        redis_key_prefix: String::new(),
    }
}

/// Resident set size in MiB, from /proc/self/statm.
fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn v4(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32.wrapping_add(i)))
}

/// A distinct IPv6 /64 per `i` (what a client rotating through a /32 could present).
fn v6(i: u64) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(
        (0x2001_0db8u128 << 96) | (u128::from(i) << 64) | 1,
    ))
}

async fn flood(limiter: &Limiter, n: u32, ip: impl Fn(u32) -> IpAddr) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        let key = limiter.extractor().key_for(ip(i));
        let verdict = limiter.check(key, None).await;
        assert!(matches!(verdict, Verdict::Allowed { .. }));
    }
    start.elapsed()
}

fn main() {
    actix_web::rt::System::new().block_on(async {
        const N: u32 = 1_000_000;
        println!("## rate limiter: memory and cost (in-memory store, default policies)\n");
        println!("| step | clients tracked | RSS MiB | note |");
        println!("| --- | --- | --- | --- |");
        let base = rss_mib();
        println!("| start | 0 | {base:.1} | |");

        let clock = Clock::system();
        let limiter = Limiter::new(&settings(1_000_000), clock.clone()).unwrap();
        let took = flood(&limiter, N, v4).await;
        let full = rss_mib();
        println!(
            "| after 1 000 000 distinct IPv4 clients | {} | {full:.1} | +{:.1} MiB = {:.0} bytes/client; {:.0} ns/check |",
            limiter.tracked(),
            full - base,
            (full - base) * 1024.0 * 1024.0 / f64::from(N),
            took.as_nanos() as f64 / f64::from(N)
        );

        // One request each: the minute budgets are whole again after a second, and governor's
        // retain_recent drops a key once twice its refill interval has passed; the hour windows
        // stay until their hour ends.
        std::thread::sleep(Duration::from_millis(2500));
        let sweep = Instant::now();
        limiter.sweep();
        println!(
            "| sweep 2.5 s later | {} | {:.1} | governor stores emptied by retain_recent; hour windows kept; sweep took {} ms |",
            limiter.tracked(),
            rss_mib(),
            sweep.elapsed().as_millis()
        );
        clock.advance(Duration::from_secs(3601));
        limiter.sweep();
        println!(
            "| sweep after the hour | {} | {:.1} | all windows ended, memory handed back |",
            limiter.tracked(),
            rss_mib()
        );
        drop(limiter);

        // A flood of 3 000 000 distinct IPv6 /64s against a limit of 1 000 000 tracked clients,
        // swept every 250 000 requests (the real sweeper runs every 10 s).
        let limiter = Limiter::new(&settings(1_000_000), Clock::system()).unwrap();
        let before = rss_mib();
        let mut peak_tracked = 0;
        for chunk in 0..12u64 {
            for i in 0..250_000u64 {
                let key = limiter.extractor().key_for(v6(chunk * 250_000 + i));
                limiter.check(key, None).await;
            }
            limiter.sweep();
            peak_tracked = peak_tracked.max(limiter.tracked());
        }
        println!(
            "| 3 000 000 distinct IPv6 /64s, limit 1 000 000 | {} (peak {peak_tracked}) | {:.1} | saturated: {}; new clients keyed by /48 once over the limit (+{:.1} MiB) |",
            limiter.tracked(),
            rss_mib(),
            limiter.is_saturated(),
            rss_mib() - before
        );

        // The cost of one check for a client that is already tracked (the steady state).
        let key = ClientKey::of(v4(7), false);
        let n = 200_000u32;
        let hot = Limiter::new(
            &RateLimitSettings {
                per_minute: u32::MAX,
                per_hour: u32::MAX,
                ..settings(1_000_000)
            },
            Clock::system(),
        )
        .unwrap();
        let start = Instant::now();
        for _ in 0..n {
            hot.check(key, None).await;
        }
        println!(
            "\none check of a tracked client: {:.0} ns (mean of {n})",
            start.elapsed().as_nanos() as f64 / f64::from(n)
        );
    });
}
