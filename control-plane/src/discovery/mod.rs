//! Agent discovery and inventory: sources push or are pulled for their CASB, proxy, DNS
//! and SIEM logs; each vendor's parser normalises records to one [`record::Observation`]; the
//! [`catalog`] recognises AI traffic; [`import`] merges it into the inventory, which
//! [`inventory`] joins with the agents the gateway's audit log has seen. [`attestation`] runs
//! owners' campaigns over the inventory.

pub mod attestation;
pub mod catalog;
pub mod credentials;
pub mod import;
pub mod inventory;
pub mod parse;
pub mod pull;
pub mod reach;
pub mod record;
pub mod settings;
pub mod sources;
pub mod token;

pub use settings::Settings;
