//! A stand-in for the mAI application, for the end-to-end test. It does at
//! start-up what docs/mai-contract.md says the application does, and fails
//! where the application fails. It reports each fact on stdout, one
//! `standin:` line per fact:
//!
//! 1. the image's start script ("WEBUI_SECRET_KEY and the start script"):
//!    when the environment has neither `WEBUI_SECRET_KEY` nor
//!    `WEBUI_JWT_SECRET_KEY`, take the key from
//!    `/app/backend/.webui_secret_key`, creating it (12 random bytes,
//!    base64) when it is missing, without its trailing newlines; this
//!    happens before the `.env` is loaded;
//! 2. load `/app/.env` the way python-dotenv's `load_dotenv` does (with this
//!    crate's port of its parser; variables already set win, so the key of
//!    step 1 beats the `.env`'s) ("What the application loads at start-up");
//! 3. print the values it got; secrets only as a fingerprint and a length;
//! 4. run "its migration" ("Migrations at start-up"): create the migration
//!    shape (tests/fixtures/mai-alembic-schema.sql, without `timezone`) when
//!    `client_organizations` is missing;
//! 5. register the organization as the initializer does ("The start-up
//!    initializer"): update name, key and `updated_at` of the row, else
//!    insert one that names `timezone`; an error is logged and swallowed, so
//!    on the migration shape the insert fails and nothing is registered;
//! 6. print `standin: ready` and serve until SIGTERM. While serving it looks
//!    the organization up as the ORM does ("How the application looks an
//!    organization up": all 11 columns, by id, active rows only) every
//!    250 ms, printing each distinct failure once, until the lookup finds
//!    the row; then it records one usage row, costed with the row's markup,
//!    and prints what it read.
//!
//! A setup problem (an unreadable `.env` or key file, a database that cannot
//! be opened) prints `standin: FAILED …` and exits 1. It is built static,
//! like the job, and runs in a FROM scratch image
//! (tests/e2e/standin.Dockerfile).

use std::collections::BTreeMap;
use std::error::Error;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mai_provision::envfile::Document;
use mai_provision::secret::Secret;
use mai_provision::signals;
use rusqlite::types::Value;
use rusqlite::{Connection, params};

const ENV_FILE: &str = "/app/.env";
/// start.sh's `KEY_FILE=.webui_secret_key`, in its working folder.
const KEY_FILE: &str = "/app/backend/.webui_secret_key";
const ALEMBIC_SQL: &str = include_str!("../../fixtures/mai-alembic-schema.sql");
const DEFAULT_MARKUP_RATE: f64 = 1.3;
const DEFAULT_TIMEZONE: &str = "Europe/Warsaw";
const LOOKUP_EVERY: Duration = Duration::from_millis(250);

/// The ORM's read of `client_organizations`: every mapped column, by id,
/// active rows only ("Columns the ORM reads").
const ORM_LOOKUP: &str = "SELECT id, name, openrouter_api_key, openrouter_key_hash, markup_rate, \
     monthly_limit, billing_email, is_active, created_at, updated_at, timezone \
     FROM client_organizations WHERE id = ?1 AND is_active = 1";

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
    let (uid, gid) = process_owner()?;
    say(&format!(
        "started at_ms={} uid={uid} gid={gid}",
        now.as_millis()
    ));
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    start_script(&mut env)?;
    load_dotenv(Path::new(ENV_FILE), &mut env)?;
    print_values(&env);
    let db_path = database_path(&env);
    let conn = Connection::open(&db_path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    migrate(&conn)?;
    let org = env.get("OPENROUTER_EXTERNAL_USER").cloned();
    if let Some(org) = &org {
        register(&conn, &env, org, i64::try_from(now.as_secs())?);
    }
    for path in [db_path.as_path(), Path::new(ENV_FILE), Path::new(KEY_FILE)] {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        say(&format!(
            "file {} uid={} gid={} mode={:o}",
            path.display(),
            meta.uid(),
            meta.gid(),
            meta.mode() & 0o7777
        ));
    }
    say("ready");
    serve(&conn, &env, org.as_deref())?;
    say("stopped");
    Ok(())
}

/// The process's uid and gid, from `/proc/self` (a scratch image has no `id`).
fn process_owner() -> Result<(u32, u32)> {
    let meta = std::fs::metadata("/proc/self")?;
    Ok((meta.uid(), meta.gid()))
}

/// What the image's start script does before Python starts: with neither
/// key in the environment (empty counts as unset, as its `test` does), read
/// the key file, making it first when it is missing; `$(cat …)` drops the
/// trailing newlines. The script always starts the server with
/// `WEBUI_SECRET_KEY` set, so python-dotenv never takes the `.env`'s line.
fn start_script(env: &mut BTreeMap<String, String>) -> Result<()> {
    let set = |key: &str| env.get(key).is_some_and(|v| !v.is_empty());
    if set("WEBUI_SECRET_KEY") || set("WEBUI_JWT_SECRET_KEY") {
        say("start script: WEBUI_SECRET_KEY from the environment");
        env.entry("WEBUI_SECRET_KEY".to_owned()).or_default();
        return Ok(());
    }
    let path = Path::new(KEY_FILE);
    let origin = if std::fs::symlink_metadata(path).is_ok() {
        "read"
    } else {
        // `echo $(head -c 12 /dev/random | base64) > "$KEY_FILE"`
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, format!("{}\n", base64(&random_bytes::<12>()?)))
            .map_err(|e| format!("cannot create {KEY_FILE}: {e}"))?;
        "generated"
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {KEY_FILE}: {e}"))?;
    let key = text.trim_end_matches('\n').to_owned();
    say(&format!(
        "start script: WEBUI_SECRET_KEY from {KEY_FILE} ({origin})"
    ));
    env.insert("WEBUI_SECRET_KEY".to_owned(), key);
    Ok(())
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    use rand::TryRng;
    let mut bytes = [0u8; N];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| format!("no random bytes: {e}"))?;
    Ok(bytes)
}

/// Standard base64 with padding, as coreutils' `base64` prints it.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `load_dotenv()`: every variable the file binds, unless the process
/// already has it (a bare `KEY` line binds nothing). Kept in a map rather
/// than set in the process, which would need `unsafe`.
fn load_dotenv(path: &Path, env: &mut BTreeMap<String, String>) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let document = Document::parse(&text);
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
    Ok(())
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

/// The start-up initializer: it never touches `markup_rate` or `is_active`
/// of an existing row; a new one gets 1.3, active, and a `timezone`, which
/// its INSERT names. It logs every error and carries on.
fn register(conn: &Connection, env: &BTreeMap<String, String>, org: &str, now: i64) {
    let (Some(name), Some(key)) = (env.get("ORGANIZATION_NAME"), env.get("OPENROUTER_API_KEY"))
    else {
        say("registration skipped: ORGANIZATION_NAME or OPENROUTER_API_KEY unset");
        return;
    };
    let result = (|| -> rusqlite::Result<&str> {
        let updated = conn.execute(
            "UPDATE client_organizations SET name = ?1, openrouter_api_key = ?2, updated_at = ?3 WHERE id = ?4",
            params![name, key, now, org],
        )?;
        if updated == 1 {
            return Ok("updated");
        }
        conn.execute(
            "INSERT INTO client_organizations (id, name, openrouter_api_key, markup_rate, is_active, \
             created_at, updated_at, timezone) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5, ?6)",
            params![org, name, key, DEFAULT_MARKUP_RATE, now, DEFAULT_TIMEZONE],
        )?;
        Ok("inserted")
    })();
    match result {
        Ok(action) => say(&format!("registered {org}: {action}")),
        Err(e) => say(&format!("registration failed: {e}")),
    }
}

/// Serve until SIGTERM. Until the ORM's lookup finds the organization, try
/// again every `LOOKUP_EVERY`, as each request would; then record one usage
/// row, as a chat request does.
fn serve(conn: &Connection, env: &BTreeMap<String, String>, org: Option<&str>) -> Result<()> {
    let mut pending = org;
    let mut last_failure = String::new();
    let mut next_lookup = Instant::now();
    while signals::received().is_none() {
        if let Some(org) = pending.filter(|_| Instant::now() >= next_lookup) {
            match lookup(conn, org) {
                Ok(row) => {
                    record_usage(conn, org, &row)?;
                    print_org(env, org, &row);
                    pending = None;
                }
                Err(detail) => {
                    if detail != last_failure {
                        say(&format!("Client organization not found ({detail})"));
                        last_failure = detail;
                    }
                    next_lookup = Instant::now() + LOOKUP_EVERY;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The row as the ORM maps it.
struct OrgRow {
    name: String,
    key: String,
    markup_rate: f64,
    is_active: i64,
    created_at: i64,
    created_at_type: &'static str,
}

/// The ORM's lookup. A text timestamp fails the row's validation without a
/// word ("Timestamps"); here it is a failure like a missing row.
fn lookup(conn: &Connection, org: &str) -> std::result::Result<OrgRow, String> {
    let values = conn
        .query_row(ORM_LOOKUP, [org], |r| {
            (0..11)
                .map(|i| r.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<Value>>>()
        })
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => "no active row".to_owned(),
            e => e.to_string(),
        })?;
    let text = |v: &Value| match v {
        Value::Text(t) => t.clone(),
        _ => String::new(),
    };
    let type_name = |v: &Value| match v {
        Value::Null => "null",
        Value::Integer(_) => "integer",
        Value::Real(_) => "real",
        Value::Text(_) => "text",
        Value::Blob(_) => "blob",
    };
    let (Value::Integer(created_at), Value::Integer(_)) = (&values[8], &values[9]) else {
        return Err(format!(
            "created_at is {}, updated_at is {}",
            type_name(&values[8]),
            type_name(&values[9])
        ));
    };
    Ok(OrgRow {
        name: text(&values[1]),
        key: text(&values[2]),
        markup_rate: match values[4] {
            Value::Real(r) => r,
            Value::Integer(i) => i as f64,
            _ => DEFAULT_MARKUP_RATE,
        },
        is_active: match values[7] {
            Value::Integer(i) => i,
            _ => 0,
        },
        created_at: *created_at,
        created_at_type: type_name(&values[8]),
    })
}

/// What a chat request leaves behind: one usage row, costed with the
/// organization's markup.
fn record_usage(conn: &Connection, org: &str, row: &OrgRow) -> Result<()> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
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
            raw_cost * row.markup_rate
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

fn print_org(env: &BTreeMap<String, String>, org: &str, row: &OrgRow) {
    let env_key = env.get("OPENROUTER_API_KEY").map_or("", String::as_str);
    say(&format!(
        "org id={org} name={} markup_rate={} is_active={} created_at={} \
         created_at_type={} key_matches_env={}",
        json_string(&row.name),
        row.markup_rate,
        row.is_active,
        row.created_at,
        row.created_at_type,
        row.key == env_key
    ));
}
