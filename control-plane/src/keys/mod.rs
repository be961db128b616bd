//! Keys: the master key, root of every derived secret and the signer of audit tree heads
//! ([`master`]), and the keys that sign capability tokens, with their rotation ([`signing`]).

pub mod master;
pub mod signing;

pub use master::{Keys, MasterSeed, resolve};
pub use signing::{KeyInfo, SYSTEM_TENANT, SigningKeys};
