//! Tenants: the list operators switch between ([`list`]) and each tenant's settings and intent
//! rules, which filters enforce ([`settings`]).

pub mod list;
pub mod settings;

pub use list::{Tenant, list};
