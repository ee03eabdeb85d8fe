//! The admin API's view of the audit log: filtered, keyset-paginated listing and chain
//! verification. Read-only (verification records its own `audit.verified` row).

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::AuditFilter;
use crate::auth::{Access, ApiRoutes, Permission, Principal, request_meta};
use crate::error::{AppError, FieldError};
use crate::http::pagination::{self, Page, id_cursor, parse_id_cursor};
use crate::state::AppState;

pub fn routes(r: &mut ApiRoutes) {
    r.add(
        Method::GET,
        "/api/v1/admin/audit-logs",
        Access::Permission(Permission::AuditRead),
        list_audit_logs,
    )
    .query::<AuditFilter>()
    .query::<ListParams>()
    .page::<super::AuditEntry>();
    r.add(
        Method::GET,
        "/api/v1/admin/audit-logs/verify",
        Access::Permission(Permission::AuditRead),
        verify_audit_logs,
    )
    .ok::<VerifyReportDoc>();
}

#[derive(Deserialize, IntoParams)]
struct ListParams {
    /// Documented by `AuditFilter`'s own parameters.
    #[serde(flatten)]
    #[param(ignore)]
    filter: AuditFilter,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// The body of `GET /api/v1/admin/audit-logs/verify` (built as JSON by
/// `VerifyReport::to_json`; these structs only describe it for the OpenAPI document).
#[derive(ToSchema)]
#[schema(as = AuditVerifyReport)]
#[allow(dead_code)]
struct VerifyReportDoc {
    ok: bool,
    rows_verified: u64,
    /// The newest row checked.
    head: Option<VerifyHeadDoc>,
    /// The pruning checkpoint the chain starts from, if rows were pruned.
    checkpoint: Option<VerifyCheckpointDoc>,
    /// The first break found.
    failure: Option<VerifyFailureDoc>,
}

#[derive(ToSchema)]
#[schema(as = AuditVerifyHead)]
#[allow(dead_code)]
struct VerifyHeadDoc {
    id: i64,
    hash: String,
}

#[derive(ToSchema)]
#[schema(as = AuditVerifyCheckpoint)]
#[allow(dead_code)]
struct VerifyCheckpointDoc {
    id: i64,
    last_pruned_id: i64,
    #[schema(format = DateTime)]
    pruned_before: String,
}

#[derive(ToSchema)]
#[schema(as = AuditVerifyFailure)]
#[allow(dead_code)]
struct VerifyFailureDoc {
    kind: String,
    row_id: Option<i64>,
    message: String,
}

/// `?action=&actor=&target=&outcome=&ip=&from=&to=&cursor=&limit=` → newest first.
async fn list_audit_logs(
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, AppError> {
    let params = params.into_inner();
    let mut errors = Vec::new();
    let mut query = params.filter.to_query().unwrap_or_else(|mut e| {
        errors.append(&mut e);
        Default::default()
    });
    match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => {}
        Some(c) => match parse_id_cursor(c) {
            Some(id) => query.before_id = Some(id),
            None => errors.push(FieldError::new("cursor", "is not a valid cursor")),
        },
    }
    query.limit = match params.limit.as_deref() {
        None | Some("") => pagination::DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=pagination::MAX_LIMIT).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    format!("must be between 1 and {}", pagination::MAX_LIMIT),
                ));
                0
            }
        },
    };
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let page = state
        .pool
        .run(move |conn| Ok(super::list(conn, &query)?))
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items,
        next_cursor: page.next_before_id.map(id_cursor),
    }))
}

/// Walks the whole chain now (and records `audit.verified`).
async fn verify_audit_logs(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    let report = super::verify_recorded(
        &state.pool,
        &state.auditor,
        crate::audit::Actor::admin(principal.user_id),
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::Ok().json(report.to_json()))
}
