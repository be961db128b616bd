//! The per-tenant Merkle tree beside the hash chain (RFC 6962 / RFC 9162; the tree itself is
//! defined in `intentgate_core::audit::merkle`).
//!
//! - [`nodes`] stores every complete subtree, extended in the append's transaction;
//! - [`proofs`] answers inclusion and consistency proofs from a handful of stored subtrees, the
//!   upper ones held in memory by [`cache`];
//! - [`heads`] signs tree heads with the control plane's key, on a schedule and on demand.

pub mod cache;
pub mod heads;
pub mod nodes;
pub mod proofs;
mod sqlite;

pub use cache::UpperNodes;
pub use heads::{issue, latest, schedule};
pub use nodes::{TreeState, extend, state};
