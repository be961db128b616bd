//! Tenant policies: drafts (Rego compiled at save), the active pointer with its promotion history,
//! and dry-runs of candidate Rego through the core's own evaluator.

pub mod active;
pub mod drafts;
pub mod dry_run;

use intentgate_core::policy::Policy;

use crate::error::{Error, Result};

/// Compiles Rego; the compiler's message is the 400's error, verbatim.
pub fn compile(source: &str) -> Result<Policy> {
    Policy::compile(source).map_err(|e| Error::BadRequest(e.to_string()))
}
