//! The API key pages: every user's keys (the status filter parsed by `KeyStatus::parse_filter`,
//! shared with the JSON API) and the revocation confirm page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{ActionForm, PAGE, chrome, filter_pairs, named_user, page, pager, redirect};
use crate::auth::request_meta;
use crate::console::ConsoleError;
use crate::console::pages::{ConfirmPage, KeyRow, KeysPage};
use crate::console::session::Admin;
use crate::error::AppError;
use crate::http::pagination::parse_uuid_cursor;
use crate::http::path_id::PathId;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/keys").route(web::get().to(keys)))
        .service(
            web::resource("/admin/keys/{id}/revoke")
                .route(web::get().to(key_confirm))
                .route(web::post().to(key_revoke)),
        );
}

#[derive(Deserialize, Default)]
struct KeysParams {
    owner: Option<String>,
    status: Option<String>,
    prefix: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

async fn keys(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    params: web::Query<KeysParams>,
) -> Result<HttpResponse, ConsoleError> {
    use crate::api_keys::model::KeyStatus;
    let p = params.into_inner();
    let owner = p.owner.clone().unwrap_or_default().trim().to_string();
    let status = p.status.clone().unwrap_or_default();
    let prefix = p.prefix.clone().unwrap_or_default().trim().to_string();
    // The JSON API's parser: an unknown status is refused (422), never read as "any".
    let status_filter = KeyStatus::parse_filter(Some(&status))
        .map_err(|e| ConsoleError::App(AppError::Validation(vec![e])))?;
    let (owner_id, error) = named_user(&state, &owner).await?;
    let result = crate::api_keys::admin_list(
        &state,
        crate::api_keys::KeyQuery {
            owner: owner_id,
            status: status_filter,
            prefix: Some(prefix.clone()).filter(|p| !p.is_empty()),
            before: p.before.as_deref().and_then(parse_uuid_cursor),
            after: p.after.as_deref().and_then(parse_uuid_cursor),
        },
        PAGE,
    )
    .await?;
    let pairs = filter_pairs(&[("owner", &owner), ("status", &status), ("prefix", &prefix)]);
    let (older, newer) = pager("/admin/keys", &pairs, result.older, result.newer);
    let statuses = KeyStatus::ALL
        .iter()
        .map(|s| (s.as_str(), s.as_str() == status))
        .collect();
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "API keys", "keys");
    page(
        StatusCode::OK,
        &KeysPage {
            chrome,
            filtered: !pairs.is_empty(),
            owner,
            status,
            prefix,
            statuses,
            rows: result.items.iter().map(KeyRow::new).collect(),
            older,
            newer,
            error,
        },
        clear,
    )
}

fn key_confirm_page(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    key: &crate::api_keys::AdminKeyView,
    status: StatusCode,
    reason_value: String,
    error: Option<String>,
) -> Result<HttpResponse, ConsoleError> {
    let (chrome, clear) = chrome(state, req, Some(admin), "Revoke API key", "keys");
    page(
        status,
        &ConfirmPage {
            chrome,
            heading: "Revoke this API key?".into(),
            message: "Requests with this key are refused from now on. The owner sees the reason."
                .into(),
            facts: vec![
                ("Key", key.key.prefix.clone()),
                ("Name", key.key.name.clone()),
                ("Owner", key.owner_username.clone()),
                ("Scopes", key.key.scopes.join(", ")),
                ("Status", key.key.status.as_str().to_string()),
            ],
            action: format!("/admin/keys/{}/revoke", key.key.id),
            button: "Revoke key",
            danger: true,
            reason: true,
            reason_required: true,
            reason_value,
            roles: Vec::new(),
            confirm_word: None,
            error,
            cancel: "/admin/keys".into(),
        },
        clear,
    )
}

async fn key_confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<HttpResponse, ConsoleError> {
    let key = crate::api_keys::admin_get(&state, PathId::of(&req)?).await?;
    key_confirm_page(
        &state,
        &req,
        &admin,
        &key,
        StatusCode::OK,
        String::new(),
        None,
    )
}

async fn key_revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = PathId::of(&req)?;
    let form = form.into_inner();
    admin.check_form(&state, &req, &form.csrf_token)?;
    let raw = form.reason.unwrap_or_default();
    let reason = match crate::audit::parse_reason(&raw) {
        Ok(reason) => reason,
        Err(e) => {
            let key = crate::api_keys::admin_get(&state, id).await?;
            return key_confirm_page(
                &state,
                &req,
                &admin,
                &key,
                StatusCode::UNPROCESSABLE_ENTITY,
                raw,
                Some(format!("The reason {}.", e.message)),
            );
        }
    };
    crate::api_keys::revoke_any(&state, admin.user.id, id, reason, request_meta(&req)).await?;
    Ok(redirect(&state, "/admin/keys", "ok", "API key revoked."))
}
