//! Integration tests of every admin endpoint, each run on SQLite and on a real Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod approval_endings;
mod approvals;
mod audit_chain;
mod audit_group_commit;
mod audit_ingest;
mod audit_migration;
mod audit_query;
mod audit_tree;
mod audited_change;
mod auth;
mod capabilities;
mod console;
mod delivery;
mod discovery;
mod elevation;
mod keys_and_settings;
mod oauth;
mod policies;
mod read_replica;
mod replica_fanout;
mod reports;
mod tenants;
mod verify_under_load;
