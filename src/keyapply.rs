//! Carrying out the key phase: the calls to OpenRouter and the writes of
//! the key store, in the one order that survives a crash at any point.
//!
//! A mint: (a rotation first records its intent in the store) → delete the
//! orphans → create → store the new secret and hash at once → only then
//! does the run go on to the `.env` and the row. Orphans go before the
//! create: a run killed after deleting them has no key stored and mints
//! again; one killed after the create but before storing it leaves a key
//! with this organization's name that the store does not hold, which the
//! next run deletes. Either way the next run ends with one live key whose
//! secret is in the store.
//!
//! After a rotation, the replaced key is deleted by a later run, after the
//! row and the `.env` are written (`delete_previous`).

use crate::checkpoint::{checkpoint, checkpoint_committed};
use crate::config::Minting;
use crate::error::Error;
use crate::identity::OrgId;
use crate::keyplan::{KeyAction, KeyPlan, Mint, MintReason};
use crate::openrouter::{self, ApiError, CurrentKey, KeyApi, KeyPatch, PreviousKey, StoredKeys};
use crate::plan::ApiKey;
use crate::secret::Secret;

/// What a dry run plans with where a key would be minted: never written,
/// and unlike any real key, so the plan shows the key as changing.
const TO_BE_MINTED: &str = "sk-or-v1-to-be-minted-by-this-run";

/// What the key phase did, or would do.
#[derive(Debug, Clone)]
pub struct KeyOutcome {
    /// The key the `.env` and the row get.
    pub api_key: ApiKey,
    pub done: KeyDone,
    /// Keys with this organization's name that were (or would be) deleted.
    pub orphans: Vec<String>,
    /// The store after the phase.
    pub store: Option<StoredKeys>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KeyDone {
    Reused,
    Reconciled {
        fields: Vec<&'static str>,
    },
    Minted {
        reason: MintReason,
    },
    /// OpenRouter did not answer, or not in time for a change: the stored
    /// key is used as it is.
    Offline {
        reason: String,
    },
}

impl KeyOutcome {
    /// Whether the phase changed (or would change) anything.
    pub fn changes(&self) -> bool {
        !self.orphans.is_empty()
            || matches!(
                self.done,
                KeyDone::Reconciled { .. } | KeyDone::Minted { .. }
            )
    }
}

/// Temp files of the key store that a killed run left (they may hold a
/// secret); we hold the lock, so no live run is writing them. A missing
/// folder has none: `envfile::remove_leftovers` then removes nothing.
pub fn remove_leftovers(minting: &Minting) {
    let removed = crate::envfile::remove_leftovers(&minting.key_store);
    if removed > 0 {
        tracing::info!(
            removed,
            "removed temp files of the OpenRouter key store left by an interrupted run"
        );
    }
}

/// Carry the key plan out; a dry run calls nothing and writes nothing.
pub fn provision(
    api: &dyn KeyApi,
    plan: &KeyPlan,
    store: Option<&StoredKeys>,
    minting: &Minting,
    id: &OrgId,
    now: i64,
    dry_run: bool,
) -> Result<KeyOutcome, Error> {
    if let Some(hash) = &plan.forget_previous {
        forget_previous(minting, store, hash, dry_run)?;
    }
    let kept = |done: KeyDone, key: &CurrentKey| KeyOutcome {
        api_key: known(key),
        done,
        orphans: Vec::new(),
        store: store.cloned(),
        warnings: plan.warnings.clone(),
    };
    match (&plan.action, &plan.kept) {
        (KeyAction::Reuse, Some(key)) => Ok(kept(KeyDone::Reused, key)),
        (KeyAction::Offline { reason }, Some(key)) => Ok(kept(
            KeyDone::Offline {
                reason: reason.clone(),
            },
            key,
        )),
        (KeyAction::Reconcile(patch), Some(key)) if dry_run => Ok(kept(
            KeyDone::Reconciled {
                fields: patch.fields(),
            },
            key,
        )),
        (KeyAction::Reconcile(patch), Some(key)) => {
            let mut outcome = kept(KeyDone::Reused, key);
            outcome.done = reconcile(api, key, patch, &mut outcome.warnings)?;
            Ok(outcome)
        }
        (KeyAction::Mint(mint), _) if dry_run => Ok(KeyOutcome {
            api_key: ApiKey {
                value: Secret::new(TO_BE_MINTED),
                hash: None,
            },
            done: KeyDone::Minted {
                reason: mint.reason,
            },
            orphans: mint.orphans.iter().map(|o| o.hash.clone()).collect(),
            store: store.cloned(),
            warnings: plan.warnings.clone(),
        }),
        (KeyAction::Mint(mint), _) => {
            mint_key(api, mint, store, minting, id, now, plan.warnings.clone())
        }
        // The plan always names the key it keeps; this is a bug.
        (_, None) => Err(Error::Api(ApiError::Protocol {
            reason: "internal error: the key plan keeps no key".to_owned(),
        })),
    }
}

/// A rotation's previous key that someone deleted on OpenRouter: the store
/// stops waiting for it.
fn forget_previous(
    minting: &Minting,
    store: Option<&StoredKeys>,
    hash: &str,
    dry_run: bool,
) -> Result<(), Error> {
    if dry_run {
        return Ok(());
    }
    if let Some(keys) = store {
        openrouter::write_store(&minting.key_store, keys)?;
    }
    tracing::info!(
        "the previous OpenRouter key {hash} was deleted on OpenRouter: no longer waiting for it"
    );
    Ok(())
}

fn known(key: &CurrentKey) -> ApiKey {
    ApiKey {
        value: key.key.clone(),
        hash: Some(key.hash.clone()),
    }
}

/// One PATCH. An outage leaves the key as it is, with a warning: the limit
/// is reconciled by the next run that reaches OpenRouter.
fn reconcile(
    api: &dyn KeyApi,
    key: &CurrentKey,
    patch: &KeyPatch,
    warnings: &mut Vec<String>,
) -> Result<KeyDone, Error> {
    match api.update(&key.hash, patch) {
        Ok(_) => {
            tracing::info!(
                "reconciled the OpenRouter key {}: {} set as configured",
                key.hash,
                patch.fields().join(", ")
            );
            checkpoint("key-reconciled")?;
            Ok(KeyDone::Reconciled {
                fields: patch.fields(),
            })
        }
        Err(e) if e.is_outage() => {
            let warning = format!(
                "could not set {} of the OpenRouter key {} ({e}); carrying on with the key as it is. The next run \
                 that reaches OpenRouter sets it",
                patch.fields().join(", "),
                key.hash
            );
            // Logged with the plan's warnings (lib.rs), like every other.
            warnings.push(warning);
            Ok(KeyDone::Offline {
                reason: e.to_string(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn mint_key(
    api: &dyn KeyApi,
    mint: &Mint,
    store: Option<&StoredKeys>,
    minting: &Minting,
    id: &OrgId,
    now: i64,
    mut warnings: Vec<String>,
) -> Result<KeyOutcome, Error> {
    let path = &minting.key_store;
    let mut keys = store
        .cloned()
        .unwrap_or_else(|| StoredKeys::empty(&id.value));
    // Before anything is deleted or created: a key minted now could not be
    // kept.
    openrouter::check_store_folder(path)?;
    if let Some(intent) = &mint.record_intent {
        keys.rotation = Some(intent.clone());
        openrouter::write_store(path, &keys)?;
        checkpoint("key-rotation-recorded")?;
    }
    let postpone = |error: ApiError, warnings: &mut Vec<String>| -> Result<KeyOutcome, Error> {
        // A rotation whose new key could not be made: the old key is live
        // and stays in use; the recorded intent makes the next run finish
        // the rotation (and delete what this attempt may have created).
        let Some(old) = &mint.replaces else {
            return Err(error.into());
        };
        if !error.is_outage() {
            return Err(error.into());
        }
        let warning = format!(
            "the key rotation did not finish ({error}); carrying on with the key {} until a later run finishes it",
            old.hash
        );
        warnings.push(warning);
        Ok(KeyOutcome {
            api_key: known(old),
            done: KeyDone::Offline {
                reason: error.to_string(),
            },
            orphans: Vec::new(),
            store: Some(keys.clone()),
            warnings: warnings.clone(),
        })
    };
    let mut deleted = Vec::new();
    for orphan in &mint.orphans {
        if let Err(e) = api.delete(&orphan.hash) {
            return postpone(e, &mut warnings);
        }
        tracing::info!(
            "deleted the OpenRouter key {}, whose secret the job did not have",
            orphan.hash
        );
        deleted.push(orphan.hash.clone());
    }
    checkpoint("key-orphans-deleted")?;
    let created = match api.create(&mint.request) {
        Ok(created) => created,
        Err(e) => return postpone(e, &mut warnings),
    };
    // From here on nothing may stop the run before the secret is stored:
    // a signal now would lose the key.
    checkpoint_committed("key-created");
    let key = created.key;
    keys.current = Some(CurrentKey {
        hash: created.info.hash.clone(),
        key: key.clone(),
        created_at: now,
    });
    if let Some(old) = &mint.replaces {
        keys.previous = Some(PreviousKey {
            hash: old.hash.clone(),
            replaced_at: now,
            row_written_at: None,
        });
    }
    keys.rotation = None;
    keys.rotation_token = mint.rotation_token.clone();
    openrouter::write_store(path, &keys)?;
    log_mint(mint, &created.info.hash);
    checkpoint("key-stored")?;
    Ok(KeyOutcome {
        api_key: ApiKey {
            value: key,
            hash: Some(created.info.hash),
        },
        done: KeyDone::Minted {
            reason: mint.reason,
        },
        orphans: deleted,
        store: Some(keys),
        warnings,
    })
}

fn log_mint(mint: &Mint, hash: &str) {
    let limit = mint
        .request
        .limit
        .map_or_else(|| "no limit".to_owned(), |l| format!("limit {l} USD"));
    let reset = mint
        .request
        .limit_reset
        .map_or_else(String::new, |r| format!(", reset {}", r.as_str()));
    match &mint.replaces {
        Some(old) => tracing::info!(
            "rotated the OpenRouter key: {hash} ({limit}{reset}) replaces {}, which stays live until no \
             application can still use it",
            old.hash
        ),
        None => tracing::info!("minted the OpenRouter key {hash} ({limit}{reset})"),
    }
}

/// Before a run writes the row while a previous key waits: remember the
/// `updated_at` it writes, so that only a later one (the application's
/// start) counts as the application having the new key.
pub fn note_row_write(minting: &Minting, store: &mut StoredKeys, now: i64) -> Result<(), Error> {
    let Some(previous) = store.previous.as_mut() else {
        return Ok(());
    };
    if previous.row_written_at.is_some_and(|at| at >= now) {
        return Ok(());
    }
    previous.row_written_at = Some(now);
    openrouter::write_store(&minting.key_store, store)?;
    Ok(())
}

/// Delete the key a rotation replaced, then forget it. An outage leaves it
/// for the next run, with a warning.
pub fn delete_previous(
    api: &dyn KeyApi,
    minting: &Minting,
    store: &mut StoredKeys,
) -> Result<Option<String>, Error> {
    let Some(previous) = store.previous.clone() else {
        return Ok(None);
    };
    match api.delete(&previous.hash) {
        Ok(()) => {}
        Err(e) if e.is_outage() => {
            tracing::warn!(
                "could not delete the previous OpenRouter key {} ({e}); the next run tries again",
                previous.hash
            );
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    checkpoint_committed("previous-key-deleted");
    store.previous = None;
    openrouter::write_store(&minting.key_store, store)?;
    tracing::info!(
        "deleted the previous OpenRouter key {}: the application runs with the new key",
        previous.hash
    );
    Ok(Some(previous.hash))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::ffi::OsString;

    use super::*;
    use crate::keyplan::Orphan;
    use crate::openrouter::{CreatedKey, KeyInfo, NewKey, PendingRotation};

    const MINTED: &str = "sk-or-v1-MINTEDFAKE000111222333444555666777";
    const NOW: i64 = 1_800_000_000;

    /// A fake API: records every call, answers creates from a script.
    #[derive(Default)]
    struct Fake {
        calls: RefCell<Vec<String>>,
        create: RefCell<Option<Result<CreatedKey, ApiError>>>,
        update: RefCell<Option<ApiError>>,
        delete: RefCell<Option<ApiError>>,
    }

    impl KeyApi for Fake {
        fn list(&self, offset: usize) -> Result<Vec<KeyInfo>, ApiError> {
            self.calls.borrow_mut().push(format!("list {offset}"));
            Ok(vec![])
        }
        fn get(&self, hash: &str) -> Result<KeyInfo, ApiError> {
            self.calls.borrow_mut().push(format!("get {hash}"));
            Err(ApiError::NotFound { hash: hash.into() })
        }
        fn create(&self, request: &NewKey) -> Result<CreatedKey, ApiError> {
            self.calls
                .borrow_mut()
                .push(format!("create {}", request.name));
            self.create
                .borrow_mut()
                .take()
                .unwrap_or_else(|| Ok(created("new")))
        }
        fn update(&self, hash: &str, _: &KeyPatch) -> Result<KeyInfo, ApiError> {
            self.calls.borrow_mut().push(format!("update {hash}"));
            match self.update.borrow_mut().take() {
                Some(e) => Err(e),
                None => Ok(info(hash)),
            }
        }
        fn delete(&self, hash: &str) -> Result<(), ApiError> {
            self.calls.borrow_mut().push(format!("delete {hash}"));
            match self.delete.borrow_mut().take() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    }

    fn info(hash: &str) -> KeyInfo {
        KeyInfo {
            hash: hash.into(),
            name: "n".into(),
            disabled: false,
            limit: None,
            limit_reset: None,
        }
    }

    fn created(hash: &str) -> CreatedKey {
        CreatedKey {
            key: Secret::new(MINTED),
            info: info(hash),
        }
    }

    fn minting(dir: &tempfile::TempDir) -> Minting {
        let vars: Vec<(OsString, OsString)> = vec![
            ("ORGANIZATION_NAME".into(), "Acme".into()),
            (
                "OPENROUTER_MANAGEMENT_KEY".into(),
                "sk-or-v1-MGMTFAKE0000aaaa1111bbbb2222".into(),
            ),
            ("DATA_DIR".into(), dir.path().into()),
        ];
        let config = crate::config::from_vars(vars).unwrap();
        config.key_source.minting().unwrap().clone()
    }

    fn id() -> OrgId {
        OrgId::resolve(None, "Acme")
    }

    fn current(hash: &str) -> CurrentKey {
        CurrentKey {
            hash: hash.into(),
            key: Secret::new("sk-or-v1-OLDFAKE0000000000000000000"),
            created_at: 1,
        }
    }

    fn mint_plan(replaces: Option<CurrentKey>, orphans: &[&str]) -> KeyPlan {
        let rotation = replaces.is_some();
        KeyPlan {
            action: KeyAction::Mint(Box::new(Mint {
                reason: if rotation {
                    MintReason::Rotation
                } else {
                    MintReason::NoKey
                },
                request: NewKey {
                    name: "mAI Client: Acme (mai_client_79d89452)".into(),
                    limit: None,
                    limit_reset: None,
                },
                orphans: orphans
                    .iter()
                    .map(|h| Orphan {
                        hash: (*h).into(),
                        disabled: false,
                    })
                    .collect(),
                record_intent: rotation.then(|| PendingRotation {
                    token: Some("t1".into()),
                    requested_at: NOW,
                }),
                rotation_token: rotation.then(|| "t1".to_owned()),
                replaces,
            })),
            kept: None,
            forget_previous: None,
            warnings: vec![],
        }
    }

    fn store_of(minting: &Minting) -> Option<StoredKeys> {
        openrouter::read_store(&minting.key_store, "mai_client_79d89452").unwrap()
    }

    #[test]
    fn a_mint_deletes_orphans_then_creates_then_stores() {
        let dir = tempfile::tempdir().unwrap();
        let minting = minting(&dir);
        let api = Fake::default();
        let outcome = provision(
            &api,
            &mint_plan(None, &["lost"]),
            None,
            &minting,
            &id(),
            NOW,
            false,
        )
        .unwrap();
        assert_eq!(
            *api.calls.borrow(),
            [
                "delete lost",
                "create mAI Client: Acme (mai_client_79d89452)"
            ]
        );
        assert_eq!(outcome.api_key.hash.as_deref(), Some("new"));
        assert_eq!(outcome.api_key.value.expose(), MINTED);
        assert_eq!(outcome.orphans, ["lost"]);
        let stored = store_of(&minting).unwrap();
        assert_eq!(stored.current.unwrap().key.expose(), MINTED);
        assert!(stored.previous.is_none() && stored.rotation.is_none());
    }

    #[test]
    fn a_rotation_keeps_the_replaced_key_as_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let minting = minting(&dir);
        let before = StoredKeys {
            current: Some(current("old")),
            ..StoredKeys::empty("mai_client_79d89452")
        };
        let api = Fake::default();
        let plan = mint_plan(Some(current("old")), &[]);
        let outcome = provision(&api, &plan, Some(&before), &minting, &id(), NOW, false).unwrap();
        assert_eq!(
            outcome.done,
            KeyDone::Minted {
                reason: MintReason::Rotation
            }
        );
        let stored = store_of(&minting).unwrap();
        assert_eq!(stored.current.unwrap().hash, "new");
        assert_eq!(stored.previous.unwrap().hash, "old");
        assert_eq!(stored.rotation_token.as_deref(), Some("t1"));
        assert!(stored.rotation.is_none());
    }

    #[test]
    fn a_lost_create_stores_nothing_and_fails_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let minting = minting(&dir);
        let api = Fake::default();
        *api.create.borrow_mut() = Some(Err(ApiError::OutcomeUnknown {
            reason: "connection reset".into(),
        }));
        let err = provision(
            &api,
            &mint_plan(None, &[]),
            None,
            &minting,
            &id(),
            NOW,
            false,
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::Api(ApiError::OutcomeUnknown { .. })),
            "{err}"
        );
        assert_eq!(store_of(&minting), None);
    }

    #[test]
    fn a_lost_create_in_a_rotation_keeps_the_old_key_and_the_intent() {
        let dir = tempfile::tempdir().unwrap();
        let minting = minting(&dir);
        let before = StoredKeys {
            current: Some(current("old")),
            ..StoredKeys::empty("mai_client_79d89452")
        };
        let api = Fake::default();
        *api.create.borrow_mut() = Some(Err(ApiError::OutcomeUnknown {
            reason: "timeout".into(),
        }));
        let plan = mint_plan(Some(current("old")), &[]);
        let outcome = provision(&api, &plan, Some(&before), &minting, &id(), NOW, false).unwrap();
        assert!(matches!(outcome.done, KeyDone::Offline { .. }));
        assert_eq!(outcome.api_key.hash.as_deref(), Some("old"));
        let stored = store_of(&minting).unwrap();
        assert_eq!(stored.current.unwrap().hash, "old");
        assert!(
            stored.rotation.is_some(),
            "the intent stays for the next run"
        );
    }

    #[test]
    fn a_dry_run_calls_nothing_and_plans_with_a_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        let minting = minting(&dir);
        let api = Fake::default();
        let outcome = provision(
            &api,
            &mint_plan(None, &["lost"]),
            None,
            &minting,
            &id(),
            NOW,
            true,
        )
        .unwrap();
        assert!(api.calls.borrow().is_empty());
        assert_eq!(outcome.api_key.hash, None);
        assert_eq!(outcome.api_key.value.expose(), TO_BE_MINTED);
        assert!(outcome.changes());
        assert_eq!(store_of(&minting), None);
    }

    #[test]
    fn a_reconciliation_in_an_outage_carries_on_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let minting = minting(&dir);
        let api = Fake::default();
        *api.update.borrow_mut() = Some(ApiError::Unreachable {
            url: "u".into(),
            reason: "503".into(),
        });
        let plan = KeyPlan {
            action: KeyAction::Reconcile(KeyPatch {
                limit: Some(Some(5.0)),
                ..KeyPatch::default()
            }),
            kept: Some(current("h1")),
            forget_previous: None,
            warnings: vec![],
        };
        let outcome = provision(&api, &plan, None, &minting, &id(), NOW, false).unwrap();
        assert!(matches!(outcome.done, KeyDone::Offline { .. }));
        assert!(
            outcome.warnings[0].contains("could not set limit"),
            "{:?}",
            outcome.warnings
        );
        assert!(!outcome.changes());
    }

    #[test]
    fn the_previous_key_is_deleted_then_forgotten_and_an_outage_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let minting = minting(&dir);
        let mut store = StoredKeys {
            current: Some(current("h1")),
            previous: Some(PreviousKey {
                hash: "h0".into(),
                replaced_at: 1,
                row_written_at: None,
            }),
            ..StoredKeys::empty("mai_client_79d89452")
        };
        let api = Fake::default();
        *api.delete.borrow_mut() = Some(ApiError::Unreachable {
            url: "u".into(),
            reason: "down".into(),
        });
        assert_eq!(delete_previous(&api, &minting, &mut store).unwrap(), None);
        assert!(store.previous.is_some());
        assert_eq!(
            delete_previous(&api, &minting, &mut store)
                .unwrap()
                .as_deref(),
            Some("h0")
        );
        assert!(store_of(&minting).unwrap().previous.is_none());
    }

    #[test]
    fn a_row_write_while_a_previous_key_waits_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let minting = minting(&dir);
        let mut store = StoredKeys {
            current: Some(current("h1")),
            previous: Some(PreviousKey {
                hash: "h0".into(),
                replaced_at: 1,
                row_written_at: None,
            }),
            ..StoredKeys::empty("mai_client_79d89452")
        };
        note_row_write(&minting, &mut store, NOW).unwrap();
        assert_eq!(
            store_of(&minting).unwrap().previous.unwrap().row_written_at,
            Some(NOW)
        );
    }
}
