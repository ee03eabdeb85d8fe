//! PLACEHOLDER until the multipart branch is merged.

use crate::error::AppError;

pub struct UploadLimits {
    pub max_files: usize,
    pub max_file_bytes: usize,
    pub max_body_bytes: usize,
}

pub struct UploadedFile {
    pub name: String,
    pub declared_type: Option<String>,
    pub bytes: bytes::Bytes,
}

pub struct MessageForm {
    pub body: Option<String>,
    pub files: Vec<UploadedFile>,
}

pub async fn read_message_form(
    _payload: actix_multipart::Multipart,
    _limits: UploadLimits,
) -> Result<MessageForm, AppError> {
    Err(AppError::UnsupportedMediaType)
}
