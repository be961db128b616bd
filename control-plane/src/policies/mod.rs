//! Tenant policies: drafts (Rego compiled at save), the active pointer with its promotion history,
//! and dry-runs of candidate Rego through the core's own evaluator.

pub mod active;
pub mod drafts;
pub mod dry_run;

use intentgate_core::policy::Policy;

use crate::error::{Error, Result};

/// Compiles Rego; the compiler's message is the 400's error, verbatim.
pub fn compile(source: &str) -> Result<Policy> {
    // Postgres text cannot hold NUL; Rego has no use for it.
    if source.contains('\0') {
        return Err(Error::bad_request(
            "rego_source must not contain NUL characters",
        ));
    }
    Policy::compile(source).map_err(|e| Error::BadRequest(e.to_string()))
}
