//! The filters that follow this control plane. Their contract is `intentgate.v1.FilterSync`, so the
//! state they hold and the batches they send are its messages:
//!
//! - [`registry`]: which filters subscribed, what each acknowledged, and how their audit ingest goes;
//! - [`state`]: the gateway state they hold, as a snapshot or as the delta since a version;
//! - [`ingest`]: their audit batches, appended to each tenant's chain;
//! - [`hub`]: the newest state version, which tells every subscription when to send a delta.

pub mod hub;
pub mod ingest;
pub mod registry;
pub mod state;

pub use hub::Hub;
