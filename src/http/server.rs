//! The HTTP server on a `TcpListener`: actix-web's `HttpServer`, assembled by hand for the one
//! thing it does not expose — the `Expect: 100-continue` handler (`limits::expect_continue`: a
//! declared length over the limit gets a final 413, never `100 Continue`). Everything else is what
//! `HttpServer::listen` does, with the timings from the HTTP_* settings.

use std::fmt;
use std::net::TcpListener;

use actix_http::{HttpService, Request, Response};
use actix_service::{IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt, map_config};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Server};
use actix_web::http::KeepAlive;

use crate::config::settings::HttpSettings;
use crate::error::AppError;

/// Serves `app` (an actix `App` factory, one instance per worker) on `listener`.
pub fn serve<F, I, S, B>(
    listener: TcpListener,
    http: HttpSettings,
    edge: super::EdgeConfig,
    app: F,
) -> Result<Server, AppError>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
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
                // Routing has not happened yet: the limit of the route the path matches answers
                // here, and `limits::limit_body` holds each routed request to its own.
                .expect(super::limits::expect_continue(
                    edge.expect_limits(),
                    *edge.headers,
                ))
                .finish(map_config(
                    app().into_factory().map_err(|e| e.into().error_response()),
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
