//! API key endpoints: the owner's create/list/revoke/rotate, and the admin revocation.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::AdminKeyView;
use super::model::{ApiKeyView, CreatedKey};
use crate::auth::{Access, ApiRoutes, Permission, Principal, request_meta};
use crate::error::AppError;
use crate::http::pagination::{Page, PageQuery, uuid_cursor};
use crate::http::path_id::PathId;
use crate::state::AppState;

pub fn routes(r: &mut ApiRoutes) {
    r.add(
        Method::POST,
        "/api/v1/api-keys",
        Access::Permission(Permission::KeysManage),
        create_api_key,
    )
    .body::<CreateBody>()
    .created::<CreatedKey>()
    .link(Method::DELETE, "/api/v1/api-keys/{id}", "id")
    .link(Method::POST, "/api/v1/api-keys/{id}/rotate", "id")
    .link(Method::POST, "/api/v1/admin/api-keys/{id}/revoke", "id");
    r.add(
        Method::GET,
        "/api/v1/api-keys",
        Access::Permission(Permission::KeysManage),
        list_api_keys,
    )
    .query::<PageQuery>()
    .page::<ApiKeyView>();
    r.add(
        Method::DELETE,
        "/api/v1/api-keys/{id}",
        Access::Permission(Permission::KeysManage),
        revoke_api_key,
    )
    .no_content();
    r.add(
        Method::POST,
        "/api/v1/api-keys/{id}/rotate",
        Access::Permission(Permission::KeysManage),
        rotate_api_key,
    )
    .created::<CreatedKey>()
    .link(Method::DELETE, "/api/v1/api-keys/{id}", "id")
    .link(Method::POST, "/api/v1/admin/api-keys/{id}/revoke", "id");
    r.add(
        Method::GET,
        "/api/v1/admin/api-keys",
        Access::Permission(Permission::KeysRevokeAny),
        admin_list_api_keys,
    )
    .query::<AdminListParams>()
    .page::<AdminKeyView>();
    r.add(
        Method::POST,
        "/api/v1/admin/api-keys/{id}/revoke",
        Access::Permission(Permission::KeysRevokeAny),
        admin_revoke_api_key,
    )
    .body::<AdminRevokeBody>()
    .no_content();
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewApiKeyBody)]
struct CreateBody {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Permissions the key may use (a subset of the owner's role), e.g. `profile:read`.
    #[schema(value_type = Vec<crate::auth::ScopeName>, min_items = 1)]
    scopes: Vec<String>,
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<i64>,
}

async fn create_api_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    // A key with admin scopes is a sensitive operation (step-up); ordinary keys are not.
    let admin_scopes = body.scopes.iter().any(|scope| {
        scope
            .parse::<Permission>()
            .is_ok_and(|permission| permission.is_admin_only())
    });
    if admin_scopes {
        crate::auth::require_step_up(&req, &principal)?;
    }
    let created = super::create(
        &state,
        &principal,
        super::NewKeyRequest {
            name: body.name,
            scopes: body.scopes,
            expires_in_days: body.expires_in_days,
        },
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::Created().json(created))
}

async fn list_api_keys(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let (items, next) =
        super::list(&state, &principal, query.uuid_cursor()?, query.limit()?).await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: next.map(uuid_cursor),
    }))
}

async fn revoke_api_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: PathId,
) -> Result<HttpResponse, AppError> {
    super::revoke_own(&state, &principal, *id, request_meta(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn rotate_api_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: PathId,
) -> Result<HttpResponse, AppError> {
    let created = super::rotate(&state, &principal, *id, request_meta(&req)).await?;
    Ok(HttpResponse::Created().json(created))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AdminRevokeKeyBody)]
struct AdminRevokeBody {
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
}

async fn admin_revoke_api_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: PathId,
    body: web::Json<AdminRevokeBody>,
) -> Result<HttpResponse, AppError> {
    let reason = crate::audit::parse_reason(&body.into_inner().reason)
        .map_err(|e| AppError::Validation(vec![e]))?;
    super::revoke_any(&state, principal.user_id, *id, reason, request_meta(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, IntoParams)]
struct AdminListParams {
    /// The owner's user id.
    owner: Option<uuid::Uuid>,
    /// `active`, `rotation_grace`, `rotated`, `expired` or `revoked`.
    status: Option<String>,
    /// The key's public prefix.
    prefix: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// `?owner=&status=&prefix=&cursor=&limit=`: every user's keys, newest first (metadata only).
async fn admin_list_api_keys(
    state: web::Data<AppState>,
    params: web::Query<AdminListParams>,
) -> Result<HttpResponse, AppError> {
    let p = params.into_inner();
    let status = super::model::KeyStatus::parse_filter(p.status.as_deref())
        .map_err(|e| AppError::Validation(vec![e]))?;
    let page = PageQuery {
        cursor: p.cursor,
        limit: p.limit,
    };
    let result = super::admin_list(
        &state,
        super::store::KeyQuery {
            owner: p.owner,
            status,
            prefix: p.prefix.filter(|s| !s.is_empty()),
            before: page.uuid_cursor()?,
            after: None,
        },
        page.limit()?,
    )
    .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: result.items,
        next_cursor: result.older.map(uuid_cursor),
    }))
}
