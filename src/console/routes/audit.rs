//! The audit log pages: the filtered list (the same `AuditFilter` the JSON API parses), one row,
//! the CSV export and chain verification.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{CsrfForm, PAGE, chrome, names_for, page, redirect};
use crate::audit::{Action, AuditFilter, Event, Outcome};
use crate::auth::request_meta;
use crate::console::pages::{
    AuditEntryPage, AuditForm, AuditPage, AuditRowView, ChainStatus, link,
};
use crate::console::session::Admin;
use crate::console::{ConsoleError, export};
use crate::error::AppError;
use crate::http::pagination::{id_cursor, parse_id_cursor};
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    // `/admin/audit/{id}` last: the fixed paths win over the pattern.
    cfg.service(web::resource("/admin/audit").route(web::get().to(audit)))
        .service(web::resource("/admin/audit/export.csv").route(web::get().to(audit_export)))
        .service(web::resource("/admin/audit/verify").route(web::post().to(audit_verify)))
        .service(web::resource("/admin/audit/{id}").route(web::get().to(audit_entry)));
}

#[derive(Deserialize, Default)]
struct AuditParams {
    #[serde(flatten)]
    filter: AuditFilter,
    before: Option<String>,
    after: Option<String>,
}

fn audit_form(filter: &AuditFilter) -> AuditForm {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    AuditForm {
        action: v(&filter.action),
        actor: v(&filter.actor),
        target: v(&filter.target),
        outcome: v(&filter.outcome),
        ip: v(&filter.ip),
        from: v(&filter.from),
        to: v(&filter.to),
        errors: Vec::new(),
    }
}

async fn audit(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, ConsoleError> {
    let params = params.into_inner();
    let mut form = audit_form(&params.filter);
    let mut query = match params.filter.to_query() {
        Ok(query) => Some(query),
        Err(errors) => {
            form.errors = errors;
            None
        }
    };
    if let Some(q) = query.as_mut() {
        let cursor = |raw: &Option<String>| -> Result<Option<i64>, ()> {
            match raw.as_deref().filter(|c| !c.is_empty()) {
                None => Ok(None),
                Some(c) => parse_id_cursor(c).map(Some).ok_or(()),
            }
        };
        match (cursor(&params.before), cursor(&params.after)) {
            (Ok(before), Ok(after)) => {
                q.before_id = before;
                q.after_id = after;
            }
            _ => {
                form.errors.push(crate::error::FieldError::new(
                    "action",
                    "the page link is not valid; start again from the first page",
                ));
                query = None;
            }
        }
    }
    let pairs = params.filter.pairs();
    let filtered = !pairs.is_empty();
    let (rows, older, newer, chain) = match query {
        Some(mut q) => {
            q.limit = PAGE;
            let (page_rows, names, chain) = state
                .pool
                .run(move |conn| {
                    let page = crate::audit::list(conn, &q)?;
                    let names = names_for(conn, &page.items)?;
                    let chain = crate::audit::last_verification(conn)?;
                    Ok((page, names, chain))
                })
                .await?;
            let rows: Vec<AuditRowView> = page_rows
                .items
                .iter()
                .map(|e| AuditRowView::new(e, &names))
                .collect();
            let with = |key: &'static str, id: i64| {
                let mut p = pairs.clone();
                p.push((key, id_cursor(id)));
                link("/admin/audit", p)
            };
            (
                rows,
                page_rows.next_before_id.map(|id| with("before", id)),
                page_rows.prev_after_id.map(|id| with("after", id)),
                ChainStatus::from_entry(chain.as_ref()),
            )
        }
        None => {
            let chain = state
                .pool
                .run(|conn| Ok(crate::audit::last_verification(conn)?))
                .await?;
            (
                Vec::new(),
                None,
                None,
                ChainStatus::from_entry(chain.as_ref()),
            )
        }
    };
    let status = if form.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Audit log", "audit");
    page(
        status,
        &AuditPage {
            chrome,
            form,
            actions: Action::ALL.iter().map(|a| a.as_str()).collect(),
            rows,
            older,
            newer,
            export: link("/admin/audit/export.csv", pairs),
            chain,
            filtered,
        },
        clear,
    )
}

async fn audit_entry(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id: i64 = path.parse().map_err(|_| ConsoleError::NotFound)?;
    let (entry, names) = state
        .pool
        .run(move |conn| {
            let entry = crate::audit::get(conn, id)?.ok_or(AppError::NotFound)?;
            let names = names_for(conn, std::slice::from_ref(&entry))?;
            Ok((entry, names))
        })
        .await?;
    let metadata = serde_json::to_string_pretty(&entry.metadata).unwrap_or_default();
    let (chrome, clear) = chrome(
        &state,
        &req,
        Some(&admin),
        format!("Audit row {id}"),
        "audit",
    );
    page(
        StatusCode::OK,
        &AuditEntryPage {
            chrome,
            row: AuditRowView::new(&entry, &names),
            metadata,
            prev_hash: entry.prev_hash.clone(),
        },
        clear,
    )
}

async fn audit_export(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, ConsoleError> {
    let filter = params.into_inner().filter;
    let query = filter.to_query().map_err(AppError::Validation)?;
    // Taking a copy of the audit log is itself worth a row.
    let auditor = state.auditor.clone();
    let meta = request_meta(&req);
    let admin_id = admin.user.id;
    let filters = serde_json::to_value(&filter).unwrap_or_default();
    state
        .pool
        .run(move |conn| {
            auditor.record_standalone(
                conn,
                &meta,
                Event::new(
                    Action::DataExported,
                    Outcome::Success,
                    crate::audit::Actor::admin(admin_id),
                )
                .metadata(serde_json::json!({ "export": "audit_log_csv", "filters": filters })),
            )?;
            Ok(())
        })
        .await?;
    let stamp = state.clock.now().unix_timestamp();
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"rampart-audit-{stamp}.csv\""),
        ))
        .streaming(export::stream(state.clone(), query)))
}

async fn audit_verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    admin.check_form(&state, &req, &form.csrf_token)?;
    let report = crate::audit::verify_recorded(
        &state.pool,
        &state.auditor,
        crate::audit::Actor::admin(admin.user.id),
        request_meta(&req),
    )
    .await?;
    Ok(match report.failure {
        None => redirect(
            &state,
            "/admin/audit",
            "ok",
            &format!("The chain verifies: {} rows.", report.rows_verified),
        ),
        Some(failure) => redirect(
            &state,
            "/admin/audit",
            "error",
            &format!("The chain is broken: {failure}."),
        ),
    })
}
