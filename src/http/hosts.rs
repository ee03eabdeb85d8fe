//! ALLOWED_HOSTS: a request whose Host is not on the list gets 400 (defends against Host-header
//! poisoning of generated links and cache keys). Only the real `Host` header / request authority is
//! looked at, never `X-Forwarded-Host`.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;

use super::error::AppError;

/// Entries are host names or IPs (port ignored); `*` allows any host; `.example.com` allows
/// example.com and every subdomain.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(pub Vec<String>);

impl AllowedHosts {
    pub fn allows(&self, host_header: &str) -> bool {
        let Some(host) = host_only(host_header) else {
            return false;
        };
        self.0.iter().any(|allowed| {
            allowed == "*"
                || *allowed == host
                || allowed
                    .strip_prefix('.')
                    .is_some_and(|domain| host == domain || host.ends_with(allowed.as_str()))
        })
    }
}

/// Lower-cased host without port or IPv6 brackets; `None` when malformed.
fn host_only(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        rest.split_once(']')?.0
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => raw,
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
    valid.then_some(host)
}

pub async fn check_host(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(allowed) = req.app_data::<Arc<AllowedHosts>>() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()));
        let ok = host.as_deref().is_some_and(|h| allowed.allows(h));
        if !ok {
            let error = AppError::BadRequest("The Host header is not allowed.".into());
            return Ok(req.error_response(error));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let hosts = AllowedHosts(vec![
            "localhost".into(),
            "::1".into(),
            ".example.com".into(),
        ]);
        assert!(hosts.allows("localhost:8080"));
        assert!(hosts.allows("LOCALHOST"));
        assert!(hosts.allows("[::1]:8080"));
        assert!(hosts.allows("example.com"));
        assert!(hosts.allows("api.example.com:443"));
        assert!(!hosts.allows("evil.com"));
        assert!(!hosts.allows("notexample.com"));
        assert!(!hosts.allows("localhost.evil.com"));
        assert!(!hosts.allows(""));
        assert!(!hosts.allows("local host"));
    }
}
