use crate::support::{TestDb, app, app_without_database, spawn_app};
use std::time::{Duration, Instant};

#[actix_web::test]
async fn health_is_ok_without_touching_the_database() {
    let app = app_without_database().spawn().await;
    let res = app.get("/health").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[actix_web::test]
async fn ready_when_database_answers_and_migrations_are_current() {
    let app = spawn_app().await;
    let res = app.get("/ready").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["migrations"], "current");
}

#[actix_web::test]
async fn ready_is_503_fast_when_database_is_down() {
    let app = app_without_database().spawn().await;
    let started = Instant::now();
    let res = app.get("/ready").await;
    assert_eq!(res.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "must fail fast, not hang"
    );
    assert!(res.headers().get("retry-after").is_some());
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], 503);
    // Health stays green: liveness does not depend on the database.
    assert_eq!(app.get("/health").await.status(), 200);
}

#[actix_web::test]
async fn ready_is_503_while_migrations_are_pending() {
    let db = TestDb::empty();
    let app = app().env("DATABASE_URL", &db.url).spawn().await;
    let res = app.get("/ready").await;
    assert_eq!(res.status(), 503);
    drop(db);
}

#[actix_web::test]
async fn openapi_lists_every_route_with_its_access_rule_and_is_off_in_production() {
    let app = app_without_database().spawn().await;
    let res = app.get("/api/v1/openapi.json").await;
    assert_eq!(res.status(), 200);
    let doc: serde_json::Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for route in rampart::web::api_routes().table() {
        let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} missing", route.method, route.path);
    }
    assert_eq!(
        doc["paths"]["/api/v1/auth/login"]["post"]["security"],
        serde_json::json!([])
    );
    let me = doc["paths"]["/api/v1/me"]["get"]["description"]
        .as_str()
        .unwrap();
    assert!(me.contains("profile:read"), "{me}");

    let prod = app_without_database()
        .env("ENVIRONMENT", "production")
        .env("CORS_ORIGINS", "https://app.example.org")
        .spawn()
        .await;
    assert_eq!(prod.get("/api/v1/openapi.json").await.status(), 404);
    let prod_on = app_without_database()
        .env("ENVIRONMENT", "production")
        .env("DOCS_ENABLED", "true")
        .spawn()
        .await;
    assert_eq!(prod_on.get("/api/v1/openapi.json").await.status(), 200);
}
