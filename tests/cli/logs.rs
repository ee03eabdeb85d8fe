//! The real server's log output: one line per request with the request id and trusted client IP,
//! and never a credential header value.

use std::time::Duration;

use crate::commands::Served;
use crate::support::base_env;

#[test]
fn request_logs_carry_request_id_and_no_credentials() {
    let env = base_env("postgres://postgres@127.0.0.1:1/nowhere");
    let mut server = Served::start(&env);
    let mut lines = server.early.clone();
    let port = server.port;

    let secrets = [
        "Bearer eyJhbGciOiJIUzI1NiJ9.secret-token-value.sig",
        "session=cookie-secret-value",
        "rk_ApiKeySecretValue0123456789abcdefgh",
    ];
    let status = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-H", &format!("Authorization: {}", secrets[0])])
        .args(["-H", &format!("Cookie: {}", secrets[1])])
        .args(["-H", &format!("X-API-Key: {}", secrets[2])])
        .args(["-H", "X-Request-Id: log-test-123"])
        .arg(format!(
            "http://127.0.0.1:{port}/health?token=query-secret-value"
        ))
        .output();
    let via_curl = status.is_ok();
    if !via_curl {
        // No curl on this machine: speak HTTP directly.
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "GET /health?token=query-secret-value HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nCookie: {}\r\nX-API-Key: {}\r\nX-Request-Id: log-test-123\r\nConnection: close\r\n\r\n",
            secrets[0], secrets[1], secrets[2]
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"));
    }

    let finished = loop {
        let line = server
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("no request log line");
        lines.push(line.clone());
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if parsed["message"] == "request finished" {
            break parsed;
        }
    };
    let _ = server.child.kill();
    let _ = server.child.wait();
    let mut stderr = String::new();
    use std::io::Read;
    let _ = server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr);

    let span = &finished["span"];
    assert_eq!(span["request_id"], "log-test-123", "{finished}");
    assert_eq!(span["method"], "GET");
    assert_eq!(span["route"], "/health");
    assert_eq!(span["client_ip"], "127.0.0.1");
    assert_eq!(finished["status"], 200);
    assert!(finished["latency_ms"].is_number(), "{finished}");
    let all = format!("{}\n{stderr}", lines.join("\n"));
    for secret in secrets.iter().chain(["query-secret-value"].iter()) {
        assert!(!all.contains(secret), "log contains {secret}:\n{all}");
    }
    assert!(!all.contains("secret-token-value") && !all.contains("cookie-secret-value"));
}
