//! The IntentGate filter as an Envoy dynamic module (`libintentgate_native.so`): a thin adapter
//! between Envoy's dynamic-module hooks (`intentgate-envoy-dm`) and the core's exchange engine,
//! which makes every decision.
//!
//! - [`process`]: one engine runtime per plugin configuration in the Envoy process, shared by every
//!   worker thread: policies are loaded once and swapped whole when the control plane pushes a
//!   change; caches, budget blocks and the audit queue are the process's.
//! - [`exchange`]: one HTTP stream; each hook becomes one engine event, each step the engine
//!   returns becomes calls on the stream ([`host`]).
//! - [`background`]: one thread per process, never a worker, that ticks every runtime (audit lines,
//!   stats, budget blocks given back) and, with a control plane, is its gRPC client (tonic): the
//!   Sync stream, audit batches, lease givebacks, and the leases and approvals a stream asks for,
//!   whose answers it hands back to the stream's own worker.
#![deny(clippy::indexing_slicing)]

mod background;
mod config;
mod counters;
mod exchange;
mod host;
mod process;
mod stats;

intentgate_envoy_dm::module!(config::new_config);
