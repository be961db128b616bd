//! The store: one pool over SQLite or Postgres with its embedded migrations and write transactions
//! ([`pool`]), the log of state versions that filters follow ([`changes`]), and the paging of list
//! queries ([`page`]). Nothing here knows a resource; the domain modules above own their SQL.

pub mod changes;
pub mod page;
pub mod pool;

pub use pool::{Backend, Db, SqliteReaders, open_reader, sqlite_unavailable};
