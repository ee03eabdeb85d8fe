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
