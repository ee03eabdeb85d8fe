//! Reading a `multipart/form-data` message (a text part `body`, file parts `files`) as a stream,
//! with every limit enforced while the bytes arrive.
//!
//! Each part is read chunk by chunk into one buffer of its own, whose capacity grows (doubling)
//! but never past the part's limit; the moment a part would pass its limit the read stops with a
//! 413 and the rest of the request is never read (the edge closes the connection: see
//! `limits::StreamedBodyRoutes`). A request's total size and deadline are the edge's
//! (`limits::limit_body`), reported here as 413 and 408.
//!
//! This module checks the form's shape only — which parts, how many, how large, a UTF-8 body.
//! What a file *is* (type, structure, name) is `conversations::attachment`'s to decide.

use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap};
use bytes::Bytes;
use futures_util::StreamExt;

use super::error::{AppError, FieldError};
use super::limits::BodyRefusal;

/// The part names of a message form.
pub const BODY_PART: &str = "body";
pub const FILES_PART: &str = "files";

/// Room for each part's boundary and headers when a total is derived from the part limits.
const PART_OVERHEAD: usize = 16 * 1024;

/// How much a message form may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// File parts per request (the 4).
    pub max_files: usize,
    /// Bytes per file part (ATTACHMENT_MAX_BYTES).
    pub max_file_bytes: usize,
    /// Bytes of the `body` text part (8 KiB).
    pub max_body_bytes: usize,
}

impl UploadLimits {
    /// The largest request these limits can accept: every part full, plus each part's boundary
    /// and headers. The total to register for the route (`EdgeConfig::with_streamed_body_routes`).
    pub fn total_body_limit(&self) -> usize {
        self.max_files
            .saturating_mul(self.max_file_bytes.saturating_add(PART_OVERHEAD))
            .saturating_add(self.max_body_bytes.saturating_add(PART_OVERHEAD))
    }
}

/// A message form as sent: nothing in it is validated beyond its shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageForm {
    pub body: Option<String>,
    pub files: Vec<UploadedFile>,
}

/// One file part, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// The raw file name from the part's `Content-Disposition` (`filename*` when sent, else
    /// `filename`): check it with `attachment::validate_name`.
    pub name: String,
    /// The part's `Content-Type` header as sent (`None` when absent).
    pub declared_type: Option<String>,
    pub bytes: Bytes,
}

/// Whether `headers` declare a `multipart/form-data` body (the content type's essence, any
/// case, any parameters): the one rule `limit_body` and the routes share.
pub fn is_form_data(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// Reads a message form part by part (see the module documentation). Refusals: a file part over
/// `max_file_bytes` or a `body` over `max_body_bytes` is 413 (`payload-too-large`), a file part
/// past `max_files` 413 (`too-many-files`) before any of it is read, the request over the
/// route's total 413 and past its deadline 408; an unknown part, a second `body`, a `body` with a
/// file name, a file part without one and a malformed stream are 400; a `body` that is not UTF-8
/// or carries control characters is 422. A file part with an empty name and no content (what a
/// browser sends for a file input left empty) is skipped.
pub async fn read_message_form(
    mut payload: Multipart,
    limits: UploadLimits,
) -> Result<MessageForm, AppError> {
    let mut form = MessageForm::default();
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(multipart_error)?;
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            BODY_PART => {
                if form.body.is_some() {
                    return Err(bad_request("The form has more than one `body` part."));
                }
                if file_name(&field)?.is_some() {
                    return Err(bad_request("The `body` part must be text, not a file."));
                }
                let bytes = read_part(&mut field, limits.max_body_bytes).await?;
                form.body = Some(body_text(bytes)?);
            }
            FILES_PART => {
                let Some(file_name) = file_name(&field)? else {
                    return Err(bad_request("Each `files` part needs a file name."));
                };
                if file_name.is_empty() {
                    match read_part(&mut field, 0).await {
                        Ok(_) => continue,
                        Err(AppError::PayloadTooLarge { .. }) => {
                            return Err(bad_request("Each `files` part needs a file name."));
                        }
                        Err(other) => return Err(other),
                    }
                }
                if form.files.len() >= limits.max_files {
                    return Err(AppError::TooManyFiles {
                        max: limits.max_files,
                    });
                }
                let declared_type = field
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap_or("invalid").to_string());
                let bytes = read_part(&mut field, limits.max_file_bytes).await?;
                form.files.push(UploadedFile {
                    name: file_name,
                    declared_type,
                    bytes,
                });
            }
            _ => {
                return Err(bad_request(
                    "The form may only have a `body` part and `files` parts.",
                ));
            }
        }
    }
    Ok(form)
}

fn bad_request(detail: &str) -> AppError {
    AppError::BadRequest(detail.to_string())
}

/// The part's file name: `filename*` (RFC 5987, must be UTF-8) when sent, else `filename`;
/// `None` for a part that names no file.
fn file_name(field: &Field) -> Result<Option<String>, AppError> {
    let Some(disposition) = field.content_disposition() else {
        return Ok(None);
    };
    if let Some(extended) = disposition.get_filename_ext() {
        return String::from_utf8(extended.value.clone())
            .map(Some)
            .map_err(|_| bad_request("A file name must be UTF-8."));
    }
    Ok(disposition.get_filename().map(str::to_string))
}

/// The `body` text: UTF-8, without NUL or other C0 controls (tab and line breaks are text).
fn body_text(bytes: Bytes) -> Result<String, AppError> {
    let invalid = |message: &str| AppError::Validation(vec![FieldError::new(BODY_PART, message)]);
    let text = String::from_utf8(Vec::from(bytes)).map_err(|_| invalid("must be UTF-8 text"))?;
    if text.chars().all(super::text_input::is_allowed) {
        Ok(text)
    } else {
        Err(invalid("must not contain control characters (such as NUL)"))
    }
}

/// The first allocation of a part's buffer (it doubles from here, up to the part's limit).
const INITIAL_CAPACITY: usize = 16 * 1024;

/// A part's bytes in one buffer, or 413 as soon as they would pass `limit` (nothing more of the
/// request is read). The buffer is a `Vec` grown with `reserve_exact` to at most `limit`
/// (`BytesMut::reserve` may double past it) and handed over as `Bytes` without a copy.
async fn read_part(field: &mut Field, limit: usize) -> Result<Bytes, AppError> {
    let mut buffer: Vec<u8> = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(multipart_error)?;
        let needed = buffer.len().saturating_add(chunk.len());
        if needed > limit {
            return Err(AppError::PayloadTooLarge { limit });
        }
        if needed > buffer.capacity() {
            let grown = buffer
                .capacity()
                .saturating_mul(2)
                .max(INITIAL_CAPACITY)
                .max(needed)
                .min(limit);
            buffer.reserve_exact(grown - buffer.len());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}

/// A multipart reading error at the edge: the edge's own refusals (total size, deadline) keep
/// their status; everything else about the stream is a malformed request (400).
fn multipart_error(error: MultipartError) -> AppError {
    match error {
        MultipartError::Payload(ref payload) => match BodyRefusal::of(payload) {
            Some(refusal) => refusal.into(),
            None if matches!(payload, PayloadError::Overflow) => {
                bad_request("A part's headers are too large.")
            }
            None => bad_request("The request body could not be read."),
        },
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible
        | MultipartError::BoundaryMissing => {
            bad_request("The body must be multipart/form-data with a boundary.")
        }
        MultipartError::Nested => bad_request("Nested multipart bodies are not accepted."),
        MultipartError::ContentDispositionMissing
        | MultipartError::ContentDispositionNameMissing => {
            bad_request("Each part needs a Content-Disposition with a name.")
        }
        _ => bad_request("The multipart body is malformed."),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use actix_web::http::header::HeaderValue;
    use futures_util::stream;

    const BOUNDARY: &str = "XyZ123";

    fn limits() -> UploadLimits {
        UploadLimits {
            max_files: 2,
            max_file_bytes: 100,
            max_body_bytes: 20,
        }
    }

    fn headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}")).unwrap(),
        );
        headers
    }

    /// (name, filename, content type, content)
    type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

    fn body(parts: &[Part<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, filename, ct, content) in parts {
            out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            let mut cd = format!("Content-Disposition: form-data; name=\"{name}\"");
            if let Some(f) = filename {
                cd.push_str(&format!("; filename=\"{f}\""));
            }
            out.extend_from_slice(cd.as_bytes());
            out.extend_from_slice(b"\r\n");
            if let Some(ct) = ct {
                out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(content);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        out
    }

    /// The body in 7-byte chunks (parts span chunks), followed by `tail` (an error or more).
    fn multipart(raw: Vec<u8>, tail: Vec<Result<Bytes, PayloadError>>) -> Multipart {
        let chunks: Vec<Result<Bytes, PayloadError>> = raw
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .chain(tail)
            .collect();
        Multipart::new(&headers(), stream::iter(chunks))
    }

    async fn read(parts: &[Part<'_>]) -> Result<MessageForm, AppError> {
        read_message_form(multipart(body(parts), vec![]), limits()).await
    }

    fn status(error: &AppError) -> u16 {
        use actix_web::ResponseError;
        error.status_code().as_u16()
    }

    #[actix_web::test]
    async fn a_body_and_files_are_read() {
        let form = read(&[
            ("body", None, None, "hello\nthere".as_bytes()),
            ("files", Some("a.png"), Some("image/png"), &[1u8; 100]),
            ("files", Some("b.txt"), None, b"text"),
        ])
        .await
        .unwrap();
        assert_eq!(form.body.as_deref(), Some("hello\nthere"));
        assert_eq!(form.files.len(), 2);
        assert_eq!(form.files[0].name, "a.png");
        assert_eq!(form.files[0].declared_type.as_deref(), Some("image/png"));
        assert_eq!(&form.files[0].bytes[..], &[1u8; 100][..]);
        assert_eq!(form.files[1].declared_type, None);
        // The raw name is handed on as sent: attachment::validate_name refuses it later.
        let form = read(&[("files", Some("../../etc/passwd"), None, b"x")])
            .await
            .unwrap();
        assert_eq!(form.files[0].name, "../../etc/passwd");
        // An empty file input is skipped.
        let form = read(&[("files", Some(""), Some("application/octet-stream"), b"")])
            .await
            .unwrap();
        assert!(form.files.is_empty());
    }

    #[actix_web::test]
    async fn a_file_over_its_limit_is_413_without_reading_further() {
        // 200 KiB sent; the parser reads ahead at most its 64 KiB buffer, never the rest, and a
        // failure later in the stream (had it been reached) would have been a 400.
        let raw = body(&[("files", Some("a.bin"), None, &[7u8; 200 * 1024])]);
        let total = raw.len();
        let pulled = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let counter = pulled.clone();
        let chunks = raw
            .chunks(1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .chain([Err(PayloadError::Incomplete(None))])
            .collect::<Vec<_>>();
        let stream = stream::iter(chunks).inspect(move |chunk| {
            if let Ok(c) = chunk {
                counter.set(counter.get() + c.len());
            }
        });
        let error = read_message_form(Multipart::new(&headers(), stream), limits())
            .await
            .unwrap_err();
        assert!(
            matches!(error, AppError::PayloadTooLarge { limit: 100 }),
            "{error:?}"
        );
        assert!(pulled.get() < 70 * 1024, "{} of {total} read", pulled.get());
        let error = read(&[("body", None, None, &[b'a'; 21])])
            .await
            .unwrap_err();
        assert!(matches!(error, AppError::PayloadTooLarge { limit: 20 }));
    }

    #[actix_web::test]
    async fn a_file_past_the_count_is_413() {
        let error = read(&[
            ("files", Some("1"), None, b"1"),
            ("files", Some("2"), None, b"2"),
            ("files", Some("3"), None, b"3"),
        ])
        .await
        .unwrap_err();
        assert!(matches!(error, AppError::TooManyFiles { max: 2 }));
        assert_eq!(status(&error), 413);
    }

    #[actix_web::test]
    async fn shape_errors_are_400_and_bad_text_422() {
        for parts in [
            vec![("other", None, None, &b"x"[..])],
            vec![
                ("body", None, None, &b"a"[..]),
                ("body", None, None, &b"b"[..]),
            ],
            vec![("body", Some("b.txt"), None, &b"a"[..])],
            vec![("files", None, None, &b"no name"[..])],
            vec![("files", Some(""), None, &b"content"[..])],
        ] {
            let error = read(&parts).await.unwrap_err();
            assert_eq!(status(&error), 400, "{parts:?}: {error:?}");
        }
        for text in [&[0xff, 0xfe][..], b"nul\0"] {
            let error = read(&[("body", None, None, text)]).await.unwrap_err();
            assert!(
                matches!(&error, AppError::Validation(e) if e[0].field == "body"),
                "{error:?}"
            );
        }
        let mut raw = body(&[("files", Some("a"), None, b"abc")]);
        raw.truncate(raw.len() - 12);
        let error = read_message_form(multipart(raw, vec![]), limits())
            .await
            .unwrap_err();
        assert_eq!(status(&error), 400);
        let mut wrong = HeaderMap::new();
        wrong.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let error = read_message_form(
            Multipart::new(
                &wrong,
                stream::iter(Vec::<Result<Bytes, PayloadError>>::new()),
            ),
            limits(),
        )
        .await
        .unwrap_err();
        assert_eq!(status(&error), 400);
    }

    #[actix_web::test]
    async fn the_edge_refusals_keep_their_status() {
        let raw = body(&[("files", Some("a"), None, b"abc")]);
        for (refusal, expected) in [
            (BodyRefusal::TooLarge { limit: 9 }, 413),
            (BodyRefusal::Timeout, 408),
        ] {
            let cut = raw[..raw.len() / 2].to_vec();
            let error = read_message_form(multipart(cut, vec![Err(refusal.into())]), limits())
                .await
                .unwrap_err();
            assert_eq!(status(&error), expected, "{error:?}");
        }
    }

    #[test]
    fn form_data_is_recognised_by_its_essence() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Multipart/Form-Data ; boundary=x"),
        );
        assert!(is_form_data(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/mixed; boundary=x"),
        );
        assert!(!is_form_data(&h));
        assert!(!is_form_data(&HeaderMap::new()));
        assert_eq!(
            limits().total_body_limit(),
            2 * (100 + PART_OVERHEAD) + 20 + PART_OVERHEAD
        );
    }
}
