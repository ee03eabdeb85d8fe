//! Audit-log append throughput against a real Postgres: 1 writer and 16 concurrent writers, each
//! append its own transaction (`record_standalone`: BEGIN, chain lock, read head, INSERT, COMMIT),
//! on a fresh migrated database per scenario; plus verification speed and aggregated appends.
//!
//! `cargo bench --bench audit_append` (TEST_DATABASE_URL as for the tests; AUDIT_BENCH_APPENDS
//! scales the run, default 4000 per scenario).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/db.rs"]
#[allow(dead_code)]
mod db;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use rampart::audit::{Action, Actor, AuditKey, Auditor, Event, Outcome, RequestMeta};
use secrecy::SecretString;
use serde_json::json;

fn auditor() -> Auditor {
    Auditor::new(
        AuditKey::derive(&SecretString::from(
            "bench-secret-key-4mK9pQ2rT7vX1zB8nC3dF6gH0jL5wY",
        )),
        true,
    )
}

fn meta(i: usize) -> RequestMeta {
    RequestMeta {
        ip: Some(std::net::IpAddr::from([
            10,
            0,
            (i / 256) as u8,
            (i % 256) as u8,
        ])),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) bench".into()),
        request_id: Some(uuid::Uuid::now_v7().to_string()),
        server_request_id: None,
    }
}

fn event(i: usize) -> Event {
    Event::new(
        Action::AuthLoginFailed,
        Outcome::Failure,
        Actor::anonymous(),
    )
    .target("user", uuid::Uuid::now_v7())
    .metadata(json!({ "login": format!("user{i}"), "reason": "bad_password", "attempt": i }))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// `writers` threads, `per_writer` appends each, after a short warm-up; returns appends/s.
fn run(writers: usize, per_writer: usize, aggregated: bool, async_commit: bool) -> f64 {
    let db = db::TestDb::new();
    let auditor = auditor();
    {
        let mut conn = db.connect();
        for i in 0..100 {
            auditor
                .record_standalone(&mut conn, &meta(i), event(i))
                .unwrap();
        }
    }
    let barrier = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let url = db.url.clone();
            let auditor = auditor.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(&url).unwrap();
                if async_commit {
                    // This session only: shows the cost of the lock and the queries without the
                    // disk flush at each commit. Never a production setting for the audit log.
                    diesel::sql_query("SET synchronous_commit = off")
                        .execute(&mut conn)
                        .unwrap();
                }
                let mut latencies = Vec::with_capacity(per_writer);
                barrier.wait();
                for i in 0..per_writer {
                    let n = w * per_writer + i;
                    let started = Instant::now();
                    if aggregated {
                        // 16 IPs hammering: all but the first per minute only count.
                        auditor
                            .record_aggregated(&mut conn, &meta(n % 16), event(n))
                            .unwrap();
                    } else {
                        auditor
                            .record_standalone(&mut conn, &meta(n), event(n))
                            .unwrap();
                    }
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    latencies.sort();
    let total = writers * per_writer;
    let rate = total as f64 / elapsed.as_secs_f64();
    let label = match (aggregated, async_commit) {
        (true, _) => "aggregated events",
        (false, false) => "audit appends",
        (false, true) => "audit appends (synchronous_commit=off)",
    };
    println!(
        "{label}, {writers:>2} writer(s): {total} in {:.2} s = {rate:>8.0}/s   latency p50 {:.2} ms, p99 {:.2} ms",
        elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
    if !aggregated {
        let mut conn = db.connect();
        let started = Instant::now();
        let report = auditor.verify(&mut conn).unwrap();
        let took = started.elapsed();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.rows_verified as usize, total + 100);
        println!(
            "verify after {writers:>2} writer(s): {} rows in {:.3} s = {:>8.0} rows/s (chain unbroken)",
            report.rows_verified,
            took.as_secs_f64(),
            report.rows_verified as f64 / took.as_secs_f64()
        );
    }
    rate
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once with tiny numbers.
    let quick = !std::env::args().any(|a| a == "--bench");
    let appends: usize = std::env::var("AUDIT_BENCH_APPENDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 64 } else { 4000 });
    {
        let mut conn = db::admin_connection();
        #[derive(QueryableByName)]
        struct Setting {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let show = |conn: &mut PgConnection, name: &str| {
            diesel::sql_query(format!("SELECT current_setting('{name}') AS v"))
                .get_result::<Setting>(conn)
                .map(|s| s.v)
                .unwrap_or_default()
        };
        println!(
            "postgres: fsync={}, synchronous_commit={}, {}",
            show(&mut conn, "fsync"),
            show(&mut conn, "synchronous_commit"),
            show(&mut conn, "server_version")
        );
    }
    let one = run(1, appends, false, false);
    let sixteen = run(16, appends / 16, false, false);
    println!("16 writers / 1 writer throughput: {:.2}x", sixteen / one);
    run(16, appends / 16, true, false);
    let one = run(1, appends, false, true);
    let sixteen = run(16, appends / 16, false, true);
    println!(
        "without commit flush, 16 writers / 1 writer throughput: {:.2}x",
        sixteen / one
    );
}
