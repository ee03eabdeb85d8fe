//! Message attachments: which files are accepted, decided from their bytes alone.
//!
//! Owns the attachment vocabulary ([`AttachmentType`], [`AttachmentName`], [`AttachmentError`])
//! and the two checks every upload passes before anything stores it: [`validate_name`] and
//! [`sniff`]. Pure functions over bytes and strings: no actix, no database, no I/O, and no
//! allocation over the content (every scan is in place and O(n)). Reading the multipart request
//! is `http::multipart`'s job; serving a file (attachment disposition, sniffed type, `nosniff`,
//! CSP `sandbox`) is the route's.
//!
//! How a file's type is decided ([`sniff`]):
//! 1. the type comes from the content's magic bytes (`infer`); plain text is what `infer` does
//!    not recognise and is valid UTF-8 without NUL or C0 controls other than tab, line feed,
//!    form feed and carriage return. An empty file is refused;
//! 2. the type must be in the allowed list (ATTACHMENT_TYPES);
//! 3. a declared part type (other than none or `application/octet-stream`) must name the sniffed
//!    type; markup and script types (`text/html`, SVG, XML, JavaScript …) are always refused;
//! 4. the structure must hold up: images decode their header (`imagesize`: 1..=16384 pixels
//!    each way); PNG chunks are walked (lengths, CRCs) to `IEND` and nothing may follow it; a
//!    WebP's RIFF length must cover exactly the file; a GIF ends with its `0x3B` trailer, a JPEG
//!    with `FFD9` (trailing zero padding allowed); a PDF starts with `%PDF-` and has `%%EOF` in
//!    its last KiB;
//! 5. no active content: see [`ACTIVE_MARKERS`] and [`HEAD_ONLY_MARKERS`].
//!
//! Content that `infer` reads as one type but fails that type's checks is refused, never
//! re-read as another type (a text file that starts with `GIF` is refused): content two parsers
//! read differently is what a polyglot is.

use crate::error::{AppError, FieldError};

/// The file types an attachment may have (the ATTACHMENT_TYPES setting lists their names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachmentType {
    Png,
    Jpeg,
    Webp,
    Gif,
    Pdf,
    Text,
}

impl AttachmentType {
    /// Every type, in the setting's default order.
    pub const ALL: [AttachmentType; 6] = [
        AttachmentType::Png,
        AttachmentType::Jpeg,
        AttachmentType::Webp,
        AttachmentType::Gif,
        AttachmentType::Pdf,
        AttachmentType::Text,
    ];

    /// The type's name in ATTACHMENT_TYPES.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentType::Png => "png",
            AttachmentType::Jpeg => "jpeg",
            AttachmentType::Webp => "webp",
            AttachmentType::Gif => "gif",
            AttachmentType::Pdf => "pdf",
            AttachmentType::Text => "text",
        }
    }

    /// The `Content-Type` a stored file of this type is served with.
    pub fn mime(self) -> &'static str {
        match self {
            AttachmentType::Png => "image/png",
            AttachmentType::Jpeg => "image/jpeg",
            AttachmentType::Webp => "image/webp",
            AttachmentType::Gif => "image/gif",
            AttachmentType::Pdf => "application/pdf",
            AttachmentType::Text => "text/plain; charset=utf-8",
        }
    }

    /// File-name extensions of this type (lower case, without the dot), the usual one first.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            AttachmentType::Png => &["png"],
            AttachmentType::Jpeg => &["jpg", "jpeg"],
            AttachmentType::Webp => &["webp"],
            AttachmentType::Gif => &["gif"],
            AttachmentType::Pdf => &["pdf"],
            AttachmentType::Text => &["txt", "text", "log", "csv", "md"],
        }
    }

    /// A name from the ATTACHMENT_TYPES setting (case-insensitive, surrounding blanks ignored):
    /// `png`, `jpeg` (or `jpg`), `webp`, `gif`, `pdf`, `text` (or `txt`).
    pub fn parse(name: &str) -> Option<AttachmentType> {
        let name = name.trim();
        let found = |n: &str| name.eq_ignore_ascii_case(n);
        if found("png") {
            Some(AttachmentType::Png)
        } else if found("jpeg") || found("jpg") {
            Some(AttachmentType::Jpeg)
        } else if found("webp") {
            Some(AttachmentType::Webp)
        } else if found("gif") {
            Some(AttachmentType::Gif)
        } else if found("pdf") {
            Some(AttachmentType::Pdf)
        } else if found("text") || found("txt") {
            Some(AttachmentType::Text)
        } else {
            None
        }
    }

    /// Whether a declared part type (its essence, lower case) names this type.
    fn accepts_declared(self, essence: &str) -> bool {
        match self {
            AttachmentType::Png => matches!(essence, "image/png" | "image/apng" | "image/x-png"),
            AttachmentType::Jpeg => {
                matches!(essence, "image/jpeg" | "image/jpg" | "image/pjpeg")
            }
            AttachmentType::Webp => essence == "image/webp",
            AttachmentType::Gif => essence == "image/gif",
            AttachmentType::Pdf => matches!(essence, "application/pdf" | "application/x-pdf"),
            // What browsers and OSes declare for the text files we serve as text/plain.
            AttachmentType::Text => matches!(
                essence,
                "text/plain"
                    | "text/csv"
                    | "text/markdown"
                    | "text/x-markdown"
                    | "text/tab-separated-values"
                    | "text/x-log"
            ),
        }
    }
}

impl std::fmt::Display for AttachmentType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an upload was refused. No message ever quotes the file's content; names and declared
/// types appear only as the fixed words below.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("at most {max} files may be attached to a message")]
    TooMany { max: usize },
    #[error("the file name {0}")]
    BadName(String),
    #[error("files of type {0} are not accepted")]
    TypeNotAllowed(String),
    #[error("the declared type {declared} does not match the file's content ({sniffed})")]
    TypeMismatch { declared: String, sniffed: String },
    #[error("the file is not a valid {0}")]
    Undecodable(String),
    #[error("the file contains markup or script that a browser could run")]
    ActiveContent,
    #[error("the upload is malformed: {0}")]
    Malformed(String),
}

impl AttachmentError {
    /// The edge error for this refusal, naming `field` (e.g. `files[1]`) on a 422: TooLarge and
    /// TooMany are 413, Malformed 400, every other refusal 422.
    pub fn to_app_error(&self, field: &str) -> AppError {
        match self {
            AttachmentError::TooLarge { limit } => AppError::PayloadTooLarge { limit: *limit },
            AttachmentError::TooMany { max } => AppError::TooManyFiles { max: *max },
            AttachmentError::Malformed(_) => AppError::BadRequest(capitalised(self)),
            _ => AppError::Validation(vec![FieldError::new(field, self.to_string())]),
        }
    }
}

impl From<AttachmentError> for AppError {
    fn from(error: AttachmentError) -> AppError {
        error.to_app_error("files")
    }
}

fn capitalised(error: &AttachmentError) -> String {
    let text = error.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => text,
    }
}

/// A declared type as it may appear in a message: a plain MIME token, or a placeholder.
fn shown_type(essence: &str) -> String {
    let plain = !essence.is_empty()
        && essence.len() <= 100
        && essence
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'+' | b'-' | b'_'));
    if plain {
        essence.to_string()
    } else {
        "(unreadable)".to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// The longest file name, in UTF-8 bytes (what most file systems allow).
pub const MAX_NAME_BYTES: usize = 255;

/// A file name that is safe to store and to offer back as a download name: 1..=255 bytes, no
/// path separator, no control or invisible direction-changing character, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentName(String);

impl AttachmentName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }

    /// The name to offer in `Content-Disposition`: the name itself when its extension belongs to
    /// `ty`, else the name with the type's usual extension appended (`page.html` stored as PNG is
    /// offered as `page.html.png`), so that the saved file opens as what it was checked to be.
    pub fn for_download(&self, ty: AttachmentType) -> String {
        let matches = self.0.rsplit_once('.').is_some_and(|(stem, ext)| {
            !stem.is_empty() && ty.extensions().iter().any(|e| ext.eq_ignore_ascii_case(e))
        });
        if matches {
            self.0.clone()
        } else {
            let ext = ty.extensions().first().copied().unwrap_or("bin");
            format!("{}.{ext}", self.0)
        }
    }
}

impl std::fmt::Display for AttachmentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters a name may not contain: path separators, NUL and every control character (C0,
/// DEL, C1), the Unicode line and paragraph separators, the bidirectional overrides, embeddings,
/// isolates and marks (which make `evil` + U+202E + `fdp.exe` display as `evilexe.pdf`), and the BOM.
fn forbidden_in_name(c: char) -> bool {
    c == '/'
        || c == '\\'
        || c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{FEFF}'
        )
}

/// Checks a file name as the client sent it.
///
/// Surrounding whitespace is *normalised*, not refused: it is trimmed (browsers and operating
/// systems disagree about it and nobody sees it), and the rest must be 1..=255 bytes. Inner
/// spaces are kept. Unicode normalisation (NFC) is not required: the name is kept as sent.
pub fn validate_name(raw: &str) -> Result<AttachmentName, AttachmentError> {
    let bad = |why: &str| Err(AttachmentError::BadName(why.to_string()));
    let name = raw.trim();
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("is longer than 255 bytes");
    }
    if name.contains(['/', '\\']) {
        return bad("must not contain a path separator (/ or \\)");
    }
    if name.chars().any(forbidden_in_name) {
        return bad("must not contain control or text-direction characters");
    }
    if name == "." || name == ".." {
        return bad("must not be . or ..");
    }
    Ok(AttachmentName(name.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Content
// ---------------------------------------------------------------------------------------------

/// Largest width and height, in pixels, of an image attachment.
pub const MAX_IMAGE_SIDE: usize = 16384;

/// How far into a file the head-only markers are looked for: the WHATWG MIME-sniffing standard's
/// resource header (1445 bytes), which also covers Acrobat's "`%PDF-` within the first 1024
/// bytes".
pub const HEAD_BYTES: usize = 1445;

/// Markup a browser (or a plug-in) acts on, refused anywhere in any file: `<` + the name
/// (ASCII case-insensitive) + a tag-ending byte (whitespace, `>` or `/`). These are at least five
/// bytes before the terminator, so random compressed data hits one about once in 2^17 files of
/// 5 MiB.
pub const ACTIVE_MARKERS: &[&[u8]] = &[
    b"script",
    b"html",
    b"!doctype",
    b"iframe",
    b"body",
    b"object",
    b"embed",
    b"frame",
];

/// Markers refused in the first [`HEAD_BYTES`] of every file and anywhere in plain text: shorter
/// or common in legitimate metadata (XMP packets in images and PDFs may start with `<?xml`),
/// and what the sniffers of browsers and XML/SVG viewers look at the start of a file for.
pub const HEAD_ONLY_MARKERS: &[&[u8]] = &[b"svg", b"?xml", b"head", b"meta", b"link", b"style"];

/// Declared types that are always refused: markup and script, whatever the content.
const ACTIVE_DECLARED: &[&str] = &[
    "text/html",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "text/ecmascript",
    "application/ecmascript",
    "text/vbscript",
    "text/x-component",
    "multipart/x-mixed-replace",
];

/// The type of `content`, if it is an acceptable attachment of one of the `allowed` types whose
/// declared part type (if any) agrees. See the module documentation for every rule.
pub fn sniff(
    content: &[u8],
    declared: Option<&str>,
    allowed: &[AttachmentType],
) -> Result<AttachmentType, AttachmentError> {
    let declared = declared
        .map(|d| d.split(';').next().unwrap_or_default().trim())
        .map(str::to_ascii_lowercase)
        .filter(|d| !d.is_empty() && d != "application/octet-stream");
    if let Some(d) = &declared
        && (ACTIVE_DECLARED.contains(&d.as_str()) || d.ends_with("+xml"))
    {
        return Err(AttachmentError::TypeNotAllowed(shown_type(d)));
    }
    if content.is_empty() {
        return Err(AttachmentError::Undecodable("file: it is empty".into()));
    }
    let sniffed = detect(content)?;
    if !allowed.contains(&sniffed) {
        return Err(AttachmentError::TypeNotAllowed(
            sniffed.as_str().to_string(),
        ));
    }
    if let Some(d) = &declared
        && !sniffed.accepts_declared(d)
    {
        return Err(AttachmentError::TypeMismatch {
            declared: shown_type(d),
            sniffed: sniffed.as_str().to_string(),
        });
    }
    check_structure(sniffed, content)?;
    if has_active_content(sniffed, content) {
        return Err(AttachmentError::ActiveContent);
    }
    Ok(sniffed)
}

/// The type from the magic bytes; plain text when `infer` knows nothing and the bytes are text.
fn detect(content: &[u8]) -> Result<AttachmentType, AttachmentError> {
    match infer::get(content) {
        Some(kind) => match kind.mime_type() {
            "image/png" | "image/apng" => Ok(AttachmentType::Png),
            "image/jpeg" => Ok(AttachmentType::Jpeg),
            "image/webp" => Ok(AttachmentType::Webp),
            "image/gif" => Ok(AttachmentType::Gif),
            "application/pdf" => Ok(AttachmentType::Pdf),
            "text/html" | "text/xml" => Err(AttachmentError::ActiveContent),
            // infer's own static name for the type, never the content.
            other => Err(AttachmentError::TypeNotAllowed(other.to_string())),
        },
        None if is_plain_text(content) => Ok(AttachmentType::Text),
        None => Err(AttachmentError::TypeNotAllowed("unknown".into())),
    }
}

/// Valid UTF-8 with no NUL and no C0 control other than tab, line feed, form feed and carriage
/// return.
pub fn is_plain_text(content: &[u8]) -> bool {
    std::str::from_utf8(content).is_ok()
        && content
            .iter()
            .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
}

fn undecodable(ty: AttachmentType, why: &str) -> AttachmentError {
    let what = match ty {
        AttachmentType::Png => "PNG image",
        AttachmentType::Jpeg => "JPEG image",
        AttachmentType::Webp => "WebP image",
        AttachmentType::Gif => "GIF image",
        AttachmentType::Pdf => "PDF document",
        AttachmentType::Text => "text file",
    };
    AttachmentError::Undecodable(format!("{what}: {why}"))
}

fn check_structure(ty: AttachmentType, content: &[u8]) -> Result<(), AttachmentError> {
    match ty {
        AttachmentType::Png => {
            check_png_chunks(content)?;
            check_image_header(ty, content)
        }
        AttachmentType::Jpeg => {
            check_image_header(ty, content)?;
            let end = trim_trailing_zeros(content);
            if end.ends_with(&[0xFF, 0xD9]) {
                Ok(())
            } else {
                Err(undecodable(
                    ty,
                    "it does not end with the end-of-image marker",
                ))
            }
        }
        AttachmentType::Gif => {
            check_image_header(ty, content)?;
            if content.last() == Some(&0x3B) {
                Ok(())
            } else {
                Err(undecodable(ty, "it does not end with the GIF trailer"))
            }
        }
        AttachmentType::Webp => {
            check_riff_length(content)?;
            check_image_header(ty, content)
        }
        AttachmentType::Pdf => {
            if !content.starts_with(b"%PDF-") {
                return Err(undecodable(ty, "it does not start with %PDF-"));
            }
            let tail = &content[content.len().saturating_sub(1024)..];
            if find(tail, b"%%EOF").is_some() {
                Ok(())
            } else {
                Err(undecodable(ty, "there is no %%EOF at its end"))
            }
        }
        // `detect` only says text for text.
        AttachmentType::Text => Ok(()),
    }
}

fn trim_trailing_zeros(content: &[u8]) -> &[u8] {
    let end = content.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &content[..end]
}

/// The image's header decodes, and its dimensions are 1..=MAX_IMAGE_SIDE each.
fn check_image_header(ty: AttachmentType, content: &[u8]) -> Result<(), AttachmentError> {
    let expected = match ty {
        AttachmentType::Png => imagesize::ImageType::Png,
        AttachmentType::Jpeg => imagesize::ImageType::Jpeg,
        AttachmentType::Webp => imagesize::ImageType::Webp,
        AttachmentType::Gif => imagesize::ImageType::Gif,
        AttachmentType::Pdf | AttachmentType::Text => return Ok(()),
    };
    match imagesize::image_type(content) {
        Ok(found) if found == expected => {}
        _ => return Err(undecodable(ty, "its header does not decode")),
    }
    let size =
        imagesize::blob_size(content).map_err(|_| undecodable(ty, "its header does not decode"))?;
    let side = 1..=MAX_IMAGE_SIDE;
    if side.contains(&size.width) && side.contains(&size.height) {
        Ok(())
    } else {
        Err(undecodable(
            ty,
            "its width and height must be between 1 and 16384 pixels",
        ))
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Walks the PNG's chunks from the signature to `IEND`: each length fits in the file, each type
/// is four ASCII letters, each CRC matches, `IHDR` comes first, and nothing follows `IEND` (an
/// appended payload is how PNG polyglots are made).
fn check_png_chunks(content: &[u8]) -> Result<(), AttachmentError> {
    let bad = |why: &str| Err(undecodable(AttachmentType::Png, why));
    let Some(mut rest) = content.strip_prefix(PNG_SIGNATURE) else {
        return bad("its signature is wrong");
    };
    let mut first = true;
    loop {
        let Some((header, after)) = rest.split_first_chunk::<8>() else {
            return bad("it is truncated (no IEND chunk)");
        };
        let [l0, l1, l2, l3, t0, t1, t2, t3] = *header;
        let length = u32::from_be_bytes([l0, l1, l2, l3]);
        let kind = [t0, t1, t2, t3];
        if length > 0x7FFF_FFFF || !kind.iter().all(u8::is_ascii_alphabetic) {
            return bad("a chunk header is invalid");
        }
        let length = length as usize;
        if after.len() < length.saturating_add(4) {
            return bad("it is truncated");
        }
        let (data, after) = after.split_at(length);
        let (crc, after) = after.split_at(4);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&kind);
        hasher.update(data);
        if hasher.finalize().to_be_bytes() != crc {
            return bad("a chunk's checksum is wrong");
        }
        if first && (&kind != b"IHDR" || length != 13) {
            return bad("it does not start with an IHDR chunk");
        }
        first = false;
        if &kind == b"IEND" {
            return if after.is_empty() {
                Ok(())
            } else {
                bad("data follows its IEND chunk")
            };
        }
        rest = after;
    }
}

/// A WebP's RIFF container length covers exactly the file (plus the one pad byte of an odd
/// length): nothing can be appended after the image.
fn check_riff_length(content: &[u8]) -> Result<(), AttachmentError> {
    let bad = || {
        Err(undecodable(
            AttachmentType::Webp,
            "its RIFF length is wrong",
        ))
    };
    let Some((header, _)) = content.split_first_chunk::<12>() else {
        return bad();
    };
    let [r, i, f, f2, s0, s1, s2, s3, ..] = *header;
    if [r, i, f, f2] != *b"RIFF" || header[8..12] != *b"WEBP" {
        return bad();
    }
    let size = u32::from_le_bytes([s0, s1, s2, s3]) as usize;
    let expected = size.saturating_add(8);
    if content.len() == expected || (size & 1 == 1 && content.len() == expected + 1) {
        Ok(())
    } else {
        bad()
    }
}

/// Whether `content` carries markup a browser sniffer would act on: the head-only markers in the
/// first [`HEAD_BYTES`] (anywhere in plain text), the active markers anywhere, and `%PDF-` in
/// the head of anything that is not a PDF (Acrobat opens a file with that header anywhere in
/// its first KiB).
pub fn has_active_content(ty: AttachmentType, content: &[u8]) -> bool {
    let head = &content[..content.len().min(HEAD_BYTES)];
    let head_scope = if ty == AttachmentType::Text {
        content
    } else {
        head
    };
    if ty != AttachmentType::Pdf && find(head, b"%PDF-").is_some() {
        return true;
    }
    any_tag(content, ACTIVE_MARKERS) || any_tag(head_scope, HEAD_ONLY_MARKERS)
}

/// Any `<name` (ASCII case-insensitive) followed by whitespace, `>` or `/`, in one pass over
/// the `<` bytes of `content`.
fn any_tag(content: &[u8], names: &[&[u8]]) -> bool {
    content.iter().enumerate().any(|(i, &b)| {
        b == b'<'
            && names.iter().any(|name| {
                let start = i + 1;
                let end = start + name.len();
                content
                    .get(start..end)
                    .is_some_and(|found| found.eq_ignore_ascii_case(name))
                    && content.get(end).is_some_and(|&t| {
                        matches!(t, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | b'>' | b'/')
                    })
            })
    })
}

/// The first position of `needle` in `haystack` (short needles: a plain window scan).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    const ALL: &[AttachmentType] = &AttachmentType::ALL;

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(kind);
        hasher.update(data);
        out.extend_from_slice(&hasher.finalize().to_be_bytes());
        out
    }

    fn png_with(extra: &[Vec<u8>]) -> Vec<u8> {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&1u32.to_be_bytes());
        ihdr.extend_from_slice(&1u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        let mut out = PNG_SIGNATURE.to_vec();
        out.extend(chunk(b"IHDR", &ihdr));
        for c in extra {
            out.extend_from_slice(c);
        }
        // A zlib stream of one filtered grey pixel (stored block).
        out.extend(chunk(
            b"IDAT",
            &[
                0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01,
            ],
        ));
        out.extend(chunk(b"IEND", &[]));
        out
    }

    fn png() -> Vec<u8> {
        png_with(&[])
    }

    fn gif() -> Vec<u8> {
        let mut out = b"GIF89a".to_vec();
        out.extend_from_slice(&[1, 0, 1, 0, 0x80, 0, 0]); // 1x1, global colour table of 2
        out.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
        out.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]); // image descriptor
        out.extend_from_slice(&[2, 2, 0x44, 0x01, 0]); // LZW data
        out.push(0x3B);
        out
    }

    fn jpeg() -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        // APP0 JFIF
        out.extend_from_slice(&[0xFF, 0xE0, 0, 16]);
        out.extend_from_slice(b"JFIF\0");
        out.extend_from_slice(&[1, 1, 0, 0, 1, 0, 1, 0, 0]);
        // SOF0: 8 bits, 2 high, 3 wide, 1 component
        out.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8, 0, 2, 0, 3, 1, 1, 0x11, 0]);
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }

    fn webp() -> Vec<u8> {
        // VP8L lossless, 1x1.
        let vp8l: &[u8] = &[
            0x2f, 0x00, 0x00, 0x00, 0x00, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xfe, 0x07, 0x00,
        ];
        let mut body = b"WEBP".to_vec();
        body.extend_from_slice(b"VP8L");
        body.extend_from_slice(&(vp8l.len() as u32).to_le_bytes());
        body.extend_from_slice(vp8l);
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend(body);
        out
    }

    fn pdf() -> Vec<u8> {
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
          2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n\
          trailer << /Root 1 0 R >>\n%%EOF\n"
            .to_vec()
    }

    #[test]
    fn valid_fixtures_are_accepted_with_their_type() {
        for (content, declared, ty) in [
            (png(), Some("image/png"), AttachmentType::Png),
            (jpeg(), Some("image/jpeg"), AttachmentType::Jpeg),
            (gif(), Some("image/gif"), AttachmentType::Gif),
            (webp(), Some("image/webp"), AttachmentType::Webp),
            (pdf(), Some("application/pdf"), AttachmentType::Pdf),
            (
                "hello\r\nwörld\t€\x0c 1 < 2\n".as_bytes().to_vec(),
                Some("text/plain; charset=utf-8"),
                AttachmentType::Text,
            ),
            (png(), None, AttachmentType::Png),
            (png(), Some("application/octet-stream"), AttachmentType::Png),
        ] {
            assert_eq!(sniff(&content, declared, ALL), Ok(ty), "{ty}");
        }
        let mut padded = jpeg();
        padded.extend_from_slice(&[0, 0, 0]);
        assert_eq!(sniff(&padded, None, ALL), Ok(AttachmentType::Jpeg));
    }

    #[test]
    fn a_png_renamed_pdf_is_a_mismatch() {
        let error = sniff(&png(), Some("application/pdf"), ALL).unwrap_err();
        assert_eq!(
            error,
            AttachmentError::TypeMismatch {
                declared: "application/pdf".into(),
                sniffed: "png".into()
            }
        );
        assert_eq!(
            sniff(&jpeg(), Some("image/png"), ALL),
            Err(AttachmentError::TypeMismatch {
                declared: "image/png".into(),
                sniffed: "jpeg".into()
            })
        );
        assert!(matches!(
            AppError::from(error),
            AppError::Validation(ref e) if e[0].field == "files"
        ));
    }

    #[test]
    fn declared_markup_types_are_always_refused() {
        for declared in [
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "image/svg+xml",
            "application/foo+xml",
        ] {
            for content in [png(), b"just text".to_vec()] {
                assert!(
                    matches!(
                        sniff(&content, Some(declared), ALL),
                        Err(AttachmentError::TypeNotAllowed(_))
                    ),
                    "{declared}"
                );
            }
        }
    }

    #[test]
    fn polyglots_are_refused() {
        // PNG + HTML in a text chunk.
        let html = png_with(&[chunk(b"tEXt", b"Comment\0<html><script>alert(1)</script>")]);
        assert_eq!(
            sniff(&html, Some("image/png"), ALL),
            Err(AttachmentError::ActiveContent)
        );
        // PNG + HTML appended after IEND.
        let mut appended = png();
        appended.extend_from_slice(b"<script>alert(1)</script>");
        assert!(sniff(&appended, None, ALL).is_err());
        let mut appended = png();
        appended.extend_from_slice(b"garbage");
        assert!(matches!(
            sniff(&appended, None, ALL),
            Err(AttachmentError::Undecodable(_))
        ));
        // GIF/JS: a comment extension carrying a script tag, deep in the file.
        let mut gif_js = gif();
        gif_js.pop();
        gif_js.extend_from_slice(&[0x21, 0xFE]);
        let filler = [b'a'; 3000];
        for part in filler.chunks(255) {
            gif_js.push(part.len() as u8);
            gif_js.extend_from_slice(part);
        }
        gif_js.push(11);
        gif_js.extend_from_slice(b"<SCRIPT>x()");
        gif_js.extend_from_slice(&[0, 0x3B]);
        assert_eq!(
            sniff(&gif_js, None, ALL),
            Err(AttachmentError::ActiveContent)
        );
        // A text file that is HTML, or that a viewer would read as a PDF.
        assert_eq!(
            sniff(b"notes\n<svg onload=alert(1)>", None, ALL),
            Err(AttachmentError::ActiveContent)
        );
        assert_eq!(
            sniff(b"<!DOCTYPE html><p>", None, ALL),
            Err(AttachmentError::ActiveContent)
        );
        assert!(sniff(b"hello %PDF-1.4 trailer %%EOF", None, ALL).is_err());
        // A JPEG with a PDF header in its first KiB.
        let mut jpeg_pdf = jpeg();
        jpeg_pdf.splice(
            2..2,
            [
                0xFF, 0xFE, 0, 12, b'%', b'P', b'D', b'F', b'-', b'1', b'.', b'4', b' ', b' ',
            ],
        );
        assert!(sniff(&jpeg_pdf, None, ALL).is_err());
        // A marker name without a tag ending is not markup.
        assert_eq!(
            sniff(b"a <bodyguard> note", None, ALL),
            Ok(AttachmentType::Text)
        );
    }

    #[test]
    fn broken_structures_are_refused() {
        let truncated = &png()[..30];
        assert!(matches!(
            sniff(truncated, None, ALL),
            Err(AttachmentError::Undecodable(_))
        ));
        let mut bad_crc = png();
        let at = bad_crc.len() - 20;
        bad_crc[at] ^= 1;
        assert!(matches!(
            sniff(&bad_crc, None, ALL),
            Err(AttachmentError::Undecodable(_))
        ));
        let mut gif_open = gif();
        gif_open.pop();
        assert!(matches!(
            sniff(&gif_open, None, ALL),
            Err(AttachmentError::Undecodable(_))
        ));
        let mut jpeg_open = jpeg();
        jpeg_open.truncate(jpeg_open.len() - 2);
        assert!(matches!(
            sniff(&jpeg_open, None, ALL),
            Err(AttachmentError::Undecodable(_))
        ));
        let mut jpeg_tail = jpeg();
        jpeg_tail.extend_from_slice(b"tail");
        assert!(matches!(
            sniff(&jpeg_tail, None, ALL),
            Err(AttachmentError::Undecodable(_))
        ));
        let mut webp_tail = webp();
        webp_tail.extend_from_slice(b"tail");
        assert!(matches!(
            sniff(&webp_tail, None, ALL),
            Err(AttachmentError::Undecodable(_))
        ));
        let mut pdf_no_eof = pdf();
        pdf_no_eof.truncate(pdf_no_eof.len() - 7);
        assert!(matches!(
            sniff(&pdf_no_eof, None, ALL),
            Err(AttachmentError::Undecodable(_))
        ));
        // Infer takes %PDF anywhere in the first KiB; we insist on offset 0.
        assert!(sniff(b" %PDF-1.4\n%%EOF", None, ALL).is_err());
        // Zero-sized and oversized images.
        let mut huge = png();
        huge[16..20].copy_from_slice(&20000u32.to_be_bytes());
        let fixed = chunk(b"IHDR", &huge[16..29]);
        huge[8..33].copy_from_slice(&fixed);
        assert!(matches!(
            sniff(&huge, None, ALL),
            Err(AttachmentError::Undecodable(_))
        ));
        let mut zero = gif();
        zero[6..8].copy_from_slice(&[0, 0]);
        assert!(matches!(
            sniff(&zero, None, ALL),
            Err(AttachmentError::Undecodable(_))
        ));
        assert!(matches!(
            sniff(b"", None, ALL),
            Err(AttachmentError::Undecodable(_))
        ));
    }

    #[test]
    fn types_outside_the_allowed_list_are_refused() {
        assert_eq!(
            sniff(&png(), None, &[AttachmentType::Jpeg]),
            Err(AttachmentError::TypeNotAllowed("png".into()))
        );
        assert!(matches!(
            sniff(b"PK\x03\x04rest of a zip", None, ALL),
            Err(AttachmentError::TypeNotAllowed(_))
        ));
        assert_eq!(
            sniff(b"bin\0ary", None, ALL),
            Err(AttachmentError::TypeNotAllowed("unknown".into()))
        );
        assert_eq!(
            sniff(b"ctl\x1b[31m", None, ALL),
            Err(AttachmentError::TypeNotAllowed("unknown".into()))
        );
        assert_eq!(
            sniff(&[0xff, 0xfe, 0x41], None, ALL),
            Err(AttachmentError::TypeNotAllowed("unknown".into()))
        );
    }

    #[test]
    fn names_are_checked_and_trimmed() {
        for bad in [
            "../../etc/passwd",
            "a/b",
            "a\\b",
            "",
            "   ",
            ".",
            "..",
            "nul\0.txt",
            "line\nbreak",
            "c1\u{85}x",
            "evil\u{202E}fdp.exe",
            "iso\u{2066}late",
            "ls\u{2028}ep",
            "del\u{7f}",
            "bom\u{feff}",
        ] {
            assert!(
                matches!(validate_name(bad), Err(AttachmentError::BadName(_))),
                "{bad:?}"
            );
        }
        assert!(validate_name(&"a".repeat(256)).is_err());
        assert_eq!(validate_name(&"é".repeat(127)).unwrap().as_str().len(), 254);
        assert_eq!(
            validate_name("  photo 1.png \t").unwrap().as_str(),
            "photo 1.png"
        );
        assert_eq!(validate_name("..hidden").unwrap().as_str(), "..hidden");
        assert_eq!(validate_name("👨‍👩‍👧.gif").unwrap().as_str(), "👨‍👩‍👧.gif");
        let error = validate_name("../../etc/passwd").unwrap_err();
        assert!(!error.to_string().contains("etc"));
    }

    #[test]
    fn download_names_carry_the_sniffed_extension() {
        let name = validate_name("page.html").unwrap();
        assert_eq!(name.for_download(AttachmentType::Png), "page.html.png");
        let name = validate_name("Photo.JPG").unwrap();
        assert_eq!(name.for_download(AttachmentType::Jpeg), "Photo.JPG");
        let name = validate_name(".png").unwrap();
        assert_eq!(name.for_download(AttachmentType::Png), ".png.png");
    }

    #[test]
    fn type_names_round_trip_and_errors_map_to_statuses() {
        for ty in AttachmentType::ALL {
            assert_eq!(AttachmentType::parse(ty.as_str()), Some(ty));
            assert_eq!(
                AttachmentType::parse(&format!(" {} ", ty.as_str().to_uppercase())),
                Some(ty)
            );
        }
        assert_eq!(AttachmentType::parse("jpg"), Some(AttachmentType::Jpeg));
        assert_eq!(AttachmentType::parse("svg"), None);
        assert_eq!(AttachmentType::Text.mime(), "text/plain; charset=utf-8");
        assert!(matches!(
            AppError::from(AttachmentError::TooLarge { limit: 5 }),
            AppError::PayloadTooLarge { limit: 5 }
        ));
        assert!(matches!(
            AppError::from(AttachmentError::TooMany { max: 4 }),
            AppError::TooManyFiles { max: 4 }
        ));
        assert!(matches!(
            AppError::from(AttachmentError::Malformed("x".into())),
            AppError::BadRequest(_)
        ));
        assert!(matches!(
            AttachmentError::ActiveContent.to_app_error("files[2]"),
            AppError::Validation(ref e) if e[0].field == "files[2]"
        ));
    }

    proptest! {
        #[test]
        fn sniff_and_validate_name_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            declared in proptest::option::of("[a-z/+;= -]{0,40}"),
            name in any::<String>(),
        ) {
            let _ = sniff(&bytes, declared.as_deref(), ALL);
            let _ = validate_name(&name);
            let _ = validate_name(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn sniff_never_panics_on_mutated_fixtures(
            which in 0usize..5,
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut content = [png(), jpeg(), gif(), webp(), pdf()][which].clone();
            let i = at.index(content.len());
            content[i] = byte;
            let keep = cut.index(content.len() + 1);
            content.truncate(keep.max(1));
            let _ = sniff(&content, None, ALL);
        }

        #[test]
        fn accepted_names_have_no_separator_or_control(name in any::<String>()) {
            if let Ok(ok) = validate_name(&name) {
                prop_assert!(!ok.as_str().chars().any(forbidden_in_name));
                prop_assert!(!ok.as_str().is_empty() && ok.as_str().len() <= MAX_NAME_BYTES);
            }
        }
    }
}
