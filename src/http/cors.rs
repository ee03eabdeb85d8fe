//! CORS allow-list (actix-cors). Origins not on the list get no CORS headers and a refused
//! preflight; ALLOW_ALL_ORIGINS (development only) never combines with credentials.

use actix_cors::Cors;
use actix_web::http::{Method, header};

use crate::config::settings::CorsSettings;

pub fn cors(settings: &CorsSettings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-api-key"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            header::HeaderName::from_static("ratelimit-limit"),
            header::HeaderName::from_static("ratelimit-remaining"),
            header::HeaderName::from_static("ratelimit-reset"),
        ])
        .max_age(settings.max_age);
    if settings.allow_all_origins {
        cors = cors.allow_any_origin();
    } else {
        for origin in &settings.origins {
            cors = cors.allowed_origin(origin.trim_end_matches('/'));
        }
        if settings.allow_credentials {
            cors = cors.supports_credentials();
        }
    }
    cors
}
