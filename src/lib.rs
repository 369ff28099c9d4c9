//! mai-provision: make the `.env`, the organization row and the id that
//! links them agree, idempotently, in one run. Read the world, plan, apply:
//! see `plan` for the decisions and `apply` for the effects.

pub mod apply;
pub mod cli;
pub mod config;
pub mod db;
pub mod envfile;
pub mod error;
pub mod exit;
pub mod hooks;
pub mod identity;
pub mod lock;
pub mod logging;
pub mod plan;
pub mod report;
pub mod secret;
pub mod signals;
pub mod timestamp;
pub mod verify;
pub mod world;

use std::path::{Path, PathBuf};

use cli::Options;
use config::{Config, Mode};
use db::{Access, FileState};
use error::Error;
use identity::OrgId;
use lock::Lock;
use report::Outcome;
use secret::Secret;

/// The name of the lock file in the database's directory.
pub const LOCK_FILE_NAME: &str = ".mai-provision.lock";

/// One whole run, from reading the environment to the verified result.
pub fn run(options: &Options) -> Result<Outcome, Error> {
    let config = config::from_env()?;
    let mode = options.mode.or(config.mode).unwrap_or(Mode::Env);
    let env_file = envfile::resolve_target(&config.env_file)?;
    let database_file = match mode {
        Mode::Env => None,
        Mode::Database | Mode::Production => Some(db::probe(&config.database_path)?),
    };
    let _locks = take_locks(&config, &env_file, database_file, options.dry_run)?;
    hooks::checkpoint("locked")?;
    let id = OrgId::resolve(config.external_user.as_deref(), &config.organization_name);
    let access = if options.dry_run {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    };
    let reading = world::read(&config, mode, &id, env_file, database_file, access)?;
    let now = timestamp::now();
    let plan = plan::build(&config, mode, id, &reading.world, now, new_secret_key)?;
    for warning in &plan.warnings {
        tracing::warn!("{warning}");
    }
    if options.dry_run {
        return Ok(Outcome::planned(&plan, &config.database_path));
    }
    let applied = apply::apply(&plan, &config, reading.connection, now)?;
    let verified = mode == Mode::Production;
    if verified {
        verify::verify(&plan, &config, &applied)?;
    }
    Ok(Outcome::applied(
        &plan,
        &applied,
        &config.database_path,
        verified,
    ))
}

/// The database lock serialises replicas on the shared volume; the `.env`
/// lock also covers env-only runs writing the same file.
fn take_locks(
    config: &Config,
    env_file: &Path,
    database: Option<FileState>,
    dry_run: bool,
) -> Result<Vec<Lock>, Error> {
    let mut locks = Vec::new();
    let database_dir = config.database_dir();
    let dir_exists = !matches!(database, Some(FileState::Missing { dir_exists: false }));
    if database.is_some() && !dir_exists && config.create_schema && !dry_run {
        std::fs::create_dir_all(database_dir).map_err(|source| db::DbError::CreateDir {
            path: database_dir.to_owned(),
            source,
        })?;
    }
    if database.is_some() && database_dir.is_dir() {
        locks.push(lock::acquire(
            &database_dir.join(LOCK_FILE_NAME),
            config.lock_timeout,
        )?);
    }
    locks.push(lock::acquire(
        &env_lock_path(env_file),
        config.lock_timeout,
    )?);
    Ok(locks)
}

fn env_lock_path(env_file: &Path) -> PathBuf {
    let mut name = env_file.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    env_file.with_file_name(name)
}

/// 32 bytes from the OS random source, hex-encoded.
fn new_secret_key() -> Result<Secret, Error> {
    use rand::TryRng;
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| Error::Random(e.to_string()))?;
    Ok(Secret::new(secret::to_hex(&bytes)))
}
