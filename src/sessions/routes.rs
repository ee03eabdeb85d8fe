//! Session endpoints: refresh, logout, list, revoke one, revoke the others.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::model::SessionView;
use super::{AdminSessionView, TokenPair};
use crate::auth::{Access, ApiRoutes, Permission, Principal, request_meta};
use crate::error::AppError;
use crate::http::pagination::{Page, PageQuery, uuid_cursor};
use crate::http::path_id::PathId;
use crate::state::AppState;

pub fn routes(r: &mut ApiRoutes) {
    r.add(
        Method::POST,
        "/api/v1/auth/refresh",
        Access::Public,
        refresh,
    )
    .body::<RefreshBody>()
    .ok::<TokenPair>()
    .link(Method::DELETE, "/api/v1/auth/sessions/{id}", "session_id")
    .link(
        Method::POST,
        "/api/v1/admin/sessions/{id}/revoke",
        "session_id",
    );
    r.add(
        Method::POST,
        "/api/v1/auth/logout",
        Access::Authenticated,
        logout,
    )
    .no_content();
    r.add(
        Method::GET,
        "/api/v1/auth/sessions",
        Access::Permission(Permission::SessionsManage),
        list_sessions,
    )
    .query::<PageQuery>()
    .page::<SessionView>();
    r.add(
        Method::DELETE,
        "/api/v1/auth/sessions/{id}",
        Access::Permission(Permission::SessionsManage),
        revoke_session,
    )
    .no_content();
    r.add(
        Method::GET,
        "/api/v1/admin/sessions",
        Access::Permission(Permission::UsersManage),
        admin_list_sessions,
    )
    .query::<AdminListParams>()
    .page::<AdminSessionView>();
    r.add(
        Method::POST,
        "/api/v1/admin/sessions/{id}/revoke",
        Access::Permission(Permission::UsersManage),
        admin_revoke_session,
    )
    .optional_body::<AdminRevokeBody>()
    .no_content();
    r.add(
        Method::POST,
        "/api/v1/auth/sessions/revoke-others",
        Access::Permission(Permission::SessionsManage),
        revoke_other_sessions,
    )
    .no_content();
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let pair = super::refresh(&state, body.refresh_token, request_meta(&req)).await?;
    Ok(HttpResponse::Ok().json(pair))
}

async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    let Some(session_id) = principal.session_id() else {
        return Err(AppError::Forbidden);
    };
    super::revoke_own(&state, &principal, session_id, "logout", request_meta(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_sessions(
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

async fn revoke_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: PathId,
) -> Result<HttpResponse, AppError> {
    super::revoke_own(
        &state,
        &principal,
        *id,
        "revoked_by_user",
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn revoke_other_sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    super::revoke_others(&state, &principal, request_meta(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, IntoParams)]
struct AdminListParams {
    /// Only this user's sessions.
    user: Option<Uuid>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// `?user=&cursor=&limit=`: live sessions of every user (or one), newest first.
async fn admin_list_sessions(
    state: web::Data<AppState>,
    params: web::Query<AdminListParams>,
) -> Result<HttpResponse, AppError> {
    let p = params.into_inner();
    let page = PageQuery {
        cursor: p.cursor,
        limit: p.limit,
    };
    let result =
        super::admin_list(&state, p.user, (page.uuid_cursor()?, None), page.limit()?).await?;
    Ok(HttpResponse::Ok().json(Page {
        items: result.items,
        next_cursor: result.older.map(uuid_cursor),
    }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AdminRevokeSessionBody)]
struct AdminRevokeBody {
    #[schema(max_length = 500)]
    reason: Option<String>,
}

async fn admin_revoke_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: PathId,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let body: AdminRevokeBody = crate::http::limits::optional_json(&body)?;
    let reason = crate::audit::admin_reason(body.reason.as_deref(), false)?;
    super::admin_revoke(&state, principal.user_id, *id, reason, request_meta(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}
