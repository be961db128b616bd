//! Syslog delivery into a real syslog-ng (Debian's `syslog-ng-core`; `make test` installs it),
//! started by the test on loopback with a plain TCP and a TLS source (RFC 5424 with octet
//! counting, RFC 6587 / RFC 5425). The receiver's file is checked for every event: header,
//! structured data and the canonical event as the message.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Running, append, until};
use crate::on_both_backends;
use crate::support::TestApp;

on_both_backends!(syslog_ng_receives_every_event_over_tcp_and_tls);

struct SyslogNg {
    child: Child,
    file: PathBuf,
    tcp: u16,
    tls: u16,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for SyslogNg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary() -> PathBuf {
    ["/usr/sbin/syslog-ng", "/usr/bin/syslog-ng"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("syslog-ng is not installed (Debian package syslog-ng-core; make test installs it)")
}

fn start() -> SyslogNg {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, cert, ca) = (d.join("key.pem"), d.join("cert.pem"), d.join("ca.pem"));
    // A CA and a server certificate it signs: TLS clients refuse a CA certificate as a server's.
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?} failed");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    let (tcp, tls) = (free_port(), free_port());
    let file = d.join("received.log");
    let config = format!(
        r#"@version: 3.38
options {{ keep-hostname(yes); stats-freq(0); }};
source s_tcp {{ syslog(ip("127.0.0.1") port({tcp}) transport("tcp")); }};
source s_tls {{ syslog(ip("127.0.0.1") port({tls}) transport("tls")
    tls(key-file("{key}") cert-file("{cert}") peer-verify(optional-untrusted))); }};
destination d_file {{ file("{file}" flush-lines(1)
    template("$ISODATE|$HOST|$PROGRAM|$FACILITY_NUM|$LEVEL_NUM|$MSGID|$SDATA|$MSG\n")); }};
log {{ source(s_tcp); source(s_tls); destination(d_file); }};
"#,
        key = key.display(),
        cert = cert.display(),
        file = file.display(),
    );
    let conf = d.join("syslog-ng.conf");
    std::fs::write(&conf, config).unwrap();
    let child = Command::new(binary())
        .arg("--foreground")
        .arg("--no-caps")
        .arg(format!("--cfgfile={}", conf.display()))
        .arg(format!("--persist-file={}", d.join("persist").display()))
        .arg(format!("--pidfile={}", d.join("pid").display()))
        .arg(format!("--control={}", d.join("ctl").display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("syslog-ng.err")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in [tcp, tls] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "syslog-ng did not listen: {}",
                std::fs::read_to_string(d.join("syslog-ng.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    SyslogNg {
        child,
        file,
        tcp,
        tls,
        ca,
        _dir: dir,
    }
}

/// The received lines, split into their template fields.
fn lines(file: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.splitn(8, '|').map(str::to_owned).collect())
        .collect()
}

async fn syslog_ng_receives_every_event_over_tcp_and_tls(app: TestApp) {
    let receiver = start();
    let db = app.state.db.clone();
    append(&db, "acme", 1..=15).await;
    append(&db, "globex", 1..=5).await;
    let common = |port: u16| {
        vec![
            ("INTENTGATE_SYSLOG_ADDR", format!("127.0.0.1:{port}")),
            ("INTENTGATE_SYSLOG_HOSTNAME", "gw-test".to_owned()),
        ]
    };
    let running = Running::start(&db, &common(receiver.tcp)).await;
    until("20 messages over TCP", || lines(&receiver.file).len() >= 20).await;
    running.stop().await;

    // The same destination over TLS, trusting the receiver's certificate: it resumes from its
    // cursors, so only new events go this way.
    append(&db, "acme", 16..=24).await;
    let mut vars = common(receiver.tls);
    vars.push(("INTENTGATE_SYSLOG_TLS", "true".into()));
    vars.push((
        "INTENTGATE_SYSLOG_TLS_CA_FILE",
        receiver.ca.display().to_string(),
    ));
    vars.push(("INTENTGATE_SYSLOG_TLS_SERVER_NAME", "localhost".into()));
    let running = Running::start(&db, &vars).await;
    until("29 messages", || lines(&receiver.file).len() >= 29).await;
    let status = super::settled(&running, "syslog").await;
    running.stop().await;
    assert_eq!(
        status.endpoint.as_deref(),
        Some(format!("tls://127.0.0.1:{}", receiver.tls).as_str())
    );
    assert_eq!(
        (status.events_flushed, status.lag),
        (29, Some(0)),
        "{status:?}"
    );

    let received = lines(&receiver.file);
    assert_eq!(received.len(), 29, "every event once");
    let mut ids = Vec::new();
    for fields in &received {
        let [ts, host, program, facility, level, msgid, sdata, msg] = fields.as_slice() else {
            panic!("unexpected line {fields:?}");
        };
        let event: Value = serde_json::from_str(msg).unwrap_or_else(|e| panic!("{msg}: {e}"));
        let id = event["id"].as_str().unwrap();
        assert_eq!(
            (host.as_str(), program.as_str(), facility.as_str()),
            ("gw-test", "intentgate", "13")
        );
        let severity = if event["decision"] == "deny" {
            "4"
        } else if event["decision"] == "escalate" {
            "5"
        } else {
            "6"
        };
        assert_eq!(level, severity, "{id}");
        assert_eq!(msgid, "intentgate.tool_call");
        assert!(ts.starts_with("2026-06-14T13:42:00"), "{ts}");
        assert!(
            sdata.starts_with(&format!(
                "[intentgate@32473 id=\"{id}\" tenant=\"{}\"",
                event["tenant"].as_str().unwrap()
            )),
            "{sdata}"
        );
        assert!(
            sdata.contains(&format!(
                "decision=\"{}\"",
                event["decision"].as_str().unwrap()
            )),
            "{sdata}"
        );
        ids.push(id.to_owned());
    }
    let mut expected: Vec<String> = (1..=15).map(|n| format!("acme-{n:05}")).collect();
    expected.extend((1..=5).map(|n| format!("globex-{n:05}")));
    expected.extend((16..=24).map(|n| format!("acme-{n:05}")));
    let mut sorted_ids = ids.clone();
    sorted_ids.sort();
    expected.sort();
    assert_eq!(sorted_ids, expected, "every event, none twice");
    let acme: Vec<&String> = ids.iter().filter(|i| i.starts_with("acme")).collect();
    assert!(
        acme.windows(2).all(|w| w[0] < w[1]),
        "acme in chain order: {acme:?}"
    );
}
