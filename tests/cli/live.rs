//! A real `rampart serve` with live sockets: SIGTERM closes them with 1001 and the process exits
//! well within the shutdown timeout; the upgrade's ticket never reaches the log.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{PASSWORD, app, config_dir};

#[actix_web::test]
async fn sigterm_closes_live_sockets_with_1001_and_the_ticket_is_never_logged() {
    let app = app().spawn().await;
    app.register("bob").await;
    let mut env = app.settings_env.clone();
    env.insert("LOG_FORMAT".into(), "json".into());
    env.insert("LOG_LEVEL".into(), "info".into());
    env.insert("CORS_ORIGINS".into(), "https://app.example.org".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("serve")
        .env_clear()
        .env("RAMPART_CONFIG_DIR", config_dir())
        .envs(&env)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server started");
        let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
        log.push(line);
        if parsed["message"] == "rampart listening" {
            break parsed["port"].as_u64().unwrap();
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"login": "bob", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let ticket: Value = client
        .post(format!("{base}/api/v1/ws/ticket"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = ticket["ticket"].as_str().unwrap().to_string();
    let mut request = format!("ws://127.0.0.1:{port}/api/v1/ws?ticket={ticket}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "https://app.example.org".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(1001));
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success() || exit.code().is_some(), "{exit:?}");
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        log.push(line);
    }
    let log = log.join("\n");
    assert!(log.contains("/api/v1/ws"), "the upgrade is logged: {log}");
    assert!(!log.contains(&ticket), "the ticket reached the log");
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn a_client_that_never_reads_leaves_the_server_rss_flat() {
    let app = app().spawn().await;
    app.register("alice").await;
    app.register("bob").await;
    let mut env = app.settings_env.clone();
    env.insert("LOG_FORMAT".into(), "json".into());
    env.insert("LOG_LEVEL".into(), "info".into());
    env.insert("CORS_ORIGINS".into(), "https://app.example.org".into());
    env.insert("QUOTA_MESSAGES_PER_DAY".into(), "unlimited".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("serve")
        .env_clear()
        .env("RAMPART_CONFIG_DIR", config_dir())
        .envs(&env)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
            if parsed["message"] == "rampart listening" {
                let _ = tx.send(parsed["port"].as_u64().unwrap_or(0));
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server started");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let token = |name: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let login: Value = client
                .post(format!("{base}/api/v1/auth/login"))
                .json(&json!({"login": name, "password": PASSWORD}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            login["access_token"].as_str().unwrap().to_string()
        }
    };
    let alice = token("alice").await;
    let bob = token("bob").await;
    let c: Value = client
        .post(format!("{base}/api/v1/conversations"))
        .bearer_auth(&alice)
        .json(&json!({"member_usernames": ["bob"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let c = c["id"].as_str().unwrap().to_string();
    let ticket: Value = client
        .post(format!("{base}/api/v1/ws/ticket"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
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
        .insert("origin", "https://app.example.org".parse().unwrap());
    let (mut slow, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    use futures_util::SinkExt;
    slow.send(Message::text(
        json!({"type": "subscribe", "conversation_id": c}).to_string(),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Warm up (pool, buffers), then measure while 2 000 messages of 8 KB (16 MB of frames) are
    // sent to a socket that never reads.
    let body = "z".repeat(8000);
    let send = |text: String| {
        let client = client.clone();
        let url = format!("{base}/api/v1/conversations/{c}/messages");
        let alice = alice.clone();
        async move {
            let res = client
                .post(url)
                .bearer_auth(alice)
                .json(&json!({"body": text}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }
    };
    for _ in 0..50 {
        send(body.clone()).await;
    }
    let before = rss_kib(child.id());
    let mut peak = before;
    for i in 0..2000 {
        send(body.clone()).await;
        if i % 50 == 0 {
            peak = peak.max(rss_kib(child.id()));
        }
    }
    peak = peak.max(rss_kib(child.id()));
    let _ = child.kill();
    let _ = child.wait();
    let grew_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "never-reading client: server RSS {before} KiB -> peak {peak} KiB (+{grew_mib} MiB) for 16 MB of frames"
    );
    assert!(
        grew_mib < 8,
        "the server grew by {grew_mib} MiB for a client that never reads"
    );
}
