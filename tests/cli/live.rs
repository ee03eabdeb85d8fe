//! A real `rampart serve` with live sockets: SIGTERM closes them with 1001 and the process exits
//! well within the shutdown timeout; the upgrade's ticket never reaches the log; a client that
//! never reads leaves the server's RSS flat.

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::commands::Served;
use crate::support::app;

const ORIGIN: &str = "https://app.example.org";

/// A server allowing [`ORIGIN`], on `app`'s database, with unlimited messages.
fn live_server(app: &crate::support::TestApp) -> Served {
    let mut env = app.settings_env.clone();
    env.insert("CORS_ORIGINS".into(), ORIGIN.into());
    env.insert("QUOTA_MESSAGES_PER_DAY".into(), "unlimited".into());
    Served::start(&env)
}

/// A one-time ticket for the holder of `token`.
async fn ticket(server: &Served, token: &str) -> String {
    let ticket: Value = reqwest::Client::new()
        .post(server.url("/api/v1/ws/ticket"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    ticket["ticket"].as_str().unwrap().to_string()
}

fn upgrade_request(
    server: &Served,
    ticket: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = format!("ws://127.0.0.1:{}/api/v1/ws?ticket={ticket}", server.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", ORIGIN.parse().unwrap());
    request
}

#[actix_web::test]
async fn sigterm_closes_live_sockets_with_1001_and_the_ticket_is_never_logged() {
    let app = app().spawn().await;
    app.register("bob").await;
    let mut server = live_server(&app);
    let token = server.login("bob").await;
    let ticket = ticket(&server, &token).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(upgrade_request(&server, &ticket))
        .await
        .unwrap();

    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
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
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success() || exit.code().is_some(), "{exit:?}");
    let mut log = server.early.clone();
    while let Ok(line) = server.lines.recv_timeout(Duration::from_millis(200)) {
        log.push(line);
    }
    let log = log.join("\n");
    assert!(log.contains("/api/v1/ws"), "the upgrade is logged: {log}");
    assert!(!log.contains(&ticket), "the ticket reached the log");
}

#[actix_web::test]
async fn a_client_that_never_reads_leaves_the_server_rss_flat() {
    let app = app().spawn().await;
    app.register("alice").await;
    app.register("bob").await;
    let server = live_server(&app);
    let client = reqwest::Client::new();
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let c: Value = client
        .post(server.url("/api/v1/conversations"))
        .bearer_auth(&alice)
        .json(&json!({"member_usernames": ["bob"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let c = c["id"].as_str().unwrap().to_string();
    // A socket with a tiny receive buffer that subscribes and then never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{}", server.port).parse().unwrap())
        .await
        .unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(
        upgrade_request(&server, &ticket(&server, &bob).await),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    slow.send(Message::text(
        json!({"type": "subscribe", "conversation_id": c}).to_string(),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Warm up (pool, buffers), then measure while 2 000 messages of 8 KB (16 MB of frames) are
    // sent to a socket that never reads.
    let body = "z".repeat(8000);
    let url = server.url(&format!("/api/v1/conversations/{c}/messages"));
    let send = || async {
        let res = client
            .post(&url)
            .bearer_auth(&alice)
            .json(&json!({"body": body}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    };
    for _ in 0..50 {
        send().await;
    }
    let before = server.rss_kib();
    let mut peak = before;
    for i in 0..2000 {
        send().await;
        if i % 50 == 0 {
            peak = peak.max(server.rss_kib());
        }
    }
    peak = peak.max(server.rss_kib());
    drop(server);
    let grew_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "never-reading client: server RSS {before} KiB -> peak {peak} KiB (+{grew_mib} MiB) for 16 MB of frames"
    );
    assert!(
        grew_mib < 8,
        "the server grew by {grew_mib} MiB for a client that never reads"
    );
}
