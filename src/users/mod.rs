//! The `users` table: its validated types ([`model`]: `Username`, `Email`, `NewPassword`, `User`,
//! `UserView`) and its queries ([`store`], `QueryResult` only, no policy). Every feature that
//! needs a user row uses it through here; what may be done to an account (registration, login,
//! lockout, admin actions) is `accounts`' business, not this module's.

pub mod model;
pub mod store;

pub use model::{
    AdminGrant, Email, NewPassword, NewUser, User, UserView, Username, check_visible_name,
    is_invisible_format,
};
