//! A real PostgreSQL server for the black-box tests, never a mock: Debian's
//! `postgresql` binaries, `initdb` into a temporary folder as a non-root
//! user, the server on a free loopback port. One server per test binary
//! (started by the first test that asks), one database per test (CREATE
//! DATABASE). A watchdog process stops the server and removes its folder
//! once this test process is gone, however it ends.
//!
//! Without the binaries the PostgreSQL cases are skipped LOUDLY; with
//! `MAI_PROVISION_REQUIRE_POSTGRES=1` (CI) that is a failure.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::skip;

/// The superuser's password (scram-sha-256): tests of a wrong password
/// need a server that asks for one.
pub const PG_PASSWORD: &str = "FAKE-pg-password-Zq81";
pub const PG_USER: &str = "postgres";

pub struct Server {
    pub port: u16,
    /// The folder with the data directory and the Unix socket.
    pub dir: PathBuf,
    pub bin: PathBuf,
}

/// The shared plain server, or `None` after a loud skip.
pub fn server(check: &str) -> Option<&'static Server> {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    match SERVER.get_or_init(|| start(&[])) {
        Ok(server) => Some(server),
        Err(reason) => {
            not_available(check, reason);
            None
        }
    }
}

/// Skip loudly, or fail where PostgreSQL is required (CI).
pub fn not_available(check: &str, reason: &str) {
    let required = std::env::var("MAI_PROVISION_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "MAI_PROVISION_REQUIRE_POSTGRES=1 but no PostgreSQL server could be started for {check}: {reason}. \
         Install it: apt-get install -y postgresql"
    );
    skip(
        &format!("PostgreSQL case ({check})"),
        &format!(
            "{reason}; install Debian's postgresql (set MAI_PROVISION_REQUIRE_POSTGRES=1 to make this fail)"
        ),
    );
}

/// The newest installed server's binaries.
fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "no /usr/lib/postgresql".to_owned())?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no PostgreSQL server binaries in /usr/lib/postgresql".to_owned())
}

/// `program` run as the server's owner: `postgres` when we are root
/// (initdb refuses root), ourselves otherwise. `setpriv` execs the
/// program itself, so the PID we get is the server's.
fn as_owner(program: &Path) -> Command {
    if unsafe_geteuid() == 0 {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// initdb, configure (`extra` lines go into postgresql.conf), start on a
/// free port, wait until it accepts connections, and set the watchdog.
pub fn start(extra: &[String]) -> Result<Server, String> {
    let bin = bin_dir()?;
    let dir = std::env::temp_dir().join(format!(
        "mai-provision-pg-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(|e| e.to_string())?;
    if unsafe_geteuid() == 0 {
        let owned = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
        if !owned.success() {
            return Err("cannot give the server's folder to the postgres user".to_owned());
        }
    }
    let pwfile = dir.join("pw");
    fs::write(&pwfile, PG_PASSWORD).map_err(|e| e.to_string())?;
    fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o644)).map_err(|e| e.to_string())?;
    let data = dir.join("data");
    let out = as_owner(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            PG_USER,
            "--auth=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .output()
        .map_err(|e| format!("initdb could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = free_port();
    let mut conf = vec![
        format!("port = {port}"),
        "listen_addresses = '127.0.0.1'".to_owned(),
        format!("unix_socket_directories = '{}'", dir.display()),
        "fsync = off".to_owned(),
        "synchronous_commit = off".to_owned(),
        "full_page_writes = off".to_owned(),
        "max_connections = 300".to_owned(),
        "shared_buffers = 32MB".to_owned(),
    ];
    conf.extend(extra.iter().cloned());
    let conf_path = data.join("postgresql.conf");
    let mut text = fs::read_to_string(&conf_path).map_err(|e| e.to_string())?;
    text.push_str(&format!("\n{}\n", conf.join("\n")));
    fs::write(&conf_path, text).map_err(|e| e.to_string())?;
    let log = fs::File::create(dir.join("log")).map_err(|e| e.to_string())?;
    let child = as_owner(&bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("postgres could not start: {e}"))?;
    watchdog(child.id(), &dir);
    let server = Server { port, dir, bin };
    server.wait_until_ready()?;
    Ok(server)
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A process of its own that outlives us: when this test process is gone,
/// it stops the server (fast shutdown, then SIGKILL) and removes its folder.
fn watchdog(server_pid: u32, dir: &Path) {
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill -INT {pid} 2>/dev/null; \
         for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.5; kill -0 {pid} 2>/dev/null || break; done; \
         kill -KILL {pid} 2>/dev/null; rm -rf '{dir}'",
        me = std::process::id(),
        pid = server_pid,
        dir = dir.display(),
    );
    // `setsid -f` forks the watchdog into a session of its own and returns:
    // nothing of ours waits for it, and it outlives this process.
    let started = Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the server's watchdog");
    assert!(started.success(), "setsid -f failed: {started}");
}

/// Remove `dir` once this test process is gone (the TLS server's
/// certificates, which must outlive every case that names them).
pub fn remove_when_gone(dir: &Path) {
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; rm -rf '{dir}'",
        me = std::process::id(),
        dir = dir.display(),
    );
    let started = Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the cleanup");
    assert!(started.success(), "setsid -f failed: {started}");
}

impl Server {
    fn wait_until_ready(&self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .map_err(|e| e.to_string())?;
            if ready.success() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let log = fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                return Err(format!("the server did not start within 30 s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A superuser connection to `dbname`.
    pub fn client(&self, dbname: &str) -> postgres::Client {
        let params = format!(
            "host=127.0.0.1 port={} user={PG_USER} password={PG_PASSWORD} dbname={dbname} connect_timeout=10",
            self.port
        );
        let started = Instant::now();
        loop {
            match postgres::Client::connect(&params, postgres::NoTls) {
                Ok(client) => return client,
                // The server briefly refuses while it starts; never longer.
                Err(e) if started.elapsed() < Duration::from_secs(10) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("connect to the test server: {e}"),
            }
        }
    }

    /// A new, empty database of its own.
    pub fn database(&'static self) -> PgDatabase {
        self.database_from(None)
    }

    /// A new database, a copy of `template` when given (no session may be
    /// connected to it meanwhile).
    pub fn database_from(&'static self, template: Option<&str>) -> PgDatabase {
        static NEXT_DB: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        let template = template.map_or_else(String::new, |t| format!(" TEMPLATE {t}"));
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}{template}"))
            .expect("create a test database");
        PgDatabase { name, server: self }
    }

    /// The URL the job gets, with `query` (e.g. `sslmode=disable`).
    pub fn url(&self, dbname: &str, query: &str) -> String {
        format!(
            "postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{}/{dbname}?{query}",
            self.port
        )
    }
}

/// One test's database on a test server (servers live in statics).
#[derive(Clone)]
pub struct PgDatabase {
    pub name: String,
    pub server: &'static Server,
}

/// The advisory lock key the job documents (README, "Database states").
pub const LOCK_KEY: i64 = 0x6d61_692d_7072_6f76;

impl PgDatabase {
    pub fn client(&self) -> postgres::Client {
        self.server.client(&self.name)
    }

    /// After a run ended, however: its session is gone from the server (it
    /// may take the server a moment to see the closed socket), and with it
    /// the advisory lock. Only this database's sessions count: other tests
    /// run jobs on their own databases meanwhile.
    pub fn assert_job_released(&self, context: &str) {
        let mut client = self.client();
        let started = std::time::Instant::now();
        loop {
            let left: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mai-provision' \
                     AND datname = current_database()",
                    &[],
                )
                .expect("pg_stat_activity")
                .get(0);
            if left == 0 {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{context}: the job's session outlived it"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        self.assert_lock_is_free(context);
    }

    /// Nobody holds the advisory lock: this session gets it at once.
    pub fn assert_lock_is_free(&self, context: &str) {
        let mut client = self.client();
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
            .expect("try the lock")
            .get(0);
        assert!(got, "{context}: the advisory lock is still held");
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
            .expect("unlock");
    }

    pub fn url(&self) -> String {
        self.server.url(&self.name, "sslmode=disable")
    }
}
