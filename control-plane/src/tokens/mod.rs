//! Capability tokens: minting ([`mint`]), revocation ([`revoke`]), and the budget leases that share
//! a token's `max_calls` among filters ([`budget`]).

pub mod budget;
pub mod mint;
pub mod revoke;

pub use mint::{MintRequest, Minted, mint_token};
pub use revoke::{REVOCATIONS, Revocation, RevokeRequest, revocations, revoke};
