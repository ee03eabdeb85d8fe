//! HTTP plumbing shared by every feature: errors, security headers, request ids, client IP,
//! limits, CORS, Host checking, control characters in text input, panic containment, the request
//! log and health endpoints.
//! No feature logic lives here.

pub mod client_ip;
pub mod cors;
pub mod error;
pub mod headers;
pub mod hosts;
pub mod limits;
pub mod multipart;
pub mod openapi;
pub mod pagination;
pub mod panic;
pub mod path_id;
pub mod request_id;
pub mod request_log;
pub mod server;
pub mod text_input;

use actix_web::dev::ServiceRequest;

/// The path as the router sees it: percent-decoded except `%2F`, `%25` and `%2B` (actix-router's
/// quoter). Rules keyed on a path (console or API, per-route limits) use this, not the raw path.
pub fn routed_path(req: &ServiceRequest) -> &str {
    req.match_info().as_str()
}

/// The pattern of the resource a request will be routed to (`/api/v1/auth/login`,
/// `/admin/users/{id}`), `None` when no resource matches (a 404). Available before routing, so the
/// middleware in front of the router decides on what the router will actually dispatch to.
///
/// Matching walks the resource map (regular expressions for every dynamic pattern on the way), so
/// the answer is computed once per request and kept in its extensions for the next middleware.
pub fn routed_pattern(req: &ServiceRequest) -> Option<String> {
    use actix_web::HttpMessage;
    if let Some(RoutedPattern(pattern)) = req.extensions().get::<RoutedPattern>() {
        return pattern.clone();
    }
    let pattern = req.resource_map().match_pattern(routed_path(req));
    req.extensions_mut().insert(RoutedPattern(pattern.clone()));
    pattern
}

/// The cached answer of [`routed_pattern`] (the path cannot change between middlewares).
#[derive(Debug, Clone)]
struct RoutedPattern(Option<String>);

/// The edge's shared configuration, built once from `Settings` and handed to every worker as app
/// data: trusted proxies, security headers, allowed hosts, body limit and deadline, and the
/// extractor configs (JSON, payload, query, form, path) whose errors are problem+json.
#[derive(Clone)]
pub struct EdgeConfig {
    proxies: std::sync::Arc<client_ip::TrustedProxies>,
    pub headers: std::sync::Arc<headers::SecurityHeaders>,
    hosts: std::sync::Arc<hosts::AllowedHosts>,
    body_limit: std::sync::Arc<limits::BodyLimit>,
    body_timeout: std::sync::Arc<limits::BodyReadTimeout>,
    pub raw_body_routes: std::sync::Arc<limits::RawBodyRoutes>,
    pub streamed_body_routes: std::sync::Arc<limits::StreamedBodyRoutes>,
    pub max_body: usize,
}

impl EdgeConfig {
    pub fn from_settings(settings: &crate::config::Settings) -> EdgeConfig {
        EdgeConfig {
            proxies: std::sync::Arc::new(client_ip::TrustedProxies(
                settings.trusted_proxies.clone(),
            )),
            headers: std::sync::Arc::new(headers::SecurityHeaders {
                enabled: settings.security_headers_enabled,
                hsts: settings.is_production(),
            }),
            hosts: std::sync::Arc::new(hosts::AllowedHosts(settings.allowed_hosts.clone())),
            body_limit: std::sync::Arc::new(limits::BodyLimit(settings.max_body_bytes)),
            body_timeout: std::sync::Arc::new(limits::BodyReadTimeout(
                settings.http.body_read_timeout,
            )),
            raw_body_routes: std::sync::Arc::new(limits::RawBodyRoutes::default()),
            streamed_body_routes: std::sync::Arc::new(limits::StreamedBodyRoutes::default()),
            max_body: settings.max_body_bytes,
        }
    }

    /// Adds routes that read their body as raw bytes under a limit of their own.
    pub fn with_raw_body_routes(mut self, routes: Vec<(String, usize)>) -> EdgeConfig {
        self.raw_body_routes = std::sync::Arc::new(limits::RawBodyRoutes(routes));
        self
    }

    /// Adds routes whose `multipart/form-data` bodies are streamed to their handler (not
    /// buffered) under a total limit of their own: (route pattern as registered, e.g.
    /// `/api/v1/conversations/{id}/messages`, total bytes). See `limits::StreamedBodyRoutes`.
    pub fn with_streamed_body_routes(mut self, routes: Vec<(String, usize)>) -> EdgeConfig {
        self.streamed_body_routes = std::sync::Arc::new(limits::StreamedBodyRoutes(routes));
        self
    }

    /// What `Expect: 100-continue` is answered against, before routing.
    pub fn expect_limits(&self) -> limits::ExpectLimits {
        limits::ExpectLimits::new(
            self.max_body,
            &self.raw_body_routes,
            &self.streamed_body_routes,
        )
    }

    /// Registers it all as app data.
    pub fn register(&self, cfg: &mut actix_web::web::ServiceConfig) {
        cfg.app_data(self.proxies.clone())
            .app_data(self.headers.clone())
            .app_data(self.hosts.clone())
            .app_data(self.body_limit.clone())
            .app_data(self.body_timeout.clone())
            .app_data(self.raw_body_routes.clone())
            .app_data(self.streamed_body_routes.clone())
            .app_data(limits::json_config(self.max_body))
            .app_data(limits::payload_config(self.max_body))
            .app_data(limits::query_config())
            .app_data(limits::form_config(self.max_body))
            .app_data(limits::path_config());
    }
}
