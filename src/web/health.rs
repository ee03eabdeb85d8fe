//! Liveness (`/health`, touches nothing) and readiness (`/ready`: the database answers within the
//! pool timeout and no migration is pending; each configured identity provider's health is
//! reported beside).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db::migrations;
use crate::error::AppError;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    // `resource(..).route(..)` (not `cfg.route`) so other methods get 405, not 404.
    cfg.service(web::resource("/health").route(web::get().to(health)))
        .service(web::resource("/ready").route(web::get().to(ready)));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn ready(
    state: web::Data<AppState>,
    providers: Option<web::Data<crate::identity::Providers>>,
) -> Result<HttpResponse, AppError> {
    // Identity providers report `ok` or `degraded` (their JWKS unreachable past the cached keys'
    // hour): the service stays ready — rampart's own credentials still work — and says so.
    let identity: serde_json::Map<String, serde_json::Value> = providers
        .map(|p| {
            p.health(state.clock.now())
                .into_iter()
                .map(|(provider, health)| (provider.as_str().to_string(), json!(health.as_str())))
                .collect()
        })
        .unwrap_or_default();
    let limit = state.pool.timeout() + std::time::Duration::from_secs(1);
    let check = state.pool.run(|conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT 1").execute(conn)?;
        migrations::has_pending(conn).map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))
    });
    let not_ready = |reason| AppError::Unavailable {
        retry_after: 5,
        reason,
    };
    match tokio::time::timeout(limit, check).await {
        Ok(Ok(false)) => Ok(HttpResponse::Ok().json(json!({
            "status": "ready",
            "database": "ok",
            "migrations": "current",
            "identity_providers": identity,
        }))),
        Ok(Ok(true)) => {
            tracing::warn!("not ready: migrations pending");
            Err(not_ready("migrations"))
        }
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "not ready: database check failed");
            Err(not_ready("database"))
        }
        Err(_) => Err(not_ready("database")),
    }
}
