//! `--production`: after applying, read both files back with this
//! project's own readers and compare every managed value.

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use crate::apply::Applied;
use crate::config::Config;
use crate::db::{Access, VerifyError};
use crate::envfile::{self, Document};
use crate::error::Error;
use crate::plan::{self, Plan};
use crate::store;

pub fn verify(
    plan: &Plan,
    config: &Config,
    applied: &mut Applied,
    deadline: Instant,
) -> Result<(), Error> {
    // The .env holds OPENROUTER_EXTERNAL_USER = the plan's id, so the row
    // below is read by the id the application will look it up with.
    verify_env(plan, config)?;
    verify_secret_key_store(plan, config)?;
    if let Some(expected) = applied.database.expected() {
        let store = match &mut applied.connection {
            Some(store) => store,
            None => {
                applied
                    .connection
                    .insert(store::open_sqlite(config, Access::ReadOnly, deadline)?)
            }
        };
        store.verify(expected)?;
    }
    Ok(())
}

fn verify_env(plan: &Plan, config: &Config) -> Result<(), Error> {
    let path = &plan.env.path;
    let mismatch = |field: String, found: String, expected: String| VerifyError::Mismatch {
        place: path.display().to_string(),
        field,
        found,
        expected,
    };
    let text = envfile::read_existing(path)?
        .ok_or_else(|| mismatch("the file".into(), "missing".into(), "present".into()))?;
    let document = Document::parse(&text);
    for key in plan::managed_keys(
        config,
        &plan.id,
        &plan.api_key.value,
        &plan.secret_key.value,
    ) {
        let found = document.value(key.key);
        if found != key.value.as_deref() {
            let show = |v: Option<&str>| match (v, key.secret) {
                (None, _) => "absent".to_owned(),
                (Some(_), true) => "a different secret".to_owned(),
                (Some(v), false) => format!("{v:?}"),
            };
            return Err(
                mismatch(key.key.to_owned(), show(found), show(key.value.as_deref())).into(),
            );
        }
    }
    let mode = std::fs::metadata(path)
        .map_err(|source| envfile::FileError::Read {
            path: path.clone(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode != config.env_file_mode {
        return Err(mismatch(
            "the file mode".into(),
            format!("{mode:04o}"),
            format!("{:04o}", config.env_file_mode),
        )
        .into());
    }
    Ok(())
}

/// The start script's `$(cat file)` must yield the key the .env holds.
fn verify_secret_key_store(plan: &Plan, config: &Config) -> Result<(), Error> {
    let store = &config.secret_key_store;
    if !crate::paths::dir_of(store).is_dir() {
        return Ok(());
    }
    let text = envfile::read_existing(store)?;
    let read_back = text.as_deref().map(|t| t.trim_end_matches('\n'));
    if read_back != Some(plan.secret_key.value.expose()) {
        return Err(VerifyError::Mismatch {
            place: store.display().to_string(),
            field: "WEBUI_SECRET_KEY".to_owned(),
            found: if read_back.is_some() {
                "a different secret".to_owned()
            } else {
                "absent".to_owned()
            },
            expected: "the key the .env holds".to_owned(),
        }
        .into());
    }
    Ok(())
}
