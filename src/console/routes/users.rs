//! The user pages: the list (filters parsed by `UserFilter::parse`, shared with the JSON API),
//! one user, and the confirm-then-act pages for disable/enable/unlock/sign-out/role.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{
    ActionForm, PAGE, chrome, filter_pairs, names_for, page, pager, redirect, users_admin,
};
use crate::accounts;
use crate::accounts::admin::{AdminActor, AdminError, Change, UserFilter};
use crate::auth::request_meta;
use crate::console::ConsoleError;
use crate::console::pages::{
    self, AuditRowView, ConfirmPage, IdentityRow, KeyRow, QuotaRow, SessionRow, UsageView,
    UserPage, UserRow, UsersPage,
};
use crate::console::session::Admin;
use crate::error::AppError;
use crate::http::pagination::parse_uuid_cursor;
use crate::http::path_id::PathId;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/users").route(web::get().to(users)))
        .service(web::resource("/admin/users/{id}").route(web::get().to(user)))
        .service(
            web::resource("/admin/users/{id}/{action}")
                .route(web::get().to(user_confirm))
                .route(web::post().to(user_act)),
        );
}

#[derive(Deserialize, Default)]
struct UsersParams {
    q: Option<String>,
    role: Option<String>,
    status: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

async fn users(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    params: web::Query<UsersParams>,
) -> Result<HttpResponse, ConsoleError> {
    let p = params.into_inner();
    let q = p.q.clone().unwrap_or_default().trim().to_string();
    let role = p.role.clone().unwrap_or_default();
    let status = p.status.clone().unwrap_or_default();
    // The JSON API's parser: a role or status it refuses is refused here too (422), never read
    // as "any".
    let filter = UserFilter {
        before: p.before.as_deref().and_then(parse_uuid_cursor),
        after: p.after.as_deref().and_then(parse_uuid_cursor),
        limit: PAGE,
        ..UserFilter::parse(Some(&q), Some(&role), Some(&status)).map_err(AppError::Validation)?
    };
    let result = users_admin::list(&state, filter).await?;
    let pairs = filter_pairs(&[("q", &q), ("role", &role), ("status", &status)]);
    let (older, newer) = pager("/admin/users", &pairs, result.older, result.newer);
    let (chrome, clear) = chrome(&state, &req, Some(&admin), "Users", "users");
    page(
        StatusCode::OK,
        &UsersPage {
            chrome,
            filtered: !pairs.is_empty(),
            q,
            role,
            status,
            rows: result.items.iter().map(UserRow::new).collect(),
            older,
            newer,
        },
        clear,
    )
}

async fn user(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<HttpResponse, ConsoleError> {
    let id = PathId::of(&req)?;
    let view = users_admin::get(&state, id).await?;
    let sessions = crate::sessions::admin_list(&state, Some(id), (None, None), 20).await?;
    let identities = crate::identity::list_own(&state, id).await?;
    let keys = crate::api_keys::admin_list(
        &state,
        crate::api_keys::KeyQuery {
            owner: Some(id),
            ..Default::default()
        },
        50,
    )
    .await?;
    let role: crate::auth::Role = view.role.parse().unwrap_or(crate::auth::Role::TeamMember);
    let quotas = state.settings.quotas.clone();
    let now = state.clock.now();
    let (events, names, usage, standing) = state
        .pool
        .run(move |conn| {
            let (mut events, _) = accounts::audit_events_of(conn, id, 20)?;
            events.truncate(20);
            let names = names_for(conn, &events)?;
            // Counts only: the console never decrypts a message.
            let usage = crate::conversations::usage_stats(conn, id)?;
            let standing = crate::rate_limit::quota_standing(conn, &quotas, id, role, now)?;
            Ok((events, names, usage, standing))
        })
        .await?;
    let can_change_role = admin
        .user
        .is_super_admin(state.settings.super_admin_email.as_deref());
    let (chrome, clear) = chrome(&state, &req, Some(&admin), view.username.clone(), "users");
    page(
        StatusCode::OK,
        &UserPage {
            chrome,
            is_self: view.id == admin.user.id,
            display_name: view.display_name.clone().unwrap_or_default(),
            identities: identities.iter().map(IdentityRow::new).collect(),
            user: UserRow::new(&view),
            sessions: sessions.items.iter().map(SessionRow::new).collect(),
            keys: keys.items.iter().map(KeyRow::new).collect(),
            events: events
                .iter()
                .map(|e| AuditRowView::new(e, &names))
                .collect(),
            can_change_role,
            usage: UsageView::new(&usage),
            quotas: standing.iter().map(QuotaRow::new).collect(),
        },
        clear,
    )
}

/// What each user action page says and does.
struct UserAction {
    heading: &'static str,
    message: &'static str,
    button: &'static str,
    danger: bool,
    reason_required: bool,
    done: &'static str,
}

fn user_action(name: &str) -> Option<UserAction> {
    Some(match name {
        "disable" => UserAction {
            heading: "Disable this account?",
            message: "The user will not be able to sign in; their sessions end now and their API keys stop working.",
            button: "Disable account",
            danger: true,
            reason_required: true,
            done: "Account disabled; its sessions were ended.",
        },
        "enable" => UserAction {
            heading: "Enable this account?",
            message: "The user will be able to sign in again; earlier sessions stay ended.",
            button: "Enable account",
            danger: false,
            reason_required: false,
            done: "Account enabled.",
        },
        "unlock" => UserAction {
            heading: "Unlock this account?",
            message: "Failed sign-in attempts are forgotten and any lockout ends now.",
            button: "Unlock account",
            danger: false,
            reason_required: false,
            done: "Account unlocked.",
        },
        "sign-out" => UserAction {
            heading: "Sign this user out everywhere?",
            message: "Every session of this user (API and console) ends now; they must sign in again.",
            button: "Sign out everywhere",
            danger: true,
            reason_required: false,
            done: "The user was signed out everywhere.",
        },
        "export" => UserAction {
            heading: "Export this user's data?",
            message: "Downloads everything rampart holds about the user, their messages decrypted. The export is audited with you as the actor and your reason.",
            button: "Download export",
            danger: false,
            reason_required: true,
            done: "Export started.",
        },
        "erase" => UserAction {
            heading: "Erase this account for good?",
            message: "Their sessions end, their keys are revoked, their data key is destroyed (their messages become unreadable for everyone, backups included) and their name and email become a tombstone. This cannot be undone.",
            button: "Erase account",
            danger: true,
            reason_required: true,
            done: "Account erased.",
        },
        "role" => UserAction {
            heading: "Change this user's role?",
            message: "The new role applies to their next request.",
            button: "Change role",
            danger: false,
            reason_required: false,
            done: "Role changed.",
        },
        _ => return None,
    })
}

#[allow(clippy::too_many_arguments)]
fn user_confirm_page(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    view: &users_admin::AdminUserView,
    name: &str,
    action: &UserAction,
    status: StatusCode,
    reason_value: String,
    error: Option<String>,
) -> Result<HttpResponse, ConsoleError> {
    let (chrome, clear) = chrome(state, req, Some(admin), action.heading, "users");
    let role_change = name == "role";
    let confirm_word = (name == "erase").then(|| view.username.clone());
    page(
        status,
        &ConfirmPage {
            chrome,
            heading: action.heading.to_string(),
            message: action.message.to_string(),
            facts: vec![
                ("User", view.username.clone()),
                ("Email", view.email.clone()),
                ("Role", view.role.clone()),
                (
                    "Status",
                    if !view.active {
                        "disabled".into()
                    } else if view.locked {
                        format!("locked until {}", pages::when_opt(view.locked_until))
                    } else {
                        "active".into()
                    },
                ),
            ],
            action: format!("/admin/users/{}/{name}", view.id),
            button: action.button,
            danger: action.danger,
            reason: !role_change,
            reason_required: action.reason_required,
            reason_value,
            roles: if role_change {
                ["admin", "team_member", "demo"]
                    .into_iter()
                    .map(|r| (r, r == view.role))
                    .collect()
            } else {
                Vec::new()
            },
            confirm_word,
            error,
            cancel: format!("/admin/users/{}", view.id),
        },
        clear,
    )
}

async fn user_confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let id = PathId::of(&req)?;
    let (_, name) = path.into_inner();
    let action = user_action(&name).ok_or(ConsoleError::NotFound)?;
    if name == "role"
        && !admin
            .user
            .is_super_admin(state.settings.super_admin_email.as_deref())
    {
        return Err(ConsoleError::Forbidden(
            "Only the super admin (SUPER_ADMIN_EMAIL) changes roles.",
        ));
    }
    let view = users_admin::get(&state, id).await?;
    user_confirm_page(
        &state,
        &req,
        &admin,
        &view,
        &name,
        &action,
        StatusCode::OK,
        String::new(),
        None,
    )
}

async fn user_act(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let id = PathId::of(&req)?;
    let (_, name) = path.into_inner();
    let action = user_action(&name).ok_or(ConsoleError::NotFound)?;
    let form = form.into_inner();
    admin.check_form(&state, &req, &form.csrf_token)?;
    let reason = form.reason.clone().unwrap_or_default();
    if name == "export" || name == "erase" {
        return privacy_act(&state, &req, &admin, id, &name, &action, form).await;
    }
    let change = Change::parse(&name, form.reason.as_deref(), form.role.as_deref())
        .ok_or(ConsoleError::NotFound)?;
    let result = match change {
        Ok(change) => {
            users_admin::apply(
                &state,
                &AdminActor::from_user(&admin.user, state.settings.super_admin_email.as_deref()),
                id,
                change,
                request_meta(&req),
            )
            .await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(view) => Ok(redirect(
            &state,
            &format!("/admin/users/{}", view.id),
            "ok",
            action.done,
        )),
        Err(AdminError::NotSuperAdmin) => Err(ConsoleError::Forbidden(
            "Only the super admin (SUPER_ADMIN_EMAIL) changes roles. Nothing was changed.",
        )),
        Err(AdminError::NotFound) => Err(ConsoleError::NotFound),
        Err(
            refusal @ (AdminError::SuperAdmin(_)
            | AdminError::SelfAction(_)
            | AdminError::Invalid(_)),
        ) => {
            let status = match refusal {
                AdminError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::CONFLICT,
            };
            let view = users_admin::get(&state, id).await?;
            user_confirm_page(
                &state,
                &req,
                &admin,
                &view,
                &name,
                &action,
                status,
                reason,
                Some(refusal.sentence()),
            )
        }
        Err(AdminError::App(other)) => Err(other.into()),
    }
}

/// The admin's export (a download, audited with their reason) and erasure (reason and the typed
/// username required; the same service as the API and the CLI).
async fn privacy_act(
    state: &AppState,
    req: &HttpRequest,
    admin: &Admin,
    id: uuid::Uuid,
    name: &str,
    action: &UserAction,
    form: ActionForm,
) -> Result<HttpResponse, ConsoleError> {
    use crate::privacy::{self, Erasure, ExportFormat, PrivacyError, Requester};
    let view = users_admin::get(state, id).await?;
    let typed = form.reason.clone().unwrap_or_default();
    let refuse = |status: StatusCode, sentence: String| {
        user_confirm_page(
            state,
            req,
            admin,
            &view,
            name,
            action,
            status,
            typed.clone(),
            Some(sentence),
        )
    };
    let reason = match crate::audit::admin_reason(form.reason.as_deref(), true) {
        Ok(Some(reason)) => reason,
        Ok(None) | Err(_) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "A reason (up to 500 characters) is required. Nothing was done.".into(),
            );
        }
    };
    if name == "export" {
        return match privacy::start_export(
            state,
            id,
            Requester::Admin {
                admin_id: admin.user.id,
                reason,
            },
            ExportFormat::Json,
            request_meta(req),
        )
        .await
        {
            Ok(body) => Ok(privacy::routes::download(ExportFormat::Json, body)),
            Err(AppError::Conflict(_)) => {
                refuse(StatusCode::CONFLICT, PrivacyError::Erased.sentence())
            }
            Err(error) => Err(error.into()),
        };
    }
    if form.confirm.as_deref().map(str::trim) != Some(view.username.as_str()) {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Type the username exactly to confirm. Nothing was changed.".into(),
        );
    }
    if id == admin.user.id {
        return refuse(StatusCode::CONFLICT, PrivacyError::SelfErasure.sentence());
    }
    match privacy::erase(
        state,
        Erasure {
            user_id: id,
            actor: crate::audit::Actor::admin(admin.user.id),
            by: Some(admin.user.id),
            reason: Some(reason),
            via: "console",
            extra: serde_json::json!({}),
        },
        request_meta(req),
    )
    .await
    {
        Ok(_) => Ok(redirect(
            state,
            &format!("/admin/users/{id}"),
            "ok",
            action.done,
        )),
        Err(PrivacyError::NotFound) => Err(ConsoleError::NotFound),
        Err(PrivacyError::App(error)) => Err(error.into()),
        Err(refusal) => refuse(StatusCode::CONFLICT, refusal.sentence()),
    }
}
