//! `intentgate.v1`: the messages and the `FilterSync` service between filters and the control plane.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/intentgate.v1.rs"));
}
