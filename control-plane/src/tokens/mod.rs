//! Capability tokens: issuing them ([`issue`], for an admin's [`mint`] and OAuth grants alike),
//! revocation ([`revoke`]), and the budget leases that share a token's `max_calls` among filters
//! ([`budget`]).

pub mod budget;
pub mod issue;
pub mod mint;
pub mod revoke;

pub use issue::{Issue, Issued, issue};
pub use mint::{MintRequest, Minted, mint_token};
pub use revoke::{REVOCATIONS, Revocation, RevokeRequest, revocations, revoke};
