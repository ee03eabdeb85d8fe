//! The session pages: live sessions of every user (or one) and the revocation confirm page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{
    ActionForm, PAGE, chrome, filter_pairs, named_user, page, pager, redirect, users_admin,
};
use crate::auth::request_meta;
use crate::console::ConsoleError;
use crate::console::pages::{ConfirmPage, SessionRow, SessionsPage};
use crate::console::session::Admin;
use crate::http::pagination::parse_uuid_cursor;
use crate::http::path_id::PathId;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/sessions").route(web::get().to(sessions_page)))
        .service(
            web::resource("/admin/sessions/{id}/revoke")
                .route(web::get().to(session_confirm))
                .route(web::post().to(session_revoke)),
        );
}

#[derive(Deserialize, Default)]
struct SessionsParams {
    user: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

async fn sessions_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    params: web::Query<SessionsParams>,
) -> Result<HttpResponse, ConsoleError> {
    let p = params.into_inner();
    let user = p.user.clone().unwrap_or_default().trim().to_string();
    let (user_id, error) = named_user(&state, &user).await?;
    let result = crate::sessions::admin_list(
        &state,
        user_id,
        (
            p.before.as_deref().and_then(parse_uuid_cursor),
            p.after.as_deref().and_then(parse_uuid_cursor),
        ),
        PAGE,
    )
    .await?;
    let pairs = filter_pairs(&[("user", &user)]);
    let (older, newer) = pager("/admin/sessions", &pairs, result.older, result.newer);
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Sessions", "sessions");
    page(
        StatusCode::OK,
        &SessionsPage {
            chrome,
            user,
            rows: result.items.iter().map(SessionRow::new).collect(),
            older,
            newer,
            error,
        },
        clear,
    )
}

async fn session_confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<HttpResponse, ConsoleError> {
    let s = crate::sessions::admin_get(&state, PathId::of(&req)?).await?;
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Revoke session", "sessions");
    let row = SessionRow::new(&s);
    page(
        StatusCode::OK,
        &ConfirmPage {
            chrome,
            heading: "Revoke this session?".into(),
            message: "The device using it is signed out at its next request.".into(),
            facts: vec![
                ("User", row.username.clone()),
                ("Started", row.created.clone()),
                ("Last used", row.last_used.clone()),
                ("IP", row.ip.clone()),
                ("User agent", row.user_agent.clone()),
            ],
            action: format!("/admin/sessions/{}/revoke", row.id),
            button: "Revoke session",
            danger: true,
            reason: true,
            reason_required: false,
            reason_value: String::new(),
            roles: Vec::new(),
            confirm_word: None,
            error: None,
            cancel: "/admin/sessions".into(),
        },
        clear,
    )
}

async fn session_revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = PathId::of(&req)?;
    let form = form.into_inner();
    admin.check_form(&state, &req, &form.csrf_token)?;
    let reason = users_admin::parse_reason(form.reason.as_deref(), false)?;
    crate::sessions::admin_revoke(&state, admin.user.id, id, reason, request_meta(&req)).await?;
    Ok(redirect(
        &state,
        "/admin/sessions",
        "ok",
        "Session revoked.",
    ))
}
