//! Carrying out a plan: the thin layer of effects. Everything that can
//! fail is prepared before the database commits: the new key store, the new
//! `.env` and the backup of the old one are complete on disk as temp files.
//! After the commit only renames remain, the `.env` last. A run refused or
//! killed before the commit leaves every file as it was; one killed after it
//! leaves the old or the new state of each file, and the next run converges.

use std::path::Path;
use std::time::Instant;

use crate::checkpoint::{checkpoint, checkpoint_committed};
use crate::config::Config;
use crate::db::Access;
use crate::envfile::{self, PreparedFile};
use crate::error::Error;
use crate::plan::{self, DatabasePlan, Plan, SecretKeySource};
use crate::store::{self, Database, Store};
use crate::world;

const SECRET_KEY_MODE: u32 = 0o600;

/// What was done, which may differ from the plan when the database changed
/// between reading and writing (the write re-plans inside its transaction).
pub struct Applied {
    pub database: DatabasePlan,
    pub env_written: bool,
    pub secret_key_stored: bool,
    pub connection: Option<Store>,
}

/// The files a run replaces, written and synced, waiting for their rename.
struct Prepared {
    secret_key: Option<PreparedFile>,
    env: Option<PreparedFile>,
    backup: Option<PreparedFile>,
}

pub fn apply(
    plan: &Plan,
    config: &Config,
    connection: Option<Store>,
    now: i64,
    deadline: Instant,
) -> Result<Applied, Error> {
    remove_leftovers(plan, config);
    let prepared = prepare(plan, config)?;
    tracing::debug!(
        "prepared, written and synced: key store {}, .env {}, backup {}",
        prepared.secret_key.is_some(),
        prepared.env.is_some(),
        prepared.backup.is_some()
    );
    let (database, connection) = apply_database(plan, config, connection, now, deadline)?;
    if matches!(database, DatabasePlan::Write { .. }) {
        tracing::debug!("database committed");
    }
    checkpoint_committed("database-committed");
    let secret_key_stored = prepared.secret_key.is_some();
    let env_written = prepared.env.is_some();
    let mut done = Vec::new();
    if matches!(database, DatabasePlan::Write { .. }) {
        done.push("the database");
    }
    rename_into_place(prepared, done)?;
    if secret_key_stored {
        log_stored_key(plan);
    }
    Ok(Applied {
        database,
        env_written,
        secret_key_stored,
        connection,
    })
}

/// The renames after the commit, the `.env` last. One that fails leaves
/// the run half applied: the error names what was done and what was not.
fn rename_into_place(prepared: Prepared, mut done: Vec<&'static str>) -> Result<(), Error> {
    let renames: Vec<(&'static str, PreparedFile, &str)> = [
        ("the key store", prepared.secret_key, "secret-stored"),
        ("the .env backup", prepared.backup, "backup-written"),
        ("the .env", prepared.env, "env-committed"),
    ]
    .into_iter()
    .filter_map(|(part, file, step)| file.map(|file| (part, file, step)))
    .collect();
    let parts: Vec<&'static str> = renames.iter().map(|(part, ..)| *part).collect();
    for (i, (part, file, step)) in renames.into_iter().enumerate() {
        if let Err(e) = file.commit() {
            if done.is_empty() {
                return Err(e.into());
            }
            return Err(Error::PartlyApplied {
                done,
                not_done: parts[i..].to_vec(),
                source: Box::new(e.into()),
            });
        }
        tracing::debug!("replaced {part}");
        done.push(part);
        checkpoint_committed(step);
    }
    Ok(())
}

fn prepare(plan: &Plan, config: &Config) -> Result<Prepared, Error> {
    // No line break after the key: the start script's `$(cat file)` must
    // yield exactly the key.
    let secret_key = match &plan.secret_key.store_at {
        Some(path) => Some(PreparedFile::create(
            path,
            plan.secret_key.value.expose().as_bytes(),
            SECRET_KEY_MODE,
            envfile::owner_of(path),
        )?),
        None => None,
    };
    checkpoint("secret-prepared")?;
    // The application reads the .env as the user that owns it now.
    let env_owner = envfile::owner_of(&plan.env.path);
    let env = match &plan.env.new_text {
        Some(text) => Some(PreparedFile::create(
            &plan.env.path,
            text.as_bytes(),
            config.env_file_mode,
            env_owner,
        )?),
        None => None,
    };
    checkpoint("env-prepared")?;
    let backup = match (&plan.env.new_text, &plan.env.old_text) {
        (Some(_), Some(old)) => Some(PreparedFile::create(
            &envfile::backup_path(&plan.env.path),
            old.as_bytes(),
            config.env_file_mode,
            env_owner,
        )?),
        _ => None,
    };
    checkpoint("backup-prepared")?;
    Ok(Prepared {
        secret_key,
        env,
        backup,
    })
}

fn log_stored_key(plan: &Plan) {
    let path = plan.secret_key.store_at.as_deref().unwrap_or(Path::new(""));
    if plan.secret_key.source == SecretKeySource::Generated {
        tracing::info!(path = %path.display(), "stored a new WEBUI_SECRET_KEY");
    } else {
        tracing::info!(path = %path.display(), "stored WEBUI_SECRET_KEY for the start script");
    }
}

/// Temp files of a run that was killed; we hold the lock, so no live run
/// is writing them.
fn remove_leftovers(plan: &Plan, config: &Config) {
    let mut removed = envfile::remove_leftovers(&plan.env.path);
    if crate::paths::dir_of(&config.secret_key_store).is_dir() {
        removed += envfile::remove_leftovers(&config.secret_key_store);
    }
    if removed > 0 {
        tracing::info!(removed, "removed temp files left by an interrupted run");
    }
}

fn apply_database(
    plan: &Plan,
    config: &Config,
    connection: Option<Store>,
    now: i64,
    deadline: Instant,
) -> Result<(DatabasePlan, Option<Store>), Error> {
    let DatabasePlan::Write { create_schema, .. } = &plan.database else {
        return Ok((plan.database.clone(), connection));
    };
    let mut store = match connection {
        Some(store) => store,
        None => store::open_sqlite(config, Access::Create, deadline)?,
    };
    store.refuse_read_only()?;
    let done =
        store.transaction(|db| write_in_transaction(db, plan, config, *create_schema, now))?;
    Ok((done, Some(store)))
}

fn write_in_transaction(
    db: &mut dyn Database,
    plan: &Plan,
    config: &Config,
    create_schema: bool,
    now: i64,
) -> Result<DatabasePlan, Error> {
    checkpoint("transaction-open")?;
    let mut schema = db.inspect()?;
    let created = schema.is_none() && create_schema;
    if created {
        db.create_standalone_schema()?;
        checkpoint("schema-created")?;
        schema = db.inspect()?;
    }
    // Re-read inside the transaction: what the plan saw may have changed.
    let state = world::database_state(db, schema, &plan.id, &plan.api_key.value)?;
    let mut fresh = plan::plan_database(config, &plan.id, &state, &plan.api_key, now)?;
    if let DatabasePlan::Write {
        create_schema,
        add_columns,
        row,
        ..
    } = &mut fresh
    {
        *create_schema = created;
        db.add_columns(add_columns)?;
        if let Some(change) = row {
            db.write_row(&change.write)?;
        }
    }
    checkpoint("before-commit")?;
    Ok(fresh)
}
