//! A throwaway Postgres cluster for the tests: `initdb` into a temporary directory, `pg_ctl start`
//! on a free loopback port with its socket in that directory, one fresh database per test. The
//! server runs as the `postgres` OS user when the tests run as root (as in CI). A watchdog process
//! stops the cluster and removes the directory once the test process exits, however it exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, Executor, PgConnection};

struct Cluster {
    port: u16,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// The URL of a new, empty database on the shared cluster.
pub async fn database() -> String {
    let cluster = match CLUSTER.get_or_init(start) {
        Ok(cluster) => cluster,
        Err(err) => panic!("cannot start the test Postgres cluster: {err}"),
    };
    let name = format!("t{}", DATABASES.fetch_add(1, Ordering::SeqCst));
    let admin_url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let mut conn = PgConnection::connect(&admin_url)
        .await
        .expect("connect to test cluster");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create test database");
    conn.close().await.expect("close admin connection");
    format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port)
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

fn start() -> Result<Cluster, String> {
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
    let data = root.join("data");
    let data = data.to_str().ok_or("non-UTF-8 temp path")?;
    let sockets = root.to_str().ok_or("non-UTF-8 temp path")?;
    let log = root.join("postgres.log");
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
    let port = free_port()?;
    let options = format!(
        "-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    );
    let log = log.to_str().ok_or("non-UTF-8 temp path")?;
    pg(&[
        "pg_ctl", "-D", data, "-l", log, "-w", "-o", &options, "start",
    ])?;
    Ok(Cluster { port })
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
