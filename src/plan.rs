//! Deciding what must change. Everything here is pure: it takes the
//! configuration and a snapshot of the world (the `.env`, the stored secret,
//! the database row) and returns a plan, or the reason to refuse. `apply`
//! carries a plan out; `--dry-run` prints it; `--check` asks if it is empty.

use std::path::PathBuf;

use rusqlite::types::Value;

use crate::config::{Config, Mode};
use crate::db::{self, Expected, RowWrite, Snapshot, UPDATABLE_COLUMNS};
use crate::envfile::{self, Document, KeyChange, ManagedKey};
use crate::error::Error;
use crate::identity::{self, OrgId};
use crate::secret::Secret;
use crate::timestamp;

/// What new rows get in the `timezone` column, as the application does.
pub const DEFAULT_TIMEZONE: &str = "Europe/Warsaw";

/// The world as read at the start of a run.
#[derive(Debug, Clone)]
pub struct World {
    /// Where the `.env` really is (a link inside its folder is followed).
    pub env_file: PathBuf,
    pub env_text: Option<String>,
    /// Its permission bits, which must match ENV_FILE_MODE.
    pub env_mode: Option<u32>,
    /// The secret in `DATA_DIR/.webui_secret_key`, if any.
    pub stored_secret: Option<Secret>,
    pub data_dir_exists: bool,
    pub database: DatabaseState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DatabaseState {
    /// `--production`/`--init-database` not asked for.
    NotInMode,
    /// No database file; `dir_exists` says whether the volume is there.
    Missing {
        dir_exists: bool,
    },
    /// A database with no tables: the application has not started yet.
    Empty,
    Ready(Box<Snapshot>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKeySource {
    /// `WEBUI_SECRET_KEY` or `WEBUI_SECRET_KEY_FILE`.
    Configured,
    /// The value already in the `.env`.
    EnvFile,
    /// `DATA_DIR/.webui_secret_key`.
    Stored,
    /// Made now, and stored for the next run.
    Generated,
}

#[derive(Debug, Clone)]
pub struct SecretKeyPlan {
    pub source: SecretKeySource,
    pub value: Secret,
    /// `Some(path)` when the value must be written there first.
    pub store_at: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct EnvPlan {
    pub path: PathBuf,
    pub changes: Vec<KeyChange>,
    /// `None` when the file already holds exactly this.
    pub new_text: Option<String>,
    /// The current text, kept as `<ENV_FILE>.backup` when it changes.
    pub old_text: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowAction {
    Insert,
    Update,
}

#[derive(Debug, Clone)]
pub enum DatabasePlan {
    NotInMode,
    /// First boot: the application will create the schema and the row.
    Skip {
        reason: String,
    },
    Write {
        create_schema: bool,
        action: RowAction,
        /// The columns that change (an insert names them all).
        columns: Vec<&'static str>,
        write: RowWrite,
        expected: Expected,
    },
    Unchanged {
        expected: Expected,
    },
}

impl DatabasePlan {
    pub fn expected(&self) -> Option<&Expected> {
        match self {
            Self::Write { expected, .. } | Self::Unchanged { expected } => Some(expected),
            Self::NotInMode | Self::Skip { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub id: OrgId,
    pub secret_key: SecretKeyPlan,
    pub env: EnvPlan,
    pub database: DatabasePlan,
    pub warnings: Vec<String>,
}

impl Plan {
    /// True when a run would change nothing.
    pub fn is_empty(&self) -> bool {
        self.env.new_text.is_none()
            && self.secret_key.store_at.is_none()
            && !matches!(self.database, DatabasePlan::Write { .. })
    }
}

/// Build the plan. `new_secret` is only called when no secret key exists.
pub fn build(
    config: &Config,
    mode: Mode,
    id: OrgId,
    world: &World,
    now: i64,
    new_secret: impl FnOnce() -> Result<Secret, Error>,
) -> Result<Plan, Error> {
    let existing = Document::parse(world.env_text.as_deref().unwrap_or(""));
    identity::check_env_id(
        &id,
        existing.value("OPENROUTER_EXTERNAL_USER"),
        &world.env_file,
        &config.organization_name,
    )?;
    let database = plan_database(config, &id, &world.database, now)?;
    let secret_key = plan_secret_key(config, world, &existing, new_secret)?;
    let env = plan_env(config, &id, &secret_key, world, &existing)?;
    let warnings = warnings(config, &id, &world.database, &database);
    Ok(Plan {
        mode,
        id,
        secret_key,
        env,
        database,
        warnings,
    })
}

fn plan_secret_key(
    config: &Config,
    world: &World,
    existing: &Document,
    new_secret: impl FnOnce() -> Result<Secret, Error>,
) -> Result<SecretKeyPlan, Error> {
    let found = |source, value: Secret| SecretKeyPlan {
        source,
        value,
        store_at: None,
    };
    if let Some(key) = &config.webui_secret_key {
        return Ok(found(SecretKeySource::Configured, key.clone()));
    }
    if let Some(key) = existing.value("WEBUI_SECRET_KEY").filter(|k| !k.is_empty()) {
        return Ok(found(SecretKeySource::EnvFile, Secret::new(key)));
    }
    if let Some(key) = &world.stored_secret {
        return Ok(found(SecretKeySource::Stored, key.clone()));
    }
    let store = config.secret_key_store();
    if !world.data_dir_exists {
        return Err(Error::SecretKeyHome { path: store });
    }
    Ok(SecretKeyPlan {
        source: SecretKeySource::Generated,
        value: new_secret()?,
        store_at: Some(store),
    })
}

/// The managed keys in the order the old generator wrote them.
pub fn managed_keys(config: &Config, id: &OrgId, secret_key: &Secret) -> Vec<ManagedKey> {
    let plain = |key: &'static str, value: &str| ManagedKey {
        key,
        value: Some(value.to_owned()),
        secret: false,
    };
    let secret = |key: &'static str, value: &Secret| ManagedKey {
        key,
        value: Some(value.expose().to_owned()),
        secret: true,
    };
    let api_configs = config
        .model_ids
        .as_ref()
        .map(|ids| serde_json::json!({ "0": { "enable": true, "model_ids": ids } }).to_string());
    vec![
        secret("OPENROUTER_API_KEY", &config.api_key),
        plain("OPENROUTER_HOST", &config.host),
        plain("OPENROUTER_EXTERNAL_USER", &id.value),
        plain("ENABLE_OPENAI_API", "True"),
        plain("OPENAI_API_BASE_URL", &config.host),
        secret("OPENAI_API_KEY", &config.api_key),
        plain("ORGANIZATION_NAME", &config.organization_name),
        plain("SPENDING_LIMIT", &config.spending_limit),
        plain("ENABLE_MODEL_FILTER", "True"),
        plain("BYPASS_MODEL_ACCESS_CONTROL", "False"),
        ManagedKey {
            key: "OPENAI_API_CONFIGS",
            value: api_configs,
            secret: false,
        },
        secret("WEBUI_SECRET_KEY", secret_key),
    ]
}

fn plan_env(
    config: &Config,
    id: &OrgId,
    secret_key: &SecretKeyPlan,
    world: &World,
    existing: &Document,
) -> Result<EnvPlan, Error> {
    let merged = envfile::merge(existing, &managed_keys(config, id, &secret_key.value))
        .map_err(|problem| render_failure(problem, config, secret_key, world))?;
    merged.check_read_back(existing, &world.env_file)?;
    let same_mode = world
        .env_mode
        .is_none_or(|mode| mode == config.env_file_mode);
    let unchanged = world.env_text.as_deref() == Some(merged.text.as_str()) && same_mode;
    Ok(EnvPlan {
        path: world.env_file.clone(),
        changes: merged.changes,
        new_text: (!unchanged).then_some(merged.text),
        old_text: world.env_text.clone(),
    })
}

/// Every configured value was rendered when the configuration was read, so
/// a value that fails now is a secret key read from a file: the `.env`
/// itself or the store on the volume. Whoever can write there must not get
/// a line of their choosing into the `.env`; the run is refused.
fn render_failure(
    problem: envfile::RenderError,
    config: &Config,
    secret_key: &SecretKeyPlan,
    world: &World,
) -> Error {
    let path = match secret_key.source {
        SecretKeySource::EnvFile => world.env_file.clone(),
        SecretKeySource::Stored => config.secret_key_store(),
        SecretKeySource::Configured | SecretKeySource::Generated => return Error::Render(problem),
    };
    match envfile::render_value(secret_key.value.expose()) {
        Err(problem) => Error::SecretKeyUnusable {
            path,
            problem: format!("{problem}, so it cannot be written to the .env"),
        },
        Ok(_) => Error::Render(problem),
    }
}

pub fn plan_database(
    config: &Config,
    id: &OrgId,
    state: &DatabaseState,
    now: i64,
) -> Result<DatabasePlan, Error> {
    match state {
        DatabaseState::NotInMode => Ok(DatabasePlan::NotInMode),
        DatabaseState::Missing { .. } | DatabaseState::Empty if config.require_database => {
            Err(db::DbError::Required {
                path: config.database_path.clone(),
                empty: matches!(state, DatabaseState::Empty),
            }
            .into())
        }
        DatabaseState::Missing { .. } | DatabaseState::Empty if config.create_schema => {
            let schema = db::Schema {
                has_key_hash: true,
                has_timezone: true,
            };
            Ok(insert(config, id, schema, now, true))
        }
        DatabaseState::Missing { dir_exists } => Ok(DatabasePlan::Skip {
            reason: first_boot_reason(config, *dir_exists),
        }),
        DatabaseState::Empty => Ok(DatabasePlan::Skip {
            reason: first_boot_reason(config, true),
        }),
        DatabaseState::Ready(snapshot) => plan_row(config, id, snapshot, now),
    }
}

fn first_boot_reason(config: &Config, dir_exists: bool) -> String {
    let path = config.database_path.display();
    let what = if dir_exists {
        format!("the database {path} has no schema yet (first boot)")
    } else {
        format!(
            "the database {path} and its directory do not exist (first boot, or is the data volume not mounted at DATA_DIR?)"
        )
    };
    format!(
        "{what}: skipping the database step. The application creates its schema and registers the organization itself \
         on its first start (with markup_rate 1.3); run this job again after that start, or use --wait-for-database, \
         to apply MARKUP_RATE. Set REQUIRE_DATABASE=true to fail instead."
    )
}

fn plan_row(
    config: &Config,
    id: &OrgId,
    snapshot: &Snapshot,
    now: i64,
) -> Result<DatabasePlan, Error> {
    if let Some(owner) = &snapshot.key_owner {
        return Err(identity::IdentityError::KeyBelongsToOther {
            other_id: owner.id.clone(),
            other_name: owner.name.clone(),
        }
        .into());
    }
    let Some(row) = &snapshot.row else {
        return Ok(insert(config, id, snapshot.schema, now, false));
    };
    identity::check_stored_name(id, &row.name, &config.organization_name)?;
    let stored_rate = as_f64(&row.markup_rate);
    let markup_rate = match stored_rate {
        Some(rate) if !config.markup_rate.explicit => rate,
        _ => config.markup_rate.value,
    };
    let key_hash = snapshot
        .schema
        .has_key_hash
        .then(|| config.api_key.sha256_hex());
    let mut columns = Vec::new();
    if row.name != config.organization_name {
        columns.push("name");
    }
    if row.api_key != config.api_key {
        columns.push("openrouter_api_key");
    }
    if key_hash.is_some() && row.key_hash != key_hash {
        columns.push("openrouter_key_hash");
    }
    if stored_rate != Some(markup_rate) {
        columns.push("markup_rate");
    }
    if row.is_active != Value::Integer(1) {
        columns.push("is_active");
    }
    // Text timestamps (the old generator's) make the application ignore the
    // row; rewrite them as the same instant in epoch seconds.
    let created_at = timestamp::epoch_seconds(&row.created_at).unwrap_or(now);
    if !matches!(row.created_at, Value::Integer(_)) {
        columns.push("created_at");
    }
    if !matches!(row.updated_at, Value::Integer(_)) {
        columns.push("updated_at");
    }
    let expected = expected(config, id, markup_rate);
    if columns.is_empty() {
        return Ok(DatabasePlan::Unchanged { expected });
    }
    let mut update_columns = columns.clone();
    if !update_columns.contains(&"updated_at") {
        update_columns.push("updated_at");
    }
    Ok(DatabasePlan::Write {
        create_schema: false,
        action: RowAction::Update,
        columns,
        write: RowWrite {
            id: id.value.clone(),
            name: config.organization_name.clone(),
            api_key: config.api_key.clone(),
            markup_rate,
            created_at,
            updated_at: now,
            key_hash,
            timezone: None,
            update_columns,
        },
        expected,
    })
}

fn insert(
    config: &Config,
    id: &OrgId,
    schema: db::Schema,
    now: i64,
    create_schema: bool,
) -> DatabasePlan {
    let markup_rate = config.markup_rate.value;
    let write = RowWrite {
        id: id.value.clone(),
        name: config.organization_name.clone(),
        api_key: config.api_key.clone(),
        markup_rate,
        created_at: now,
        updated_at: now,
        key_hash: schema.has_key_hash.then(|| config.api_key.sha256_hex()),
        timezone: schema.has_timezone.then_some(DEFAULT_TIMEZONE),
        update_columns: UPDATABLE_COLUMNS.to_vec(),
    };
    let columns = write.insert_columns();
    DatabasePlan::Write {
        create_schema,
        action: RowAction::Insert,
        columns,
        write,
        expected: expected(config, id, markup_rate),
    }
}

fn expected(config: &Config, id: &OrgId, markup_rate: f64) -> Expected {
    Expected {
        id: id.value.clone(),
        name: config.organization_name.clone(),
        api_key: config.api_key.clone(),
        markup_rate,
    }
}

/// A numeric column as a float, whatever SQLite stored it as.
pub fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Real(f) => Some(*f),
        Value::Text(t) => t.trim().parse().ok(),
        _ => None,
    }
}

fn warnings(
    config: &Config,
    id: &OrgId,
    state: &DatabaseState,
    plan: &DatabasePlan,
) -> Vec<String> {
    let mut out = Vec::new();
    if let DatabasePlan::Skip { reason } = plan {
        out.push(reason.clone());
    }
    if let DatabaseState::Ready(snapshot) = state {
        if !snapshot.other_active.is_empty() {
            let others: Vec<String> = snapshot
                .other_active
                .iter()
                // Escaped: these come from the database, which may hold anything.
                .map(|o| format!("{} ({:?})", o.id.escape_debug(), o.name))
                .collect();
            let first = snapshot
                .first_active
                .as_deref()
                .filter(|first| *first != id.value);
            let shown = match first {
                Some(first) => format!("; it shows {}, not {}", first.escape_debug(), id.value),
                None => String::new(),
            };
            out.push(format!(
                "other active organizations share this database: {}. The admin usage page shows only the first \
                 active one{shown}. Deactivate the ones that do not belong to this deployment (is_active = 0).",
                others.join(", ")
            ));
        }
    }
    if config.create_schema
        && matches!(
            plan,
            DatabasePlan::Write {
                create_schema: true,
                ..
            }
        )
    {
        out.push(format!(
            "CREATE_SCHEMA=true: creating a standalone usage schema in {}. The mAI application's own migration \
             fails on a database prepared this way; use it only for a database the application will not migrate.",
            config.database_path.display()
        ));
    }
    out
}

#[cfg(test)]
mod tests;
