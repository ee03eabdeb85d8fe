//! Live fan-out at scale (issue 17): two real `rampart serve` processes on one database, 1 000
//! WebSocket clients on loopback split between them (100 users × 10 sockets, two group
//! conversations of 50 members), with the Postgres bus and then the Redis bus in the same run.
//! Reports, per bus: server RSS per idle connection, fan-out latency p50/p99/p99.9 from the
//! sender's POST to each receipt (at a paced 20 messages/s), and the sustained rate (messages
//! sent/s and frames delivered/s) with 4 senders sending as fast as they can for 10 s.
//!
//! `cargo bench --bench live_fanout` (TEST_DATABASE_URL as for the tests; REDIS_URL defaults to
//! redis://127.0.0.1:6379; LIVE_BENCH_CLIENTS sets the number of sockets, default 1 000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/db.rs"]
#[allow(dead_code)]
mod db;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ORIGIN: &str = "https://bench.example";
const PASSWORD: &str = "correct horse battery staple 42";

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn serve(env: &BTreeMap<String, String>) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "RAMPART_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .envs(env)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines.next().expect("server output").unwrap();
        let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
        if parsed["message"] == "rampart listening" {
            break parsed["port"].as_u64().unwrap() as u16;
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (child, port)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn run(bus: &str, clients: usize) {
    let database = db::TestDb::new();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for line in rampart::crypto::random::env_block().unwrap().lines() {
        if let Some((k, v)) = line.split_once('=')
            && !k.starts_with('#')
        {
            env.insert(k.into(), v.into());
        }
    }
    for (k, v) in [
        ("ENVIRONMENT", "test"),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "info"),
        ("ARGON2_MEMORY_KIB", "8192"),
        ("ARGON2_ITERATIONS", "1"),
        ("CORS_ORIGINS", ORIGIN),
        ("WS_MAX_PER_IP", "100000"),
        ("WS_MAX_PER_USER", "50"),
        ("QUOTA_MESSAGES_PER_DAY", "unlimited"),
        ("DATABASE_POOL_SIZE", "16"),
        ("LIVE_BUS", bus),
    ] {
        env.insert(k.into(), v.into());
    }
    for key in [
        "RATE_LIMIT_PER_MINUTE",
        "RATE_LIMIT_PER_HOUR",
        "RATE_LIMIT_LOGIN_PER_MINUTE",
        "RATE_LIMIT_REGISTER_PER_MINUTE",
        "RATE_LIMIT_REFRESH_PER_MINUTE",
        "RATE_LIMIT_PASSWORD_PER_MINUTE",
    ] {
        env.insert(key.into(), "100000000".into());
    }
    env.insert("DATABASE_URL".into(), database.url.clone());
    if bus == "redis" {
        env.insert(
            "REDIS_URL".into(),
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        );
        env.insert(
            "REDIS_KEY_PREFIX".into(),
            format!("bench-{}:", uuid::Uuid::now_v7().simple()),
        );
    }
    let (mut one, port_one) = serve(&env);
    let (mut two, port_two) = serve(&env);
    let http = reqwest::Client::new();
    let base = |port: u16| format!("http://127.0.0.1:{port}");

    // 100 users (10 sockets each), two group conversations of 50.
    let users = clients.div_ceil(10).max(2);
    let mut tokens = Vec::new();
    for i in 0..users {
        let name = format!("u{i:04}");
        let res = http
            .post(format!("{}/api/v1/auth/register", base(port_one)))
            .json(&json!({"username": name, "email": format!("{name}@example.org"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let login: Value = http
            .post(format!("{}/api/v1/auth/login", base(port_one)))
            .json(&json!({"login": name, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(login["access_token"].as_str().unwrap().to_string());
    }
    let half = users / 2;
    let mut conversations = Vec::new();
    for group in [0..half, half..users] {
        let creator = group.start;
        let members: Vec<String> = group.clone().skip(1).map(|i| format!("u{i:04}")).collect();
        let c: Value = http
            .post(format!("{}/api/v1/conversations", base(port_one)))
            .bearer_auth(&tokens[creator])
            .json(&json!({"member_usernames": members}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        conversations.push(c["id"].as_str().unwrap().to_string());
    }
    let rss_before = (rss_kib(one.id()), rss_kib(two.id()));

    // The sockets.
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let delivered = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut ready = Vec::new();
    for i in 0..clients {
        let user = i % users;
        let port = if i % 2 == 0 { port_one } else { port_two };
        let conversation = conversations[usize::from(user >= half)].clone();
        let ticket: Value = http
            .post(format!("{}/api/v1/ws/ticket", base(port)))
            .bearer_auth(&tokens[user])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut request = format!(
            "ws://127.0.0.1:{port}/api/v1/ws?ticket={}",
            ticket["ticket"].as_str().unwrap()
        )
        .into_client_request()
        .unwrap();
        request
            .headers_mut()
            .insert("origin", ORIGIN.parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        socket
            .send(Message::text(
                json!({"type": "subscribe", "conversation_id": conversation}).to_string(),
            ))
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        ready.push(rx);
        let latencies = latencies.clone();
        let delivered = delivered.clone();
        let measuring = measuring.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let value: Value = serde_json::from_str(&text).unwrap_or_default();
                match value["type"].as_str() {
                    Some("subscribed") => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Some("ping") => {
                        let _ = socket.send(Message::text("{\"type\":\"pong\"}")).await;
                    }
                    Some("message.created") => {
                        delivered.fetch_add(1, Ordering::Relaxed);
                        if measuring.load(Ordering::Relaxed)
                            && let Some(sent) = value["message"]["body"]
                                .as_str()
                                .and_then(|b| b.strip_prefix("t="))
                                .and_then(|t| t.parse::<u64>().ok())
                        {
                            latencies
                                .lock()
                                .await
                                .push(now_micros().saturating_sub(sent));
                        }
                    }
                    _ => {}
                }
            }
        });
    }
    for rx in ready {
        rx.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = (rss_kib(one.id()), rss_kib(two.id()));
    let per_connection = ((rss_after.0 + rss_after.1) as f64
        - (rss_before.0 + rss_before.1) as f64)
        / clients as f64;

    // Latency at a paced rate: 20 messages/s for 10 s, alternating the two groups.
    measuring.store(true, Ordering::Relaxed);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for i in 0..200 {
        tick.tick().await;
        let group = i % 2;
        let sender = if group == 0 { 0 } else { half };
        let res = http
            .post(format!(
                "{}/api/v1/conversations/{}/messages",
                base(port_one),
                conversations[group]
            ))
            .bearer_auth(&tokens[sender])
            .json(&json!({"body": format!("t={}", now_micros())}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    measuring.store(false, Ordering::Relaxed);
    let mut sorted = latencies.lock().await.clone();
    sorted.sort_unstable();
    let expected = 200 * (clients / 2);

    // Sustained: 4 senders as fast as they can for 10 s.
    let before = delivered.load(Ordering::Relaxed);
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut senders = Vec::new();
    for s in 0..4 {
        let http = http.clone();
        let token = tokens[if s % 2 == 0 { 0 } else { half }].clone();
        let url = format!(
            "{}/api/v1/conversations/{}/messages",
            base(if s < 2 { port_one } else { port_two }),
            conversations[s % 2]
        );
        let sent = sent.clone();
        senders.push(tokio::spawn(async move {
            while started.elapsed() < Duration::from_secs(10) {
                let res = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"body": "load"}))
                    .send()
                    .await;
                if res.is_ok_and(|r| r.status() == 201) {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seconds = started.elapsed().as_secs_f64() - 3.0;
    let frames = delivered.load(Ordering::Relaxed) - before;
    let sent = sent.load(Ordering::Relaxed);
    println!(
        "bus={bus:<8} clients={clients} (2 instances) | idle RSS/connection {per_connection:.1} KiB \
         (servers {} + {} MiB) | latency p50 {:.1} ms p99 {:.1} ms p99.9 {:.1} ms max {:.1} ms \
         ({} of {expected} receipts) | sustained {:.0} messages/s sent, {:.0} frames/s delivered \
         ({} of {} expected)",
        rss_after.0 / 1024,
        rss_after.1 / 1024,
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        percentile(&sorted, 0.999),
        sorted.last().copied().unwrap_or(0) as f64 / 1000.0,
        sorted.len(),
        sent as f64 / seconds,
        frames as f64 / seconds,
        frames,
        sent as usize * (clients / 2),
    );
    let _ = one.kill();
    let _ = two.kill();
    let _ = one.wait();
    let _ = two.wait();
}

fn main() {
    let clients: usize = std::env::var("LIVE_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        run("postgres", clients).await;
        run("redis", clients).await;
    });
}
