//! The web edge: turns a request's credential into a `Principal` (bearer JWT → `sessions`, API key
//! → `api_keys`), lists and mounts every feature's API routes, and serves the edge's own
//! endpoints — health and readiness, JWKS, the OpenAPI document. The one place that knows every
//! feature's routes; features know nothing of it.

pub mod health;
pub mod openapi;

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use crate::auth::{ApiRoutes, Authenticator, Credential, Principal, request_meta};
use crate::error::AppError;
use crate::state::AppState;

/// Every API route, from every feature. The single list the app mounts and the tests enumerate.
pub fn api_routes() -> ApiRoutes {
    let mut routes = ApiRoutes::default();
    crate::accounts::routes::routes(&mut routes);
    crate::sessions::routes::routes(&mut routes);
    crate::api_keys::routes::routes(&mut routes);
    crate::audit::routes::routes(&mut routes);
    crate::webhooks::routes::routes(&mut routes);
    crate::identity::routes::routes(&mut routes);
    crate::conversations::routes::routes(&mut routes);
    crate::privacy::routes::routes(&mut routes);
    crate::mfa::routes::routes(&mut routes);
    crate::email::routes::routes(&mut routes);
    crate::live::routes::routes(&mut routes);
    routes
}

/// Mounts the edge: health, the API routes with the authenticator their guards use, JWKS and the
/// OpenAPI document.
pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.app_data(authenticator());
    health::routes(cfg);
    api_routes().register(cfg);
    crate::live::routes::mount(cfg);
    jwks_route(cfg);
    openapi::routes(cfg);
}

/// The authenticator the registrar's guards call.
pub fn authenticator() -> Authenticator {
    Authenticator(authenticate_request)
}

fn authenticate_request(req: &HttpRequest) -> LocalBoxFuture<'_, Result<Principal, AppError>> {
    async move {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return Err(AppError::internal(anyhow::anyhow!(
                "application state missing"
            )));
        };
        authenticate(state, req).await
    }
    .boxed_local()
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
        (None, Some(token)) if token.starts_with(crate::api_keys::KEY_PREFIX) => {
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
    // A provider's token (its unverified issuer is a configured provider's) goes to the
    // providers, never to rampart's own verification, and the reverse.
    if let Some(providers) = req.app_data::<web::Data<crate::identity::Providers>>()
        && providers.is_provider_token(&token)
    {
        return crate::identity::authenticate(state, providers, &token, request_meta(req)).await;
    }
    let claims = state
        .jwt
        .verify_at(&token, state.clock.now())
        .map_err(|_| AppError::Unauthorized)?;
    let user_id = Uuid::parse_str(&claims.sub).map_err(|_| AppError::Unauthorized)?;
    let session_id = Uuid::parse_str(&claims.sid).map_err(|_| AppError::Unauthorized)?;
    let live = crate::sessions::live_session(state, user_id, session_id).await?;
    let Some((user, authentication)) = live else {
        return Err(AppError::Unauthorized);
    };
    Ok(Principal {
        user_id,
        role: user.role(),
        credential: Credential::Session { session_id },
        user: Some(std::sync::Arc::new(user)),
        authentication,
    })
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
