//! `rampart serve`: validate the configuration, optionally wait for the database and migrate, then
//! run the HTTP server until stopped.

use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection};
use secrecy::ExposeSecret;

use crate::app::Application;
use crate::config::settings::redact_url_password;
use crate::config::{Environment, Settings, check};
use crate::db::migrations;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to start: the configuration has {0} problem(s) (listed above)")]
    UnsafeConfig(usize),
    #[error("{0}")]
    Database(String),
    #[error("{0}")]
    Startup(String),
}

/// Prints every configuration problem (one line each, never a value). Returns how many there were.
pub fn report_problems(settings: &Settings) -> usize {
    let problems = check(settings);
    let level = if settings.environment == Environment::Production {
        "error"
    } else {
        "warning"
    };
    for problem in &problems {
        eprintln!("{level}: {problem}");
    }
    problems.len()
}

pub fn serve(settings: Settings) -> Result<(), ServeError> {
    let problems = report_problems(&settings);
    if problems > 0 {
        if settings.environment == Environment::Production {
            return Err(ServeError::UnsafeConfig(problems));
        }
        eprintln!(
            "warning: {problems} configuration problem(s); development starts anyway, production would refuse"
        );
    }
    crate::telemetry::init(&settings);
    if settings.database.migrate_on_start {
        wait_and_migrate(&settings)?;
    }
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let app =
            Application::build(settings.clone()).map_err(|e| ServeError::Startup(e.to_string()))?;
        // Shared limits that silently became per-instance would be a weaker service than the
        // operator configured: production refuses to start without its Redis.
        if let Err(error) = app.check_shared_rate_limits().await {
            if settings.is_production() {
                return Err(ServeError::Startup(format!(
                    "REDIS_URL is set but the shared rate limits are unavailable: {error}"
                )));
            }
            tracing::warn!(error = %error, "REDIS_URL is set but Redis does not answer; limits are per instance until it does");
        }
        tracing::info!(
            address = %settings.bind_address(),
            port = app.port(),
            environment = %settings.environment,
            "rampart listening"
        );
        app.run_until_stopped()
            .await
            .map_err(|e| ServeError::Startup(format!("server error: {e}")))
    })
}

/// Connects with a bounded retry (the database may still be starting), then migrates.
pub fn wait_and_migrate(settings: &Settings) -> Result<(), ServeError> {
    let url = settings.database.url.expose_secret();
    let deadline = Instant::now() + settings.database.startup_wait;
    let mut attempt = 0u32;
    let mut conn = loop {
        attempt += 1;
        match PgConnection::establish(url) {
            Ok(conn) => break conn,
            Err(error) if Instant::now() < deadline => {
                tracing::info!(attempt, error = %error, "waiting for the database");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(error) => {
                return Err(ServeError::Database(format!(
                    "the database at {} did not answer within {} s: {error}\n  start PostgreSQL (`make run` does it for you) or point DATABASE_URL at a running server",
                    redact_url_password(url),
                    settings.database.startup_wait.as_secs()
                )));
            }
        }
    };
    let applied = migrations::run_pending(&mut conn)
        .map_err(|e| ServeError::Database(format!("migration failed: {e}")))?;
    if !applied.is_empty() {
        tracing::info!(?applied, "migrations applied");
    }
    Ok(())
}
