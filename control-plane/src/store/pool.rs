//! The database: one `sqlx::Any` pool over SQLite or Postgres, chosen by URL, with the embedded
//! migrations of `migrations/<backend>/` applied at connect. Queries use `$n` placeholders, which
//! both backends accept, so each statement is written once.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::OpenFlags;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, Executor};

use crate::error::{Error, Result};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Per SQLite connection: pages read through a memory map rather than a `pread` each, so a lookup
/// in a large table (a Merkle proof's ~30 subtrees in a GiB of them) costs no system call per page.
const SQLITE_CONNECTION_PRAGMAS: &str = "PRAGMA mmap_size = 17179869184";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Self {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    url: Arc<str>,
    /// On SQLite: direct read-only connections for reads whose latency matters.
    readers: Option<Arc<SqliteReaders>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Db {
    /// Connects and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        install_default_drivers();
        let backend = Backend::of_url(url);
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            // A SQLite connection is a file handle in this process: pinging it before each use
            // only adds a round trip to its worker thread. A Postgres one can die with the network.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(SQLITE_CONNECTION_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets readers (queries, exports, verify) run beside the single writer. The mode
            // is stored in the file, so setting it once covers every connection.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| Error::Unavailable(format!("database migration failed: {e}")))?;
        let readers = match backend {
            Backend::Sqlite => Some(Arc::new(SqliteReaders {
                path: SqliteConnectOptions::from_str(url)?
                    .get_filename()
                    .to_path_buf(),
                idle: Mutex::default(),
            })),
            Backend::Postgres => None,
        };
        Ok(Db {
            pool,
            backend,
            url: url.into(),
            readers,
        })
    }

    /// The SQLite file's direct readers; `None` on Postgres.
    pub fn sqlite_readers(&self) -> Option<&Arc<SqliteReaders>> {
        self.readers.as_ref()
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A transaction that will write. On SQLite it starts `BEGIN IMMEDIATE`: a deferred transaction
    /// that reads before it writes cannot wait for the write lock (SQLite refuses the upgrade at once
    /// when another connection wrote meanwhile, "database is locked"); an immediate one waits up to
    /// the busy timeout instead. On Postgres row locks serialise writers, so a plain `BEGIN` serves.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }

    pub async fn ping(&self) -> Result<()> {
        self.pool.execute("SELECT 1").await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Idle direct readers kept for reuse; more run at once when asked, and are closed after.
const IDLE_READERS: usize = 4;
/// Statements a pooled reader keeps prepared: a proof's node query has a variant per count of
/// subtrees.
const PREPARED_STATEMENTS: usize = 64;

/// Read-only rusqlite connections to the SQLite file, for reads whose latency matters (Merkle
/// proofs): the whole read runs in one blocking task, where sqlx's SQLite driver hands each query
/// to its worker thread and back, two thread wake-ups per query (~40 µs here, far more when the
/// machine is busy).
pub struct SqliteReaders {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl SqliteReaders {
    /// The database file (verify opens its own readers on it, one per range).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `read` on a blocking thread with a reader (reused, or opened when none is idle).
    pub async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
    {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let idle = readers.idle.lock().ok().and_then(|mut idle| idle.pop());
            let conn = match idle {
                Some(conn) => conn,
                None => {
                    let conn = open_reader(&readers.path).map_err(sqlite_unavailable)?;
                    conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
                    conn
                }
            };
            let out = read(&conn);
            if let Ok(mut idle) = readers.idle.lock()
                && idle.len() < IDLE_READERS
            {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|e| Error::Internal(format!("SQLite read task: {e}")))?
    }
}

/// A read-only connection to the SQLite file with the pool's per-connection settings.
pub fn open_reader(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(SQLITE_CONNECTION_PRAGMAS)?;
    Ok(conn)
}

/// A failed direct SQLite read: logged with its cause, answered as an unavailable database.
pub fn sqlite_unavailable(err: rusqlite::Error) -> Error {
    tracing::error!(error = %err, "could not read the SQLite database");
    Error::Unavailable("database unavailable".into())
}
