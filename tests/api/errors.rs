//! JSON body handling and the problem+json shape.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::support::{TestApp, app_without_database};

#[derive(Deserialize)]
#[allow(dead_code)]
struct Echo {
    name: String,
    count: u32,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Shape {
    n: u8,
    mode: Option<Mode>,
}

#[derive(Deserialize)]
enum Mode {
    Fast,
}

async fn echo_app() -> TestApp {
    app_without_database()
        .extra_routes(|cfg| {
            cfg.route(
                "/test/echo",
                web::post().to(|body: web::Json<Echo>| async move {
                    HttpResponse::Ok().json(serde_json::json!({ "name": body.name }))
                }),
            );
            cfg.route(
                "/test/query",
                web::get().to(|q: web::Query<Shape>| async move {
                    HttpResponse::Ok().json(serde_json::json!({ "n": q.n }))
                }),
            );
            cfg.route(
                "/test/form",
                web::post().to(|f: web::Form<Shape>| async move {
                    HttpResponse::Ok().json(serde_json::json!({ "n": f.n }))
                }),
            );
        })
        .spawn()
        .await
}

async fn post(
    app: &TestApp,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.client
        .post(app.url("/test/echo"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

fn assert_problem(body: &serde_json::Value, status: u16) {
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap().starts_with("https://"));
    assert!(body["title"].is_string());
    assert!(body["detail"].is_string());
    assert!(body["request_id"].is_string());
}

#[actix_web::test]
async fn valid_json_is_accepted() {
    let app = echo_app().await;
    let res = post(&app, "application/json", r#"{"name":"a","count":1}"#).await;
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn malformed_json_is_400_problem() {
    let app = echo_app().await;
    let res = post(&app, "application/json", r#"{"name": "a", "count": "#).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_problem(&res.json().await.unwrap(), 400);
}

#[actix_web::test]
async fn wrong_content_type_is_415_problem() {
    let app = echo_app().await;
    let res = post(&app, "text/plain", r#"{"name":"a","count":1}"#).await;
    assert_eq!(res.status(), 415);
    assert_problem(&res.json().await.unwrap(), 415);
}

#[actix_web::test]
async fn wrong_shape_is_422_with_field_errors() {
    let app = echo_app().await;
    let res = post(&app, "application/json", r#"{"name":"a","count":"many"}"#).await;
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_problem(&body, 422);
    assert!(!body["errors"].as_array().unwrap().is_empty());
}

#[actix_web::test]
async fn oversized_json_is_413_even_when_chunked() {
    let app = echo_app().await;
    let big = format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(70 * 1024));
    // Declared length: refused before reading (the body is withheld: see support::raw_http).
    let head = format!(
        "POST /test/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        big.len()
    );
    let (status, raw) = crate::support::raw_http(app.port, &head).await;
    assert_eq!(status, 413, "{raw}");
    assert!(raw.contains("application/problem+json"));
    // Chunked (no Content-Length): refused by the extractor's limit.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let res = post(&app, "application/json", reqwest::Body::wrap_stream(stream)).await;
    assert_eq!(res.status(), 413);
    assert_problem(&res.json().await.unwrap(), 413);
}

/// The real binary, logging JSON to a channel: (child, port, lines).
fn serve_with_logs() -> (std::process::Child, u16, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut env = crate::support::base_env("postgres://postgres@127.0.0.1:1/nowhere");
    env.insert("LOG_FORMAT".into(), "json".into());
    env.insert("LOG_LEVEL".into(), "info".into());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("serve")
        .env_clear()
        .env("RAMPART_CONFIG_DIR", crate::support::config_dir())
        .envs(&env)
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let port = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("server did not start");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if parsed["message"] == "rampart listening" {
            break parsed["port"].as_u64().unwrap() as u16;
        }
    };
    (child, port, rx)
}

#[actix_web::test]
async fn a_value_of_the_wrong_type_is_never_echoed_in_the_body_or_the_log() {
    const DIGITS: &str = "918273645544332211";
    let (mut child, port, rx) = serve_with_logs();
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let cases: Vec<(&str, String)> = vec![
        (
            "/api/v1/auth/login",
            format!(r#"{{"login":"alice","password":{DIGITS}}}"#),
        ),
        (
            "/api/v1/auth/login",
            format!(r#"{{"login":"alice","password":{{"pin":{DIGITS}}}}}"#),
        ),
        (
            "/api/v1/auth/login",
            format!(r#"{{"login":"alice","password":[{DIGITS}, "{DIGITS}"]}}"#),
        ),
        (
            "/api/v1/auth/login",
            format!(r#"{{"login":"alice","password":"{DIGITS}x","{DIGITS}":1}}"#),
        ),
        (
            "/api/v1/auth/register",
            format!(
                r#"{{"username":{DIGITS},"email":"a@example.org","password":"correct horse battery"}}"#
            ),
        ),
        (
            "/api/v1/auth/refresh",
            format!(r#"{{"refresh_token":{DIGITS}.5}}"#),
        ),
    ];
    for (path, body) in &cases {
        let res = client
            .post(url(path))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(
            status == 422 || status == 400,
            "{path} {body}: {status} {text}"
        );
        assert!(!text.contains(DIGITS), "{path} {body} echoed: {text}");
        if status == 422 {
            let problem: serde_json::Value = serde_json::from_str(&text).unwrap();
            let message = problem["errors"][0]["message"].as_str().unwrap();
            assert!(message.contains("expected"), "{text}");
        }
    }
    // Every request has been logged (a WARN line for its error, then `request finished`).
    let mut lines = Vec::new();
    let mut finished = 0;
    while finished < cases.len() {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("request log lines");
        if line.contains("request finished") {
            finished += 1;
        }
        lines.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let all = lines.join("\n");
    assert!(all.contains("Error encountered"), "{all}");
    assert!(
        !all.contains(&DIGITS[..10]),
        "the log echoes a value:\n{all}"
    );
}

#[actix_web::test]
async fn query_and_form_shape_errors_are_422_without_the_value() {
    const DIGITS: &str = "918273645544332211";
    let app = echo_app().await;
    for path in [
        format!("/test/query?n={DIGITS}"),
        format!("/test/query?n=1&mode=x{DIGITS}"),
    ] {
        let res = app.get(&path).await;
        assert_eq!(res.status(), 422, "{path}");
        let text = res.text().await.unwrap();
        assert!(!text.contains(DIGITS), "{path}: {text}");
        assert_problem(&serde_json::from_str(&text).unwrap(), 422);
    }
    for body in [format!("n={DIGITS}"), format!("n=1&mode=x{DIGITS}")] {
        let res = post_to(
            &app,
            "/test/form",
            "application/x-www-form-urlencoded",
            body.clone(),
        )
        .await;
        assert_eq!(res.status(), 422, "{body}");
        let text = res.text().await.unwrap();
        assert!(!text.contains(DIGITS), "{body}: {text}");
    }
}

async fn post_to(app: &TestApp, path: &str, content_type: &str, body: String) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}
