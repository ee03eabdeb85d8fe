//! Conversations, messages, attachments and blocks:
//! `/api/v1/conversations…` and `/api/v1/me/blocks…`. Thin handlers: extract, one service call,
//! respond. Membership, blocks, quotas and encryption are the service's.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{BlockView, ConversationView, Cursor, MessagePage, MessageView, PageRequest};
use crate::auth::{Access, ApiRoutes, Permission, Principal, request_meta};
use crate::error::{AppError, FieldError};
use crate::http::pagination::{Page, PageQuery};
use crate::http::path_id::PathId;
use crate::state::AppState;

pub fn routes(r: &mut ApiRoutes) {
    r.add(
        Method::POST,
        "/api/v1/conversations",
        Access::Permission(Permission::MessagesWrite),
        create,
    )
    .summary("Start a conversation with other users (direct with one, a group with more).")
    .body::<CreateBody>()
    .created::<ConversationView>()
    .link(Method::GET, "/api/v1/conversations/{id}", "id");
    r.add(
        Method::GET,
        "/api/v1/conversations",
        Access::Permission(Permission::MessagesRead),
        list,
    )
    .summary("The caller's conversations, latest activity first, with unread counts.")
    .query::<PageQuery>()
    .page::<ConversationView>();
    r.add(
        Method::GET,
        "/api/v1/conversations/{id}",
        Access::Permission(Permission::MessagesRead),
        get,
    )
    .ok::<ConversationView>();
    r.add(
        Method::POST,
        super::MESSAGES_ROUTE,
        Access::Permission(Permission::MessagesWrite),
        send,
    )
    .summary(
        "Send a message: JSON `{body}`, or multipart/form-data with a `body` part and up to 4 \
         `files` parts.",
    )
    .body::<MessageBody>()
    .multipart(serde_json::json!({
        "type": "object",
        "required": ["body"],
        "properties": {
            "body": { "type": "string", "minLength": 1, "maxLength": 8192 },
            "files": {
                "type": "array",
                "maxItems": 4,
                "items": { "type": "string", "format": "binary" },
                "description": "png, jpeg, webp, gif, pdf or plain text (ATTACHMENT_TYPES), each at most ATTACHMENT_MAX_BYTES; the type is read from the content"
            }
        }
    }))
    .created::<MessageView>();
    r.add(
        Method::GET,
        "/api/v1/conversations/{id}/messages",
        Access::Permission(Permission::MessagesRead),
        messages,
    )
    .summary("Messages newest first; `before` / `after` cursors, `limit` up to 100.")
    .query::<MessagesQuery>()
    .ok::<MessagePage>();
    r.add(
        Method::PATCH,
        "/api/v1/conversations/{id}/messages/{mid}",
        Access::Permission(Permission::MessagesWrite),
        edit,
    )
    .summary("Edit your own message within MESSAGE_EDIT_WINDOW_MINUTES.")
    .body::<MessageBody>()
    .ok::<MessageView>();
    r.add(
        Method::DELETE,
        "/api/v1/conversations/{id}/messages/{mid}",
        Access::Permission(Permission::MessagesWrite),
        delete,
    )
    .summary("Delete your own message within MESSAGE_EDIT_WINDOW_MINUTES.")
    .no_content();
    r.add(
        Method::POST,
        "/api/v1/conversations/{id}/read",
        Access::Permission(Permission::MessagesRead),
        read,
    )
    .summary("Mark messages read up to a message cursor.")
    .body::<ReadBody>()
    .ok::<ReadView>();
    r.add(
        Method::POST,
        "/api/v1/conversations/{id}/leave",
        Access::Permission(Permission::MessagesWrite),
        leave,
    )
    .summary("Leave a conversation (it is deleted when its last member leaves).")
    .no_content();
    r.add(
        Method::GET,
        "/api/v1/conversations/{id}/attachments/{aid}",
        Access::Permission(Permission::MessagesRead),
        attachment,
    )
    .summary("Download an attachment (always as a download, with its sniffed type).")
    .download(&[
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/gif",
        "application/pdf",
        "text/plain",
    ]);
    r.add(
        Method::GET,
        "/api/v1/me/blocks",
        Access::Permission(Permission::MessagesRead),
        blocks,
    )
    .page::<BlockView>();
    r.add(
        Method::POST,
        "/api/v1/me/blocks/{username}",
        Access::Permission(Permission::MessagesWrite),
        block,
    )
    .summary(
        "Block a user: they cannot start a conversation with you or message you. Idempotent \
         (201 with the standing block).",
    )
    .created::<BlockView>();
    r.add(
        Method::DELETE,
        "/api/v1/me/blocks/{username}",
        Access::Permission(Permission::MessagesWrite),
        unblock,
    )
    .no_content();
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// The other members (1 with `CONVERSATION_MAX_MEMBERS - 1` at most).
    #[schema(min_items = 1, max_items = 999)]
    member_usernames: Vec<String>,
    #[schema(max_length = 200)]
    title: Option<String>,
}

async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let view = super::create(
        &state,
        &principal,
        super::NewConversation {
            member_usernames: body.member_usernames,
            title: body.title,
        },
        request_meta(&req),
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/conversations/{}", view.id),
        ))
        .json(view))
}

async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let limit = query.limit()?;
    let (items, next_cursor) = super::list(&state, &principal, query.cursor.clone(), limit).await?;
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    id: PathId,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(super::get(&state, &principal, *id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    /// UTF-8 text, at most 8 KiB.
    #[schema(min_length = 1, max_length = 8192)]
    body: String,
}

async fn send(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: PathId,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let (body, uploads) = if crate::http::multipart::is_form_data(req.headers()) {
        let form = crate::http::multipart::read_message_form(
            actix_multipart::Multipart::new(req.headers(), payload),
            super::upload_limits(&state.settings.conversations),
        )
        .await?;
        let body = form
            .body
            .ok_or_else(|| AppError::Validation(vec![FieldError::new("body", "is required")]))?;
        let uploads = form
            .files
            .into_iter()
            .map(|f| super::Upload {
                name: f.name,
                declared_type: f.declared_type,
                bytes: f.bytes,
            })
            .collect();
        (body, uploads)
    } else {
        // The JSON extractor, with the app's configuration (415/400/422 as on every route).
        use actix_web::FromRequest as _;
        let body = web::Json::<MessageBody>::from_request(&req, &mut payload.into_inner()).await?;
        (body.into_inner().body, Vec::new())
    };
    let view = super::send(&state, &principal, *id, &body, uploads, request_meta(&req)).await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct MessagesQuery {
    /// Older messages than this cursor (a message's `cursor`, or the previous `next_cursor`).
    before: Option<String>,
    /// Newer messages than this cursor (to catch up).
    after: Option<String>,
    /// Same as `before` (the `next_cursor` of an older page).
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

async fn messages(
    state: web::Data<AppState>,
    principal: Principal,
    id: PathId,
    query: web::Query<MessagesQuery>,
) -> Result<HttpResponse, AppError> {
    let limit = PageQuery {
        cursor: None,
        limit: query.limit,
    }
    .limit()?;
    let nonempty = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let before = nonempty(&query.before).or_else(|| nonempty(&query.cursor));
    let request = match (before, nonempty(&query.after)) {
        (Some(_), Some(_)) => {
            return Err(AppError::Validation(vec![FieldError::new(
                "after",
                "cannot be combined with before",
            )]));
        }
        (Some(b), None) => PageRequest::Before(
            Cursor::parse("before", &b).map_err(|e| AppError::Validation(vec![e]))?,
        ),
        (None, Some(a)) => PageRequest::After(
            Cursor::parse("after", &a).map_err(|e| AppError::Validation(vec![e]))?,
        ),
        (None, None) => PageRequest::Newest,
    };
    Ok(HttpResponse::Ok().json(super::page(&state, &principal, *id, request, limit).await?))
}

fn message_id(req: &HttpRequest) -> Result<uuid::Uuid, AppError> {
    PathId::named(req, "mid")
}

async fn edit(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: PathId,
    body: web::Json<MessageBody>,
) -> Result<HttpResponse, AppError> {
    let mid = message_id(&req)?;
    Ok(HttpResponse::Ok().json(super::edit(&state, &principal, *id, mid, &body.body).await?))
}

async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: PathId,
) -> Result<HttpResponse, AppError> {
    let mid = message_id(&req)?;
    super::delete(&state, &principal, *id, mid).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    /// The `cursor` of the newest message read.
    #[schema(min_length = 1, max_length = 64)]
    up_to: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ReadView {
    /// The read marker after the call (it never moves back).
    last_read: String,
    unread_count: i64,
}

async fn read(
    state: web::Data<AppState>,
    principal: Principal,
    id: PathId,
    body: web::Json<ReadBody>,
) -> Result<HttpResponse, AppError> {
    let up_to = Cursor::parse("up_to", &body.up_to).map_err(|e| AppError::Validation(vec![e]))?;
    let (last_read, unread_count) = super::mark_read(&state, &principal, *id, up_to).await?;
    Ok(HttpResponse::Ok().json(ReadView {
        last_read,
        unread_count,
    }))
}

async fn leave(
    state: web::Data<AppState>,
    principal: Principal,
    id: PathId,
) -> Result<HttpResponse, AppError> {
    super::leave(&state, &principal, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `filename*` per RFC 6266/8187 (UTF-8, percent-encoded), plus an ASCII fallback `filename`.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

async fn attachment(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    id: PathId,
) -> Result<HttpResponse, AppError> {
    let aid = PathId::named(&req, "aid")?;
    let download = super::download(&state, &principal, *id, aid).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, download.kind.mime()))
        .insert_header((
            header::CONTENT_DISPOSITION,
            content_disposition(&download.name),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "sandbox"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .no_chunking(u64::try_from(download.size).unwrap_or(0))
        .streaming(download.body))
}

async fn blocks(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    let items = super::blocks(&state, &principal).await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: None,
    }))
}

fn username(req: &HttpRequest) -> Result<String, AppError> {
    req.match_info()
        .get("username")
        .map(str::to_string)
        .ok_or(AppError::NotFound)
}

async fn block(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    // 201 either way: the block stands (blocking again keeps the first block and its time).
    let (view, _new) =
        super::block(&state, &principal, username(&req)?, request_meta(&req)).await?;
    Ok(HttpResponse::Created().json(view))
}

async fn unblock(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, AppError> {
    super::unblock(&state, &principal, username(&req)?, request_meta(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_cannot_break_out_of_the_header() {
        let h = content_disposition("a\"; filename=evil.html\r\nX: y.png");
        assert!(!h.contains('\r') && !h.contains('\n'));
        assert!(h.starts_with("attachment; filename=\"a__ filename_evil.html__X_ y.png\""));
        assert!(h.contains("filename*=UTF-8''a%22%3B%20filename%3Devil.html%0D%0AX%3A%20y.png"));
        let h = content_disposition("café.txt");
        assert!(h.contains("filename*=UTF-8''caf%C3%A9.txt"));
    }
}
