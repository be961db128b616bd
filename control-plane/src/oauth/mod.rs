//! The OAuth authorization server (SPEC §7): RFC 8414 [`metadata`], and the token endpoint
//! ([`token`]) that issues our Ed25519 capability tokens as access tokens for agent [`clients`],
//! for JWTs of the issuers a tenant trusts ([`issuers`], mapped by exchange [`rules`]), and in
//! exchange for a capability token (attenuated, never wider).
//!
//! - [`request`] reads the form, [`client_auth`] authenticates clients (secrets, `private_key_jwt`),
//!   counted by the failed-authentication [`limit`]; [`replay`] keeps single-use assertions single;
//! - [`jwt`] reads and verifies JWTs with [`jwk`] keys, fetched through the [`jwks`] cache from the
//!   [`keys`] a registration names;
//! - [`grant`] is the ceiling of a grant and the `scope` that narrows it; [`error`] the RFC 6749
//!   refusals; [`settings`] the issuer and trusted proxies; [`registry`] what the admin resources
//!   share.

pub mod client_auth;
pub mod clients;
pub mod error;
pub mod grant;
pub mod issuers;
pub mod jwk;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod limit;
pub mod metadata;
pub mod registry;
pub mod replay;
pub mod request;
pub mod rules;
pub mod settings;
pub mod token;

pub use error::{Code, OAuthError};
pub use settings::Settings;
pub use token::{TokenRequest, TokenResponse};

use crate::error::Result;

/// What the token endpoint keeps between requests: its settings, the JWKS cache, the failure limit.
#[derive(Debug)]
pub struct AuthorizationServer {
    pub settings: Settings,
    pub jwks: jwks::Jwks,
    pub limit: limit::FailureLimit,
}

impl AuthorizationServer {
    pub fn new(settings: Settings) -> Result<Self> {
        Ok(AuthorizationServer {
            settings,
            jwks: jwks::Jwks::new()?,
            limit: limit::FailureLimit::default(),
        })
    }
}
