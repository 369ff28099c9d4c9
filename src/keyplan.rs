//! Deciding what to do about the client's OpenRouter key, when the job
//! mints it. Pure: it takes the key store, what OpenRouter said about the
//! stored key (and, when a key may be minted, every key of the account)
//! and the configuration, and returns what to do. `keyworld` reads,
//! `keyapply` carries the decision out.
//!
//! The rules, in short: a live stored key is kept, and one PATCH makes its
//! name, limit and reset as configured; a new key is minted only when none
//! is stored, the stored one is gone or disabled, or a rotation is due.
//! Before a mint, every key with this organization's name that the store
//! does not hold is deleted: its secret is lost (a create whose answer
//! never came). A rotation keeps the replaced key live as the previous key
//! until the application has started with the new one and the grace period
//! is over (`previous_key`).

use std::time::Duration;

use crate::config::{Config, Minting, Mode};
use crate::error::Error;
use crate::identity::OrgId;
use crate::openrouter::{
    ApiError, CurrentKey, KeyInfo, KeyPatch, LimitReset, NewKey, PendingRotation, StoredKeys,
};
use crate::secret::Secret;

/// Every key this job mints is named so; the id makes the name unique per
/// organization, and survives a rename of the organization.
const NAME_PREFIX: &str = "mAI Client: ";

/// The name of the organization's key: `mAI Client: <name> (<id>)`.
pub fn key_name(config: &Config, id: &OrgId) -> String {
    format!("{NAME_PREFIX}{} ({})", config.organization_name, id.value)
}

/// Whether a key of the account is one this job minted for organization
/// `id`, whatever the organization was called then. Keys of the old
/// generator (`mAI Client: <name>`, without the id) are not.
pub fn is_organization_key(name: &str, id: &OrgId) -> bool {
    name.starts_with(NAME_PREFIX) && name.ends_with(&format!(" ({})", id.value))
}

/// What OpenRouter said about the stored key.
#[derive(Debug, Clone)]
pub enum Remote {
    /// The store holds no key.
    NotStored,
    Found(KeyInfo),
    /// 404: deleted on OpenRouter.
    Deleted,
    /// No answer (an outage): nothing is known.
    Unknown(ApiError),
}

/// Every key of the account, read only when a key may be minted.
#[derive(Debug, Clone)]
pub enum Listing {
    NotRead,
    Read(Vec<KeyInfo>),
    Unknown(ApiError),
}

/// What `keyworld` read.
#[derive(Debug, Clone)]
pub struct KeyState {
    /// The key store, without a previous key that OpenRouter no longer has.
    pub store: Option<StoredKeys>,
    pub current: Remote,
    pub listing: Listing,
    /// The hash of a rotation's previous key that OpenRouter answered 404
    /// for (someone deleted it): the store forgets it.
    pub previous_gone: Option<String>,
}

/// A rotation asked for on this run: `--rotate-key`, or ROTATE_KEY.
#[derive(Debug, Clone, Copy)]
pub struct RotationRequest<'a> {
    pub flag: bool,
    pub token: Option<&'a str>,
}

/// Whether the run must list the account's keys: when it may mint. The
/// one rule `keyworld` and `decide` share.
pub fn needs_listing(
    store: Option<&StoredKeys>,
    current: &Remote,
    rotation: RotationRequest<'_>,
) -> bool {
    match (store, current) {
        (_, Remote::Unknown(_)) => false,
        (Some(store), Remote::Found(info)) if !info.disabled => rotation_runs(store, rotation),
        _ => true,
    }
}

/// A rotation runs when it is due and no previous key is still waiting to
/// be deleted: never more than two live keys.
fn rotation_runs(store: &StoredKeys, rotation: RotationRequest<'_>) -> bool {
    store.previous.is_none() && store.rotation_due(rotation.flag, rotation.token)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MintReason {
    /// The store holds no key (a first run, or a lost store).
    NoKey,
    /// The stored key was deleted on OpenRouter.
    Deleted,
    /// The stored key is disabled on OpenRouter.
    Disabled,
    /// `--rotate-key` or a new ROTATE_KEY token, or a rotation a killed run
    /// began.
    Rotation,
}

/// A key with this organization's name whose secret the store does not
/// hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    pub hash: String,
    pub disabled: bool,
}

#[derive(Debug, Clone)]
pub struct Mint {
    pub reason: MintReason,
    pub request: NewKey,
    /// Deleted before the create.
    pub orphans: Vec<Orphan>,
    /// A rotation's key, kept live as the previous key.
    pub replaces: Option<CurrentKey>,
    /// Recorded in the store before the create: a rotation that a crash
    /// interrupts is finished by the next run.
    pub record_intent: Option<PendingRotation>,
    /// The ROTATE_KEY token the store remembers afterwards.
    pub rotation_token: Option<String>,
}

#[derive(Debug, Clone)]
pub enum KeyAction {
    /// The stored key is live and as configured.
    Reuse,
    /// The stored key is live; this PATCH makes it as configured.
    Reconcile(KeyPatch),
    Mint(Box<Mint>),
    /// OpenRouter did not answer: the stored key is used as it is.
    Offline {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct KeyPlan {
    pub action: KeyAction,
    /// The stored key this run keeps using, unless it mints.
    pub kept: Option<CurrentKey>,
    /// A previous key that is gone on OpenRouter, to forget first.
    pub forget_previous: Option<String>,
    pub warnings: Vec<String>,
}

/// Decide. `Err` when the job has no usable key and OpenRouter cannot
/// give it one now.
pub fn decide(
    config: &Config,
    minting: &Minting,
    id: &OrgId,
    state: &KeyState,
    rotation: RotationRequest<'_>,
    now: i64,
) -> Result<KeyPlan, Error> {
    let name = key_name(config, id);
    let stored = state.store.as_ref().and_then(|s| s.current.clone());
    let mut warnings = Vec::new();
    let reason = match (&stored, &state.current) {
        (None, _) => MintReason::NoKey,
        (Some(_), Remote::NotStored) => MintReason::NoKey,
        (Some(key), Remote::Deleted) => {
            warnings.push(format!(
                "the organization's OpenRouter key {} was deleted on OpenRouter: minting a new one",
                key.hash
            ));
            MintReason::Deleted
        }
        (Some(key), Remote::Found(info)) if info.disabled => {
            warnings.push(format!(
                "the organization's OpenRouter key {} is disabled on OpenRouter: deleting it and minting a new one",
                key.hash
            ));
            MintReason::Disabled
        }
        (Some(key), Remote::Unknown(error)) => {
            return Ok(offline(key, error, state, rotation, warnings).forgetting(state));
        }
        (Some(key), Remote::Found(info)) => {
            let store = state.store.as_ref();
            if store.is_some_and(|s| rotation_runs(s, rotation)) {
                MintReason::Rotation
            } else {
                if store.is_some_and(|s| s.rotation_due(rotation.flag, rotation.token)) {
                    warnings.push(postponed_rotation(store));
                }
                return Ok(keep(key, info, &name, minting, warnings).forgetting(state));
            }
        }
    };
    mint(
        name, minting, id, state, stored, reason, rotation, now, warnings,
    )
    .map(|plan| plan.forgetting(state))
}

impl KeyPlan {
    fn forgetting(mut self, state: &KeyState) -> Self {
        self.forget_previous = state.previous_gone.clone();
        self
    }
}

/// The stored key, live: as it is, or reconciled with one PATCH.
fn keep(
    key: &CurrentKey,
    info: &KeyInfo,
    name: &str,
    minting: &Minting,
    warnings: Vec<String>,
) -> KeyPlan {
    let patch = reconciliation(info, name, minting);
    let action = if patch.is_empty() {
        KeyAction::Reuse
    } else {
        KeyAction::Reconcile(patch)
    };
    KeyPlan {
        action,
        kept: Some(key.clone()),
        forget_previous: None,
        warnings,
    }
}

/// The fields of a live key that differ from the configuration. A limit is
/// never reached by a new key: changing it is a PATCH.
pub fn reconciliation(info: &KeyInfo, name: &str, minting: &Minting) -> KeyPatch {
    let mut patch = KeyPatch::default();
    if info.name != name {
        patch.name = Some(name.to_owned());
    }
    if !same_limit(info.limit, minting.limit) {
        patch.limit = Some(minting.limit);
    }
    let reset = info.limit_reset.as_deref().map(LimitReset::parse);
    let same_reset = match (reset, minting.limit_reset) {
        (None, None) => true,
        (Some(Some(found)), Some(wanted)) => found == wanted,
        _ => false,
    };
    if !same_reset {
        patch.limit_reset = Some(minting.limit_reset);
    }
    patch
}

/// Limits compare equal to a millionth of a dollar: OpenRouter may store
/// them as decimals.
fn same_limit(found: Option<f64>, wanted: Option<f64>) -> bool {
    match (found, wanted) {
        (None, None) => true,
        (Some(found), Some(wanted)) => (found - wanted).abs() <= 1e-6,
        _ => false,
    }
}

/// OpenRouter did not answer: carry on with the stored key; a rotation or
/// a reconciliation waits for a run that reaches it.
fn offline(
    key: &CurrentKey,
    error: &ApiError,
    state: &KeyState,
    rotation: RotationRequest<'_>,
    mut warnings: Vec<String>,
) -> KeyPlan {
    let reason = error.to_string();
    warnings.push(format!(
        "could not check the organization's OpenRouter key ({reason}); carrying on with the stored key {}. \
         Its limit is reconciled by the next run that reaches OpenRouter",
        key.hash
    ));
    if state
        .store
        .as_ref()
        .is_some_and(|s| s.rotation_due(rotation.flag, rotation.token))
    {
        warnings.push("the key rotation waits for a run that reaches OpenRouter".to_owned());
    }
    KeyPlan {
        action: KeyAction::Offline { reason },
        kept: Some(key.clone()),
        forget_previous: None,
        warnings,
    }
}

fn postponed_rotation(store: Option<&StoredKeys>) -> String {
    let previous = store
        .and_then(|s| s.previous.as_ref())
        .map_or_else(String::new, |p| format!(" {}", p.hash));
    format!(
        "a key rotation is asked for, but the key the last rotation replaced{previous} is still live: the \
         rotation waits until that key is deleted (never more than two live keys)"
    )
}

#[allow(clippy::too_many_arguments)]
fn mint(
    name: String,
    minting: &Minting,
    id: &OrgId,
    state: &KeyState,
    stored: Option<CurrentKey>,
    reason: MintReason,
    rotation: RotationRequest<'_>,
    now: i64,
    mut warnings: Vec<String>,
) -> Result<KeyPlan, Error> {
    let store = state.store.as_ref();
    let listed = match &state.listing {
        Listing::Read(keys) => keys,
        Listing::Unknown(error) => return cannot_list(stored, reason, error, warnings),
        Listing::NotRead => {
            let error = ApiError::Protocol {
                reason: "the account's keys were not listed before a mint".to_owned(),
            };
            return cannot_list(stored, reason, &error, warnings);
        }
    };
    // The previous key of a rotation stays; so does a key this rotation
    // keeps live. Everything else with this organization's name goes.
    let replaces = (reason == MintReason::Rotation).then_some(stored).flatten();
    let keep: Vec<&str> = store
        .and_then(|s| s.previous.as_ref())
        .map(|p| p.hash.as_str())
        .into_iter()
        .chain(replaces.as_ref().map(|k| k.hash.as_str()))
        .collect();
    let orphans: Vec<Orphan> = listed
        .iter()
        .filter(|k| is_organization_key(&k.name, id) && !keep.contains(&k.hash.as_str()))
        .map(|k| Orphan {
            hash: k.hash.clone(),
            disabled: k.disabled,
        })
        .collect();
    if !orphans.is_empty() {
        warnings.push(format!(
            "{} key(s) with this organization's name hold a secret the job does not have (a create whose \
             answer was lost, or a lost key store): deleting {}",
            orphans.len(),
            orphans.iter().map(|o| o.hash.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    let pending = store.and_then(|s| s.rotation.clone());
    let record_intent = (replaces.is_some() && pending.is_none()).then(|| PendingRotation {
        token: rotation.token.map(str::to_owned),
        requested_at: now,
    });
    let rotation_token = rotation
        .token
        .map(str::to_owned)
        .or_else(|| pending.and_then(|p| p.token))
        .or_else(|| store.and_then(|s| s.rotation_token.clone()));
    Ok(KeyPlan {
        action: KeyAction::Mint(Box::new(Mint {
            reason,
            request: NewKey {
                name,
                limit: minting.limit,
                limit_reset: minting.limit_reset,
            },
            orphans,
            replaces,
            record_intent,
            rotation_token,
        })),
        kept: None,
        forget_previous: None,
        warnings,
    })
}

/// The account's keys could not be listed, so no key can be minted now: a
/// rotation waits (the stored key is live); without a usable key the run
/// fails.
fn cannot_list(
    stored: Option<CurrentKey>,
    reason: MintReason,
    error: &ApiError,
    mut warnings: Vec<String>,
) -> Result<KeyPlan, Error> {
    match (reason, stored) {
        (MintReason::Rotation, Some(key)) => {
            warnings.push(format!(
                "the key rotation waits for a run that reaches OpenRouter ({error}); carrying on with the \
                 stored key {}",
                key.hash
            ));
            Ok(KeyPlan {
                action: KeyAction::Offline {
                    reason: error.to_string(),
                },
                kept: Some(key),
                forget_previous: None,
                warnings,
            })
        }
        _ => Err(error.clone().into()),
    }
}

/// What became of the key a rotation replaced.
#[derive(Debug, Clone, PartialEq)]
pub enum PreviousPlan {
    /// No previous key is waiting.
    None,
    /// Still live; says what it waits for.
    Wait { hash: String, waiting_for: String },
    /// No application can still use it: delete it after the row and the
    /// `.env` are written.
    Delete { hash: String },
}

/// The organization's row as the run found it, as far as the previous
/// key's fate depends on it.
#[derive(Debug, Clone, Copy)]
pub struct RowSeen<'a> {
    pub api_key: &'a Secret,
    /// `None` when it is not an integer.
    pub updated_at: Option<i64>,
}

/// Whether the key a rotation replaced can go. Both must hold: the
/// application has started with the new key since (its start-up
/// initializer writes its key and `updated_at` into the row on every
/// start, docs/mai-contract.md, so a row that holds the current key with
/// an `updated_at` later than anything this job wrote is that start), and
/// KEY_ROTATION_GRACE has passed since the rotation, so that replicas
/// started before it are gone. In env mode there is no row to tell: the
/// key is never deleted automatically.
pub fn previous_key(
    store: &StoredKeys,
    mode: Mode,
    row: Option<RowSeen<'_>>,
    grace: Duration,
    now: i64,
) -> PreviousPlan {
    let Some(previous) = &store.previous else {
        return PreviousPlan::None;
    };
    let hash = previous.hash.clone();
    let wait = |waiting_for: String| PreviousPlan::Wait {
        hash: hash.clone(),
        waiting_for,
    };
    if mode == Mode::Env {
        return wait(
            "someone to delete it on OpenRouter: in env mode the job cannot see the application start (it reads \
             no database row), so it never deletes that key itself; delete it once no application uses it"
                .to_owned(),
        );
    }
    let current = store.current.as_ref().map(|c| &c.key);
    let after = previous.evidence_after();
    let started = row.is_some_and(|row| {
        Some(row.api_key) == current && row.updated_at.is_some_and(|at| at > after)
    });
    if !started {
        return wait(format!(
            "the application to start with the new key (its row must hold the new key with an updated_at \
             later than {after})"
        ));
    }
    let grace_secs = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    let until = previous.replaced_at.saturating_add(grace_secs);
    if now < until {
        return wait(format!(
            "KEY_ROTATION_GRACE: {} s more, so that replicas started before the rotation are gone",
            until - now
        ));
    }
    PreviousPlan::Delete { hash }
}

#[cfg(test)]
mod tests;
