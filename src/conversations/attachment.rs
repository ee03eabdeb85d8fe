//! PLACEHOLDER until the attachment validation branch is merged.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentType {
    Png,
    Jpeg,
    Webp,
    Gif,
    Pdf,
    Text,
}

impl AttachmentType {
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
    pub fn parse(s: &str) -> Option<AttachmentType> {
        [
            AttachmentType::Png,
            AttachmentType::Jpeg,
            AttachmentType::Webp,
            AttachmentType::Gif,
            AttachmentType::Pdf,
            AttachmentType::Text,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

pub struct AttachmentName(String);
impl AttachmentName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("too large")]
    TooLarge { limit: usize },
    #[error("too many")]
    TooMany { max: usize },
    #[error("bad name")]
    BadName(String),
    #[error("type")]
    TypeNotAllowed(String),
}

impl From<AttachmentError> for crate::error::AppError {
    fn from(e: AttachmentError) -> Self {
        match e {
            AttachmentError::TooLarge { limit } => {
                crate::error::AppError::PayloadTooLarge { limit }
            }
            other => crate::error::AppError::Validation(vec![crate::error::FieldError::new(
                "files",
                other.to_string(),
            )]),
        }
    }
}

pub fn validate_name(raw: &str) -> Result<AttachmentName, AttachmentError> {
    Ok(AttachmentName(raw.to_string()))
}

pub fn sniff(
    _content: &[u8],
    _declared: Option<&str>,
    allowed: &[AttachmentType],
) -> Result<AttachmentType, AttachmentError> {
    allowed
        .first()
        .copied()
        .ok_or(AttachmentError::TypeNotAllowed("none".into()))
}
