//! Live delivery over WebSocket (issue 17), from the client's and the attacker's side, with real
//! sockets (tokio-tungstenite) against real servers: tickets (reuse, expiry, IP, Origin, a race),
//! caps, delivery to members only, revocation closing sockets, two instances on one database, the
//! bus connection killed, a client that never reads.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::conversations::{pair, post, send, start};
use crate::support::{TestApp, Tokens, app, app_sharing_database};

const ORIGIN: &str = "https://app.example.org";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn live_app() -> crate::support::AppBuilder {
    app().env("CORS_ORIGINS", ORIGIN)
}

async fn ticket(app: &TestApp, token: &str) -> String {
    let res = post(app, token, "/api/v1/ws/ticket", json!({})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 30);
    body["ticket"].as_str().unwrap().to_string()
}

/// Opens a socket with `ticket` and `origin`: the socket, or the HTTP status of the refusal.
async fn open(app: &TestApp, ticket: &str, origin: Option<&str>) -> Result<Socket, u16> {
    let url = format!("ws://127.0.0.1:{}/api/v1/ws?ticket={ticket}", app.port);
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("{other}"),
    }
}

async fn connect(app: &TestApp, token: &str) -> Socket {
    let t = ticket(app, token).await;
    open(app, &t, Some(ORIGIN)).await.unwrap()
}

/// The next JSON frame that is not a ping or a resync, within `wait`.
async fn next_frame(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["type"] == "ping" || value["type"] == "resync" {
                    continue;
                }
                return Some(value);
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

async fn subscribe(socket: &mut Socket, conversation: &str) -> Value {
    socket
        .send(Message::text(
            json!({"type": "subscribe", "conversation_id": conversation}).to_string(),
        ))
        .await
        .unwrap();
    next_frame(socket, Duration::from_secs(5)).await.unwrap()
}

/// alice and bob in a direct conversation made on `one`, and a socket of bob's on `two` following
/// it: (alice, bob, conversation id, bob's socket).
async fn bob_listening_on(one: &TestApp, two: &TestApp) -> (Tokens, Tokens, String, Socket) {
    let (alice, bob, c) = pair(one).await;
    let mut bobs = connect(two, &bob.access).await;
    assert_eq!(subscribe(&mut bobs, &c).await["type"], "subscribed");
    (alice, bob, c, bobs)
}

/// The close code the server ends the socket with, within `wait`.
async fn closed_with(socket: &mut Socket, wait: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => return Some(u16::from(frame.code)),
            Ok(Some(Ok(Message::Close(None)))) | Ok(None) => return Some(1005),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(error))) => {
                eprintln!("socket error: {error}");
                return Some(1006);
            }
            Err(_) => return None,
        }
    }
}

#[actix_web::test]
async fn members_receive_messages_live_and_nobody_else_learns_anything() {
    let app = live_app().spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let eve = app.user("eve").await;
    let c = start(&app, &alice.access, &["bob"]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bobs = connect(&app, &bob.access).await;
    let subscribed = subscribe(&mut bobs, &c).await;
    assert_eq!(subscribed["type"], "subscribed");
    // eve: a conversation she is not in reads exactly like one that does not exist.
    let mut eves = connect(&app, &eve.access).await;
    let theirs = subscribe(&mut eves, &c).await;
    let unknown = subscribe(&mut eves, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(theirs["type"], "error");
    assert_eq!(theirs["code"], unknown["code"]);
    assert_eq!(theirs["message"], unknown["message"]);

    assert_eq!(
        send(&app, &alice.access, &c, "hello bob, live")
            .await
            .status(),
        201
    );
    let frame = next_frame(&mut bobs, Duration::from_secs(5)).await.unwrap();
    assert_eq!(frame["type"], "message.created");
    assert_eq!(frame["conversation_id"], c.as_str());
    assert_eq!(frame["message"]["body"], "hello bob, live");
    assert_eq!(frame["message"]["author"]["username"], "alice");
    assert!(
        next_frame(&mut eves, Duration::from_millis(500))
            .await
            .is_none()
    );
    // Edits, deletions and read markers follow, by id.
    let message_id = frame["message"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/conversations/{c}/messages/{message_id}");
    let res = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&alice.access)
        .json(&json!({"body": "hello bob, edited"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let frame = next_frame(&mut bobs, Duration::from_secs(5)).await.unwrap();
    assert_eq!(frame["type"], "message.edited");
    assert_eq!(frame["message"]["body"], "hello bob, edited");
    let cursor = frame["message"]["cursor"].as_str().unwrap().to_string();
    let res = post(
        &app,
        &alice.access,
        &format!("/api/v1/conversations/{c}/read"),
        json!({"up_to": cursor}),
    )
    .await;
    assert!(res.status().is_success());
    let frame = next_frame(&mut bobs, Duration::from_secs(5)).await.unwrap();
    assert_eq!(frame["type"], "read");
    assert_eq!(frame["user_id"], app.user_id("alice").as_str());
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let frame = next_frame(&mut bobs, Duration::from_secs(5)).await.unwrap();
    assert_eq!(frame["type"], "message.deleted");
    assert_eq!(frame["message_id"], message_id.as_str());
    assert!(
        next_frame(&mut eves, Duration::from_millis(300))
            .await
            .is_none()
    );

    // Bad frames get an error frame, not a crash; binary frames close the socket.
    bobs.send(Message::text(
        "{\"type\":\"subscribe\",\"conversation_id\":\"x\"}",
    ))
    .await
    .unwrap();
    assert_eq!(
        next_frame(&mut bobs, Duration::from_secs(5)).await.unwrap()["code"],
        "bad_frame"
    );
    // bob leaves: his socket stops receiving the conversation at once.
    let res = post(
        &app,
        &bob.access,
        &format!("/api/v1/conversations/{c}/leave"),
        json!({}),
    )
    .await;
    assert!(res.status().is_success());
    assert_eq!(
        send(&app, &alice.access, &c, "after bob left")
            .await
            .status(),
        201
    );
    while let Some(f) = next_frame(&mut bobs, Duration::from_millis(800)).await {
        assert_ne!(f["type"], "message.created", "{f}");
    }
}

#[actix_web::test]
async fn tickets_are_single_use_short_lived_bound_to_the_ip_and_need_an_allowed_origin() {
    let app = live_app().spawn().await;
    let bob = app.user("bob").await;
    // No ticket, a made-up one, the access token itself: 401 before any upgrade.
    assert_eq!(open(&app, "", Some(ORIGIN)).await.err(), Some(401));
    assert_eq!(
        open(&app, "bm90LWEtdGlja2V0", Some(ORIGIN)).await.err(),
        Some(401)
    );
    assert_eq!(open(&app, &bob.access, Some(ORIGIN)).await.err(), Some(401));
    // A foreign Origin, or none: 403 — and the ticket survives for a proper try.
    let t = ticket(&app, &bob.access).await;
    assert_eq!(
        open(&app, &t, Some("https://evil.example")).await.err(),
        Some(403)
    );
    assert_eq!(
        open(&app, &t, Some("https://app.example.org.evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert_eq!(open(&app, &t, None).await.err(), Some(403));
    assert!(open(&app, &t, Some(ORIGIN)).await.is_ok());
    // Used once: never again.
    assert_eq!(open(&app, &t, Some(ORIGIN)).await.err(), Some(401));
    // Expired after 30 seconds (the app's clock).
    let t = ticket(&app, &bob.access).await;
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(open(&app, &t, Some(ORIGIN)).await.err(), Some(401));
    // Twenty-five upgrades racing with one ticket: exactly one socket.
    let bob = app.login("bob").await;
    let t = ticket(&app, &bob.access).await;
    let attempts = (0..25).map(|_| open(&app, &t, Some(ORIGIN)));
    let results = futures_util::future::join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|s| *s == 401)
    );
}

#[actix_web::test]
async fn a_ticket_is_bound_to_the_client_ip_and_no_origin_only_when_allowed() {
    let app = live_app()
        .env("TRUSTED_PROXIES", "127.0.0.1/32")
        .env("WS_ALLOW_NO_ORIGIN", "true")
        .spawn()
        .await;
    let bob = app.user("bob").await;
    let res = app
        .client
        .post(app.url("/api/v1/ws/ticket"))
        .bearer_auth(&bob.access)
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    let t: Value = res.json().await.unwrap();
    let t = t["ticket"].as_str().unwrap().to_string();
    let url = format!("ws://127.0.0.1:{}/api/v1/ws?ticket={t}", app.port);
    let mut request = url.clone().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-forwarded-for", "203.0.113.6".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("another IP opened a socket: {:?}", other.is_ok()),
    }
    // A non-browser client (no Origin) is let in here.
    let t = ticket(&app, &bob.access).await;
    assert!(open(&app, &t, None).await.is_ok());
}

#[actix_web::test]
async fn per_user_caps_hold_under_a_burst_of_upgrades() {
    let app = live_app().env("WS_MAX_PER_USER", "3").spawn().await;
    let bob = app.user("bob").await;
    let mut tickets = Vec::new();
    for _ in 0..25 {
        tickets.push(ticket(&app, &bob.access).await);
    }
    let attempts = tickets.iter().map(|t| open(&app, t, Some(ORIGIN)));
    let results = futures_util::future::join_all(attempts).await;
    let open_sockets: Vec<&Socket> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(
        open_sockets.len(),
        3,
        "{:?}",
        results.iter().map(|r| r.as_ref().err()).collect::<Vec<_>>()
    );
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|s| *s == 429)
    );
    // Another user is not affected by bob's cap.
    let carol = app.user("carol").await;
    assert!(
        open(&app, &ticket(&app, &carol.access).await, Some(ORIGIN))
            .await
            .is_ok()
    );
    // Closing one frees a place.
    let mut results = results;
    if let Some(Ok(mut s)) = results
        .pop()
        .filter(|r| r.is_ok())
        .or_else(|| results.into_iter().find(|r| r.is_ok()))
    {
        s.close(None).await.unwrap();
        while s.next().await.is_some() {}
    }
    let mut freed = false;
    for _ in 0..20 {
        if open(&app, &ticket(&app, &bob.access).await, Some(ORIGIN))
            .await
            .is_ok()
        {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "a closed socket gives its place back");
}

#[actix_web::test]
async fn sign_out_disable_and_key_revocation_close_sockets_within_a_second() {
    let app = live_app().spawn().await;
    let root = app.admin_user("root").await;
    let bob = app.user("bob").await;
    // A session's socket: sign-out closes it.
    let mut by_session = connect(&app, &bob.access).await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&bob.access)
        .json(&json!({"refresh_token": bob.refresh}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    assert_eq!(
        closed_with(&mut by_session, Duration::from_millis(1500)).await,
        Some(4401)
    );
    // An API key's socket: revoking the key closes it.
    let bob = app.login("bob").await;
    let key = app.api_key(&bob.access, "live", &["messages:read"]).await;
    let mut by_key = connect(&app, key["key"].as_str().unwrap()).await;
    let mut by_session = connect(&app, &bob.access).await;
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap())))
        .bearer_auth(&bob.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        closed_with(&mut by_key, Duration::from_millis(1500)).await,
        Some(4401)
    );
    // Disabling the user closes the rest.
    let bob_id = app.user_id("bob");
    let res = app
        .client
        .post(app.url(&format!("/api/v1/admin/users/{bob_id}/disable")))
        .bearer_auth(&root.access)
        .json(&json!({"reason": "abuse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        closed_with(&mut by_session, Duration::from_millis(1500)).await,
        Some(4401)
    );
}

#[actix_web::test]
async fn two_instances_deliver_to_each_others_clients_and_resync_after_the_bus_is_cut() {
    let one = live_app().spawn().await;
    let two = app_sharing_database(&one).spawn().await;
    let (alice, _, c, mut bobs) = bob_listening_on(&one, &two).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        send(&one, &alice.access, &c, "across instances")
            .await
            .status(),
        201
    );
    let frame = next_frame(&mut bobs, Duration::from_secs(5)).await.unwrap();
    assert_eq!(frame["message"]["body"], "across instances");

    // Cut every LISTEN connection: clients are told to resync, and delivery resumes.
    one.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN rampart_live%'",
    );
    let mut resynced = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), bobs.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"resync\"") => {
                resynced = true;
                break;
            }
            _ => {}
        }
    }
    assert!(resynced, "a resync frame after the listener was cut");
    let mut delivered = false;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            send(&one, &alice.access, &c, &format!("again {i}"))
                .await
                .status(),
            201
        );
        if let Some(f) = next_frame(&mut bobs, Duration::from_millis(500)).await
            && f["type"] == "message.created"
        {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "delivery resumed after the reconnect");
    let ready: Value = one.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["live_bus"], "ok", "{ready}");
}

#[actix_web::test]
async fn a_client_that_never_reads_is_dropped() {
    let app = live_app()
        .env("QUOTA_MESSAGES_PER_DAY", "unlimited")
        .spawn()
        .await;
    let (alice, bob, c) = pair(&app).await;
    // A socket with a tiny receive buffer that subscribes and then never reads.
    let t = ticket(&app, &bob.access).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{}", app.port).parse().unwrap())
        .await
        .unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let mut request = format!("ws://127.0.0.1:{}/api/v1/ws?ticket={t}", app.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", ORIGIN.parse().unwrap());
    let (mut slow, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(subscribe(&mut slow, &c).await["type"], "subscribed");
    let body = "z".repeat(8000);
    let mut sent = 0;
    for _ in 0..900 {
        assert_eq!(send(&app, &alice.access, &c, &body).await.status(), 201);
        sent += 1;
    }
    // Reading now: the server gave up on the socket long before all of it.
    let mut received = 0;
    let mut ended = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), slow.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("message.created") => received += 1,
            Ok(Some(Ok(Message::Close(frame)))) => {
                if let Some(frame) = frame {
                    assert_eq!(frame.code, CloseCode::Again);
                }
                ended = true;
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => {
                ended = true;
                break;
            }
            Err(_) => break,
        }
    }
    assert!(ended, "the socket was dropped");
    assert!(received < sent, "received {received} of {sent}");
}

#[actix_web::test]
async fn oversized_and_too_frequent_frames_close_the_socket_and_silent_clients_time_out() {
    let app = live_app()
        .env("WS_MAX_FRAME_BYTES", "1024")
        .env("WS_PING_INTERVAL_SECONDS", "1")
        .spawn()
        .await;
    let bob = app.user("bob").await;
    // A frame over WS_MAX_FRAME_BYTES: 1009.
    let mut s = connect(&app, &bob.access).await;
    s.send(Message::text("x".repeat(2048))).await.unwrap();
    assert_eq!(
        closed_with(&mut s, Duration::from_secs(3)).await,
        Some(1009)
    );
    // 100 frames at once: over 10/s (burst 20) — 1008.
    let mut s = connect(&app, &bob.access).await;
    for _ in 0..100 {
        if s.send(Message::text("{\"type\":\"pong\"}")).await.is_err() {
            break;
        }
    }
    assert_eq!(
        closed_with(&mut s, Duration::from_secs(3)).await,
        Some(1008)
    );
    // A client that answers pings stays; one that never does is closed after two missed pongs.
    let mut quiet = connect(&app, &bob.access).await;
    let mut polite = connect(&app, &bob.access).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut pings = 0;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(200), polite.next()).await
            && t.contains("\"ping\"")
        {
            pings += 1;
            polite
                .send(Message::text("{\"type\":\"pong\"}"))
                .await
                .unwrap();
        }
    }
    assert!(pings >= 3, "{pings} pings");
    assert_eq!(
        closed_with(&mut quiet, Duration::from_secs(1)).await,
        Some(4408)
    );
    polite
        .send(Message::text("{\"type\":\"pong\"}"))
        .await
        .unwrap();
    assert_eq!(
        closed_with(&mut polite, Duration::from_millis(300)).await,
        None,
        "still open"
    );
}

#[actix_web::test]
async fn with_the_redis_bus_two_instances_deliver_the_same_frames() {
    let redis = crate::support::redis_url();
    let prefix = format!("live-{}", uuid::Uuid::now_v7().simple());
    let one = live_app()
        .env("LIVE_BUS", "redis")
        .env("REDIS_URL", &redis)
        .env("REDIS_KEY_PREFIX", &prefix)
        .spawn()
        .await;
    let two = app_sharing_database(&one).spawn().await;
    let ready: Value = two.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["live_bus_kind"], "redis");
    let (alice, _, c, mut bobs) = bob_listening_on(&one, &two).await;
    let mut delivered = None;
    for i in 0..20 {
        assert_eq!(
            send(&one, &alice.access, &c, &format!("via redis {i}"))
                .await
                .status(),
            201
        );
        if let Some(f) = next_frame(&mut bobs, Duration::from_millis(500)).await {
            delivered = Some(f);
            break;
        }
    }
    let frame = delivered.expect("delivered through Redis");
    assert_eq!(frame["type"], "message.created");
    assert!(
        frame["message"]["body"]
            .as_str()
            .unwrap()
            .starts_with("via redis")
    );
}

#[actix_web::test]
async fn erasure_closes_the_sockets_and_the_per_ip_cap_counts_every_user() {
    let app = live_app().env("WS_MAX_PER_IP", "3").spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut a1 = connect(&app, &alice.access).await;
    let _a2 = connect(&app, &alice.access).await;
    let _b1 = connect(&app, &bob.access).await;
    // A fourth socket from the same IP, whoever asks: 429.
    assert_eq!(
        open(&app, &ticket(&app, &bob.access).await, Some(ORIGIN))
            .await
            .err(),
        Some(429)
    );
    // alice erases her account: her sockets close within a second.
    let res = app
        .client
        .delete(app.url("/api/v1/me"))
        .bearer_auth(&alice.access)
        .json(&json!({"current_password": crate::support::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        closed_with(&mut a1, Duration::from_millis(1500)).await,
        Some(4401)
    );
}
