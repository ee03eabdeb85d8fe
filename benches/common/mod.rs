//! What the in-process load benches share: a fresh database, rampart started on a thread of its
//! own, and a closed-loop load generator (N connections, each sending its next request when the
//! last one answered) that reports throughput, p50 and p99.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use rampart::app::{Application, ExtraRoutes, Options};
use rampart::clock::Clock;
use rampart::config::{Settings, Sources};

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// `cargo test --benches` runs bench targets without `--bench`: they do nothing then.
pub fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A fresh, migrated database: (admin connection, name, URL).
pub fn fresh_database(prefix: &str) -> (PgConnection, String, String) {
    let (admin, name, url) = empty_database(prefix);
    rampart::db::migrations::run_pending(&mut PgConnection::establish(&url).unwrap()).unwrap();
    (admin, name, url)
}

/// A fresh database with no tables yet (for a `rampart migrate` of its own): (admin connection,
/// name, URL).
pub fn empty_database(prefix: &str) -> (PgConnection, String, String) {
    let admin_url = env_or(
        "BENCH_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
    );
    let name = format!("{prefix}_{}", std::process::id());
    let mut admin = PgConnection::establish(&admin_url).expect("BENCH_DATABASE_URL answers");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .unwrap();
    let (base, query) = admin_url.rsplit_once('/').unwrap();
    let query = query
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    let url = format!("{base}/{name}{query}");
    (admin, name, url)
}

pub fn drop_database(admin: &mut PgConnection, name: &str) {
    let _ = diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)")).execute(admin);
}

/// Test settings with fresh secrets, rate limits off, and `extra` on top.
pub fn settings(db_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut env = BTreeMap::new();
    for line in rampart::crypto::random::env_block().unwrap().lines() {
        if let Some((k, v)) = line.split_once('=')
            && !k.starts_with('#')
        {
            env.insert(k.to_string(), v.to_string());
        }
    }
    for (k, v) in [
        ("ENVIRONMENT", "test"),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("DATABASE_URL", db_url),
        ("RATE_LIMIT_ENABLED", "false"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        env.insert(k.into(), v.into());
    }
    Settings::load_from(&Sources {
        config_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
        env,
        dotenv: None,
    })
    .unwrap()
}

/// Starts rampart (with `extra` routes inside its middleware) on a thread of its own: its port.
pub fn start(settings: Settings, extra: ExtraRoutes) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build_with(
                settings,
                Options {
                    extra,
                    clock: Clock::system(),
                },
            )
            .unwrap();
            tx.send(app.port()).unwrap();
            app.run_until_stopped().await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// The load generator's runtime: one worker thread, beside the server's two.
pub fn load_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

pub struct Round {
    pub ok: usize,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub errors: u64,
}

/// Builds request number `n` on a client.
pub type MakeRequest = Arc<dyn Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync>;

/// `connections` closed loops for `seconds`: every 2xx counts (its latency recorded), anything
/// else is an error.
pub async fn load(
    make: MakeRequest,
    seconds: u64,
    connections: usize,
    counter: Arc<AtomicU64>,
) -> Round {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let client = client.clone();
            let make = make.clone();
            let counter = counter.clone();
            let errors = errors.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(50_000);
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let req = make(&client, n);
                    let t = Instant::now();
                    match req.send().await {
                        Ok(res) if res.status().is_success() => {
                            let _ = res.bytes().await;
                            latencies.push(t.elapsed().as_micros() as u64);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    summarize(all, started.elapsed(), errors.load(Ordering::Relaxed))
}

/// A round from its successes' latencies (µs), its duration and its error count.
pub fn summarize(mut latencies: Vec<u64>, elapsed: Duration, errors: u64) -> Round {
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Round {
        ok: latencies.len(),
        rps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        errors,
    }
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One markdown row: name, req/s per round, median, last p50, p99 per round, errors.
pub fn row(name: &str, rounds: &[Round]) -> (String, f64) {
    let mut rps: Vec<f64> = rounds.iter().map(|r| r.rps).collect();
    let med = median(&mut rps);
    let line = format!(
        "| {name} | {} | {med:.0} | {} | {} | {} |",
        rounds
            .iter()
            .map(|r| format!("{:.0}", r.rps))
            .collect::<Vec<_>>()
            .join(" / "),
        rounds.last().map_or(0, |r| r.p50_us),
        rounds
            .iter()
            .map(|r| r.p99_us.to_string())
            .collect::<Vec<_>>()
            .join(" / "),
        rounds.iter().map(|r| r.errors).sum::<u64>(),
    );
    (line, med)
}

pub const TABLE_HEAD: &str = "| route | req/s per round | median req/s | p50 µs (last) | p99 µs per round | errors |\n| --- | --- | --- | --- | --- | --- |";
