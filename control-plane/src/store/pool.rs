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
use sqlx::{AnyPool, Executor, Row};

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

/// What a database is to this control plane: the one it writes, or a read replica of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    role: Role,
    url: Arc<str>,
    /// On SQLite: direct read-only connections for reads whose latency matters.
    readers: Option<Arc<SqliteReaders>>,
    /// On SQLite: this process's queue for the database's one write lock.
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// How long a SQLite writer waits for its turn: the busy timeout sqlx gives each connection.
const WRITER_WAIT: Duration = Duration::from_secs(5);

/// A write transaction: statements run on it as on the connection (`&mut *tx`); dropped without
/// [`commit`](Self::commit), it rolls back. On SQLite it holds this process's turn to write.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .field("role", &self.role)
            .finish()
    }
}

impl Db {
    /// Connects and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let backend = Backend::of_url(url);
        let pool = Self::pool_options(backend).connect(url).await?;
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
            role: Role::Primary,
            url: url.into(),
            writer: readers.as_ref().map(|_| Arc::default()),
            readers,
        })
    }

    /// Connects to a Postgres read replica (a hot standby) of the primary's database. Nothing is
    /// written there, migrations included: the replica replays the primary's. One that has not
    /// replayed this version's migrations yet is reported, not refused: it catches up.
    pub async fn connect_replica(url: &str) -> Result<Self> {
        if Backend::of_url(url) != Backend::Postgres {
            return Err(Error::Internal("a read replica must be Postgres".into()));
        }
        let pool = Self::pool_options(Backend::Postgres).connect(url).await?;
        let row = sqlx::query(
            "SELECT pg_is_in_recovery() AS standby, \
             to_regclass('_sqlx_migrations') IS NOT NULL AS migrating",
        )
        .fetch_one(&pool)
        .await?;
        let standby: bool = row.try_get("standby")?;
        let migrated: Option<i64> = if row.try_get("migrating")? {
            sqlx::query("SELECT MAX(version) AS version FROM _sqlx_migrations")
                .fetch_one(&pool)
                .await?
                .try_get("version")?
        } else {
            None
        };
        let expected = POSTGRES_MIGRATIONS.iter().map(|m| m.version).max();
        if migrated < expected {
            tracing::warn!(
                replayed = migrated,
                expected,
                "the read replica has not replayed this version's migrations yet"
            );
        }
        tracing::info!(standby, "read replica connected");
        Ok(Db {
            pool,
            backend: Backend::Postgres,
            role: Role::Replica,
            url: url.into(),
            readers: None,
            writer: None,
        })
    }

    fn pool_options(backend: Backend) -> AnyPoolOptions {
        install_default_drivers();
        AnyPoolOptions::new()
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

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A transaction that will write. On SQLite it starts `BEGIN IMMEDIATE`: a deferred transaction
    /// that reads before it writes cannot wait for the write lock (SQLite refuses the upgrade at once
    /// when another connection wrote meanwhile, "database is locked"); an immediate one waits up to
    /// the busy timeout instead. Writers of this process first queue for their turn in process, so
    /// that they follow each other at once instead of polling the file lock (SQLite's busy handler
    /// sleeps up to 100 ms between tries). On Postgres row locks serialise writers, so a plain
    /// `BEGIN` serves.
    pub async fn begin(&self) -> Result<WriteTx> {
        let (tx, turn) = match &self.writer {
            Some(writer) => {
                let turn = tokio::time::timeout(WRITER_WAIT, Arc::clone(writer).lock_owned())
                    .await
                    .map_err(|_| Error::Unavailable("the database is busy".into()))?;
                (self.pool.begin_with("BEGIN IMMEDIATE").await?, Some(turn))
            }
            None => (self.pool.begin().await?, None),
        };
        Ok(WriteTx { tx, _turn: turn })
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
