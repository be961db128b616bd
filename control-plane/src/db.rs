//! The database: one `sqlx::Any` pool over SQLite or Postgres, chosen by URL, with the embedded
//! migrations of `migrations/<backend>/` applied at connect. Queries use `$n` placeholders, which
//! both backends accept, so each statement is written once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

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
        Ok(Db {
            pool,
            backend,
            url: url.into(),
        })
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

    /// The file behind a SQLite URL (verify reads it directly).
    pub fn sqlite_path(&self) -> Result<std::path::PathBuf> {
        let options = SqliteConnectOptions::from_str(&self.url)?;
        Ok(options.get_filename().to_path_buf())
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
