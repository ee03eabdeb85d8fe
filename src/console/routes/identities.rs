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
        web::resource("/admin/users/{id}/identities/new")
            .route(web::get().to(link_form))
            .route(web::post().to(link)),
    );
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
            confirm_word: None,
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

#[derive(serde::Deserialize)]
struct LinkForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    subject: String,
}

fn link_page(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    user: &crate::accounts::admin::AdminUserView,
    (provider, subject): (&str, String),
    status: StatusCode,
    error: Option<String>,
) -> Result<HttpResponse, ConsoleError> {
    use crate::identity::Provider;
    let providers = [Provider::Clerk, Provider::Supabase]
        .into_iter()
        .filter(|p| crate::identity::issuer_key(&state.settings, *p).is_some())
        .map(|p| (p.as_str(), p.as_str() == provider))
        .collect();
    let (chrome, clear) = chrome(state, req, Some(admin), "Link identity", "users");
    page(
        status,
        &crate::console::pages::IdentityLinkPage {
            chrome,
            user_id: user.id.to_string(),
            username: user.username.clone(),
            providers,
            subject,
            error,
        },
        clear,
    )
}

async fn link_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<HttpResponse, ConsoleError> {
    let user = crate::accounts::admin::get(&state, PathId::of(&req)?).await?;
    link_page(
        &state,
        &req,
        &admin,
        &user,
        ("", String::new()),
        StatusCode::OK,
        None,
    )
}

async fn link(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    form: web::Form<LinkForm>,
) -> Result<HttpResponse, ConsoleError> {
    use crate::identity::Provider;
    let id = PathId::of(&req)?;
    let form = form.into_inner();
    admin.check_form(&state, &req, &form.csrf_token)?;
    let user = crate::accounts::admin::get(&state, id).await?;
    let provider = match form.provider.as_str() {
        "clerk" => Some(Provider::Clerk),
        "supabase" => Some(Provider::Supabase),
        _ => None,
    };
    let refused = |status, message: String| {
        link_page(
            &state,
            &req,
            &admin,
            &user,
            (form.provider.as_str(), form.subject.clone()),
            status,
            Some(message),
        )
    };
    let Some(provider) = provider else {
        return refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose a configured provider.".into(),
        );
    };
    match crate::identity::link_by_admin(
        &state,
        id,
        provider,
        form.subject.clone(),
        admin.user.id,
        request_meta(&req),
    )
    .await
    {
        Ok(_) => Ok(redirect(
            &state,
            &format!("/admin/users/{id}"),
            "ok",
            "Identity linked.",
        )),
        Err(AppError::Validation(errors)) => refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            errors
                .iter()
                .map(|e| format!("The {} {}.", e.field, e.message))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Err(AppError::Conflict(_)) => refused(
            StatusCode::CONFLICT,
            "That provider account is linked to another user; unlink it there first.".into(),
        ),
        Err(other) => Err(other.into()),
    }
}
