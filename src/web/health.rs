//! Liveness (`/health`, touches nothing) and readiness (`/ready`: the database answers within the
//! pool timeout, no migration is pending and every live data key is wrapped under a configured
//! master key; each configured identity provider's health is reported beside).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db::migrations;
use crate::error::{AppError, FieldError};
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
    let ring = state.keyring.clone();
    let check = state.pool.run(move |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT 1").execute(conn)?;
        if migrations::has_pending(conn).map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))? {
            return Ok(Readiness::MigrationsPending);
        }
        // One indexed probe on the happy path; the ids are looked up only when it fails.
        if !crate::users::data_keys::any_unconfigured(conn, &ring)? {
            return Ok(Readiness::Ready);
        }
        let counts = crate::users::data_keys::counts(conn)?;
        Ok(Readiness::UnconfiguredMasterKeys(
            counts
                .unconfigured(&ring)
                .into_iter()
                .map(|(id, n)| (id.to_string(), n))
                .collect(),
        ))
    });
    let not_ready = |reason| AppError::Unavailable {
        retry_after: 5,
        reason,
    };
    match tokio::time::timeout(limit, check).await {
        Ok(Ok(Readiness::Ready)) => Ok(HttpResponse::Ok().json(json!({
            "status": "ready",
            "database": "ok",
            "migrations": "current",
            "encryption": "ok",
            "identity_providers": identity,
            // Live delivery between instances: `down` while the bus connection is being
            // re-established (sockets are told to resync); the API itself is unaffected.
            "live_bus": if state.bus.is_up() { "ok" } else { "down" },
            "live_bus_kind": state.bus.kind().as_str(),
        }))),
        Ok(Ok(Readiness::MigrationsPending)) => {
            tracing::warn!("not ready: migrations pending");
            Err(not_ready("migrations"))
        }
        Ok(Ok(Readiness::UnconfiguredMasterKeys(missing))) => {
            let ids: Vec<&str> = missing.iter().map(|(id, _)| id.as_str()).collect();
            tracing::warn!(master_keys = ?ids,
                "not ready: live data keys are wrapped under master keys that are not configured");
            let error = not_ready("encryption");
            let mut response = actix_web::ResponseError::error_response(&error);
            let mut problem = error.problem();
            problem.detail = format!(
                "Data keys are wrapped under master keys that are not configured: {}. Put those \
                 keys back into ENCRYPTION_KEYS_PREVIOUS and run `rampart keys rotate-encryption`.",
                ids.join(", ")
            );
            problem.errors = missing
                .iter()
                .map(|(id, n)| FieldError {
                    field: "encryption".into(),
                    message: format!("master key {id} is not configured ({n} live data keys)"),
                })
                .collect();
            response.extensions_mut().insert(problem);
            Ok(response)
        }
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "not ready: database check failed");
            Err(not_ready("database"))
        }
        Err(_) => Err(not_ready("database")),
    }
}

enum Readiness {
    Ready,
    MigrationsPending,
    /// Master key ids (never keys) still wrapping live data keys, with their counts.
    UnconfiguredMasterKeys(Vec<(String, i64)>),
}
