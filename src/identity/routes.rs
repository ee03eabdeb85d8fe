//! The caller's linked identities: `GET|POST /api/v1/me/identities`,
//! `DELETE /api/v1/me/identities/{id}`; and `POST /api/v1/auth/exchange`.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};

use super::IdentityView;
use crate::auth::{Access, ApiRoutes, Permission, Principal, request_meta};
use crate::error::AppError;
use crate::http::pagination::Page;
use crate::http::path_id::PathId;
use crate::state::AppState;

pub fn routes(r: &mut ApiRoutes) {
    r.add(
        Method::POST,
        "/api/v1/auth/exchange",
        Access::Public,
        exchange,
    )
    .summary("Exchange a Supabase or Clerk session token for a rampart session.")
    .body::<ExchangeBody>()
    .ok::<crate::sessions::TokenPair>();
    r.add(
        Method::GET,
        "/api/v1/me/identities",
        Access::Permission(Permission::ProfileRead),
        list,
    )
    .page::<IdentityView>();
    r.add(
        Method::POST,
        "/api/v1/me/identities",
        Access::Permission(Permission::ProfileWrite),
        link,
    )
    .body::<ExchangeBody>()
    .created::<IdentityView>()
    .link(Method::DELETE, "/api/v1/me/identities/{id}", "id");
    r.add(
        Method::DELETE,
        "/api/v1/me/identities/{id}",
        Access::Permission(Permission::ProfileWrite),
        unlink,
    )
    .no_content();
}

/// Every identity of the caller (a handful at most: one page, `next_cursor` always null).
async fn list(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, AppError> {
    let items = super::list_own(&state, principal.user_id).await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: None,
    }))
}

async fn unlink(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: PathId,
) -> Result<HttpResponse, AppError> {
    super::unlink_own(
        &state,
        principal.user_id,
        *id,
        principal.actor(),
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ExchangeBody {
    /// The provider's session token (a JWT).
    #[schema(min_length = 1, max_length = 8192)]
    provider_token: String,
}

async fn exchange(
    state: web::Data<AppState>,
    providers: web::Data<super::Providers>,
    req: HttpRequest,
    body: web::Json<ExchangeBody>,
) -> Result<HttpResponse, AppError> {
    let pair =
        super::exchange(&state, &providers, &body.provider_token, request_meta(&req)).await?;
    Ok(HttpResponse::Ok().json(pair))
}

/// 201 with the new link; 200 when the identity was already the caller's.
async fn link(
    state: web::Data<AppState>,
    providers: web::Data<super::Providers>,
    req: HttpRequest,
    principal: Principal,
    body: web::Json<ExchangeBody>,
) -> Result<HttpResponse, AppError> {
    let (view, created) = super::link_own(
        &state,
        &providers,
        principal.user_id,
        &body.provider_token,
        principal.actor(),
        request_meta(&req),
    )
    .await?;
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}
