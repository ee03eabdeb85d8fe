//! Validated inputs (`MessageText`, `Title`, `MemberList`, `Cursor`) and the views the API returns.
//! Views hold plaintext: they exist only in memory, between decryption and the response.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::FieldError;
use crate::users::Username;

/// The largest message body, in bytes of UTF-8.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// What other members see in place of content whose key is gone (an erased author).
pub const UNAVAILABLE_TEXT: &str = "[message unavailable]";
/// The name shown for an erased member.
pub const DELETED_USER: &str = "[deleted user]";

/// Text control characters refused in stored text (beyond the edge's NUL/C0 check, which does
/// not see multipart parts): NUL and the C0 controls but tab, line feed and carriage return.
fn has_forbidden_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// A message body: 1 to 8 KiB of UTF-8, not only whitespace, no control characters but tab and
/// line breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(field: &str, raw: &str) -> Result<MessageText, FieldError> {
        if raw.len() > MAX_BODY_BYTES {
            return Err(FieldError::new(
                field,
                format!("must be at most {MAX_BODY_BYTES} bytes of UTF-8"),
            ));
        }
        if raw.trim().is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        if has_forbidden_control(raw) {
            return Err(FieldError::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(MessageText(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A conversation title: 1 to 200 characters on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// `None` for an absent or blank title.
    pub fn parse(raw: Option<&str>) -> Result<Option<Title>, FieldError> {
        let Some(raw) = raw else { return Ok(None) };
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > MAX_TITLE_CHARS {
            return Err(FieldError::new(
                "title",
                format!("must be at most {MAX_TITLE_CHARS} characters"),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(FieldError::new(
                "title",
                "must be one line without control characters",
            ));
        }
        Ok(Some(Title(trimmed.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The other members named when creating a conversation: 1 to `max - 1` distinct usernames
/// (compared case-insensitively, as usernames are unique that way), the creator excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberList(Vec<Username>);

impl MemberList {
    pub fn parse(raw: &[String], max_members: usize) -> Result<MemberList, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::new(
                "member_usernames",
                "must name at least one other user",
            ));
        }
        if raw.len() >= max_members.max(2) {
            return Err(FieldError::new(
                "member_usernames",
                format!("a conversation has at most {max_members} members, including you"),
            ));
        }
        let mut names: Vec<Username> = Vec::with_capacity(raw.len());
        for name in raw {
            let parsed = Username::parse(name)
                .map_err(|_| FieldError::new("member_usernames", "contains an invalid username"))?;
            if !names
                .iter()
                .any(|n| n.as_str().eq_ignore_ascii_case(parsed.as_str()))
            {
                names.push(parsed);
            }
        }
        Ok(MemberList(names))
    }

    pub fn names(&self) -> &[Username] {
        &self.0
    }
}

/// A position in a conversation's message list: the message's sequence number, opaque on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub i64);

impl Cursor {
    pub fn parse(field: &str, raw: &str) -> Result<Cursor, FieldError> {
        crate::http::pagination::parse_id_cursor(raw)
            .map(Cursor)
            .ok_or_else(|| FieldError::new(field, "is not a valid cursor"))
    }

    pub fn encode(self) -> String {
        crate::http::pagination::id_cursor(self.0)
    }
}

/// Which page of messages: the newest, those before a cursor, or those after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRequest {
    Newest,
    Before(Cursor),
    After(Cursor),
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MemberView {
    pub id: Uuid,
    pub username: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    pub id: Uuid,
    /// `direct` (two members) or `group`.
    pub kind: String,
    pub title: Option<String>,
    pub members: Vec<MemberView>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_activity_at: OffsetDateTime,
    /// Messages newer than the caller's read marker, not written by the caller.
    pub unread_count: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttachmentView {
    pub id: Uuid,
    pub name: String,
    /// The type sniffed from the content (never the client's claim).
    pub content_type: String,
    pub size: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub author: MemberView,
    /// The text; `[message unavailable]` when its key is gone, and null once deleted.
    pub body: Option<String>,
    pub attachments: Vec<AttachmentView>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub edited_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<OffsetDateTime>,
    /// Opaque position of this message: pass as `before` or `after`, or as `up_to` to mark read.
    pub cursor: String,
}

/// A page of messages, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    /// Continue in the same direction: with no cursor or `before`, the next older page (pass as
    /// `before`); with `after`, the next newer page (pass as `after`). Null when there is no more.
    pub next_cursor: Option<String>,
}

/// Per-user figures for the console (no content).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageStats {
    pub conversations: i64,
    pub messages: i64,
    pub attachments: i64,
    /// Bytes of attachment plaintext stored (the user's uploads).
    pub attachment_bytes: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_bounded_non_blank_text() {
        assert!(MessageText::parse("body", "hello\nworld\t!").is_ok());
        assert!(MessageText::parse("body", "   \n").is_err());
        assert!(MessageText::parse("body", "a\u{0}b").is_err());
        assert!(MessageText::parse("body", "a\u{1b}[31m").is_err());
        assert!(MessageText::parse("body", &"é".repeat(4096)).is_ok());
        assert!(MessageText::parse("body", &"é".repeat(4097)).is_err());
        assert!(MessageText::parse("body", &"a".repeat(1 << 20)).is_err());
    }

    #[test]
    fn titles_are_optional_single_lines() {
        assert_eq!(Title::parse(None).unwrap(), None);
        assert_eq!(Title::parse(Some("  ")).unwrap(), None);
        assert_eq!(
            Title::parse(Some(" Plans ")).unwrap().unwrap().as_str(),
            "Plans"
        );
        assert!(Title::parse(Some("a\nb")).is_err());
        assert!(Title::parse(Some(&"x".repeat(201))).is_err());
    }

    #[test]
    fn member_lists_are_deduplicated_and_capped() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let list = MemberList::parse(&names(&["bob", "BOB", "carol"]), 50).unwrap();
        assert_eq!(list.names().len(), 2);
        assert!(MemberList::parse(&[], 50).is_err());
        assert!(MemberList::parse(&names(&["a b"]), 50).is_err());
        let many: Vec<String> = (0..49).map(|i| format!("user{i}")).collect();
        assert!(MemberList::parse(&many, 50).is_ok());
        let too_many: Vec<String> = (0..50).map(|i| format!("user{i}")).collect();
        assert!(MemberList::parse(&too_many, 50).is_err());
    }

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        assert_eq!(
            Cursor::parse("before", &Cursor(42).encode()).unwrap(),
            Cursor(42)
        );
        assert!(Cursor::parse("before", "!!").is_err());
        assert!(Cursor::parse("before", &Cursor(0).encode()).is_err());
    }
}
