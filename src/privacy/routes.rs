//! `GET /api/v1/me/export` (the caller's data, streamed) and `DELETE /api/v1/me` (erasure).

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{ExportFormat, Reauth, Requester};
use crate::auth::{Access, ApiRoutes, Permission, Principal, request_meta};
use crate::error::{AppError, FieldError};
use crate::state::AppState;

pub fn routes(r: &mut ApiRoutes) {
    r.add(
        Method::GET,
        "/api/v1/me/export",
        Access::Permission(Permission::DataExport),
        export_me,
    )
    .query::<ExportParams>()
    .ok_or_download::<ExportDocument>(&["application/zip"]);
    r.add_sensitive(
        Method::DELETE,
        "/api/v1/me",
        Access::Permission(Permission::ProfileWrite),
        erase_me,
    )
    .body::<EraseBody>()
    .no_content();
}

/// The JSON export (`format=json`), as the OpenAPI document describes it; `super::export` writes
/// it as a stream. Conversations and messages are described loosely (objects): see README.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ExportDocument {
    /// `rampart-export/1`.
    format: String,
    #[schema(format = DateTime)]
    exported_at: String,
    user: crate::users::UserView,
    identities: Vec<crate::identity::IdentityView>,
    sessions: Vec<crate::sessions::SessionView>,
    api_keys: Vec<crate::api_keys::ApiKeyView>,
    subscription: Option<crate::webhooks::SubscriptionView>,
    blocks: Vec<crate::conversations::BlockView>,
    /// `[{conversation, messages: [...]}]`: every conversation the user is a member of.
    #[schema(value_type = Vec<Object>)]
    conversations: Vec<serde_json::Value>,
    /// The user's own messages in conversations they have left.
    #[schema(value_type = Vec<Object>)]
    messages_in_left_conversations: Vec<serde_json::Value>,
    audit_events: Vec<crate::audit::OwnEvent>,
    audit_events_by_others: Vec<crate::audit::AccountEvent>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ExportParams {
    /// `json` (the default: attachments inline as base64) or `zip` (`export.json` plus the
    /// attachments as files).
    #[param(pattern = "^(json|zip)$")]
    format: Option<String>,
}

/// Everything rampart holds about the caller, as a download streamed in bounded memory (daily
/// quota `data_exports`; an API key needs the `data:export` scope).
async fn export_me(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    params: web::Query<ExportParams>,
) -> Result<HttpResponse, AppError> {
    let format =
        ExportFormat::parse(params.format.as_deref()).map_err(|e| AppError::Validation(vec![e]))?;
    let user_id = principal.user_id;
    let body = super::start_export(
        &state,
        user_id,
        Requester::Owner(principal),
        format,
        request_meta(&req),
    )
    .await?;
    Ok(download(format, body))
}

/// The streamed response of an export (shared with the console's admin export).
pub fn download(format: ExportFormat, body: super::export::Body) -> HttpResponse {
    let stream = futures_util::stream::unfold(body, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", format.file_name()),
        ))
        .streaming(stream)
}

/// Proof that the caller is the person: exactly one of the two.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EraseBody {
    /// The account's current password.
    #[schema(value_type = Option<String>, format = Password)]
    current_password: Option<SecretString>,
    /// For an account that signs in through Supabase or Clerk: a token of a linked identity,
    /// issued within the last 5 minutes.
    #[schema(max_length = 16384)]
    provider_token: Option<String>,
}

/// Erases the caller's account for good (crypto-shredding); 204, also when already erased.
async fn erase_me(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: web::Json<EraseBody>,
    providers: Option<web::Data<crate::identity::Providers>>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let reauth = match (body.current_password, body.provider_token) {
        (Some(password), None) => Reauth::Password(password),
        (None, Some(token)) if token.len() <= 16 * 1024 => Reauth::ProviderToken(token),
        (None, Some(_)) => {
            return Err(AppError::Validation(vec![FieldError::new(
                "provider_token",
                "is too long",
            )]));
        }
        (Some(_), Some(_)) => {
            return Err(AppError::Validation(vec![FieldError::new(
                "current_password",
                "give either current_password or provider_token, not both",
            )]));
        }
        (None, None) => {
            return Err(AppError::Validation(vec![FieldError::new(
                "current_password",
                "is required to erase the account (or provider_token for a provider sign-in)",
            )]));
        }
    };
    super::erase_self(
        &state,
        &principal,
        reauth,
        providers.as_deref().map(|p| p.as_ref()),
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
