use std::ffi::OsString;

use super::*;
use crate::config;
use crate::openrouter::PreviousKey;

const MANAGEMENT: &str = "sk-or-v1-MGMTFAKE0000aaaa1111bbbb2222cccc3333";
const MINTED: &str = "sk-or-v1-MINTEDFAKE000111222333444555666777";
const NOW: i64 = 1_800_000_000;
const NAME: &str = "mAI Client: Acme (mai_client_79d89452)";

fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(OsString, OsString)> = vec![
        ("ORGANIZATION_NAME".into(), "Acme".into()),
        ("OPENROUTER_MANAGEMENT_KEY".into(), MANAGEMENT.into()),
        ("SPENDING_LIMIT".into(), "1000".into()),
        ("SPENDING_LIMIT_RESET".into(), "monthly".into()),
    ];
    for (name, value) in extra {
        vars.retain(|(n, _)| n != name);
        vars.push((OsString::from(name), OsString::from(value)));
    }
    config::from_vars(vars).unwrap()
}

fn id() -> OrgId {
    OrgId::resolve(None, "Acme")
}

fn info(hash: &str, name: &str) -> KeyInfo {
    KeyInfo {
        hash: hash.into(),
        name: name.into(),
        disabled: false,
        limit: Some(1000.0),
        limit_reset: Some("monthly".into()),
    }
}

fn stored(hash: &str) -> StoredKeys {
    StoredKeys {
        current: Some(CurrentKey {
            hash: hash.into(),
            key: Secret::new(MINTED),
            created_at: NOW - 100,
        }),
        ..StoredKeys::empty("mai_client_79d89452")
    }
}

fn state(store: Option<StoredKeys>, current: Remote, listing: Listing) -> KeyState {
    KeyState {
        store,
        current,
        listing,
        previous_gone: None,
    }
}

const NO_ROTATION: RotationRequest<'static> = RotationRequest {
    flag: false,
    token: None,
};

fn decide_with(config: &Config, state: &KeyState, rotation: RotationRequest<'_>) -> KeyPlan {
    let minting = config.key_source.minting().unwrap();
    decide(config, minting, &id(), state, rotation, NOW).unwrap()
}

fn mint_of(plan: &KeyPlan) -> &Mint {
    match &plan.action {
        KeyAction::Mint(mint) => mint,
        other => panic!("not a mint: {other:?}"),
    }
}

fn outage() -> ApiError {
    ApiError::Unreachable {
        url: "https://openrouter.ai/api/v1".into(),
        reason: "connection refused".into(),
    }
}

#[test]
fn the_key_is_named_after_the_organization_and_its_id() {
    assert_eq!(key_name(&config(&[]), &id()), NAME);
    assert!(is_organization_key(NAME, &id()));
    assert!(is_organization_key(
        "mAI Client: Acme Renamed (mai_client_79d89452)",
        &id()
    ));
    // The old generator's keys, and other organizations', are not ours.
    assert!(!is_organization_key("mAI Client: Acme", &id()));
    assert!(!is_organization_key(
        "mAI Client: Other (mai_client_00000000)",
        &id()
    ));
    assert!(!is_organization_key("Acme (mai_client_79d89452)", &id()));
}

#[test]
fn with_no_key_stored_one_is_minted_after_deleting_the_lost_ones() {
    let listed = vec![
        info("lost1", NAME),
        info("old-generator", "mAI Client: Acme"),
        info("other-org", "mAI Client: Other (mai_client_00000000)"),
        KeyInfo {
            disabled: true,
            ..info("lost2", "mAI Client: Old Name (mai_client_79d89452)")
        },
    ];
    let plan = decide_with(
        &config(&[]),
        &state(None, Remote::NotStored, Listing::Read(listed)),
        NO_ROTATION,
    );
    let mint = mint_of(&plan);
    assert_eq!(mint.reason, MintReason::NoKey);
    assert_eq!(
        mint.orphans,
        [
            Orphan {
                hash: "lost1".into(),
                disabled: false
            },
            Orphan {
                hash: "lost2".into(),
                disabled: true
            }
        ]
    );
    assert_eq!(
        mint.request,
        NewKey {
            name: NAME.into(),
            limit: Some(1000.0),
            limit_reset: Some(LimitReset::Monthly),
        }
    );
    assert!(mint.replaces.is_none() && mint.record_intent.is_none());
    assert!(
        plan.warnings.iter().any(|w| w.contains("lost1, lost2")),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn an_unlimited_key_is_minted_with_a_null_limit_and_no_reset() {
    let config = config(&[
        ("SPENDING_LIMIT", "unlimited"),
        ("SPENDING_LIMIT_RESET", ""),
    ]);
    let plan = decide_with(
        &config,
        &state(None, Remote::NotStored, Listing::Read(vec![])),
        NO_ROTATION,
    );
    let request = &mint_of(&plan).request;
    assert_eq!((request.limit, request.limit_reset), (None, None));
}

#[test]
fn a_live_matching_key_is_reused_and_nothing_is_listed() {
    let store = stored("h1");
    let current = Remote::Found(info("h1", NAME));
    assert!(!needs_listing(Some(&store), &current, NO_ROTATION));
    let plan = decide_with(
        &config(&[]),
        &state(Some(store), current, Listing::NotRead),
        NO_ROTATION,
    );
    assert!(matches!(plan.action, KeyAction::Reuse), "{plan:?}");
    assert_eq!(plan.kept.unwrap().hash, "h1");
    assert!(plan.warnings.is_empty());
}

#[test]
fn a_changed_limit_or_reset_or_name_is_one_patch_of_what_differs() {
    let cases: Vec<(KeyInfo, KeyPatch)> = vec![
        (
            KeyInfo {
                limit: Some(500.0),
                ..info("h1", NAME)
            },
            KeyPatch {
                limit: Some(Some(1000.0)),
                ..KeyPatch::default()
            },
        ),
        (
            KeyInfo {
                limit_reset: None,
                ..info("h1", NAME)
            },
            KeyPatch {
                limit_reset: Some(Some(LimitReset::Monthly)),
                ..KeyPatch::default()
            },
        ),
        (
            KeyInfo {
                limit_reset: Some("yearly".into()),
                ..info("h1", NAME)
            },
            KeyPatch {
                limit_reset: Some(Some(LimitReset::Monthly)),
                ..KeyPatch::default()
            },
        ),
        (
            info("h1", "mAI Client: Old Name (mai_client_79d89452)"),
            KeyPatch {
                name: Some(NAME.into()),
                ..KeyPatch::default()
            },
        ),
    ];
    for (found, patch) in cases {
        let plan = decide_with(
            &config(&[]),
            &state(
                Some(stored("h1")),
                Remote::Found(found.clone()),
                Listing::NotRead,
            ),
            NO_ROTATION,
        );
        match plan.action {
            KeyAction::Reconcile(got) => assert_eq!(got, patch, "{found:?}"),
            other => panic!("{found:?}: {other:?}"),
        }
    }
    // Unlimited: an explicit null.
    let unlimited = config(&[("SPENDING_LIMIT", "unlimited")]);
    let minting = unlimited.key_source.minting().unwrap();
    let patch = reconciliation(&info("h1", NAME), NAME, minting);
    assert_eq!(patch.limit, Some(None));
}

#[test]
fn limits_equal_to_a_millionth_of_a_dollar_are_the_same() {
    assert!(same_limit(Some(1000.0), Some(1000.0000001)));
    assert!(!same_limit(Some(1000.0), Some(1000.01)));
    assert!(!same_limit(None, Some(1.0)));
    assert!(same_limit(None, None));
}

#[test]
fn a_deleted_or_disabled_key_is_replaced_with_a_warning() {
    let deleted = decide_with(
        &config(&[]),
        &state(Some(stored("h1")), Remote::Deleted, Listing::Read(vec![])),
        NO_ROTATION,
    );
    assert_eq!(mint_of(&deleted).reason, MintReason::Deleted);
    assert!(
        deleted.warnings[0].contains("was deleted on OpenRouter"),
        "{:?}",
        deleted.warnings
    );

    let disabled_info = KeyInfo {
        disabled: true,
        ..info("h1", NAME)
    };
    let disabled = decide_with(
        &config(&[]),
        &state(
            Some(stored("h1")),
            Remote::Found(disabled_info.clone()),
            Listing::Read(vec![disabled_info]),
        ),
        NO_ROTATION,
    );
    let mint = mint_of(&disabled);
    assert_eq!(mint.reason, MintReason::Disabled);
    // The disabled key goes too: one key with the organization's name.
    assert_eq!(mint.orphans.len(), 1);
    assert!(
        disabled.warnings[0].contains("is disabled"),
        "{:?}",
        disabled.warnings
    );
}

#[test]
fn an_outage_keeps_the_stored_key_and_without_one_fails() {
    let plan = decide_with(
        &config(&[]),
        &state(
            Some(stored("h1")),
            Remote::Unknown(outage()),
            Listing::NotRead,
        ),
        NO_ROTATION,
    );
    assert!(matches!(plan.action, KeyAction::Offline { .. }), "{plan:?}");
    assert_eq!(plan.kept.unwrap().hash, "h1");
    assert!(plan.warnings[0].contains("carrying on with the stored key h1"));

    let config = config(&[]);
    let minting = config.key_source.minting().unwrap();
    let none = state(None, Remote::NotStored, Listing::Unknown(outage()));
    let err = decide(&config, minting, &id(), &none, NO_ROTATION, NOW).unwrap_err();
    assert!(
        matches!(err, Error::Api(ApiError::Unreachable { .. })),
        "{err}"
    );
    // A deleted key cannot be carried on with either.
    let gone = state(
        Some(stored("h1")),
        Remote::Deleted,
        Listing::Unknown(outage()),
    );
    assert!(decide(&config, minting, &id(), &gone, NO_ROTATION, NOW).is_err());
}

#[test]
fn a_rotation_runs_once_per_token_and_keeps_the_replaced_key() {
    let config = config(&[]);
    let listed = vec![info("h1", NAME), info("lost", NAME)];
    let token = RotationRequest {
        flag: false,
        token: Some("2026-11-30"),
    };
    let current = Remote::Found(info("h1", NAME));
    assert!(needs_listing(Some(&stored("h1")), &current, token));
    let plan = decide_with(
        &config,
        &state(
            Some(stored("h1")),
            current.clone(),
            Listing::Read(listed.clone()),
        ),
        token,
    );
    let mint = mint_of(&plan);
    assert_eq!(mint.reason, MintReason::Rotation);
    assert_eq!(mint.replaces.as_ref().unwrap().hash, "h1");
    assert_eq!(
        mint.orphans
            .iter()
            .map(|o| o.hash.as_str())
            .collect::<Vec<_>>(),
        ["lost"]
    );
    assert_eq!(
        mint.record_intent,
        Some(PendingRotation {
            token: Some("2026-11-30".into()),
            requested_at: NOW
        })
    );
    assert_eq!(mint.rotation_token.as_deref(), Some("2026-11-30"));

    // The same token again: nothing to do.
    let done = StoredKeys {
        rotation_token: Some("2026-11-30".into()),
        ..stored("h1")
    };
    assert!(!needs_listing(Some(&done), &current, token));
    let again = decide_with(
        &config,
        &state(Some(done.clone()), current.clone(), Listing::NotRead),
        token,
    );
    assert!(matches!(again.action, KeyAction::Reuse), "{again:?}");

    // --rotate-key rotates whatever the token.
    let flag = RotationRequest {
        flag: true,
        token: Some("2026-11-30"),
    };
    let forced = decide_with(
        &config,
        &state(Some(done), current, Listing::Read(listed)),
        flag,
    );
    assert_eq!(mint_of(&forced).reason, MintReason::Rotation);
}

#[test]
fn a_rotation_a_killed_run_began_is_finished_without_recording_it_again() {
    let pending = StoredKeys {
        rotation: Some(PendingRotation {
            token: Some("t1".into()),
            requested_at: NOW - 50,
        }),
        ..stored("h1")
    };
    let plan = decide_with(
        &config(&[]),
        &state(
            Some(pending),
            Remote::Found(info("h1", NAME)),
            Listing::Read(vec![info("h1", NAME), info("half-made", NAME)]),
        ),
        NO_ROTATION,
    );
    let mint = mint_of(&plan);
    assert_eq!(mint.reason, MintReason::Rotation);
    assert!(mint.record_intent.is_none());
    assert_eq!(mint.rotation_token.as_deref(), Some("t1"));
    assert_eq!(mint.orphans[0].hash, "half-made");
}

#[test]
fn a_rotation_waits_while_the_previous_key_is_live() {
    let waiting = StoredKeys {
        previous: Some(PreviousKey {
            hash: "h0".into(),
            replaced_at: NOW - 10,
            row_written_at: None,
        }),
        ..stored("h1")
    };
    let token = RotationRequest {
        flag: true,
        token: None,
    };
    let current = Remote::Found(info("h1", NAME));
    assert!(!needs_listing(Some(&waiting), &current, token));
    let plan = decide_with(
        &config(&[]),
        &state(Some(waiting), current, Listing::NotRead),
        token,
    );
    assert!(matches!(plan.action, KeyAction::Reuse), "{plan:?}");
    assert!(
        plan.warnings[0].contains("h0 is still live"),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn a_mint_keeps_the_previous_key_of_a_rotation() {
    // The current key was deleted while the previous one still waits.
    let waiting = StoredKeys {
        previous: Some(PreviousKey {
            hash: "h0".into(),
            replaced_at: NOW - 10,
            row_written_at: None,
        }),
        ..stored("h1")
    };
    let plan = decide_with(
        &config(&[]),
        &state(
            Some(waiting),
            Remote::Deleted,
            Listing::Read(vec![info("h0", NAME)]),
        ),
        NO_ROTATION,
    );
    assert!(mint_of(&plan).orphans.is_empty());
}

#[test]
fn a_rotation_that_cannot_list_waits_with_the_live_key() {
    let plan = decide_with(
        &config(&[]),
        &state(
            Some(stored("h1")),
            Remote::Found(info("h1", NAME)),
            Listing::Unknown(outage()),
        ),
        RotationRequest {
            flag: true,
            token: None,
        },
    );
    assert!(matches!(plan.action, KeyAction::Offline { .. }), "{plan:?}");
    assert!(
        plan.warnings[0].contains("rotation waits"),
        "{:?}",
        plan.warnings
    );
}

#[test]
fn a_first_mint_with_a_token_counts_as_that_rotation() {
    let plan = decide_with(
        &config(&[]),
        &state(None, Remote::NotStored, Listing::Read(vec![])),
        RotationRequest {
            flag: false,
            token: Some("t1"),
        },
    );
    assert_eq!(mint_of(&plan).rotation_token.as_deref(), Some("t1"));
}

// ------------------------------------------------------------ previous key

fn rotated(row_written_at: Option<i64>) -> StoredKeys {
    StoredKeys {
        previous: Some(PreviousKey {
            hash: "h0".into(),
            replaced_at: NOW - 100,
            row_written_at,
        }),
        ..stored("h1")
    }
}

fn waits(plan: &PreviousPlan, words: &str) {
    match plan {
        PreviousPlan::Wait { hash, waiting_for } => {
            assert_eq!(hash, "h0");
            assert!(waiting_for.contains(words), "{waiting_for}");
        }
        other => panic!("not waiting: {other:?}"),
    }
}

#[test]
fn the_previous_key_goes_once_the_application_started_with_the_new_one_and_the_grace_passed() {
    let new_key = Secret::new(MINTED);
    let started = RowSeen {
        api_key: &new_key,
        updated_at: Some(NOW - 50),
    };
    let no_grace = Duration::ZERO;
    assert_eq!(
        previous_key(
            &rotated(None),
            Mode::Production,
            Some(started),
            no_grace,
            NOW
        ),
        PreviousPlan::Delete { hash: "h0".into() }
    );
    // The grace period is not over.
    let grace = Duration::from_secs(3600);
    waits(
        &previous_key(&rotated(None), Mode::Production, Some(started), grace, NOW),
        "KEY_ROTATION_GRACE: 3500 s more",
    );
    assert_eq!(
        previous_key(
            &rotated(None),
            Mode::Database,
            Some(started),
            grace,
            NOW + 3500
        ),
        PreviousPlan::Delete { hash: "h0".into() }
    );
}

#[test]
fn the_previous_key_waits_without_evidence_of_the_application_s_start() {
    let new_key = Secret::new(MINTED);
    let old_key = Secret::new("sk-or-v1-OLDKEY00000000000000000000");
    let cases = [
        // No row yet (first boot).
        None,
        // The row holds the old key: an application started with the old .env.
        Some(RowSeen {
            api_key: &old_key,
            updated_at: Some(NOW),
        }),
        // The new key, but no later start than the rotation.
        Some(RowSeen {
            api_key: &new_key,
            updated_at: Some(NOW - 100),
        }),
        // A text timestamp is no evidence.
        Some(RowSeen {
            api_key: &new_key,
            updated_at: None,
        }),
    ];
    for row in cases {
        waits(
            &previous_key(&rotated(None), Mode::Production, row, Duration::ZERO, NOW),
            "the application to start with the new key",
        );
    }
    // The job's own write of the row is no evidence either.
    let own_write = RowSeen {
        api_key: &new_key,
        updated_at: Some(NOW - 20),
    };
    waits(
        &previous_key(
            &rotated(Some(NOW - 20)),
            Mode::Production,
            Some(own_write),
            Duration::ZERO,
            NOW,
        ),
        "later than 1799999980",
    );
}

#[test]
fn in_env_mode_the_previous_key_is_never_deleted() {
    let new_key = Secret::new(MINTED);
    let row = RowSeen {
        api_key: &new_key,
        updated_at: Some(NOW),
    };
    waits(
        &previous_key(&rotated(None), Mode::Env, Some(row), Duration::ZERO, NOW),
        "in env mode",
    );
    assert_eq!(
        previous_key(
            &stored("h1"),
            Mode::Production,
            Some(row),
            Duration::ZERO,
            NOW
        ),
        PreviousPlan::None
    );
}

#[test]
fn a_previous_key_deleted_by_hand_is_forgotten_and_the_rotation_runs() {
    // keyworld found the previous key gone and took it out of the store.
    let mut gone = state(
        Some(stored("h1")),
        Remote::Found(info("h1", NAME)),
        Listing::Read(vec![info("h1", NAME)]),
    );
    gone.previous_gone = Some("h0".into());
    let plan = decide_with(
        &config(&[]),
        &gone,
        RotationRequest {
            flag: true,
            token: None,
        },
    );
    assert_eq!(plan.forget_previous.as_deref(), Some("h0"));
    assert_eq!(mint_of(&plan).reason, MintReason::Rotation);
    let kept = decide_with(&config(&[]), &gone, NO_ROTATION);
    assert!(matches!(kept.action, KeyAction::Reuse));
    assert_eq!(kept.forget_previous.as_deref(), Some("h0"));
}
