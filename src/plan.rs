//! Deciding what must change. Everything here is pure: it takes the
//! configuration and a snapshot of the world (the `.env`, the stored secret,
//! the database row) and returns a plan, or the reason to refuse. `apply`
//! carries a plan out; `--dry-run` prints it; `--check` asks if it is empty.

use std::path::PathBuf;

use rusqlite::types::Value;

use crate::config::{Config, Mode};
use crate::db::{self, Expected, INSERT_COLUMNS, RowWrite, Snapshot, UPDATABLE_COLUMNS};
use crate::envfile::{self, Document, KeyChange, ManagedKey};
use crate::error::Error;
use crate::identity::{self, OrgId};
use crate::secret::Secret;
use crate::timestamp;
use crate::world::{DatabaseState, StoredKey, World};

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

/// A change to the organization row.
#[derive(Debug, Clone)]
pub struct RowChange {
    pub action: RowAction,
    /// The columns that change (an insert names them all).
    pub columns: Vec<&'static str>,
    pub write: RowWrite,
}

#[derive(Debug, Clone)]
pub enum DatabasePlan {
    NotInMode,
    /// First boot: there is no schema to write the row into yet.
    Skip {
        reason: String,
    },
    Write {
        create_schema: bool,
        /// Columns the application's ORM reads that the table lacks; they
        /// are added, in the same transaction, before the row is written.
        add_columns: Vec<&'static str>,
        /// `None` when the row is right and only the schema is repaired.
        row: Option<Box<RowChange>>,
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

/// The OpenRouter key the `.env` and the row get, with OpenRouter's hash
/// of it when the job knows it (a key it minted): a given key's hash is
/// unknown (docs/mai-contract.md, "The key hash column").
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub value: Secret,
    pub hash: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub id: OrgId,
    pub api_key: ApiKey,
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
    api_key: ApiKey,
    now: i64,
    new_secret: impl FnOnce() -> Result<Secret, Error>,
) -> Result<Plan, Error> {
    let existing = Document::parse(world.env_text.as_deref().unwrap_or(""));
    let key_holder = match &world.database {
        DatabaseState::Ready(snapshot) => snapshot.key_owner.as_ref().map(|o| o.id.as_str()),
        _ => None,
    };
    identity::check_env_id(
        &id,
        existing.value("OPENROUTER_EXTERNAL_USER"),
        &world.env_file,
        &config.organization_name,
        key_holder,
    )?;
    let database = plan_database(config, &id, &world.database, &api_key, now)?;
    let secret_key = plan_secret_key(config, world, &existing, new_secret)?;
    let env = plan_env(config, &id, &api_key.value, &secret_key, world, &existing)?;
    let warnings = warnings(config, &id, world, &database);
    Ok(Plan {
        mode,
        id,
        api_key,
        secret_key,
        env,
        database,
        warnings,
    })
}

/// The key in effect comes from the configuration, else the `.env`, else
/// the key store, else it is made now. Whichever it is, the store must hold
/// it: the image's start script reads the store (mounted at
/// `/app/backend/.webui_secret_key`) before the `.env` is loaded, and its
/// key is the one the application uses.
fn plan_secret_key(
    config: &Config,
    world: &World,
    existing: &Document,
    new_secret: impl FnOnce() -> Result<Secret, Error>,
) -> Result<SecretKeyPlan, Error> {
    let store = &config.secret_key_store;
    let (source, value) = if let Some(key) = &config.webui_secret_key {
        (SecretKeySource::Configured, key.clone())
    } else if let Some(key) = existing.value("WEBUI_SECRET_KEY").filter(|k| !k.is_empty()) {
        (SecretKeySource::EnvFile, Secret::new(key))
    } else if let Some(key) = world.stored_secret.key() {
        (SecretKeySource::Stored, key.clone())
    } else if let StoredKey::Unusable { problem } = &world.stored_secret {
        return Err(Error::SecretKeyUnusable {
            path: store.clone(),
            problem: problem.clone(),
        });
    } else if !world.store_dir_exists {
        return Err(Error::SecretKeyHome {
            path: store.clone(),
        });
    } else {
        (SecretKeySource::Generated, new_secret()?)
    };
    let stored = world.stored_secret.key() == Some(&value);
    let store_at = (!stored && world.store_dir_exists).then(|| store.clone());
    if store_at.is_some() && value.expose().ends_with('\n') {
        // `$(cat file)` drops trailing line breaks: the start script would
        // read another key than the .env holds.
        return Err(Error::SecretKeyUnusable {
            path: world.env_file.clone(),
            problem: "holds a WEBUI_SECRET_KEY that ends with a line break, which the start script cannot read back"
                .to_owned(),
        });
    }
    Ok(SecretKeyPlan {
        source,
        value,
        store_at,
    })
}

/// The managed keys in the order the old generator wrote them.
pub fn managed_keys(
    config: &Config,
    id: &OrgId,
    api_key: &Secret,
    secret_key: &Secret,
) -> Vec<ManagedKey> {
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
        secret("OPENROUTER_API_KEY", api_key),
        plain("OPENROUTER_HOST", &config.host),
        plain("OPENROUTER_EXTERNAL_USER", &id.value),
        plain("ENABLE_OPENAI_API", "True"),
        plain("OPENAI_API_BASE_URL", &config.host),
        secret("OPENAI_API_KEY", api_key),
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
    api_key: &Secret,
    secret_key: &SecretKeyPlan,
    world: &World,
    existing: &Document,
) -> Result<EnvPlan, Error> {
    let merged = envfile::merge(
        existing,
        &managed_keys(config, id, api_key, &secret_key.value),
    )
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
        SecretKeySource::Stored => config.secret_key_store.clone(),
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
    api_key: &ApiKey,
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
            Ok(insert(config, id, api_key, Vec::new(), now, true))
        }
        DatabaseState::Missing { dir_exists } => Ok(DatabasePlan::Skip {
            reason: first_boot_reason(
                config,
                FirstBoot::Missing {
                    dir_exists: *dir_exists,
                },
            ),
        }),
        DatabaseState::Empty => Ok(DatabasePlan::Skip {
            reason: first_boot_reason(config, FirstBoot::NoTables),
        }),
        DatabaseState::Ready(snapshot) => plan_row(config, id, snapshot, api_key, now),
    }
}

enum FirstBoot {
    Missing { dir_exists: bool },
    NoTables,
}

fn first_boot_reason(config: &Config, state: FirstBoot) -> String {
    let path = config.database_path.display();
    let what = match state {
        FirstBoot::Missing { dir_exists: true } => {
            format!("the database {path} does not exist yet (first boot)")
        }
        FirstBoot::Missing { dir_exists: false } => format!(
            "neither the database {path} nor its folder exists: a first boot, or the data volume is not \
             mounted at DATA_DIR (the two cannot be told apart from here)"
        ),
        FirstBoot::NoTables => format!("the database {path} has no tables yet (first boot)"),
    };
    format!(
        "{what}: skipping the database step. The application creates its schema on its first start, but it \
         cannot register the organization in the schema its migration creates (no `timezone` column), so it \
         records no usage until this job writes the row. Run the waiting job beside the application \
         (--wait-for-database, or --sidecar on Kubernetes) so that the row is written as soon as the schema \
         exists. Set REQUIRE_DATABASE=true to fail instead."
    )
}

fn plan_row(
    config: &Config,
    id: &OrgId,
    snapshot: &Snapshot,
    api_key: &ApiKey,
    now: i64,
) -> Result<DatabasePlan, Error> {
    if let Some(owner) = &snapshot.key_owner {
        return Err(identity::IdentityError::KeyBelongsToOther {
            other_id: owner.id.clone(),
            other_name: owner.name.clone(),
        }
        .into());
    }
    let add_columns = snapshot.schema.missing_columns.clone();
    let Some(row) = &snapshot.row else {
        return Ok(insert(config, id, api_key, add_columns, now, false));
    };
    identity::check_stored_name(id, &row.name, &config.organization_name)?;
    let markup_rate = match (
        StoredMarkup::of(&row.markup_rate),
        config.markup_rate.explicit,
    ) {
        (_, true) | (StoredMarkup::Missing, false) => config.markup_rate.value,
        (StoredMarkup::Usable(rate), false) => rate,
        // The application bills with this: replacing it by the default
        // would change the price silently. The operator says what it is.
        (StoredMarkup::Unusable(found), false) => {
            return Err(db::DbError::BadValue {
                path: config.database_path.clone(),
                table: db::ORG_TABLE,
                column: "markup_rate",
                row: id.value.clone(),
                found,
                fix: "Set MARKUP_RATE to this organization's rate, and the run writes it",
            }
            .into());
        }
    };
    let key_changes = row.api_key != api_key.value;
    // OpenRouter's identifier of a key given by the operator is unknown; a
    // stored one stays unless it names a key this row no longer holds. A
    // key the job minted has its hash.
    let key_hash = match &api_key.hash {
        Some(hash) => Some(hash.clone()),
        None if key_changes => None,
        None => row.key_hash.clone(),
    };
    // Only `0` is the application's deliberate deactivation; anything else
    // that is not `1` (NULL from a bare insert, say) is damage to repair.
    let is_active = config
        .organization_active
        .unwrap_or(row.is_active != Value::Integer(0));
    let mut columns = Vec::new();
    if row.name != config.organization_name {
        columns.push("name");
    }
    if key_changes {
        columns.push("openrouter_api_key");
    }
    if row.key_hash != key_hash {
        columns.push("openrouter_key_hash");
    }
    // Stored as a number: a numeric text reads the same, but is repaired.
    if as_number(&row.markup_rate) != Some(markup_rate) {
        columns.push("markup_rate");
    }
    if row.is_active != Value::Integer(i64::from(is_active)) {
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
    // A BLOB where the application reads text is damage: write it again.
    for column in &row.not_text {
        if !columns.contains(column) {
            columns.push(column);
        }
    }
    let write = RowWrite {
        id: id.value.clone(),
        name: config.organization_name.clone(),
        api_key: api_key.value.clone(),
        key_hash,
        markup_rate,
        is_active,
        created_at,
        updated_at: now,
        update_columns: Vec::new(),
    };
    let expected = expected(&write);
    let row = (!columns.is_empty()).then(|| {
        let mut update_columns = columns.clone();
        if !update_columns.contains(&"updated_at") {
            update_columns.push("updated_at");
        }
        Box::new(RowChange {
            action: RowAction::Update,
            columns,
            write: RowWrite {
                update_columns,
                ..write
            },
        })
    });
    if row.is_none() && add_columns.is_empty() {
        return Ok(DatabasePlan::Unchanged { expected });
    }
    Ok(DatabasePlan::Write {
        create_schema: false,
        add_columns,
        row,
        expected,
    })
}

fn insert(
    config: &Config,
    id: &OrgId,
    api_key: &ApiKey,
    add_columns: Vec<&'static str>,
    now: i64,
    create_schema: bool,
) -> DatabasePlan {
    let write = RowWrite {
        id: id.value.clone(),
        name: config.organization_name.clone(),
        api_key: api_key.value.clone(),
        key_hash: api_key.hash.clone(),
        markup_rate: config.markup_rate.value,
        is_active: config.organization_active.unwrap_or(true),
        created_at: now,
        updated_at: now,
        update_columns: UPDATABLE_COLUMNS.to_vec(),
    };
    DatabasePlan::Write {
        create_schema,
        add_columns,
        expected: expected(&write),
        row: Some(Box::new(RowChange {
            action: RowAction::Insert,
            columns: INSERT_COLUMNS.to_vec(),
            write,
        })),
    }
}

fn expected(write: &RowWrite) -> Expected {
    Expected {
        id: write.id.clone(),
        name: write.name.clone(),
        api_key: write.api_key.clone(),
        key_hash: write.key_hash.clone(),
        markup_rate: write.markup_rate,
        is_active: write.is_active,
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

/// A numeric column as a float, when SQLite stored a number.
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(_) | Value::Real(_) => as_f64(value),
        _ => None,
    }
}

/// The stored `markup_rate`, as far as billing can use it.
enum StoredMarkup {
    /// NULL: the row never got one (it gets MARKUP_RATE or the default).
    Missing,
    /// A positive, finite number (possibly stored as numeric text).
    Usable(f64),
    /// Anything else (zero, negative, infinite, not a number), described
    /// for the message.
    Unusable(String),
}

impl StoredMarkup {
    fn of(value: &Value) -> Self {
        if *value == Value::Null {
            return Self::Missing;
        }
        match as_f64(value) {
            Some(rate) if rate.is_finite() && rate > 0.0 => Self::Usable(rate),
            _ => Self::Unusable(describe(value)),
        }
    }
}

/// A stored value for a message: short, escaped, and never a BLOB's bytes.
fn describe(value: &Value) -> String {
    const SHOWN: usize = 40;
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) if t.chars().count() > SHOWN => {
            let head: String = t.chars().take(SHOWN).collect();
            format!("the text {:?}…", head)
        }
        Value::Text(t) => format!("the text {t:?}"),
        Value::Blob(b) => format!("a BLOB ({} bytes)", b.len()),
    }
}

fn warnings(config: &Config, id: &OrgId, world: &World, plan: &DatabasePlan) -> Vec<String> {
    let mut out = identity::warnings(id, &config.organization_name);
    if let DatabasePlan::Skip { reason } = plan {
        out.push(reason.clone());
    }
    if let DatabaseState::Ready(snapshot) = &world.database {
        out.extend(other_active_warning(id, snapshot));
    }
    if plan.expected().is_some_and(|expected| !expected.is_active) {
        out.push(format!(
            "organization {} is inactive (is_active = 0): the application records NO usage for it. \
             This run keeps it inactive{}. Set ORGANIZATION_ACTIVE=true to activate it.",
            id.value,
            if config.organization_active == Some(false) {
                " because ORGANIZATION_ACTIVE=false"
            } else {
                ", as the application (or an admin) left it"
            }
        ));
    }
    if matches!(
        plan,
        DatabasePlan::Write {
            create_schema: true,
            ..
        }
    ) {
        out.push(format!(
            "CREATE_SCHEMA=true: creating a standalone usage schema in {}. If the mAI application ever starts on \
             this database, its migration fails on every start (it creates these tables unconditionally), the \
             application swallows that error, and no later migration ever applies. Use it only for a database \
             the application will never migrate.",
            config.database_path.display()
        ));
    }
    if !world.store_dir_exists {
        out.push(format!(
            "cannot keep WEBUI_SECRET_KEY in {}: its folder does not exist. The image's start script reads the \
             key from /app/backend/.webui_secret_key before the .env is loaded; without that file it makes a \
             key of its own, and users are signed out whenever the container is re-created. Mount the volume \
             that holds WEBUI_SECRET_KEY_STORE (by default DATA_DIR).",
            config.secret_key_store.display()
        ));
    }
    out
}

fn other_active_warning(id: &OrgId, snapshot: &Snapshot) -> Option<String> {
    if snapshot.other_active.is_empty() {
        return None;
    }
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
    Some(format!(
        "other active organizations share this database: {}. The admin usage page shows only the first \
         active one{shown}. Deactivate the ones that do not belong to this deployment (is_active = 0).",
        others.join(", ")
    ))
}

#[cfg(test)]
mod tests;
