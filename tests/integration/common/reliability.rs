//! Helpers for the reliability suites (concurrency, crash, signals, file
//! modes): runs that are watched while they work, paused at a named step,
//! signalled, killed, run as PID 1 or under a umask, and the checks that
//! follow (integrity, leftovers, secrets).

use std::fs;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Backend, KEY, OTHER_KEY, Run, SECRET_KEY, Sandbox, skip};

/// How every temp file of ours ends (see src/envfile/write.rs).
pub const TEMP_SUFFIX: &str = ".mai-provision.tmp";

/// Generous bounds for waiting on a loaded machine; a healthy run takes
/// milliseconds, so these only decide how long a broken test hangs.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

impl Sandbox {
    /// Our temp files anywhere in the sandbox.
    pub fn temp_files(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for dir in [self.data_dir(), self.path().join("shared")] {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.map(|e| e.expect("dir entry")) {
                if entry.file_name().to_string_lossy().ends_with(TEMP_SUFFIX) {
                    found.push(entry.path());
                }
            }
        }
        found
    }

    /// A marker file for `MAI_PROVISION_TEST_PAUSE_FILE`, unique per call.
    pub fn marker(&self) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.path().join(format!("pause-marker-{n}"))
    }

    /// Assert that no file but those meant to hold them (the `.env`, its
    /// backup, the key store, the database, and their temp files) contains
    /// a secret: no lock file, log or stray output picked one up.
    pub fn assert_secrets_only_where_they_belong(&self, extra: &[&str]) {
        let holders = [
            ".env",
            ".env.backup",
            ".webui_secret_key",
            ".openrouter_key",
            "webui.db",
        ];
        for (path, state) in &self.snapshot().0 {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let holder = holders.iter().any(|h| {
                name == *h
                    || name.starts_with(&format!("{h}-"))
                    || (name.starts_with(&format!(".{h}.")) && name.ends_with(TEMP_SUFFIX))
            });
            if holder {
                continue;
            }
            let text = String::from_utf8_lossy(&state.bytes);
            for secret in secret_needles().iter().chain(extra) {
                assert!(!text.contains(secret), "{} holds a secret", path.display());
            }
        }
    }
}

impl Sandbox {
    /// The key a run generated and stored, if any, is not in its output
    /// either (whole, or its first half).
    pub fn assert_stored_key_not_in(&self, run: &Run, context: &str) {
        if let Ok(key) = fs::read_to_string(self.secret_store()) {
            let half = &key[..key.len() / 2];
            assert!(
                half.is_empty() || !run.output().contains(half),
                "{context}: the generated WEBUI_SECRET_KEY leaked into the output"
            );
        }
    }
}

/// The fake secrets and recognisable slices of them.
pub fn secret_needles() -> Vec<&'static str> {
    vec![KEY, OTHER_KEY, SECRET_KEY, &KEY[9..], &SECRET_KEY[5..]]
}

/// `PRAGMA integrity_check` of a database, opened read-write so that a hot
/// journal left by a killed run is rolled back first, as the next run would.
pub fn integrity(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).expect("open db");
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("integrity_check")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.join("; ")
}

pub fn assert_integrity(path: &Path, context: &str) {
    assert_eq!(integrity(path), "ok", "{context}: integrity_check");
}

impl Sandbox {
    /// After a run ended, however: SQLite's file passes its integrity
    /// check; on PostgreSQL the run's session is gone from the server (it
    /// may take the server a moment to see the closed socket), and with it
    /// the advisory lock.
    pub fn assert_database_released(&self, context: &str) {
        let Some(pg) = &self.pg else {
            if self.db_path().exists() {
                assert_integrity(&self.db_path(), context);
            }
            return;
        };
        pg.assert_job_released(context);
    }
}

/// A running binary whose output is collected as it comes, so that a test
/// can wait for a log line, signal it, and still see everything it printed.
pub struct Live {
    pub child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

pub fn spawn(mut cmd: Command) -> Live {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn binary");
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = vec![
        collect_into(child.stdout.take().expect("stdout"), stdout.clone()),
        collect_into(child.stderr.take().expect("stderr"), stderr.clone()),
    ];
    Live {
        child,
        stdout,
        stderr,
        readers,
    }
}

fn collect_into(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .expect("output buffer")
                .extend_from_slice(&buf[..n]);
        }
    })
}

/// How a watched run ended.
#[derive(Debug)]
pub struct Ended {
    pub run: Run,
    /// `Some(signal)` when a signal, not `exit`, ended the process.
    pub signal: Option<i32>,
}

impl Live {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr")).into_owned()
    }

    /// Wait until `marker` exists: the run reached its pause point. Panics
    /// with the output if the run ends first or takes too long.
    pub fn wait_for_marker(&mut self, marker: &Path) {
        self.wait_until(&format!("pause marker {}", marker.display()), |_| {
            marker.exists()
        });
    }

    /// Wait until stderr contains `needle`.
    pub fn wait_for_log(&mut self, needle: &str) {
        let stderr = self.stderr.clone();
        self.wait_until(&format!("log line {needle:?}"), move |_| {
            String::from_utf8_lossy(&stderr.lock().expect("stderr")).contains(needle)
        });
    }

    fn wait_until(&mut self, what: &str, mut ready: impl FnMut(&Self) -> bool) {
        let started = Instant::now();
        loop {
            if ready(self) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "the run ended ({status}) before {what}; stderr:\n{}",
                    self.stderr_so_far()
                );
            }
            assert!(
                started.elapsed() < STEP_TIMEOUT,
                "no {what} after {STEP_TIMEOUT:?}; stderr:\n{}",
                self.stderr_so_far()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Send `signal` (a name for kill(1): TERM, INT, KILL) to the process.
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// Wait for the end, at most `limit`; panics past it (after killing).
    pub fn wait(mut self, limit: Duration) -> Ended {
        use std::os::unix::process::ExitStatusExt;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the run did not end within {limit:?}; stderr:\n{}",
                    self.stderr_so_far()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        for reader in self.readers.drain(..) {
            reader.join().expect("output reader");
        }
        let take = |b: &Arc<Mutex<Vec<u8>>>| {
            String::from_utf8_lossy(&b.lock().expect("output")).into_owned()
        };
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: take(&self.stdout),
            stderr: take(&self.stderr),
        };
        // A killed process may have printed part of a line: still no secret.
        run.assert_no_secret();
        Ended {
            run,
            signal: status.signal(),
        }
    }

    /// SIGKILL now and reap.
    pub fn kill(mut self) -> Ended {
        let _ = self.child.kill();
        self.wait(STEP_TIMEOUT)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // A test that panicked must not leave a paused run behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .expect("kill(1)");
    assert!(status.success(), "kill -s {signal} {pid} failed");
}

/// Start every command at the same moment (threads released by one
/// barrier), and wait for all of them.
pub fn run_together(commands: Vec<Command>) -> Vec<Run> {
    let barrier = Arc::new(std::sync::Barrier::new(commands.len()));
    let threads: Vec<_> = commands
        .into_iter()
        .map(|mut cmd| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                Run::from(cmd.output().expect("run binary"))
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("runner thread"))
        .collect()
}

/// Run `cmd` paused at `step`: returns once the run sits at that step.
pub fn spawn_paused(sandbox: &Sandbox, mut cmd: Command, step: &str) -> Live {
    let marker = sandbox.marker();
    cmd.env("MAI_PROVISION_TEST_PAUSE", step)
        .env("MAI_PROVISION_TEST_PAUSE_FILE", &marker)
        .env("MAI_PROVISION_TEST_PAUSE_SECS", "60");
    let mut live = spawn(cmd);
    live.wait_for_marker(&marker);
    let _ = fs::remove_file(&marker);
    live
}

/// `cmd` under a shell that sets `umask` first and then execs the binary,
/// so that the binary itself creates its files under that mask.
pub fn with_umask(cmd: &Command, umask: &str) -> Command {
    wrap(
        cmd,
        "sh",
        &["-c", &format!("umask {umask}; exec \"$0\" \"$@\"")],
    )
}

/// `cmd` as PID 1 of a new PID namespace, as in a container without an
/// init: `unshare --pid --fork` forks the binary as the namespace's first
/// process. `None` (after a loud skip) when unshare is not permitted here.
pub fn as_pid_1(cmd: &Command, check: &str) -> Option<Command> {
    static PERMITTED: OnceLock<Result<(), String>> = OnceLock::new();
    let permitted = PERMITTED.get_or_init(|| {
        let out = Command::new("unshare")
            .args(["--pid", "--fork", "sh", "-c", "exit 0"])
            .output()
            .map_err(|e| format!("unshare could not run: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "unshare --pid --fork is not permitted: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    });
    match permitted {
        // --kill-child: if unshare dies (a failed test kills it), so does
        // the job, instead of sleeping on at a pause point.
        Ok(()) => Some(wrap(
            cmd,
            "unshare",
            &["--pid", "--fork", "--kill-child", "--"],
        )),
        Err(reason) => {
            skip(check, &format!("{reason}; the PID 1 case is NOT checked"));
            None
        }
    }
}

/// `program args… <cmd's program> <cmd's args…>` with `cmd`'s environment
/// and directory.
pub fn wrap(cmd: &Command, program: &str, args: &[&str]) -> Command {
    let mut wrapped = Command::new(program);
    wrapped
        .args(args)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    wrapped.env_clear();
    for (name, value) in cmd.get_envs() {
        if let Some(value) = value {
            wrapped.env(name, value);
        }
    }
    // The wrapper itself needs a PATH to find nothing but itself; the
    // binary is named by its full path.
    if cmd.get_envs().all(|(name, _)| name != "PATH") {
        wrapped.env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin");
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// The only child of `parent` (the binary forked by unshare), by scanning
/// /proc; and its PID inside its own namespace (the last NSpid field).
pub fn only_child(parent: u32) -> (u32, u32) {
    let started = Instant::now();
    loop {
        let children: Vec<u32> = fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|pid| parent_of(*pid) == Some(parent))
            .collect();
        if let [child] = children[..]
            && let Some(inner) = namespace_pid(child)
        {
            return (child, inner);
        }
        assert!(
            started.elapsed() < STEP_TIMEOUT,
            "no single child of {parent}: {children:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid …; comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

fn namespace_pid(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// Take `path`'s exclusive lock in a separate process (flock(1)) and keep
/// it until the returned guard is dropped.
pub struct HeldLock {
    child: Child,
}

pub fn hold_lock(path: &Path) -> HeldLock {
    let marker = path.with_extension("held");
    let _ = fs::remove_file(&marker);
    // --no-fork: the command replaces flock(1), so killing it frees the lock.
    let child = Command::new("flock")
        .args(["--exclusive", "--no-fork"])
        .arg(path)
        .args(["sh", "-c", "touch \"$0\"; exec sleep 600"])
        .arg(&marker)
        .stdin(Stdio::null())
        .spawn()
        .expect("flock(1)");
    let started = Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed() < STEP_TIMEOUT,
            "flock never took {path:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = fs::remove_file(&marker);
    HeldLock { child }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when nobody holds `path`'s lock: `flock --nonblock` gets it at once.
pub fn lock_is_free(path: &Path) -> bool {
    Command::new("flock")
        .args(["--exclusive", "--nonblock"])
        .arg(path)
        .arg("true")
        .status()
        .expect("flock(1)")
        .success()
}

/// A starting state and a new configuration to apply to it, for the
/// crash and signal suites: every file is either the old or the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A provisioned deployment gets a new key, markup and limit: an
    /// existing row is updated, the `.env` rewritten and backed up.
    Update { wal: bool },
    /// An empty volume, `CREATE_SCHEMA=true`, no configured secret: the key
    /// is generated and stored, the schema created, the row inserted.
    FirstBoot,
    /// `Update` on PostgreSQL: the row in a database of its own on the test
    /// server, the volume holding only the key store.
    PostgresUpdate,
}

/// The SQLite scenarios.
pub const SCENARIOS: [Scenario; 3] = [
    Scenario::Update { wal: false },
    Scenario::Update { wal: true },
    Scenario::FirstBoot,
];

/// Every scenario: SQLite's, and PostgreSQL's when the test server runs
/// (else a loud skip, or a failure in CI).
pub fn scenarios(check: &str) -> Vec<Scenario> {
    let mut all = SCENARIOS.to_vec();
    if super::postgres::server(check).is_some() {
        all.push(Scenario::PostgresUpdate);
    }
    all
}

/// Where a run stops writing the database: steps from here on have
/// committed it.
pub const DATABASE_COMMITTED: &str = "database-committed";

impl Scenario {
    /// The old state, in a fresh sandbox.
    pub fn prepare(self) -> Sandbox {
        match self {
            Scenario::Update { .. } | Scenario::PostgresUpdate => {
                let backend = if self == Scenario::PostgresUpdate {
                    Backend::Postgres
                } else {
                    Backend::Sqlite
                };
                let sandbox = Sandbox::with_shape_on(backend, super::Shape::Startup);
                if self == (Scenario::Update { wal: true }) {
                    sandbox.sql("PRAGMA journal_mode = WAL;");
                }
                sandbox
                    .run_with(&["--production"], &[("OPENROUTER_API_KEY", OTHER_KEY)])
                    .expect(0);
                // Long ago, so that a kept created_at stands out.
                sandbox.sql(&format!(
                    "UPDATE client_organizations SET created_at = {OLD_TIME}, updated_at = {OLD_TIME}"
                ));
                sandbox
            }
            Scenario::FirstBoot => Sandbox::new(),
        }
    }

    /// The run under test: the new configuration.
    pub fn command(self, sandbox: &Sandbox) -> Command {
        let mut cmd = sandbox.command();
        cmd.arg("--production");
        match self {
            Scenario::Update { .. } | Scenario::PostgresUpdate => {
                cmd.env("MARKUP_RATE", "1.5").env("SPENDING_LIMIT", "1000");
            }
            Scenario::FirstBoot => {
                cmd.env_remove("WEBUI_SECRET_KEY")
                    .env("CREATE_SCHEMA", "true");
            }
        }
        cmd
    }

    /// Every pause point such a run passes, in order.
    pub fn steps(self) -> &'static [&'static str] {
        match self {
            Scenario::Update { .. } | Scenario::PostgresUpdate => &[
                "locked",
                "secret-prepared",
                "temp-created:.env",
                "env-prepared",
                "temp-created:.env.backup",
                "backup-prepared",
                "transaction-open",
                "before-commit",
                DATABASE_COMMITTED,
                "backup-written",
                "env-committed",
            ],
            Scenario::FirstBoot => &[
                "locked",
                "temp-created:.webui_secret_key",
                "secret-prepared",
                "temp-created:.env",
                "env-prepared",
                "backup-prepared",
                "transaction-open",
                "schema-created",
                "before-commit",
                DATABASE_COMMITTED,
                "secret-stored",
                "env-committed",
            ],
        }
    }

    /// Whether a run stopped at `step` has committed the database.
    pub fn committed_at(self, step: &str) -> bool {
        let steps = self.steps();
        let at = steps.iter().position(|s| *s == step).expect("known step");
        let committed = steps
            .iter()
            .position(|s| *s == DATABASE_COMMITTED)
            .expect("commit step");
        at >= committed
    }
}

/// What a crash or a stop may leave: the files that matter, as comparable
/// values. A generated secret key is replaced by a placeholder in the
/// `.env`, so that states of different runs compare equal.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// `None` while there is no table (no database, or an empty one).
    pub rows: Option<Vec<super::OrgRow>>,
    pub env: Option<String>,
    pub backup: Option<String>,
    /// Whether `.webui_secret_key` exists (its value is checked apart).
    pub secret_stored: bool,
}

pub const GENERATED: &str = "<generated-secret>";

/// The timestamps of the old row in `Scenario::Update`.
pub const OLD_TIME: i64 = 1_600_000_000;

impl State {
    pub fn read(sandbox: &Sandbox) -> Self {
        let stored = fs::read_to_string(sandbox.secret_store()).ok();
        // The store holds the configured key, or a generated one, whole.
        let generated = stored.as_ref().filter(|key| key.as_str() != SECRET_KEY);
        if let Some(key) = generated {
            assert!(
                key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
                "the stored key is incomplete: {} bytes",
                key.len()
            );
        }
        let normalise = |text: String| match generated {
            Some(key) => text.replace(key.as_str(), GENERATED),
            None => text,
        };
        let env = fs::read_to_string(sandbox.env_path()).ok().map(normalise);
        if let (Some(env), None) = (&env, generated) {
            // Only FirstBoot generates; there the .env never comes first.
            assert!(env.contains(SECRET_KEY), "a .env whose key was not stored");
        }
        Self {
            rows: sandbox.rows_if_any(),
            env,
            backup: fs::read_to_string(sandbox.backup_path()).ok(),
            secret_stored: stored.is_some(),
        }
    }

    /// The state without the time of the run: `updated_at` of every row,
    /// and `created_at` of a row the run inserted (where the two agree).
    pub fn timeless(&self) -> Self {
        let mut state = self.clone();
        for row in state.rows.iter_mut().flatten() {
            if row.created_at == row.updated_at && row.created_at != OLD_TIME.into() {
                row.created_at = rusqlite::types::Value::Null;
            }
            if row.updated_at != OLD_TIME.into() {
                row.updated_at = rusqlite::types::Value::Null;
            }
        }
        state
    }
}

impl Sandbox {
    /// A new sandbox holding copies of this one's files (not its locks):
    /// the same old state, many times, without running the binary again.
    pub fn copy(&self) -> Sandbox {
        let mut copy = Sandbox::new();
        if let Some(pg) = &self.pg {
            copy.pg = Some(pg.server.database_from(Some(&pg.name)));
        }
        for dir in ["data", "shared"] {
            let Ok(entries) = fs::read_dir(self.path().join(dir)) else {
                let _ = fs::remove_dir(copy.path().join(dir));
                continue;
            };
            for entry in entries.map(|e| e.expect("dir entry")) {
                let name = entry.file_name();
                if entry.path().extension() == Some(std::ffi::OsStr::new("lock")) {
                    continue;
                }
                let to = copy.path().join(dir).join(&name);
                fs::copy(entry.path(), &to).expect("copy file");
            }
        }
        copy
    }
}

/// How the test's own connection keeps the database busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Rollback journal, a write transaction (RESERVED): the job reads,
    /// then waits to begin its own.
    RollbackWriter,
    /// Rollback journal, EXCLUSIVE: the job cannot even read.
    RollbackExclusive,
    /// Rollback journal, a long read (SHARED): the job writes, then waits
    /// to commit.
    RollbackReader,
    /// WAL, a write transaction: the job reads the last commit, then waits.
    WalWriter,
}

pub const BUSY: [Busy; 4] = [
    Busy::RollbackWriter,
    Busy::RollbackExclusive,
    Busy::RollbackReader,
    Busy::WalWriter,
];

/// A connection to the sandbox's database, holding it busy as `busy` says.
/// A writer also inserts the organization, as the application does when it
/// registers it at start-up.
pub fn hold_busy(sandbox: &Sandbox, busy: Busy) -> rusqlite::Connection {
    let holder = sandbox.db();
    let (journal, begin) = match busy {
        Busy::RollbackWriter => ("DELETE", "BEGIN IMMEDIATE"),
        Busy::RollbackExclusive => ("DELETE", "BEGIN EXCLUSIVE"),
        Busy::RollbackReader => ("DELETE", "BEGIN DEFERRED"),
        Busy::WalWriter => ("WAL", "BEGIN IMMEDIATE"),
    };
    let mode: String = holder
        .query_row(&format!("PRAGMA journal_mode = {journal}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode.to_uppercase(), journal);
    holder.execute_batch(begin).unwrap();
    if busy == Busy::RollbackReader {
        let _: i64 = holder
            .query_row("SELECT count(*) FROM client_organizations", [], |r| {
                r.get(0)
            })
            .unwrap();
    } else {
        holder
            .execute(
                "INSERT INTO client_organizations \
                 (id, name, openrouter_api_key, markup_rate, is_active, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, 1.3, 1, 1700000000, 1700000000)",
                (super::ACME_ID, super::NAME, KEY),
            )
            .unwrap();
    }
    holder
}

/// Another process (as the application is) that takes the database's lock
/// again and again, in `journal_mode`: each phase is a transaction begun with the given
/// `BEGIN` mode and held for the given seconds, then rolled back (so that
/// the file's bytes stay as they were); the phases repeat until the holder
/// is dropped. `EXCLUSIVE` stops even reads; `IMMEDIATE` lets reads through
/// and stops writers. Between two phases the lock is free only for the
/// microseconds the holder needs to take it again. It must be a process
/// of its own: SQLite's locks are POSIX record locks, which this process
/// would drop the moment it reads the file for a snapshot.
pub struct DbLockHolder {
    child: Child,
}

impl DbLockHolder {
    pub fn start(db: &Path, journal_mode: &str, phases: &[(&str, f64)]) -> Self {
        let script = "import sqlite3, sys, threading\n\
            stop = threading.Event()\n\
            threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()\n\
            phases = [(p.split(':')[0], float(p.split(':')[1])) for p in sys.argv[3:]]\n\
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)\n\
            c.execute('PRAGMA journal_mode = ' + sys.argv[2])\n\
            first = True\n\
            while not stop.is_set():\n\
            \x20   for mode, hold in phases:\n\
            \x20       c.execute('BEGIN ' + mode)\n\
            \x20       if first:\n\
            \x20           print('locked', flush=True)\n\
            \x20           first = False\n\
            \x20       stop.wait(hold)\n\
            \x20       c.execute('ROLLBACK')\n\
            \x20       if stop.is_set():\n\
            \x20           break\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(db)
            .arg(journal_mode)
            .args(phases.iter().map(|(mode, secs)| format!("{mode}:{secs}")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("read from the holder");
        assert_eq!(line.trim(), "locked", "the holder failed to take the lock");
        Self { child }
    }

    /// Stop taking the lock, and wait until the holder has let it go.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("wait for the holder");
        assert!(status.success(), "the holder failed: {status}");
    }
}

impl Drop for DbLockHolder {
    fn drop(&mut self) {
        if self.child.stdin.is_some() {
            drop(self.child.stdin.take());
            let _ = self.child.wait();
        }
    }
}
