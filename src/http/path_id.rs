//! [`PathId`]: the `{id}` segment of a route as a UUID. A malformed id names nothing, so it is
//! answered like a missing one: 404 (problem+json on the API, the console's HTML 404 page on
//! console paths through `error::render_problems`), never a 400 that tells ids apart.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use uuid::Uuid;

use crate::error::AppError;

/// The route's `{id}` segment, parsed as a UUID; 404 when it is absent or malformed.
///
/// Its future is ready at once, and actix polls a handler's extractors together: a ready error
/// here would answer before a slower extractor listed earlier (the console's `Admin`) has decided.
/// Handlers that must know the caller first call [`PathId::of`] after it instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathId(pub Uuid);

impl PathId {
    /// The `{id}` segment of `req`'s route, or `AppError::NotFound`.
    pub fn of(req: &HttpRequest) -> Result<Uuid, AppError> {
        req.match_info()
            .get("id")
            .and_then(|raw| Uuid::parse_str(raw).ok())
            .ok_or(AppError::NotFound)
    }
}

impl PathId {
    /// The path parameter `name` as a UUID; 404 when it is not one.
    pub fn named(req: &HttpRequest, name: &str) -> Result<Uuid, AppError> {
        req.match_info()
            .get(name)
            .and_then(|raw| Uuid::parse_str(raw).ok())
            .ok_or(AppError::NotFound)
    }
}

impl FromRequest for PathId {
    type Error = AppError;
    type Future = Ready<Result<PathId, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(PathId::of(req).map(PathId))
    }
}

impl std::ops::Deref for PathId {
    type Target = Uuid;

    fn deref(&self) -> &Uuid {
        &self.0
    }
}
