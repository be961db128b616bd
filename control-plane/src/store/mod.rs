//! The store: one pool over SQLite or Postgres with its embedded migrations and write transactions
//! ([`pool`]), consistent read views across connections ([`snapshot`]), statements over many rows
//! ([`bulk`]), the log of state versions that filters follow ([`changes`]), and the paging of list
//! queries ([`page`]). Nothing here knows a resource; the domain modules above own their SQL.

pub mod bulk;
pub mod changes;
pub mod page;
pub mod pool;
pub mod snapshot;

pub use pool::{Backend, Db, Role, SqliteReaders, WriteTx, open_reader, sqlite_unavailable};
pub use snapshot::ReadView;
