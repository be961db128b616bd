//! Who is calling: the superadmin and per-tenant admins ([`admin`]), and the bearer tokens every
//! caller presents ([`token`]): admins, filters, the discovery sync and reports clients.

pub mod admin;
pub mod token;

pub use admin::{Actor, Admin, AdminTokens, MAX_LABEL_CHARS};
pub use token::{HashedToken, MIN_TOKEN_CHARS, Secret, bearer, require};
