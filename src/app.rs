//! Builds the HTTP application: pool, middleware order, every feature's routes, and the server on a
//! `TcpListener` (port 0 in tests).
//!
//! Middleware, outermost first: request context (id, client IP) → tracing → security headers →
//! problem rendering → Host check → CORS → rate limit → body limit and deadline → control characters
//! in text input → panic containment → routes.

use std::net::TcpListener;
use std::sync::Arc;

use actix_http::HttpService;
use actix_service::{IntoServiceFactory, ServiceFactoryExt, map_config};
use actix_web::dev::{AppConfig, Server};
use actix_web::http::KeepAlive;
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use tracing_actix_web::TracingLogger;

use crate::clock::Clock;
use crate::config::{Environment, Settings};
use crate::db::Pool;
use crate::error::AppError;
use crate::http::client_ip::TrustedProxies;
use crate::http::headers::SecurityHeaders;
use crate::http::hosts::AllowedHosts;
use crate::http::limits::{BodyLimit, BodyReadTimeout};
use crate::http::{
    cors, error, headers, hosts, limits, panic, request_id, request_log, text_input,
};
use crate::rate_limit::Limiter;
use crate::state::AppState;

/// What tests may vary: extra routes mounted inside the full middleware stack, and the clock.
#[derive(Clone)]
pub struct Options {
    pub extra: ExtraRoutes,
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            extra: no_extra_routes(),
            clock: Clock::system(),
        }
    }
}

/// Extra routes mounted inside the full middleware stack. Production passes `no_extra_routes`;
/// tests use it to reach the stack with handlers that panic or echo JSON.
pub type ExtraRoutes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

pub fn no_extra_routes() -> ExtraRoutes {
    Arc::new(|_| {})
}

pub struct Application {
    port: u16,
    server: Server,
    limiter: Option<Arc<Limiter>>,
}

impl Application {
    pub fn build(settings: Settings) -> Result<Application, AppError> {
        Application::build_with(settings, Options::default())
    }

    pub fn build_with(settings: Settings, options: Options) -> Result<Application, AppError> {
        let listener = TcpListener::bind(settings.bind_address()).map_err(|e| {
            AppError::internal(anyhow::anyhow!(
                "cannot listen on {}: {e}",
                settings.bind_address()
            ))
        })?;
        let port = listener.local_addr().map_err(AppError::internal)?.port();
        let pool = Pool::new(&settings.database);
        let state = web::Data::new(AppState::new(Arc::new(settings), pool, options.clock)?);
        let limiter = rate_limiter(&state.settings, &state)?;
        let server = run(listener, state, limiter.clone(), options.extra)?;
        Ok(Application {
            port,
            server,
            limiter,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Round-trips once to the store of the shared rate limits (Redis), when there is one.
    pub async fn check_shared_rate_limits(&self) -> Result<(), String> {
        match &self.limiter {
            Some(limiter) => limiter.check_shared_store().await,
            None => Ok(()),
        }
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The per-IP limiter, with its sweeper and audit reporter running (`None` when
/// RATE_LIMIT_ENABLED=false). Built once: every worker spends from the same budgets.
fn rate_limiter(
    settings: &Settings,
    state: &web::Data<AppState>,
) -> Result<Option<Arc<Limiter>>, AppError> {
    if !settings.rate_limit.enabled {
        return Ok(None);
    }
    let limiter = Arc::new(
        Limiter::new(&settings.rate_limit, state.clock.clone())
            .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?,
    );
    limiter.spawn_sweeper();
    limiter.set_reporter(crate::rate_limit::report::spawn(
        state.pool.clone(),
        state.auditor.clone(),
    ));
    Ok(Some(limiter))
}

fn run(
    listener: TcpListener,
    state: web::Data<AppState>,
    limiter: Option<Arc<Limiter>>,
    extra: ExtraRoutes,
) -> Result<Server, AppError> {
    // Built once, outside the factory: every worker shares the same state (and limits).
    let settings = state.settings.clone();
    let proxies = Arc::new(TrustedProxies(settings.trusted_proxies.clone()));
    let header_config = Arc::new(SecurityHeaders {
        enabled: settings.security_headers_enabled,
        hsts: settings.environment == Environment::Production,
    });
    let allowed_hosts = Arc::new(AllowedHosts(settings.allowed_hosts.clone()));
    let body_limit = Arc::new(BodyLimit(settings.max_body_bytes));
    let body_timeout = Arc::new(BodyReadTimeout(settings.http.body_read_timeout));
    let cors_settings = settings.cors.clone();
    let max_body = settings.max_body_bytes;
    let http = settings.http;
    let expect_headers = *header_config;

    let app = move || {
        App::new()
            .app_data(state.clone())
            .app_data(proxies.clone())
            .app_data(header_config.clone())
            .app_data(allowed_hosts.clone())
            .app_data(body_limit.clone())
            .app_data(body_timeout.clone())
            .app_data(limiter.clone())
            .app_data(limits::json_config(max_body))
            .app_data(limits::payload_config(max_body))
            .app_data(limits::query_config())
            .app_data(limits::form_config(max_body))
            .app_data(limits::path_config())
            .configure(crate::web::mount)
            .configure(crate::console::mount)
            .configure(|cfg| extra(cfg))
            .wrap(from_fn(panic::catch_panic))
            .wrap(from_fn(text_input::refuse_control_characters))
            .wrap(from_fn(limits::limit_body))
            .wrap(from_fn(crate::rate_limit::middleware::limit))
            .wrap(cors::cors(&cors_settings))
            .wrap(from_fn(hosts::check_host))
            .wrap(from_fn(error::render_problems))
            .wrap(from_fn(headers::security_headers))
            .wrap(TracingLogger::<request_log::RampartRootSpan>::new())
            .wrap(from_fn(request_id::request_context))
    };

    // actix-web's `HttpServer`, assembled by hand for one thing it does not expose: the
    // `Expect: 100-continue` handler (see `limits::expect_continue`). Everything else is what
    // `HttpServer::listen` does, with the timings from HTTP_* settings.
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::internal(anyhow::anyhow!("cannot read the listen address: {e}")))?;
    let builder = Server::build();
    let graceful = builder.graceful_shutdown_signal();
    let keep_alive = if http.keep_alive.is_zero() {
        KeepAlive::Disabled
    } else {
        KeepAlive::Timeout(http.keep_alive)
    };
    let server = builder
        .shutdown_timeout(http.shutdown_timeout.as_secs())
        .listen("rampart-http", listener, move || {
            let graceful = graceful.clone();
            let host = addr.to_string();
            HttpService::build()
                .graceful_shutdown_signal(move || {
                    let graceful = graceful.clone();
                    async move { graceful.notified().await }
                })
                .keep_alive(keep_alive)
                .client_request_timeout(http.client_timeout)
                .client_disconnect_timeout(std::time::Duration::from_secs(1))
                .local_addr(addr)
                .expect(limits::expect_continue(max_body, expect_headers))
                .finish(map_config(
                    app().into_factory().map_err(|e| e.error_response()),
                    // The same connection config `HttpServer::listen` gives (actix-web exposes
                    // its constructor only under this name, for actix-test).
                    move |_| AppConfig::__priv_test_new(false, host.clone(), addr),
                ))
                .tcp()
        })
        .map_err(|e| AppError::internal(anyhow::anyhow!("cannot start the HTTP server: {e}")))?
        .run();
    Ok(server)
}
