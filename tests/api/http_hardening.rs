//! Security headers, CORS, ALLOWED_HOSTS, body limits and request ids, seen from a client.

use actix_web::{HttpResponse, web};
use reqwest::header::HeaderMap;

use crate::support::{TestApp, app_without_database};

const EXPECTED: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("cache-control", "no-store"),
];

fn assert_security_headers(headers: &HeaderMap, what: &str) {
    for (name, value) in EXPECTED {
        assert_eq!(
            headers.get(*name).map(|v| v.to_str().unwrap()),
            Some(*value),
            "{name} on {what}"
        );
    }
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "CSP on {what}: {csp}");
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "CSP on {what}: {csp}"
    );
    let pp = headers["permissions-policy"].to_str().unwrap();
    assert!(
        pp.contains("camera=()") && pp.contains("microphone=()") && pp.contains("geolocation=()")
    );
    assert!(
        headers.get("x-request-id").is_some(),
        "request id on {what}"
    );
}

async fn panicking_app() -> TestApp {
    app_without_database()
        .extra_routes(|cfg| {
            cfg.route(
                "/test/panic",
                web::get().to(|| async {
                    let v: Vec<u8> = Vec::new();
                    if v.is_empty() {
                        panic!("secret internal detail /etc/passwd");
                    }
                    HttpResponse::Ok().finish()
                }),
            );
        })
        .spawn()
        .await
}

#[actix_web::test]
async fn security_headers_on_200_404_405_413_and_500() {
    let app = panicking_app().await;
    let ok = app.get("/health").await;
    assert_eq!(ok.status(), 200);
    assert_security_headers(ok.headers(), "200");

    let missing = app.get("/no/such/path").await;
    assert_eq!(missing.status(), 404);
    assert_security_headers(missing.headers(), "404");
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    let wrong_method = app.client.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_security_headers(wrong_method.headers(), "405");
    assert_eq!(
        wrong_method.headers()["content-type"],
        "application/problem+json"
    );

    // Declared too large: refused before the body is read (sent without its body so the
    // response is read deterministically).
    let (status, raw) = crate::support::raw_http(
        app.port,
        "POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 71680\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 413, "{raw}");
    let lower = raw.to_lowercase();
    for (name, value) in EXPECTED {
        assert!(
            lower.contains(&format!("{name}: {}", value.to_lowercase())),
            "{name} on 413: {raw}"
        );
    }
    assert!(lower.contains("content-security-policy: default-src 'none'"));
    assert!(lower.contains("content-type: application/problem+json"));
    assert!(raw.contains("\"status\":413"));

    let boom = app.get("/test/panic").await;
    assert_eq!(boom.status(), 500);
    assert_security_headers(boom.headers(), "500");
    let request_id = boom.headers()["x-request-id"].to_str().unwrap().to_string();
    let text = boom.text().await.unwrap();
    assert!(
        !text.contains("passwd") && !text.contains("secret internal"),
        "5xx leaks detail: {text}"
    );
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], 500);
    assert_eq!(body["request_id"], request_id);

    // The worker survived the panic.
    assert_eq!(app.get("/health").await.status(), 200);
}

#[actix_web::test]
async fn hsts_only_in_production_and_headers_can_be_switched_off() {
    let dev = app_without_database().spawn().await;
    assert!(
        dev.get("/health")
            .await
            .headers()
            .get("strict-transport-security")
            .is_none()
    );

    let prod = app_without_database()
        .env("ENVIRONMENT", "production")
        .env("CORS_ORIGINS", "https://app.example.org")
        .spawn()
        .await;
    let res = prod.get("/health").await;
    let hsts = res.headers()["strict-transport-security"].to_str().unwrap();
    assert!(hsts.contains("max-age=63072000"));

    let off = app_without_database()
        .env("SECURITY_HEADERS_ENABLED", "false")
        .spawn()
        .await;
    let res = off.get("/no/such/path").await;
    assert!(res.headers().get("x-frame-options").is_none());
    assert!(res.headers().get("content-security-policy").is_none());
}

#[actix_web::test]
async fn cors_allows_listed_origins_and_refuses_others() {
    let app = app_without_database()
        .env(
            "CORS_ORIGINS",
            "https://app.example.org,https://admin.example.org",
        )
        .env("CORS_MAX_AGE", "321")
        .spawn()
        .await;

    let res = app
        .client
        .get(app.url("/health"))
        .header("origin", "https://app.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    assert!(
        res.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );

    let res = app
        .client
        .get(app.url("/health"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_security_headers(res.headers(), "refused CORS request");

    // Preflight, allowed.
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
        .header("origin", "https://admin.example.org")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "preflight status {}",
        res.status()
    );
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://admin.example.org"
    );
    assert_eq!(res.headers()["access-control-max-age"], "321");
    let methods = res.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"));

    // Preflight, refused origin: no allow-origin, error as problem+json.
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[actix_web::test]
async fn cors_credentials_only_when_configured() {
    let app = app_without_database()
        .env("CORS_ORIGINS", "https://app.example.org")
        .env("CORS_ALLOW_CREDENTIALS", "true")
        .spawn()
        .await;
    let res = app
        .client
        .get(app.url("/health"))
        .header("origin", "https://app.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
}

#[actix_web::test]
async fn unknown_host_header_is_400() {
    let app = app_without_database()
        .env("ALLOWED_HOSTS", "api.example.org,localhost")
        .spawn()
        .await;
    let res = app
        .client
        .get(app.url("/health"))
        .header("host", "evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_security_headers(res.headers(), "400 bad host");
    // X-Forwarded-Host is not a way around it.
    let res = app
        .client
        .get(app.url("/health"))
        .header("host", "evil.example.com")
        .header("x-forwarded-host", "api.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .client
        .get(app.url("/health"))
        .header("host", "api.example.org:443")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // 127.0.0.1 is not on this list.
    assert_eq!(app.get("/health").await.status(), 400);
}

#[actix_web::test]
async fn request_id_is_echoed_or_generated() {
    let app = app_without_database().spawn().await;
    let res = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "client-abc_123.4")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-abc_123.4");

    let res = app.get("/health").await;
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let uuid = uuid::Uuid::parse_str(&generated).unwrap();
    assert_eq!(uuid.get_version_num(), 7);

    // Ill-formed ids (injection attempts, oversize) are replaced, not echoed.
    for bad in [
        "a b",
        "<script>",
        &"x".repeat(200),
        "id;drop table",
        "../../etc",
    ] {
        let res = app
            .client
            .get(app.url("/health"))
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let got = res.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(got, bad);
        assert_eq!(uuid::Uuid::parse_str(got).unwrap().get_version_num(), 7);
    }

    // The id in a problem body is the one on the header.
    let res = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["request_id"], "trace-42");
}

// --- connection timing: keep-alive, request head and body deadlines, Expect: 100-continue --------

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
}

/// Reads one response (head, and a body of its Content-Length) off a kept-alive connection.
fn read_response(stream: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "connection closed early"
        );
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    format!("{head}{}", String::from_utf8_lossy(&body))
}

/// Blocks until the server closes the connection: how long that took.
fn time_until_closed(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(
        start.elapsed() < Duration::from_secs(14),
        "the server kept the connection open"
    );
    start.elapsed()
}

const GET_HEALTH: &str = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// A connection idle for `idle` between two requests, then left idle until the server closes it.
fn keep_alive_probe(port: u16, idle: Duration) -> (String, Duration) {
    let mut stream = connect(port);
    stream.write_all(GET_HEALTH.as_bytes()).unwrap();
    assert!(read_response(&mut stream).starts_with("HTTP/1.1 200"));
    std::thread::sleep(idle);
    stream.write_all(GET_HEALTH.as_bytes()).unwrap();
    let second = read_response(&mut stream);
    (second, time_until_closed(&mut stream))
}

#[actix_web::test]
async fn idle_keep_alive_connections_live_as_long_as_configured_and_no_longer() {
    let short = app_without_database()
        .env("HTTP_KEEP_ALIVE_SECONDS", "1")
        .spawn()
        .await;
    let long = app_without_database()
        .env("HTTP_KEEP_ALIVE_SECONDS", "3")
        .spawn()
        .await;
    let (short_port, long_port) = (short.port, long.port);
    // Both at once: the same real seconds serve both.
    let short_probe = actix_web::rt::task::spawn_blocking(move || {
        let mut stream = connect(short_port);
        stream.write_all(GET_HEALTH.as_bytes()).unwrap();
        assert!(read_response(&mut stream).starts_with("HTTP/1.1 200"));
        time_until_closed(&mut stream)
    });
    let long_probe = actix_web::rt::task::spawn_blocking(move || {
        keep_alive_probe(long_port, Duration::from_millis(1500))
    });
    let closed_short = short_probe.await.unwrap();
    let (second, closed_long) = long_probe.await.unwrap();
    assert!(
        closed_short >= Duration::from_millis(500) && closed_short < Duration::from_millis(2900),
        "keep-alive 1 s closed after {closed_short:?}"
    );
    // Idle for 1.5 s (past the other server's keep-alive), the connection still serves.
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(
        closed_long >= Duration::from_millis(2000) && closed_long < Duration::from_millis(5500),
        "keep-alive 3 s closed after {closed_long:?}"
    );
}

#[actix_web::test]
async fn a_request_head_that_never_ends_is_cut_off_after_the_client_timeout() {
    let app = app_without_database()
        .env("HTTP_CLIENT_TIMEOUT_SECONDS", "1")
        .spawn()
        .await;
    let port = app.port;
    let closed = actix_web::rt::task::spawn_blocking(move || {
        let mut stream = connect(port);
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .unwrap();
        time_until_closed(&mut stream)
    })
    .await
    .unwrap();
    assert!(
        closed < Duration::from_millis(3500),
        "closed after {closed:?}"
    );
}

/// Sends a head declaring a 64-byte body, then trickles the body a byte every 300 ms: the
/// response, and how long it took.
fn trickle(port: u16, path: &str, content_type: &str) -> (String, Duration) {
    let mut stream = connect(port);
    let start = Instant::now();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: 64\r\n\r\n{{"
    )
    .unwrap();
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for _ in 0..63 {
            std::thread::sleep(Duration::from_millis(300));
            if writer.write_all(b" ").is_err() {
                break;
            }
        }
    });
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    (
        String::from_utf8_lossy(&response).to_string(),
        start.elapsed(),
    )
}

#[actix_web::test]
async fn a_body_trickled_slowly_is_408_after_the_body_read_timeout_and_the_connection_closes() {
    let app = app_without_database()
        .env("BODY_READ_TIMEOUT_SECONDS", "1")
        .spawn()
        .await;
    let port = app.port;
    let (api, console) = actix_web::rt::task::spawn_blocking(move || {
        (
            trickle(port, "/api/v1/auth/login", "application/json"),
            trickle(port, "/admin/login", "application/x-www-form-urlencoded"),
        )
    })
    .await
    .unwrap();
    let (raw, took) = api;
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    // Answered at the deadline, and the connection closed (read_to_end returned).
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let lower = raw.to_lowercase();
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{raw}"
    );
    assert!(lower.contains("x-content-type-options: nosniff"), "{raw}");
    assert!(lower.contains("connection: close"), "{raw}");
    assert!(raw.contains("\"status\":408"), "{raw}");
    let (raw, took) = console;
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(
        raw.to_lowercase().contains("content-type: text/html"),
        "{raw}"
    );
    // The server is fine, and a body sent at once is unaffected.
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
}

#[actix_web::test]
async fn expect_100_continue_over_the_limit_is_a_final_413_without_100_continue() {
    let app = app_without_database().spawn().await;
    let port = app.port;
    let (refused, took, accepted) = actix_web::rt::task::spawn_blocking(move || {
        let mut stream = connect(port);
        let start = Instant::now();
        stream
            .write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\nExpect: 100-continue\r\n\r\n")
            .unwrap();
        let mut refused = Vec::new();
        let _ = stream.read_to_end(&mut refused);
        let took = start.elapsed();
        // Within the limit, the client is told to go on, and its body is read.
        let mut stream = connect(port);
        stream
            .write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut interim = [0u8; 25];
        stream.read_exact(&mut interim).unwrap();
        stream.write_all(b"{}").unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        (
            String::from_utf8_lossy(&refused).to_string(),
            took,
            format!(
                "{}{}",
                String::from_utf8_lossy(&interim),
                String::from_utf8_lossy(&rest)
            ),
        )
    })
    .await
    .unwrap();
    assert!(refused.starts_with("HTTP/1.1 413"), "{refused}");
    assert!(!refused.contains("100 Continue"), "{refused}");
    assert!(took < Duration::from_secs(3), "the connection stayed open");
    let lower = refused.to_lowercase();
    for (name, value) in EXPECTED {
        assert!(
            lower.contains(&format!("{name}: {}", value.to_lowercase())),
            "{name} on the early 413: {refused}"
        );
    }
    assert!(lower.contains("content-security-policy: default-src 'none'"));
    assert!(lower.contains("content-type: application/problem+json"));
    assert!(lower.contains("x-request-id: "), "{refused}");
    let body = &refused[refused.find("\r\n\r\n").unwrap() + 4..];
    let problem: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(problem["status"], 413);
    assert!(problem["request_id"].is_string());
    assert!(
        accepted.starts_with("HTTP/1.1 100 Continue\r\n\r\n"),
        "{accepted}"
    );
    assert!(accepted.contains("HTTP/1.1 422"), "{accepted}");
}

// --- control characters in text input ------------------------------------------------------------

async fn problem_of(res: reqwest::Response) -> (u16, serde_json::Value) {
    let status = res.status().as_u16();
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "status {status}"
    );
    (status, res.json().await.unwrap())
}

#[actix_web::test]
async fn nul_in_a_login_is_the_same_401_as_a_wrong_password() {
    let app = crate::support::spawn_app().await;
    app.register("alice").await;
    let (status, wrong) = problem_of(app.login_as("alice", "not the password at all").await).await;
    assert_eq!(status, 401);
    for (login, password) in [
        ("alice\0", crate::support::PASSWORD),
        ("alice@example.org\0", crate::support::PASSWORD),
        ("\0", crate::support::PASSWORD),
        ("alice", "correct horse battery\0staple 42"),
        ("alice\u{7}", crate::support::PASSWORD),
    ] {
        let res = app.login_as(login, password).await;
        assert_eq!(res.headers()["www-authenticate"], "Bearer", "{login:?}");
        let (status, body) = problem_of(res).await;
        assert_eq!(status, 401, "{login:?}: {body}");
        assert_eq!(body["type"], wrong["type"]);
        assert_eq!(body["detail"], wrong["detail"]);
    }
    // The account was not harmed: the real password still works.
    app.login("alice").await;
}

#[actix_web::test]
async fn nul_and_control_characters_in_queries_forms_and_json_are_422_naming_the_field() {
    let app = crate::support::app()
        .env("ADMIN_EMAILS", "root@example.org")
        .spawn()
        .await;
    let root = app.admin_user("root").await;
    let alice = app.register("alice").await;
    for (path, field) in [
        ("/api/v1/admin/audit-logs?actor=%00", "actor"),
        ("/api/v1/admin/audit-logs?target=user%3A%00", "target"),
        ("/api/v1/admin/audit-logs?action=x&ip=%0b", "ip"),
        ("/api/v1/admin/users?q=al%00", "q"),
        ("/api/v1/admin/users?q=al%1F", "q"),
        ("/api/v1/admin/api-keys?owner=%00", "owner"),
        ("/api/v1/admin/sessions?user=%00", "user"),
        ("/api/v1/admin/users?%00=1", "query"),
    ] {
        let (status, body) = problem_of(app.get_auth(path, &root.access).await).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
        assert!(!body.to_string().contains("\\u0000"), "{body}");
    }
    // JSON: string values and keys, at any depth.
    for (body, field) in [
        (
            serde_json::json!({"username": "bob\u{0}", "email": "bob@example.org", "password": crate::support::PASSWORD}),
            "username",
        ),
        (
            serde_json::json!({"username": "bob", "email": "bob@example.org\u{1b}", "password": crate::support::PASSWORD}),
            "email",
        ),
        (
            serde_json::json!({"username": "bob", "email": "bob@example.org", "password": crate::support::PASSWORD, "x": {"y\u{0}": 1}}),
            "x",
        ),
    ] {
        let (status, problem) =
            problem_of(app.post_json("/api/v1/auth/register", &body).await).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    // A path segment with NUL names nothing.
    let res = app.get_auth("/api/v1/admin/users/%00", &root.access).await;
    assert_eq!(res.status(), 404);
    // A reason may span lines (CR, LF, tab); with a NUL it is refused and nothing changes.
    let id = alice["id"].as_str().unwrap();
    let path = format!("/api/v1/admin/users/{id}/disable");
    let res = app
        .client
        .post(app.url(&path))
        .bearer_auth(&root.access)
        .json(&serde_json::json!({"reason": "stuffing\u{0}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    // The same without a content type (the admin actions read their optional body raw).
    let res = app
        .client
        .post(app.url(&path))
        .bearer_auth(&root.access)
        .body(r#"{"reason":"stuffing\u0000"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(
        app.login_as("alice", crate::support::PASSWORD)
            .await
            .status(),
        200
    );
    let res = app
        .client
        .post(app.url(&path))
        .bearer_auth(&root.access)
        .json(&serde_json::json!({"reason": "credential stuffing\r\nticket 42, see log"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        app.login_as("alice", crate::support::PASSWORD)
            .await
            .status(),
        401
    );
}

#[actix_web::test]
async fn megabyte_values_are_refused_cleanly_never_500() {
    let app = crate::support::app()
        .env("ADMIN_EMAILS", "root@example.org")
        .spawn()
        .await;
    let root = app.admin_user("root").await;
    let huge = "a".repeat(1 << 20);
    let res = app
        .post_json(
            "/api/v1/auth/login",
            &serde_json::json!({"login": huge, "password": "x"}),
        )
        .await;
    assert_eq!(res.status(), 413);
    // No client library sends a 1 MB URL: a raw one.
    let (status, raw) = crate::support::raw_http(
        app.port,
        &format!(
            "GET /api/v1/admin/users?q={huge} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            root.access
        ),
    )
    .await;
    assert!(
        (400..500).contains(&status),
        "1 MB query: {status} {}",
        raw.chars().take(300).collect::<String>()
    );
    let res = app
        .client
        .post(app.url("/admin/login"))
        .form(&[("login", huge.as_str()), ("password", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    // The server is still well.
    assert_eq!(app.get("/health").await.status(), 200);
}
