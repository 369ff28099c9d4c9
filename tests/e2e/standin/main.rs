//! A stand-in for the mAI application, for the end-to-end test. It does at
//! start-up what CONTRACT.md says the application does, and reports it on
//! stdout, one `standin:` line per fact:
//!
//! 1. load `/app/.env` the way python-dotenv's `load_dotenv` does (with this
//!    crate's port of its parser; variables already in the environment win);
//! 2. print the values it got; secrets only as a fingerprint and a length;
//! 3. run "its migrations": create the usage schema (the Alembic shape from
//!    tests/fixtures) when `client_organizations` is missing;
//! 4. register the organization as the application does (update name, key
//!    and `updated_at`, or insert with markup 1.3), if the three variables
//!    are set;
//! 5. record usage (insert a row into `client_user_daily_usage`) and read
//!    the active organization row back: the database is readable and
//!    writable by the application's user;
//! 6. print `standin: ready`, then serve until SIGTERM, as the real
//!    application would.
//!
//! Any failure prints `standin: FAILED …` and exits 1. It is built static,
//! like the job, and runs in a FROM scratch image (tests/e2e/standin.Dockerfile).

use std::collections::BTreeMap;
use std::error::Error;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mai_provision::envfile::Document;
use mai_provision::secret::Secret;
use mai_provision::signals;
use rusqlite::{Connection, OptionalExtension, params};

const ENV_FILE: &str = "/app/.env";
const ALEMBIC_SQL: &str = include_str!("../../fixtures/mai-alembic-schema.sql");
const DEFAULT_MARKUP_RATE: f64 = 1.3;

const PLAIN_KEYS: [&str; 9] = [
    "OPENROUTER_HOST",
    "OPENROUTER_EXTERNAL_USER",
    "ENABLE_OPENAI_API",
    "OPENAI_API_BASE_URL",
    "ORGANIZATION_NAME",
    "SPENDING_LIMIT",
    "ENABLE_MODEL_FILTER",
    "BYPASS_MODEL_ACCESS_CONTROL",
    "OPENAI_API_CONFIGS",
];
const SECRET_KEYS: [&str; 3] = ["OPENROUTER_API_KEY", "OPENAI_API_KEY", "WEBUI_SECRET_KEY"];

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("FAILED {e}"));
            std::process::ExitCode::FAILURE
        }
    }
}

fn say(line: &str) {
    println!("standin: {line}");
}

fn run() -> Result<()> {
    signals::install()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    say(&format!(
        "started at_ms={} uid={} gid={}",
        now.as_millis(),
        process_owner()?.0,
        process_owner()?.1
    ));
    let env = load_dotenv(Path::new(ENV_FILE))?;
    print_values(&env);
    let db_path = database_path(&env);
    let conn = Connection::open(&db_path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    migrate(&conn)?;
    if let Some(org) = env.get("OPENROUTER_EXTERNAL_USER") {
        register(&conn, &env, org, i64::try_from(now.as_secs())?)?;
        record_usage(&conn, org, now)?;
        read_org(&conn, &env, org)?;
    }
    for path in [db_path.as_path(), Path::new(ENV_FILE)] {
        let meta = std::fs::metadata(path)?;
        say(&format!(
            "file {} uid={} gid={} mode={:o}",
            path.display(),
            meta.uid(),
            meta.gid(),
            meta.mode() & 0o7777
        ));
    }
    say("ready");
    while signals::received().is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    say("stopped");
    Ok(())
}

/// The process's uid and gid, from `/proc/self` (a scratch image has no `id`).
fn process_owner() -> Result<(u32, u32)> {
    let meta = std::fs::metadata("/proc/self")?;
    Ok((meta.uid(), meta.gid()))
}

/// The environment the application ends up with after `load_dotenv()`:
/// every variable the file binds, unless the process already has it (a
/// bare `KEY` line binds nothing). Kept in a map rather than set in the
/// process, which would need `unsafe`.
fn load_dotenv(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let document = Document::parse(&text);
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    let mut loaded = 0;
    for binding in document.bindings() {
        let Some(value) = document.value(&binding.key) else {
            continue;
        };
        if !env.contains_key(&binding.key) {
            env.insert(binding.key.clone(), value.to_owned());
            loaded += 1;
        }
    }
    say(&format!(
        "loaded {} variables from {}",
        loaded,
        path.display()
    ));
    Ok(env)
}

fn print_values(env: &BTreeMap<String, String>) {
    for key in PLAIN_KEYS {
        match env.get(key) {
            Some(value) => say(&format!("env {key}={}", json_string(value))),
            None => say(&format!("env {key} unset")),
        }
    }
    for key in SECRET_KEYS {
        match env.get(key) {
            Some(value) => say(&format!(
                "env {key} fingerprint={} length={}",
                Secret::new(value.clone()).fingerprint(),
                value.chars().count()
            )),
            None => say(&format!("env {key} unset")),
        }
    }
}

fn json_string(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

fn database_path(env: &BTreeMap<String, String>) -> PathBuf {
    let data_dir = env
        .get("DATA_DIR")
        .map_or("/app/backend/data", String::as_str);
    match env.get("DATABASE_URL") {
        Some(url) if url.starts_with("sqlite:///") => PathBuf::from(&url["sqlite:///".len()..]),
        _ => Path::new(data_dir).join("webui.db"),
    }
}

/// The application's migration, in one transaction like Alembic's.
fn migrate(conn: &Connection) -> Result<()> {
    let present: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'client_organizations'",
        [],
        |r| r.get(0),
    )?;
    if present {
        say("schema present");
        return Ok(());
    }
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {ALEMBIC_SQL}; COMMIT;"))?;
    say("schema created (migration)");
    Ok(())
}

/// The application's own registration: never touches `markup_rate` of an
/// existing row; a new one gets 1.3.
fn register(conn: &Connection, env: &BTreeMap<String, String>, org: &str, now: i64) -> Result<()> {
    let (Some(name), Some(key)) = (env.get("ORGANIZATION_NAME"), env.get("OPENROUTER_API_KEY"))
    else {
        say("registration skipped: ORGANIZATION_NAME or OPENROUTER_API_KEY unset");
        return Ok(());
    };
    let updated = conn.execute(
        "UPDATE client_organizations SET name = ?1, openrouter_api_key = ?2, updated_at = ?3 WHERE id = ?4",
        params![name, key, now, org],
    )?;
    if updated == 1 {
        say(&format!("registered {org}: updated"));
        return Ok(());
    }
    conn.execute(
        "INSERT INTO client_organizations (id, name, openrouter_api_key, markup_rate, is_active, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)",
        params![org, name, key, DEFAULT_MARKUP_RATE, now],
    )?;
    say(&format!("registered {org}: inserted"));
    Ok(())
}

/// What a chat request leaves behind: one usage row, costed with the
/// organization's markup.
fn record_usage(conn: &Connection, org: &str, now: Duration) -> Result<()> {
    let markup: f64 = conn.query_row(
        "SELECT markup_rate FROM client_organizations WHERE id = ?1 AND is_active = 1",
        [org],
        |r| r.get(0),
    )?;
    let raw_cost = 0.01;
    let id = format!("standin-{}", now.as_nanos());
    let seconds = i64::try_from(now.as_secs())?;
    conn.execute(
        "INSERT INTO client_user_daily_usage (id, client_org_id, user_id, openrouter_user_id, usage_date, \
         total_tokens, total_requests, raw_cost, markup_cost, created_at, updated_at) \
         VALUES (?1, ?2, 'standin-user', ?3, date(?4, 'unixepoch'), 100, 1, ?5, ?6, ?4, ?4)",
        params![
            id,
            org,
            format!("{org}_user_standin"),
            seconds,
            raw_cost,
            raw_cost * markup
        ],
    )?;
    let rows: i64 = conn.query_row(
        "SELECT count(*) FROM client_user_daily_usage WHERE client_org_id = ?1",
        [org],
        |r| r.get(0),
    )?;
    say(&format!("usage recorded rows={rows}"));
    Ok(())
}

fn read_org(conn: &Connection, env: &BTreeMap<String, String>, org: &str) -> Result<()> {
    let row = conn
        .query_row(
            "SELECT name, openrouter_api_key, markup_rate, is_active, typeof(created_at), created_at \
             FROM client_organizations WHERE id = ?1 AND is_active = 1",
            [org],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            },
        )
        .optional()?;
    let Some((name, key, markup, active, created_type, created_at)) = row else {
        return Err(format!("no active organization row {org}").into());
    };
    let env_key = env.get("OPENROUTER_API_KEY").map_or("", String::as_str);
    say(&format!(
        "org id={org} name={} markup_rate={markup} is_active={active} created_at={created_at} \
         created_at_type={created_type} key_matches_env={}",
        json_string(&name),
        key == env_key
    ));
    Ok(())
}
