//! The one table from roles to permissions (DESIGN §3). Nothing else decides who may do what.

use std::fmt;
use std::str::FromStr;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    ProfileRead,
    ProfileWrite,
    SessionsManage,
    KeysManage,
    MessagesRead,
    MessagesWrite,
    DataExport,
    AuditRead,
    UsersManage,
    KeysRevokeAny,
    WebhooksManage,
}

impl Permission {
    pub const ALL: [Permission; 11] = [
        Permission::ProfileRead,
        Permission::ProfileWrite,
        Permission::SessionsManage,
        Permission::KeysManage,
        Permission::MessagesRead,
        Permission::MessagesWrite,
        Permission::DataExport,
        Permission::AuditRead,
        Permission::UsersManage,
        Permission::KeysRevokeAny,
        Permission::WebhooksManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ProfileRead => "profile:read",
            Permission::ProfileWrite => "profile:write",
            Permission::SessionsManage => "sessions:manage",
            Permission::KeysManage => "keys:manage",
            Permission::MessagesRead => "messages:read",
            Permission::MessagesWrite => "messages:write",
            Permission::DataExport => "data:export",
            Permission::AuditRead => "audit:read",
            Permission::UsersManage => "users:manage",
            Permission::KeysRevokeAny => "keys:revoke_any",
            Permission::WebhooksManage => "webhooks:manage",
        }
    }
}

impl Permission {
    /// Permissions of the admin routes. An API key can never exercise them, whatever its scopes
    /// say: admin work is done by a person signed in, not by a long-lived credential.
    pub fn is_admin_only(self) -> bool {
        matches!(
            self,
            Permission::AuditRead
                | Permission::UsersManage
                | Permission::KeysRevokeAny
                | Permission::WebhooksManage
        )
    }
}

impl FromStr for Permission {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    TeamMember,
    Demo,
}

impl Role {
    pub const DEFAULT: Role = Role::TeamMember;

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::TeamMember => "team_member",
            Role::Demo => "demo",
        }
    }

    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &Permission::ALL,
            Role::TeamMember => &[
                ProfileRead,
                ProfileWrite,
                SessionsManage,
                KeysManage,
                MessagesRead,
                MessagesWrite,
                DataExport,
            ],
            Role::Demo => &[ProfileRead, MessagesRead],
        }
    }

    pub fn has(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "admin" => Ok(Role::Admin),
            "team_member" => Ok(Role::TeamMember),
            "demo" => Ok(Role::Demo),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope an API key may carry: a permission name, never an admin-only one (those are refused).
/// For `#[schema(value_type = Vec<ScopeName>)]`.
pub struct ScopeName;

impl PartialSchema for ScopeName {
    fn schema() -> RefOr<Schema> {
        let names = Permission::ALL
            .into_iter()
            .filter(|p| !p.is_admin_only())
            .map(Permission::as_str);
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names))
            .into()
    }
}

impl ToSchema for ScopeName {}

/// A role name (`#[schema(value_type = Option<RoleName>)]`).
pub struct RoleName;

impl PartialSchema for RoleName {
    fn schema() -> RefOr<Schema> {
        let names = [Role::Admin, Role::TeamMember, Role::Demo].map(Role::as_str);
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names))
            .into()
    }
}

impl ToSchema for RoleName {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table_matches_design() {
        assert_eq!(Role::Admin.permissions().len(), 11);
        assert_eq!(Role::TeamMember.permissions(), &Permission::ALL[..7]);
        assert_eq!(
            Role::Demo.permissions(),
            &[Permission::ProfileRead, Permission::MessagesRead]
        );
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
    }
}
