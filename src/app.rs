//! Builds the HTTP application: pool, middleware order, every feature's routes, and the server on a
//! `TcpListener` (port 0 in tests).
//!
//! Middleware, outermost first: request context (id, client IP) → tracing → security headers →
//! problem rendering → Host check → CORS → rate limit → body limit and deadline → control characters
//! in text input → panic containment → routes.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use tracing_actix_web::TracingLogger;

use crate::audit::AuditQueue;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Pool;
use crate::error::AppError;
use crate::http::{
    EdgeConfig, cors, error, headers, hosts, limits, panic, request_id, request_log, text_input,
};
use crate::rate_limit::Limiter;
use crate::state::AppState;
use crate::webhooks::Inbox;

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
    live: web::Data<Arc<crate::live::Live>>,
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
        // Refusals (rate limits, webhook signatures) reach the audit log through one queue.
        let queue = AuditQueue::spawn(state.pool.clone(), state.auditor.clone());
        let limiter = Limiter::for_app(&state.settings.rate_limit, &queue, &state.clock)
            .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
        let inbox = web::Data::new(
            Inbox::from_settings(&state.settings, Some(queue.clone()))
                .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?,
        );
        let providers = web::Data::new(
            crate::identity::Providers::from_settings(&state.settings)
                .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?,
        );
        providers.set_reporter(&queue);
        crate::webhooks::spawn_pruner(
            state.pool.clone(),
            state.auditor.clone(),
            state.settings.webhooks,
        );
        crate::conversations::spawn_pruner(
            state.pool.clone(),
            state.auditor.clone(),
            state.settings.conversations.clone(),
        );
        crate::email::sender::spawn(&state);
        let live = web::Data::new(crate::live::Live::start(&state));
        let server = run(
            listener,
            state,
            live.clone(),
            limiter.clone(),
            inbox,
            providers,
            options.extra,
        )?;
        Ok(Application {
            port,
            server,
            limiter,
            live,
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

    /// Runs until stopped. On SIGTERM or Ctrl-C the live sockets are closed with 1001 first, so
    /// the server's graceful shutdown is not held up by them.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let live = self.live.clone();
        actix_web::rt::spawn(async move {
            shutdown_signal().await;
            live.hub.shut_down();
        });
        self.server.await
    }

    /// This instance's live delivery (tests: sockets connected, dropped).
    pub fn live(&self) -> Arc<crate::live::Live> {
        self.live.get_ref().clone()
    }
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn run(
    listener: TcpListener,
    state: web::Data<AppState>,
    live: web::Data<Arc<crate::live::Live>>,
    limiter: Option<Arc<Limiter>>,
    inbox: web::Data<Inbox>,
    providers: web::Data<crate::identity::Providers>,
    extra: ExtraRoutes,
) -> Result<Server, AppError> {
    // Built once, outside the factory: every worker shares the same state (and limits).
    let settings = state.settings.clone();
    let edge = EdgeConfig::from_settings(&settings)
        .with_raw_body_routes(Inbox::raw_body_routes(&settings))
        .with_streamed_body_routes(vec![(
            crate::conversations::MESSAGES_ROUTE.to_string(),
            crate::conversations::upload_limits(&settings.conversations).total_body_limit(),
        )]);
    let cors_settings = settings.cors.clone();
    let edge_for_expect = edge.clone();
    let assurance = crate::auth::AssurancePolicy {
        step_up_max_age: settings.auth.step_up_max_age,
        mfa_required_for_admins: settings.auth.mfa_required_for_admins,
        email_verification_required: settings.email.verification_required,
        clock: state.clock.clone(),
    };
    let app = move || {
        App::new()
            .app_data(state.clone())
            .app_data(assurance.clone())
            .app_data(limiter.clone())
            .app_data(inbox.clone())
            .app_data(providers.clone())
            .app_data(live.clone())
            .configure(|cfg| edge.register(cfg))
            .configure(crate::web::mount)
            .configure(crate::console::mount)
            .configure(|cfg| extra(cfg))
            .wrap(from_fn(crate::console::step_up::gate))
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

    crate::http::server::serve(listener, settings.http, edge_for_expect, app)
}
