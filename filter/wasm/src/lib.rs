//! The proxy-wasm glue over intentgate-core. Filled in by the data-plane issue.
