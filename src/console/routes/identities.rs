//! Unlinking a user's identity-provider account from the console: a confirmation page and the
//! CSRF-checked `POST`, audited with the admin as actor. The rule is the API's
//! (`identity::unlink_any`): never the account's last way to sign in (a 409 page).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{ActionForm, chrome, page, redirect};
use crate::auth::request_meta;
use crate::console::ConsoleError;
use crate::console::pages::ConfirmPage;
use crate::console::session::Admin;
use crate::error::AppError;
use crate::http::path_id::PathId;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/identities/{id}/unlink")
            .route(web::get().to(unlink_confirm))
            .route(web::post().to(unlink)),
    );
}

async fn unlink_confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<HttpResponse, ConsoleError> {
    let identity = crate::identity::get(&state, PathId::of(&req)?)
        .await
        .map_err(AppError::from)?;
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Unlink identity", "users");
    page(
        StatusCode::OK,
        &ConfirmPage {
            chrome,
            heading: "Unlink this identity?".into(),
            message: "Its provider's tokens stop signing in to this account. The account itself \
                      stays; an account's last way to sign in cannot be unlinked."
                .into(),
            facts: vec![
                ("Provider", identity.provider.clone()),
                ("Subject", identity.subject.clone()),
                (
                    "Email at last sight",
                    identity.email.clone().unwrap_or_default(),
                ),
            ],
            action: format!("/admin/identities/{}/unlink", identity.id),
            button: "Unlink identity",
            danger: true,
            reason: false,
            reason_required: false,
            reason_value: String::new(),
            roles: Vec::new(),
            error: None,
            cancel: format!("/admin/users/{}", identity.user_id),
        },
        clear,
    )
}

async fn unlink(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = PathId::of(&req)?;
    let form = form.into_inner();
    admin.check_form(&state, &req, &form.csrf_token)?;
    let identity = crate::identity::unlink_any(&state, id, admin.user.id, request_meta(&req))
        .await
        .map_err(AppError::from)?;
    Ok(redirect(
        &state,
        &format!("/admin/users/{}", identity.user_id),
        "ok",
        "Identity unlinked.",
    ))
}
