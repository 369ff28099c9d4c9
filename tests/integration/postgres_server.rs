//! What only PostgreSQL has: the advisory lock that serialises replicas on
//! other machines (pods with volumes of their own), a statement the server
//! keeps waiting, the login, the database's name, the server being down,
//! and TLS (sslmode, sslrootcert) against a server with a certificate made
//! here. The cases both databases share run on both in the other suites.

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::postgres::{self as pg, LOCK_KEY, Server};
use crate::common::*;
use rusqlite::types::Value;

/// A PostgreSQL sandbox in the migration's shape, or `None` (skipped).
fn migrated(check: &str) -> Option<Sandbox> {
    pg::server(check)?;
    Some(Sandbox::with_shape_on(Backend::Postgres, Shape::Alembic))
}

/// Neither the database's password nor a key in the output.
fn assert_no_password(run: &Run) {
    assert!(
        !run.output().contains(PG_PASSWORD),
        "the database password leaked:\n{}",
        run.output()
    );
}

#[test]
fn thirty_two_pods_on_one_database_converge_on_one_row() {
    const PODS: usize = 32;
    let Some(first) = migrated("32 pods") else {
        return;
    };
    // Each pod has its own volume and .env: only the advisory lock is shared.
    let pods: Vec<Sandbox> = (0..PODS)
        .map(|_| {
            let mut pod = Sandbox::new();
            pod.pg = first.pg.clone();
            pod
        })
        .collect();
    let runs = run_together(
        pods.iter()
            .map(|pod| {
                let mut cmd = pod.command();
                cmd.args(["--production"]).env("LOG_LEVEL", "debug");
                cmd
            })
            .collect(),
    );
    let waited = runs
        .iter()
        .filter(|r| {
            r.stderr
                .contains("another run holds the lock (advisory lock")
        })
        .count();
    eprintln!("32 pods: {waited} waited for the advisory lock");
    assert!(waited > 0, "the pods never overlapped");
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run.code, 0, "pod {i}:\n{}", run.stderr);
        run.assert_no_secret();
        assert_no_password(run);
    }
    let inserted = runs
        .iter()
        .filter(|r| r.stderr.contains("row inserted"))
        .count();
    assert_eq!(inserted, 1, "exactly one pod inserts");
    let rows = first.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].id.as_str(), rows[0].api_key.as_str()),
        (ACME_ID, KEY)
    );
    let envs: Vec<_> = pods.iter().map(Sandbox::env_path).collect();
    for values in python_dotenv_all(&envs) {
        assert_eq!(values["OPENROUTER_EXTERNAL_USER"], ACME_ID);
    }
}

/// Another session holds the advisory lock: the run waits, and gives up
/// at LOCK_TIMEOUT with 75, having written nothing; SIGTERM and SIGINT end
/// the wait within a second.
#[test]
fn the_advisory_lock_is_waited_for_within_lock_timeout_and_a_signal_ends_the_wait() {
    let Some(sandbox) = migrated("advisory lock") else {
        return;
    };
    let pg = sandbox.pg.clone().expect("PostgreSQL");
    let mut holder = pg.client();
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .expect("take the lock");
    let before = Untouched::record(&sandbox);
    let started = Instant::now();
    let run = sandbox.run_with(&["--production"], &[("LOCK_TIMEOUT", "1")]);
    let took = started.elapsed();
    run.expect(75).assert_last_line_mentions(&[
        "another mai-provision run has held the advisory lock",
        "past LOCK_TIMEOUT",
    ]);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    before.check(&sandbox, "lock held past LOCK_TIMEOUT");
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let mut cmd = sandbox.command();
        cmd.arg("--production").env("LOCK_TIMEOUT", "60");
        let mut live = spawn(cmd);
        live.wait_for_log("another run holds the lock");
        let sent = Instant::now();
        live.signal(signal);
        let ended = live.wait(STEP_TIMEOUT);
        let took = sent.elapsed();
        eprintln!("SIG{signal} while waiting for the advisory lock: exited {took:?} after it");
        assert_eq!(ended.run.code, code, "{}", ended.run.stderr);
        assert!(
            took < Duration::from_secs(1),
            "exited {took:?} after SIG{signal}"
        );
        before.check(&sandbox, "signalled while waiting");
    }
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .expect("free the lock");
    sandbox.run(&["--production"]).expect(0);
}

/// The application (here, the test) holds the organization's row: the
/// job's upsert waits inside its transaction. SIGTERM/SIGINT cancel that
/// statement on the server, the transaction rolls back, and the job exits
/// 143/130 within a second; LOCK_TIMEOUT ends the wait with 75.
#[test]
fn a_statement_the_server_keeps_waiting_is_cancelled_and_rolled_back() {
    let Some(sandbox) = migrated("long statement") else {
        return;
    };
    sandbox.run(&["--production"]).expect(0);
    let pg = sandbox.pg.clone().expect("PostgreSQL");
    let cases = [("TERM", 143, "60"), ("INT", 130, "60"), ("", 75, "2")];
    for (signal, code, timeout) in cases {
        let context = format!("SIG{signal} (LOCK_TIMEOUT {timeout}) during a blocked upsert");
        let mut holder = pg.client();
        let mut tx = holder.transaction().expect("begin");
        tx.execute(
            "SELECT 1 FROM client_organizations WHERE id = $1 FOR UPDATE",
            &[&ACME_ID],
        )
        .expect("hold the row");
        let before = sandbox.rows();
        let xmin = sandbox.xmin(ACME_ID);
        let mut cmd = sandbox.command();
        cmd.arg("--production")
            .env("MARKUP_RATE", "1.9")
            .env("LOCK_TIMEOUT", timeout);
        let started = Instant::now();
        let mut live = spawn(cmd);
        wait_until_blocked(&pg, &mut live);
        let ended = if signal.is_empty() {
            live.wait(STEP_TIMEOUT)
        } else {
            let sent = Instant::now();
            live.signal(signal);
            let ended = live.wait(STEP_TIMEOUT);
            let took = sent.elapsed();
            eprintln!("{context}: exited {took:?} after the signal");
            assert!(
                took < Duration::from_secs(1),
                "{context}: exited {took:?} after it"
            );
            ended
        };
        assert_eq!(ended.run.code, code, "{context}:\n{}", ended.run.stderr);
        if signal.is_empty() {
            let took = started.elapsed();
            assert!(took < Duration::from_secs(3), "{context}: took {took:?}");
            ended.run.assert_mentions(&["LOCK_TIMEOUT"]);
        }
        // The server has no statement of the job left, and nothing changed.
        pg.assert_job_released(&context);
        tx.rollback().expect("release the row");
        assert_eq!(sandbox.rows(), before, "{context}: not rolled back");
        assert_eq!(
            sandbox.xmin(ACME_ID),
            xmin,
            "{context}: the row was written"
        );
    }
}

/// Until the job's session waits for a lock on the server.
fn wait_until_blocked(pg: &PgDatabase, live: &mut Live) {
    let mut client = pg.client();
    let started = Instant::now();
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mai-provision' \
                 AND wait_event_type = 'Lock'",
                &[],
            )
            .expect("pg_stat_activity")
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            started.elapsed() < STEP_TIMEOUT,
            "the job never waited for the row:\n{}",
            live.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_row_is_written_once_the_application_creates_its_tables() {
    let Some(_) = pg::server("wait for the schema") else {
        return;
    };
    let sandbox = Sandbox::on(Backend::Postgres);
    let mut cmd = sandbox.command();
    cmd.args(["--production", "--wait-for-database=20"])
        .env("MARKUP_RATE", "1.7");
    let mut live = spawn(cmd);
    live.wait_for_log("waiting up to");
    assert_eq!(
        sandbox.rows_if_any(),
        None,
        "nothing is created while waiting"
    );
    sandbox.sql(ALEMBIC_POSTGRES_SQL);
    let ended = live.wait(STEP_TIMEOUT);
    ended.run.expect(0);
    assert_eq!(sandbox.row(ACME_ID).markup_rate, Value::Real(1.7));
}

#[test]
fn create_schema_is_refused_on_postgresql() {
    let Some(_) = pg::server("CREATE_SCHEMA") else {
        return;
    };
    let sandbox = Sandbox::on(Backend::Postgres);
    let mut cmd = sandbox.command();
    cmd.arg("--production").env("CREATE_SCHEMA", "true");
    refused_by(&sandbox, cmd, "CREATE_SCHEMA on PostgreSQL", 78, &[])
        .assert_last_line_mentions(&["CREATE_SCHEMA is true, but the database is PostgreSQL"]);
}

/// The connection's failures, each with its exit code and a message that
/// says what to do, and never the password; nothing is written.
#[test]
fn connection_failures_have_their_exit_codes() {
    let Some(server) = pg::server("connection failures") else {
        return;
    };
    let sandbox = Sandbox::with_shape_on(Backend::Postgres, Shape::Alembic);
    let db = sandbox.pg.clone().expect("PostgreSQL").name;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("addr").port()
    };
    let port = server.port;
    let cases: Vec<(String, i32, &[&str])> = vec![
        (
            format!("postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{port}/{db}?sslmode=bogus"),
            78,
            &["DATABASE_URL has sslmode `bogus`"],
        ),
        (
            format!(
                "postgresql://postgres:wrong-{PG_PASSWORD}@127.0.0.1:{port}/{db}?sslmode=disable"
            ),
            77,
            &[
                "PostgreSQL refused the login",
                "password authentication failed",
            ],
        ),
        (
            format!(
                "postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{port}/no_such_db?sslmode=disable"
            ),
            66,
            &[
                "the database \"no_such_db\" does not exist",
                "CREATE DATABASE",
            ],
        ),
        (
            format!("postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{closed}/{db}?sslmode=disable"),
            75,
            &["cannot reach the PostgreSQL server", "Connection refused"],
        ),
        (
            format!("postgresql://postgres:{PG_PASSWORD}@no-such-host.invalid:{port}/{db}"),
            75,
            &["cannot reach the PostgreSQL server"],
        ),
        (
            format!("postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{port}/{db}?sslmode=require"),
            77,
            &["TLS", "does not offer TLS"],
        ),
    ];
    for (url, code, needles) in cases {
        let mut cmd = sandbox.command();
        cmd.arg("--production").env("DATABASE_URL", &url);
        let case = url.replace(PG_PASSWORD, "***");
        let run = refused_by(&sandbox, cmd, &case, code, needles);
        assert_no_password(&run);
    }
}

/// A server with TLS on and a certificate for `localhost` only, signed by
/// a CA made here; and a second CA that signed nothing of it.
struct TlsServer {
    server: Server,
    ca: std::path::PathBuf,
    other_ca: std::path::PathBuf,
}

fn tls_server() -> Option<&'static TlsServer> {
    static SERVER: OnceLock<Result<TlsServer, String>> = OnceLock::new();
    let started = SERVER.get_or_init(|| {
        pg::server("TLS").ok_or("no PostgreSQL server")?;
        let dir = tempfile::Builder::new()
            .prefix("mai-provision-pg-tls-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        pg::remove_when_gone(&dir);
        let files = make_certificates(&dir)?;
        let server = pg::start(&[
            "ssl = on".to_owned(),
            format!("ssl_cert_file = '{}'", files.server_cert.display()),
            format!("ssl_key_file = '{}'", files.server_key.display()),
        ])?;
        Ok(TlsServer {
            server,
            ca: files.ca,
            other_ca: files.other_ca,
        })
    });
    match started {
        Ok(server) => Some(server),
        Err(reason) => {
            pg::not_available("TLS", reason);
            None
        }
    }
}

struct CertFiles {
    ca: std::path::PathBuf,
    other_ca: std::path::PathBuf,
    server_cert: std::path::PathBuf,
    server_key: std::path::PathBuf,
}

fn make_certificates(dir: &std::path::Path) -> Result<CertFiles, String> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let e = |e: rcgen::Error| e.to_string();
    let ca = |name: &str| -> Result<CertifiedIssuer<'static, KeyPair>, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().map_err(e)?).map_err(e)
    };
    let issuer = ca("mai-provision test CA")?;
    let other = ca("another CA")?;
    let key = KeyPair::generate().map_err(e)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(e)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer).map_err(e)?;
    let files = CertFiles {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    };
    let write = |path: &std::path::Path, text: String, mode: u32| -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).map_err(|e| e.to_string())?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| e.to_string())
    };
    write(&files.ca, issuer.pem(), 0o644)?;
    write(&files.other_ca, other.pem(), 0o644)?;
    write(&files.server_cert, cert.pem(), 0o644)?;
    write(&files.server_key, key.serialize_pem(), 0o600)?;
    // The server reads its key as the postgres user, and wants it private.
    let _ = Command::new("chown")
        .arg("-R")
        .arg("postgres:postgres")
        .arg(dir)
        .status();
    let _ = Command::new("chmod").arg("0755").arg(dir).status();
    Ok(files)
}

/// Each sslmode against a TLS server: what libpq would accept connects
/// and provisions, what it would refuse is refused (77) before any write.
#[test]
fn sslmodes_and_sslrootcert_follow_libpq() {
    let Some(tls) = tls_server() else {
        return;
    };
    let server = &tls.server;
    let ca = tls.ca.display();
    let other = tls.other_ca.display();
    let cases: Vec<(&str, String, i32, &[&str])> = vec![
        ("127.0.0.1", "sslmode=disable".to_owned(), 0, &[]),
        ("127.0.0.1", "sslmode=prefer".to_owned(), 0, &[]),
        ("127.0.0.1", "sslmode=require".to_owned(), 0, &[]),
        (
            "localhost",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            0,
            &[],
        ),
        (
            "127.0.0.1",
            format!("sslmode=verify-ca&sslrootcert={ca}"),
            0,
            &[],
        ),
        (
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            77,
            &["not for the host in DATABASE_URL"],
        ),
        (
            "localhost",
            format!("sslmode=verify-ca&sslrootcert={other}"),
            77,
            &["does not chain to a trusted root"],
        ),
        (
            "localhost",
            format!("sslmode=require&sslrootcert={other}"),
            77,
            &["does not chain to a trusted root"],
        ),
        (
            "localhost",
            "sslmode=verify-full".to_owned(),
            77,
            &["does not chain to a trusted root"],
        ),
        (
            "localhost",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem".to_owned(),
            78,
            &["sslrootcert /nonexistent/ca.pem"],
        ),
    ];
    for (host, query, code, needles) in cases {
        // A database on the TLS server, in the migration's shape: the one
        // refused_by compares before and after.
        let mut sandbox = Sandbox::new();
        sandbox.pg = Some(server.database());
        sandbox.sql(ALEMBIC_POSTGRES_SQL);
        let name = sandbox.pg.as_ref().expect("PostgreSQL").name.clone();
        let url = format!(
            "postgresql://postgres:{PG_PASSWORD}@{host}:{}/{name}?{query}",
            server.port
        );
        let case = format!("{host} {query}");
        let mut cmd = sandbox.command();
        cmd.arg("--production").env("DATABASE_URL", &url);
        let run = if code == 0 {
            let run = Run::from(cmd.output().expect("run"));
            run.expect(0);
            run
        } else {
            refused_by(&sandbox, cmd, &case, code, needles)
        };
        assert_no_password(&run);
        assert_eq!(sandbox.rows().len(), usize::from(code == 0), "{case}: rows");
    }
}
