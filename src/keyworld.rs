//! Reading what the key phase decides on: the key store, and what
//! OpenRouter says about the stored key. The account's keys are listed
//! only when the run may mint (`keyplan::needs_listing`), so that a run
//! with a live, matching key makes exactly one request. A rotation's
//! previous key is asked about only where nothing else would ever find it
//! gone: in env mode (no run deletes it; the operator does), and when a new
//! rotation waits for it.

use crate::config::Minting;
use crate::error::Error;
use crate::identity::OrgId;
use crate::keyplan::{KeyState, Listing, Remote, RotationRequest, needs_listing};
use crate::openrouter::{self, ApiError, KeyApi};

pub fn read(
    api: &dyn KeyApi,
    minting: &Minting,
    id: &OrgId,
    rotation: RotationRequest<'_>,
    env_mode: bool,
) -> Result<KeyState, Error> {
    let mut store = openrouter::read_store(&minting.key_store, &id.value)?;
    let previous_gone = match &mut store {
        Some(keys) if env_mode || keys.rotation_due(rotation.flag, rotation.token) => {
            previous_gone(api, keys)?
        }
        _ => None,
    };
    let current = match store.as_ref().and_then(|s| s.current.as_ref()) {
        None => Remote::NotStored,
        Some(key) => match api.get(&key.hash) {
            Ok(info) => Remote::Found(info),
            Err(ApiError::NotFound { .. }) => Remote::Deleted,
            Err(e) if e.is_outage() => Remote::Unknown(e),
            Err(e) => return Err(e.into()),
        },
    };
    let listing = if needs_listing(store.as_ref(), &current, rotation) {
        match openrouter::list_all(api) {
            Ok(keys) => Listing::Read(keys),
            Err(e) if e.is_outage() => Listing::Unknown(e),
            Err(e) => return Err(e.into()),
        }
    } else {
        Listing::NotRead
    };
    tracing::debug!(
        "OpenRouter key: store {}, stored key {}, listing {}",
        describe_store(store.as_ref()),
        describe_remote(&current),
        match &listing {
            Listing::NotRead => "not needed".to_owned(),
            Listing::Read(keys) => format!("{} key(s) in the account", keys.len()),
            Listing::Unknown(e) => format!("failed: {e}"),
        }
    );
    Ok(KeyState {
        store,
        current,
        listing,
        previous_gone,
    })
}

/// A previous key OpenRouter answers 404 for is gone: taken out of the
/// store as read (the plan has the store forget it). An outage leaves it.
fn previous_gone(
    api: &dyn KeyApi,
    keys: &mut openrouter::StoredKeys,
) -> Result<Option<String>, Error> {
    let Some(previous) = &keys.previous else {
        return Ok(None);
    };
    match api.get(&previous.hash) {
        Err(ApiError::NotFound { .. }) => {
            let hash = previous.hash.clone();
            keys.previous = None;
            Ok(Some(hash))
        }
        Ok(_) => Ok(None),
        Err(e) if e.is_outage() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn describe_store(store: Option<&openrouter::StoredKeys>) -> String {
    let Some(store) = store else {
        return "empty".to_owned();
    };
    format!(
        "holds {}{}{}",
        store.current.as_ref().map_or_else(
            || "no key".to_owned(),
            |c| format!("{} ({})", c.hash, c.key.fingerprint())
        ),
        store
            .previous
            .as_ref()
            .map_or_else(String::new, |p| format!(
                ", previous {} replaced at {}",
                p.hash, p.replaced_at
            )),
        store
            .rotation
            .as_ref()
            .map_or_else(String::new, |_| ", a rotation begun".to_owned()),
    )
}

fn describe_remote(remote: &Remote) -> String {
    match remote {
        Remote::NotStored => "none".to_owned(),
        Remote::Found(info) => format!(
            "live={} limit={:?} reset={:?} name={:?}",
            !info.disabled, info.limit, info.limit_reset, info.name
        ),
        Remote::Deleted => "deleted (404)".to_owned(),
        Remote::Unknown(e) => format!("unknown: {e}"),
    }
}
