//! Request body limits and JSON parsing errors.
//!
//! A declared `Content-Length` above MAX_BODY_BYTES is refused with 413 before routing or reading
//! (and before `100 Continue`: see [`expect_continue`]); chunked bodies are capped while read. A
//! body must arrive within BODY_READ_TIMEOUT_SECONDS (408). Malformed JSON is 400, JSON that does
//! not fit the expected shape 422 (never quoting the value sent), a non-JSON content type 415 —
//! all problem+json.
//!
//! Streamed routes ([`StreamedBodyRoutes`]): a `multipart/form-data` body to one of them is not
//! buffered here. Its declared length is held to the route's total limit before anything is
//! read, and the handler reads the payload through a stream that enforces that total (413) and
//! the same deadline (408) as the bytes arrive ([`BodyRefusal`] inside the payload error says
//! which); the text-input checks skip such a body, and a response sent before the body was read
//! to its end closes the connection. Any other content type to the same route is buffered
//! exactly as everywhere else.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::http::{ConnectionType, header};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpMessage, ResponseError};
use futures_util::{Stream, StreamExt};

use super::error::{AppError, FieldError};
use super::headers::SecurityHeaders;
use super::request_id::{RequestId, RequestStart};

#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// How long a request body may take to arrive (BODY_READ_TIMEOUT_SECONDS).
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout(pub Duration);

/// Routes that take their body as raw bytes, with a limit of their own instead of MAX_BODY_BYTES
/// (route pattern, limit): webhook deliveries, whose signature covers the exact bytes. Their bodies
/// skip the text-input checks (the handler verifies the bytes before anything parses them).
#[derive(Debug, Clone, Default)]
pub struct RawBodyRoutes(pub Vec<(String, usize)>);

impl RawBodyRoutes {
    /// The limit of the raw-body route `pattern` resolves to, if it is one.
    pub fn limit_of(&self, pattern: Option<&str>) -> Option<usize> {
        let pattern = pattern?;
        self.0.iter().find(|(p, _)| p == pattern).map(|(_, l)| *l)
    }

    /// The largest body any route accepts (the `Expect: 100-continue` answer happens before
    /// routing).
    pub fn largest(&self, default: usize) -> usize {
        self.0.iter().map(|(_, l)| *l).fold(default, usize::max)
    }
}

/// Routes whose `multipart/form-data` bodies are streamed to the handler instead of buffered
/// (route pattern as the router resolves it, e.g. `/api/v1/conversations/{id}/messages`; the
/// total limit of the whole body in bytes). Other content types to these routes are buffered
/// under the usual limit.
#[derive(Debug, Clone, Default)]
pub struct StreamedBodyRoutes(pub Vec<(String, usize)>);

impl StreamedBodyRoutes {
    /// The total limit of the streamed route `pattern` resolves to, if it is one.
    pub fn limit_of(&self, pattern: Option<&str>) -> Option<usize> {
        let pattern = pattern?;
        self.0.iter().find(|(p, _)| p == pattern).map(|(_, l)| *l)
    }

    /// The largest total of any streamed route, or `default`.
    pub fn largest(&self, default: usize) -> usize {
        self.0.iter().map(|(_, l)| *l).fold(default, usize::max)
    }
}

/// Marker in a request's extensions: its body is streamed to the handler under `limit` (no
/// [`BufferedBody`]), so the text-input checks leave it alone.
#[derive(Debug, Clone, Copy)]
pub struct StreamedBody {
    pub limit: usize,
}

/// Why a streamed body stopped, carried inside the `PayloadError` its reader sees (as an
/// `io::Error` source), so that the reader answers with the edge's status: 413 or 408.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyRefusal {
    #[error("the request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body did not arrive in time")]
    Timeout,
}

impl BodyRefusal {
    /// The refusal inside `error`, if the edge's stream produced it.
    pub fn of(error: &PayloadError) -> Option<BodyRefusal> {
        match error {
            PayloadError::Io(io) => io.get_ref()?.downcast_ref::<BodyRefusal>().copied(),
            _ => None,
        }
    }
}

impl From<BodyRefusal> for PayloadError {
    fn from(refusal: BodyRefusal) -> PayloadError {
        let kind = match refusal {
            BodyRefusal::TooLarge { .. } => std::io::ErrorKind::InvalidData,
            BodyRefusal::Timeout => std::io::ErrorKind::TimedOut,
        };
        PayloadError::Io(std::io::Error::new(kind, refusal))
    }
}

impl From<BodyRefusal> for AppError {
    fn from(refusal: BodyRefusal) -> AppError {
        match refusal {
            BodyRefusal::TooLarge { limit } => AppError::PayloadTooLarge { limit },
            BodyRefusal::Timeout => AppError::RequestTimeout,
        }
    }
}

/// The payload of a streamed route as its handler reads it: the bytes as they arrive, ended by
/// a [`BodyRefusal`] once more than `limit` bytes came or the deadline passed. `finished` is set
/// when the body was read to its end.
struct CappedStream {
    inner: Payload,
    limit: usize,
    read: usize,
    deadline: Pin<Box<actix_web::rt::time::Sleep>>,
    finished: Rc<Cell<bool>>,
    stopped: bool,
}

impl Stream for CappedStream {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.stopped {
            return Poll::Ready(None);
        }
        // Polled first, so a body that trickles in (or stalls) still wakes us at the deadline.
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.stopped = true;
            return Poll::Ready(Some(Err(BodyRefusal::Timeout.into())));
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.read = this.read.saturating_add(chunk.len());
                if this.read > this.limit {
                    this.stopped = true;
                    let limit = this.limit;
                    return Poll::Ready(Some(Err(BodyRefusal::TooLarge { limit }.into())));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.stopped = true;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                this.stopped = true;
                this.finished.set(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Extractor: the exact bytes of the body of a raw-body route ([`RawBodyRoutes`]), as read by
/// [`limit_body`] under that route's limit (no second limit, no re-reading, no parsing).
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

impl actix_web::FromRequest for RawBody {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<RawBody, actix_web::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut Payload) -> Self::Future {
        use actix_web::HttpMessage as _;
        let body = req
            .extensions()
            .get::<BufferedBody>()
            .map(|b| b.0.clone())
            .unwrap_or_default();
        std::future::ready(Ok(RawBody(body)))
    }
}

/// The whole request body, read once by [`limit_body`] (and handed on to the extractors as the
/// request's payload): the text checks read it from the request's extensions.
#[derive(Debug, Clone)]
pub struct BufferedBody(pub Bytes);

/// Middleware: a declared `Content-Length` over MAX_BODY_BYTES is 413 before anything is read;
/// otherwise the whole body is read here, capped (413, also for chunked bodies) and within
/// BODY_READ_TIMEOUT_SECONDS of the request's start (408): a client trickling its body a byte at
/// a time cannot hold a connection and a worker's attention for as long as it likes. A refusal
/// that leaves a body unread closes the connection. Upgrade requests (WebSocket) are passed on
/// untouched: their "body" is the upgraded connection.
pub async fn limit_body(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let default = req
        .app_data::<Arc<BodyLimit>>()
        .map(|l| l.0)
        .unwrap_or(65536);
    let pattern = super::routed_pattern(&req);
    let streamed = req
        .app_data::<Arc<StreamedBodyRoutes>>()
        .and_then(|routes| routes.limit_of(pattern.as_deref()))
        .filter(|_| super::multipart::is_form_data(req.headers()));
    let limit = streamed
        .or_else(|| {
            req.app_data::<Arc<RawBodyRoutes>>()
                .and_then(|raw| raw.limit_of(pattern.as_deref()))
        })
        .unwrap_or(default);
    let timeout = req
        .app_data::<Arc<BodyReadTimeout>>()
        .map(|t| t.0)
        .unwrap_or(Duration::from_secs(10));
    if let Some(value) = req.headers().get(header::CONTENT_LENGTH) {
        let declared = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        match declared {
            Some(len) if len > limit as u64 => {
                return Ok(closing(
                    req.error_response(AppError::PayloadTooLarge { limit }),
                ));
            }
            Some(_) => {}
            None => {
                return Ok(closing(req.error_response(AppError::BadRequest(
                    "Invalid Content-Length.".into(),
                ))));
            }
        }
    }
    if !req.head().upgrade() {
        let started = req
            .extensions()
            .get::<RequestStart>()
            .map_or_else(std::time::Instant::now, |s| s.0);
        let left = (started + timeout).saturating_duration_since(std::time::Instant::now());
        if streamed.is_some() {
            return stream_body(req, next, limit, left).await;
        }
        let mut payload = req.take_payload();
        let read = actix_web::rt::time::timeout(left, read_capped(&mut payload, limit));
        let body = match read.await {
            Err(_elapsed) => {
                return Ok(closing(req.error_response(AppError::RequestTimeout)));
            }
            Ok(Err(error)) => return Ok(closing(req.error_response(error))),
            Ok(Ok(body)) => body,
        };
        req.extensions_mut().insert(BufferedBody(body.clone()));
        req.set_payload(Payload::from(body));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Hands a streamed route's body on unread, wrapped in a [`CappedStream`]; a response sent
/// before the body was read to its end closes the connection (the rest is never read).
async fn stream_body<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
    limit: usize,
    left: Duration,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let finished = Rc::new(Cell::new(false));
    let stream = CappedStream {
        inner: req.take_payload(),
        limit,
        read: 0,
        deadline: Box::pin(actix_web::rt::time::sleep(left)),
        finished: finished.clone(),
        stopped: false,
    };
    req.extensions_mut().insert(StreamedBody { limit });
    req.set_payload(Payload::Stream {
        payload: Box::pin(stream),
    });
    let res = next.call(req).await?;
    if finished.get() {
        Ok(res.map_into_boxed_body())
    } else {
        Ok(closing(res))
    }
}

/// The body, or 413 as soon as it grows past `limit` (chunked bodies declare no length).
async fn read_capped(payload: &mut Payload, limit: usize) -> Result<Bytes, AppError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            PayloadError::Overflow => AppError::PayloadTooLarge { limit },
            _ => AppError::BadRequest("The request body could not be read.".into()),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The response closes the connection: the rest of the body is never read.
fn closing<B>(mut res: ServiceResponse<B>) -> ServiceResponse<BoxBody>
where
    B: MessageBody + 'static,
{
    res.response_mut()
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    res.map_into_boxed_body()
}

/// What `Expect: 100-continue` is answered against, before routing: MAX_BODY_BYTES, or the limit
/// of the raw-body or streamed route the request's path matches (the router's own pattern
/// matching, on the path as the router sees it). A streamed route's limit applies only to
/// `multipart/form-data`. A spelling that matches here but routes elsewhere is only refused
/// earlier; `limit_body`, after routing, is what holds each route to its own limit.
#[derive(Debug, Clone)]
pub struct ExpectLimits {
    default: usize,
    /// (pattern, limit, multipart only).
    routes: Vec<(actix_web::dev::ResourceDef, usize, bool)>,
}

impl ExpectLimits {
    pub fn new(default: usize, raw: &RawBodyRoutes, streamed: &StreamedBodyRoutes) -> Self {
        let routes = raw
            .0
            .iter()
            .map(|(p, l)| (p, *l, false))
            .chain(streamed.0.iter().map(|(p, l)| (p, *l, true)))
            .map(|(p, l, multipart)| (actix_web::dev::ResourceDef::new(p.as_str()), l, multipart))
            .collect();
        ExpectLimits { default, routes }
    }

    /// The limit a request to this path (with these headers) is held to.
    pub fn limit_for(&self, path: &str, headers: &actix_web::http::header::HeaderMap) -> usize {
        self.routes
            .iter()
            .filter(|(def, _, multipart)| {
                def.is_match(path) && (!multipart || super::multipart::is_form_data(headers))
            })
            .map(|(_, l, _)| *l)
            .fold(self.default, usize::max)
    }
}

/// The server's `Expect: 100-continue` handler. actix-http's default answers `100 Continue` to
/// every such request before the application sees it, so a client would start sending a body
/// the application then refuses: a declared `Content-Length` over the limit of the route the path
/// matches ([`ExpectLimits`]) is answered here with the final 413 problem (security headers,
/// request id, connection closed) and no `100 Continue`.
pub fn expect_continue(
    limits: ExpectLimits,
    headers: SecurityHeaders,
) -> impl ServiceFactory<
    actix_http::Request,
    Config = (),
    Response = actix_http::Request,
    Error = actix_http::Response<BoxBody>,
    InitError = (),
> + Clone {
    actix_web::dev::fn_service(move |req: actix_http::Request| {
        let limits = limits.clone();
        async move {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let path = actix_web::dev::Url::new(req.uri().clone());
            let limit = limits.limit_for(path.path(), req.headers());
            match declared {
                Some(len) if len > limit as u64 => Err(expect_refusal(&req, limit, headers)),
                _ => Ok(req),
            }
        }
    })
}

fn expect_refusal(
    req: &actix_http::Request,
    limit: usize,
    config: SecurityHeaders,
) -> actix_http::Response<BoxBody> {
    let id = RequestId::generate();
    let path = actix_web::dev::Url::new(req.uri().clone());
    let console = super::headers::is_console_path(path.path());
    let error = AppError::PayloadTooLarge { limit };
    let mut res = if console {
        super::error::html_page(
            error.status_code(),
            "What was sent is too large.",
            Some(&id.0),
        )
    } else {
        let mut problem = error.problem();
        problem.request_id = Some(id.0.clone());
        actix_web::HttpResponse::build(error.status_code())
            .content_type(super::error::PROBLEM_JSON)
            .body(problem.to_json())
    };
    super::headers::apply(res.headers_mut(), config, console);
    if let Ok(value) = header::HeaderValue::from_str(&id.0) {
        res.headers_mut()
            .insert(super::request_id::REQUEST_ID_HEADER, value);
    }
    res.head_mut().set_connection_type(ConnectionType::Close);
    tracing::info!(
        request_id = %id.0,
        method = %req.method(),
        status = 413,
        "request refused before its body (Expect: 100-continue)"
    );
    res.into()
}

/// The JSON extractor configuration every route uses.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |error, _req| json_error(error, limit).into())
}

/// Raw body extractors (`Bytes`, `String`; webhooks) get the same cap.
pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

fn json_error(error: JsonPayloadError, limit: usize) -> AppError {
    match error {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            AppError::PayloadTooLarge { limit }
        }
        JsonPayloadError::Payload(PayloadError::Overflow) => AppError::PayloadTooLarge { limit },
        JsonPayloadError::ContentType => AppError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            AppError::Validation(vec![data_error_message(&e)])
        }
        JsonPayloadError::Deserialize(e) => AppError::BadRequest(format!(
            "The body is not valid JSON (line {}, column {}).",
            e.line(),
            e.column()
        )),
        _ => AppError::BadRequest("The request body could not be read.".into()),
    }
}

/// A JSON shape error as a field error that never quotes what was sent: serde's messages quote
/// values in backticks (``invalid type: integer `918…` ``) and would echo a password sent as a
/// number into the response and, through the error's `Debug`, into the WARN log. Only the
/// error's category, the position, the struct's own field names and the expected type are kept.
fn data_error_message(e: &serde_json::Error) -> FieldError {
    let text = e.to_string();
    let message = match text.rsplit_once(" at line ") {
        Some((message, _)) => message,
        None => text.as_str(),
    };
    let described = describe_data_error(message);
    FieldError::new(
        described.field.unwrap_or_else(|| "body".into()),
        format!(
            "{} (line {}, column {})",
            described.message,
            e.line(),
            e.column()
        ),
    )
}

/// What a serde data error says, rebuilt from its category: the field when serde names one of
/// the struct's own fields, and a message without any part of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedError {
    pub field: Option<String>,
    pub message: String,
}

/// The kinds of value serde's `Unexpected` names, most specific first.
const VALUE_KINDS: &[(&str, &str)] = &[
    ("boolean", "a boolean"),
    ("integer", "an integer"),
    ("floating point", "a number"),
    ("char", "a character"),
    ("string", "a string"),
    ("byte array", "bytes"),
    ("unit variant", "a variant"),
    ("newtype variant", "a variant"),
    ("tuple variant", "a variant"),
    ("struct variant", "a variant"),
    ("unit", "null"),
    ("null", "null"),
    ("Option value", "an optional value"),
    ("newtype struct", "a value"),
    ("sequence", "an array"),
    ("map", "an object"),
    ("enum", "an enum"),
];

/// Describes a serde data error message (`serde::de::Error`'s standard wordings) without quoting
/// the value; messages of any other wording become a generic sentence.
pub fn describe_data_error(message: &str) -> DescribedError {
    // `expected …` comes from the Deserialize impl (code, not input): always the last clause.
    let expected = message
        .rsplit_once(", expected ")
        .map(|(_, e)| e.chars().take(200).collect::<String>());
    let with_expected = |what: &str| match &expected {
        Some(e) => format!("{what}: expected {e}"),
        None => what.to_string(),
    };
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .filter(|name| is_plain_name(name))
            .map(str::to_string)
    };
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let found = VALUE_KINDS
            .iter()
            .find(|(kind, _)| rest.starts_with(kind))
            .map_or("another type", |(_, article)| article);
        return DescribedError {
            field: None,
            message: with_expected(&format!("has the wrong type ({found})")),
        };
    }
    if message.starts_with("invalid value: ") {
        return DescribedError {
            field: None,
            message: with_expected("has an invalid value"),
        };
    }
    if message.starts_with("invalid length ") {
        return DescribedError {
            field: None,
            message: with_expected("has the wrong length"),
        };
    }
    if message.starts_with("unknown variant ") {
        return DescribedError {
            field: None,
            message: with_expected("is not one of the accepted values"),
        };
    }
    if message.starts_with("unknown field ") {
        // The name is the client's own key (it could be anything): not repeated either.
        return DescribedError {
            field: None,
            message: with_expected("has a field that is not known"),
        };
    }
    if let Some(field) = named("missing field `") {
        return DescribedError {
            field: Some(field),
            message: "is required".into(),
        };
    }
    if let Some(field) = named("duplicate field `") {
        return DescribedError {
            field: Some(field),
            message: "appears more than once".into(),
        };
    }
    DescribedError {
        field: None,
        message: "does not have the expected shape".into(),
    }
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The query-string extractor configuration every route uses: a shape error is a 422 that
/// names the parameter's category, never its value (serde_urlencoded quotes unknown variants).
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _req| {
        let message = match &error {
            actix_web::error::QueryPayloadError::Deserialize(e) => e.to_string(),
            _ => String::new(),
        };
        let described = describe_data_error(&message);
        AppError::Validation(vec![FieldError::new(
            described.field.unwrap_or_else(|| "query".into()),
            described.message,
        )])
        .into()
    })
}

/// The urlencoded-form extractor configuration every route uses (same rules as queries).
pub fn form_config(limit: usize) -> web::FormConfig {
    web::FormConfig::default()
        .limit(limit)
        .error_handler(move |error, _req| {
            use actix_web::error::UrlencodedError;
            match error {
                UrlencodedError::Overflow { .. } => AppError::PayloadTooLarge { limit },
                UrlencodedError::ContentType => AppError::UnsupportedMediaType,
                UrlencodedError::Parse(e) => {
                    let described = describe_data_error(&e.to_string());
                    AppError::Validation(vec![FieldError::new(
                        described.field.unwrap_or_else(|| "form".into()),
                        described.message,
                    )])
                }
                _ => AppError::BadRequest("The form could not be read.".into()),
            }
            .into()
        })
}

/// Path parameters that do not fit their type: nothing is there (the segment is not echoed).
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_error, _req| AppError::NotFound.into())
}

/// A JSON body that may be left out: empty (or blank) is `T::default()`, anything else must be
/// valid JSON of `T` (422 with a field error otherwise). For admin actions whose body only
/// carries an optional reason.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        let error = if e.is_data() {
            data_error_message(&e)
        } else {
            FieldError::new(
                "body",
                format!(
                    "is not a valid JSON object (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        };
        AppError::Validation(vec![error])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_errors_never_quote_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Login {
            login: String,
            password: String,
            mode: Option<Mode>,
        }
        #[derive(Debug, serde::Deserialize)]
        enum Mode {
            A,
        }
        for (body, field) in [
            (r#"{"login":"a","password":91827364554433}"#, "body"),
            (r#"{"login":"a","password":{"x":"91827364554433"}}"#, "body"),
            (r#"{"login":"a","password":["91827364554433"]}"#, "body"),
            (r#"{"login":91827364554433,"password":"p"}"#, "body"),
            (
                r#"{"login":"a","password":"p","mode":"91827364554433"}"#,
                "body",
            ),
            (r#"{"login":"a","password":"p","91827364554433":1}"#, "body"),
            (
                r#"{"login":"a","password":"p","x91827364554433":1}"#,
                "body",
            ),
            (r#"{"login":"a"}"#, "password"),
        ] {
            let e = serde_json::from_str::<Login>(body).unwrap_err();
            let described = data_error_message(&e);
            let text = format!("{described:?}");
            assert!(!text.contains("9182736455"), "{body}: {text}");
            assert_eq!(described.field, field, "{body}: {text}");
            assert!(!described.message.is_empty());
        }
        let e = serde_json::from_str::<Login>(r#"{"login":"a","password":9}"#).unwrap_err();
        assert!(
            data_error_message(&e)
                .message
                .starts_with("has the wrong type (an integer): expected a string"),
            "{:?}",
            data_error_message(&e)
        );
    }
}

#[cfg(test)]
mod streamed_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use actix_web::middleware::from_fn;
    use actix_web::test as at;
    use actix_web::{App, HttpRequest, HttpResponse};
    use futures_util::stream;

    const MULTIPART: &str = "multipart/form-data; boundary=x";

    /// Reads the whole payload as it comes and says what the edge did with it.
    async fn upload(req: HttpRequest, mut payload: web::Payload) -> Result<HttpResponse, AppError> {
        let buffered = req.extensions().get::<BufferedBody>().is_some();
        let streamed = req.extensions().get::<StreamedBody>().is_some();
        let mut read = 0;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| match BodyRefusal::of(&e) {
                Some(refusal) => AppError::from(refusal),
                None => AppError::BadRequest("unreadable".into()),
            })?;
            read += chunk.len();
        }
        Ok(HttpResponse::Ok().body(format!("{read} {buffered} {streamed}")))
    }

    /// Answers without reading the body.
    async fn early() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    async fn app() -> impl actix_web::dev::Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    > {
        at::init_service(
            App::new()
                .app_data(Arc::new(BodyLimit(64)))
                .app_data(Arc::new(BodyReadTimeout(Duration::from_millis(100))))
                .app_data(Arc::new(StreamedBodyRoutes(vec![
                    ("/upload/{id}".into(), 1000),
                    ("/early/{id}".into(), 1000),
                ])))
                .wrap(from_fn(limit_body))
                .route("/upload/{id}", web::post().to(upload))
                .route("/plain", web::post().to(upload))
                .route("/early/{id}", web::post().to(early)),
        )
        .await
    }

    /// A request whose body arrives as `chunks` with no Content-Length (chunked).
    fn chunked(
        path: &str,
        content_type: &str,
        chunks: impl Stream<Item = Result<Bytes, PayloadError>> + 'static,
    ) -> actix_http::Request {
        at::TestRequest::post()
            .uri(path)
            .insert_header((header::CONTENT_TYPE, content_type))
            .to_request()
            .replace_payload(Payload::Stream {
                payload: Box::pin(chunks) as actix_http::BoxedPayloadStream,
            })
            .0
    }

    fn pieces(total: usize) -> impl Stream<Item = Result<Bytes, PayloadError>> {
        stream::iter(
            (0..total.div_ceil(100))
                .map(move |i| Ok(Bytes::from(vec![b'a'; 100.min(total - i * 100)]))),
        )
    }

    async fn text(res: ServiceResponse<impl MessageBody>) -> String {
        String::from_utf8(at::read_body(res).await.to_vec()).unwrap()
    }

    fn closes<B>(res: &ServiceResponse<B>) -> bool {
        res.response().head().connection_type() == ConnectionType::Close
    }

    #[actix_web::test]
    async fn a_multipart_body_to_a_streamed_route_is_streamed_under_its_own_total() {
        let app = app().await;
        let res = at::call_service(&app, chunked("/upload/1", MULTIPART, pieces(1000))).await;
        assert_eq!(res.status(), 200);
        assert!(!closes(&res));
        assert_eq!(text(res).await, "1000 false true");
        let req = at::TestRequest::post()
            .uri("/upload/1")
            .insert_header((header::CONTENT_TYPE, MULTIPART))
            .set_payload(vec![b'a'; 900])
            .to_request();
        let res = at::call_service(&app, req).await;
        assert_eq!(text(res).await, "900 false true");
    }

    #[actix_web::test]
    async fn a_declared_length_over_the_total_is_413_before_the_handler() {
        let app = app().await;
        let req = at::TestRequest::post()
            .uri("/upload/1")
            .insert_header((header::CONTENT_TYPE, MULTIPART))
            .insert_header((header::CONTENT_LENGTH, "1001"))
            .to_request();
        let res = at::call_service(&app, req).await;
        assert_eq!(res.status(), 413);
        assert!(closes(&res));
    }

    #[actix_web::test]
    async fn a_chunked_body_over_the_total_is_413_as_it_is_read() {
        let app = app().await;
        let res = at::call_service(&app, chunked("/upload/1", MULTIPART, pieces(1200))).await;
        assert_eq!(res.status(), 413);
        assert!(closes(&res), "the rest of the body is never read");
    }

    #[actix_web::test]
    async fn a_stalled_body_is_408_at_the_deadline() {
        let app = app().await;
        let stalled = stream::iter([Ok(Bytes::from_static(b"abc"))]).chain(stream::pending());
        let res = at::call_service(&app, chunked("/upload/1", MULTIPART, stalled)).await;
        assert_eq!(res.status(), 408);
        assert!(closes(&res));
    }

    #[actix_web::test]
    async fn an_answer_before_the_body_was_read_closes_the_connection() {
        let app = app().await;
        let res = at::call_service(&app, chunked("/early/1", MULTIPART, pieces(300))).await;
        assert_eq!(res.status(), 200);
        assert!(closes(&res));
    }

    #[actix_web::test]
    async fn other_bodies_keep_the_buffered_rules() {
        let app = app().await;
        // JSON to the streamed route: buffered under the default limit.
        let res =
            at::call_service(&app, chunked("/upload/1", "application/json", pieces(60))).await;
        assert_eq!(text(res).await, "60 true false");
        let res =
            at::call_service(&app, chunked("/upload/1", "application/json", pieces(65))).await;
        assert_eq!(res.status(), 413);
        let req = at::TestRequest::post()
            .uri("/upload/1")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header((header::CONTENT_LENGTH, "65"))
            .to_request();
        assert_eq!(at::call_service(&app, req).await.status(), 413);
        // Multipart to a route that is not streamed: buffered as well.
        let res = at::call_service(&app, chunked("/plain", MULTIPART, pieces(60))).await;
        assert_eq!(text(res).await, "60 true false");
        let res = at::call_service(&app, chunked("/plain", MULTIPART, pieces(65))).await;
        assert_eq!(res.status(), 413);
    }

    #[test]
    fn the_largest_limit_includes_streamed_routes() {
        let routes = StreamedBodyRoutes(vec![("/a".into(), 10), ("/b".into(), 30)]);
        assert_eq!(routes.largest(20), 30);
        assert_eq!(routes.largest(40), 40);
        assert_eq!(routes.limit_of(Some("/b")), Some(30));
        assert_eq!(routes.limit_of(None), None);
        let refusal: PayloadError = BodyRefusal::TooLarge { limit: 3 }.into();
        assert_eq!(
            BodyRefusal::of(&refusal),
            Some(BodyRefusal::TooLarge { limit: 3 })
        );
        assert_eq!(BodyRefusal::of(&PayloadError::Overflow), None);
    }
}
