//! A throwaway Postgres cluster for the tests: `initdb` into a temporary directory, `pg_ctl start`
//! on a free loopback port with its socket in that directory, one fresh database per test. The
//! server runs as the `postgres` OS user when the tests run as root (as in CI). A watchdog process
//! stops the cluster and removes the directory once the test process exits, however it exits.
//!
//! For the read replica's tests, a second pair: a primary and a hot standby streaming from it,
//! made by `pg_basebackup` with the same binaries, as a deployment makes its replicas.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, Executor, PgConnection};

struct Cluster {
    port: u16,
}

impl Cluster {
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static REPLICATED: OnceLock<Result<(Cluster, Cluster), String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// The URL of a new, empty database on the shared cluster.
pub async fn database() -> String {
    let cluster = match CLUSTER.get_or_init(start) {
        Ok(cluster) => cluster,
        Err(err) => panic!("cannot start the test Postgres cluster: {err}"),
    };
    create_database(cluster).await
}

/// A new, empty database on a primary with a hot standby: its URL on the primary, and on the
/// standby once the standby has replayed its creation.
pub async fn replicated_database() -> (String, String) {
    let (primary, standby) = match REPLICATED.get_or_init(|| {
        let primary = start()?;
        let standby = standby_of(&primary)?;
        Ok((primary, standby))
    }) {
        Ok(pair) => pair,
        Err(err) => panic!("cannot start the replicated test Postgres clusters: {err}"),
    };
    let on_primary = create_database(primary).await;
    let name = on_primary.rsplit('/').next().expect("a database name");
    let on_standby = standby.url(name);
    for _ in 0..200 {
        if let Ok(conn) = PgConnection::connect(&on_standby).await {
            conn.close().await.expect("close standby connection");
            return (on_primary, on_standby);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the standby did not replay the creation of {name}");
}

async fn create_database(cluster: &Cluster) -> String {
    let name = format!("t{}", DATABASES.fetch_add(1, Ordering::SeqCst));
    let mut conn = PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("connect to test cluster");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create test database");
    conn.close().await.expect("close admin connection");
    cluster.url(&name)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Runs a Postgres binary, as the `postgres` user when we are root (Postgres refuses root).
fn pg(args: &[&str]) -> Result<(), String> {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).args(args);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    };
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// A temporary directory the server's user owns, removed when this process ends.
fn cluster_root() -> Result<PathBuf, String> {
    let root: PathBuf = tempfile::Builder::new()
        .prefix("intentgate-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    watch(&root)?;
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&root)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("chown of the cluster directory failed".into());
        }
    }
    Ok(root)
}

/// Starts the cluster in `root`/data on a free port.
fn run(root: PathBuf) -> Result<Cluster, String> {
    let data = root.join("data");
    let data = data.to_str().ok_or("non-UTF-8 temp path")?;
    let sockets = root.to_str().ok_or("non-UTF-8 temp path")?;
    let port = free_port()?;
    let options = format!(
        "-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    );
    let log = root.join("postgres.log");
    let log = log.to_str().ok_or("non-UTF-8 temp path")?;
    pg(&[
        "pg_ctl", "-D", data, "-l", log, "-w", "-o", &options, "start",
    ])?;
    Ok(Cluster { port })
}

fn start() -> Result<Cluster, String> {
    let root = cluster_root()?;
    let data = root.join("data");
    let data = data.to_str().ok_or("non-UTF-8 temp path")?;
    pg(&[
        "initdb",
        "-D",
        data,
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--no-sync",
    ])?;
    run(root)
}

/// A hot standby of `primary`: a base backup streaming its WAL (`-R` writes the standby's
/// connection settings), started on a free port. initdb's trust rules admit replication from
/// loopback.
fn standby_of(primary: &Cluster) -> Result<Cluster, String> {
    let root = cluster_root()?;
    let data = root.join("data");
    let data = data.to_str().ok_or("non-UTF-8 temp path")?;
    let port = primary.port.to_string();
    pg(&[
        "pg_basebackup",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "-D",
        data,
        "-R",
        "-X",
        "stream",
        "--no-sync",
    ])?;
    run(root)
}

/// Starts a detached watchdog that stops the cluster and deletes `root` when this process ends.
fn watch(root: &Path) -> Result<(), String> {
    let root = root.to_str().ok_or("non-UTF-8 temp path")?;
    let stop = if is_root() {
        format!("runuser -u postgres -- pg_ctl -D {root}/data -m immediate stop")
    } else {
        format!("pg_ctl -D {root}/data -m immediate stop")
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {root}",
        pid = std::process::id()
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the cluster watchdog: {e}"))?;
    Ok(())
}
