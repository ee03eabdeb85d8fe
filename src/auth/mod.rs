//! Who is calling, and may they? Owns authentication of API requests (bearer JWT, or an API key
//! verified by `api_keys`), the `Principal` handlers receive, and the route registrar that forces
//! every API route to declare its access rule.
//!
//! Routes are registered only through `ApiRoutes::add(method, path, Access, handler)`: the rule is
//! enforced by a per-route guard *before* the handler runs (fail closed), and the registrar keeps a
//! table that the route-permission matrix test enumerates. A handler cannot be mounted without an
//! access rule, and a protected handler reads its caller from the `Principal` the guard stored.
//! `add` returns the route's [`RouteDoc`], on which the route declares its request body, query
//! parameters and success response for the OpenAPI document (`crate::http::openapi`).

pub mod permissions;

use std::collections::BTreeMap;
use std::future::{Ready, ready};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{FromRequest, Handler, HttpMessage, HttpRequest, Responder, web};
use uuid::Uuid;

pub use permissions::{Permission, Role};

use crate::error::AppError;
pub use crate::http::openapi::RouteDoc;
use crate::state::AppState;

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (register, login, refresh, health of the API).
    Public,
    /// Any authenticated principal (e.g. logout), whatever its permissions.
    Authenticated,
    /// An authenticated principal holding this permission.
    Permission(Permission),
}

/// How the principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access token of this session.
    Session { session_id: Uuid },
    /// An API key, restricted to its scopes.
    ApiKey {
        key_id: Uuid,
        scopes: Vec<Permission>,
    },
}

/// The authenticated caller, as established by the guard for this request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    /// The role as stored now (not as it was when the token was issued).
    pub role: Role,
    pub credential: Credential,
    /// The user row loaded by the same query that authenticated the request (so handlers such as
    /// `GET /me` need no second round trip). `None` only where a principal is built by hand.
    pub user: Option<std::sync::Arc<crate::accounts::model::User>>,
}

impl Principal {
    /// A session may do what its role allows. An API key needs the permission in the owner's
    /// current role AND in its scopes, and never reaches an admin-only permission.
    pub fn can(&self, permission: Permission) -> bool {
        match &self.credential {
            Credential::Session { .. } => self.role.has(permission),
            Credential::ApiKey { scopes, .. } => {
                !permission.is_admin_only()
                    && self.role.has(permission)
                    && scopes.contains(&permission)
            }
        }
    }

    /// Who the audit log names for this caller: the key itself when the caller used one.
    pub fn actor(&self) -> crate::audit::Actor {
        match self.credential {
            Credential::ApiKey { key_id, .. } => crate::audit::Actor::api_key(key_id),
            Credential::Session { .. } => crate::audit::Actor::user(self.user_id),
        }
    }

    pub fn session_id(&self) -> Option<Uuid> {
        match self.credential {
            Credential::Session { session_id } => Some(session_id),
            Credential::ApiKey { .. } => None,
        }
    }
}

impl FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Only the guard inserts a Principal; a handler asking for one on a route without an
        // authenticated access rule is a programming error, and it fails closed.
        let principal = req.extensions().get::<Principal>().cloned();
        ready(principal.ok_or_else(|| {
            AppError::internal(anyhow::anyhow!(
                "Principal requested on a route without an authenticated access rule"
            ))
            .into()
        }))
    }
}

/// One registered API route (for the route table test and docs).
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    /// Body, query and response schemas for the OpenAPI document.
    pub doc: RouteDoc,
    /// The type name of the handler's extractor tuple, so a test can check that a route taking a
    /// `Json`/`Bytes` body or a `Query` documents it.
    pub extractors: &'static str,
}

/// Collects routes grouped by path (actix matches resources by path first, so two methods on one
/// path must share a resource to get 405s right).
#[derive(Default)]
pub struct ApiRoutes {
    resources: BTreeMap<&'static str, Vec<actix_web::Route>>,
    table: Vec<RouteInfo>,
}

impl ApiRoutes {
    /// Mounts `handler` behind `access`; returns the route's documentation to fill in
    /// (`.body::<B>()`, `.query::<Q>()`, `.ok::<R>()` …).
    pub fn add<F, Args>(
        &mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: F,
    ) -> &mut RouteDoc
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let route = web::method(method.clone()).to(handler).wrap(from_fn(
            move |req: ServiceRequest, next: Next<BoxBody>| guard(access, req, next),
        ));
        self.resources.entry(path).or_default().push(route);
        self.table.push(RouteInfo {
            method,
            path,
            access,
            doc: RouteDoc::default(),
            extractors: std::any::type_name::<Args>(),
        });
        let index = self.table.len() - 1;
        &mut self.table[index].doc
    }

    pub fn table(&self) -> &[RouteInfo] {
        &self.table
    }

    pub fn register(self, cfg: &mut web::ServiceConfig) {
        for (path, routes) in self.resources {
            let mut resource = web::resource(path);
            for route in routes {
                resource = resource.route(route);
            }
            cfg.service(resource);
        }
    }
}

/// Every API route, from every feature. The single list the app mounts and the tests enumerate.
pub fn api_routes() -> ApiRoutes {
    let mut routes = ApiRoutes::default();
    crate::accounts::routes::routes(&mut routes);
    crate::sessions::routes::routes(&mut routes);
    crate::api_keys::routes::routes(&mut routes);
    crate::audit::routes::routes(&mut routes);
    routes
}

async fn guard(
    access: Access,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let required = match access {
        Access::Public => return next.call(req).await,
        Access::Authenticated => None,
        Access::Permission(p) => Some(p),
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(AppError::internal(anyhow::anyhow!("application state missing")).into());
    };
    let principal = match authenticate(&state, req.request()).await {
        Ok(p) => p,
        Err(error) => return Ok(req.error_response(error).map_into_boxed_body()),
    };
    if let Some(permission) = required
        && !principal.can(permission)
    {
        return Ok(req
            .error_response(AppError::Forbidden)
            .map_into_boxed_body());
    }
    req.extensions_mut().insert(principal);
    next.call(req).await
}

/// The bearer credential from the Authorization header — never from the query string or a cookie.
fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The credential a request presents.
enum Presented {
    /// From `X-API-Key`, or a Bearer value starting with `rk_`.
    ApiKey(String),
    AccessToken(String),
}

/// Finds the one credential of a request, from headers only. Two credentials at once (an
/// `X-API-Key` and an `Authorization: Bearer`, or the header twice) are refused rather than
/// guessed between.
fn presented(req: &HttpRequest) -> Result<Presented, AppError> {
    let mut api_key_headers = req.headers().get_all("x-api-key");
    let api_key = api_key_headers.next();
    if api_key_headers.next().is_some() {
        return Err(AppError::Unauthorized);
    }
    match (api_key, bearer(req)) {
        (Some(_), Some(_)) | (None, None) => Err(AppError::Unauthorized),
        (Some(value), None) => value
            .to_str()
            .map(|v| Presented::ApiKey(v.trim().to_string()))
            .map_err(|_| AppError::Unauthorized),
        (None, Some(token)) if token.starts_with(crate::api_keys::format::PREFIX) => {
            Ok(Presented::ApiKey(token))
        }
        (None, Some(token)) => Ok(Presented::AccessToken(token)),
    }
}

/// Authenticates the request: an API key through `api_keys::authenticate`, or an access token,
/// verified and then confirmed in one indexed query that its session is live and its user
/// active. Every failure is the same 401.
pub async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Principal, AppError> {
    let token = match presented(req)? {
        Presented::ApiKey(key) => {
            return crate::api_keys::authenticate(state, &key, request_meta(req)).await;
        }
        Presented::AccessToken(token) => token,
    };
    let claims = state
        .jwt
        .verify_at(&token, state.clock.now())
        .map_err(|_| AppError::Unauthorized)?;
    let user_id = Uuid::parse_str(&claims.sub).map_err(|_| AppError::Unauthorized)?;
    let session_id = Uuid::parse_str(&claims.sid).map_err(|_| AppError::Unauthorized)?;
    let live = crate::sessions::live_session(state, user_id, session_id).await?;
    let Some(user) = live else {
        return Err(AppError::Unauthorized);
    };
    Ok(Principal {
        user_id,
        role: user.role(),
        credential: Credential::Session { session_id },
        user: Some(std::sync::Arc::new(user)),
    })
}

/// Request details recorded with audit events: the trusted client IP, user agent, request id (the
/// client's, if acceptable) and the server's own request id.
pub fn request_meta(req: &HttpRequest) -> crate::audit::RequestMeta {
    let ip = req
        .extensions()
        .get::<crate::http::client_ip::ClientIp>()
        .map(|ip| ip.0);
    let request_id = req
        .extensions()
        .get::<crate::http::request_id::RequestId>()
        .map(|id| id.0.clone());
    let server_request_id = req
        .extensions()
        .get::<crate::http::request_id::ServerRequestId>()
        .map(|id| id.0.clone());
    let user_agent = req.headers().get(header::USER_AGENT).map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .chars()
            .take(512)
            .collect()
    });
    crate::audit::RequestMeta {
        ip,
        user_agent,
        request_id,
        server_request_id,
    }
}

/// `/.well-known/jwks.json`: the public verification keys (asymmetric algorithms only; 404 for
/// HS256, whose key is secret).
pub fn jwks_route(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/.well-known/jwks.json").route(web::get().to(jwks)));
}

async fn jwks(state: web::Data<AppState>) -> Result<actix_web::HttpResponse, AppError> {
    let keys = state.jwt.jwks().ok_or(AppError::NotFound)?;
    Ok(actix_web::HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(keys))
}
