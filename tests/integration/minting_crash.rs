//! SIGKILL at every step of minting and of a rotation: whatever step the
//! job dies at, the next run (and, for a rotation, the application's start
//! and one more run) leaves exactly one live key, whose secret the key
//! store, the row and the `.env` hold.

use crate::common::*;

/// Every pause point a first mint passes (on a migrated database, with a
/// lost key of an earlier attempt to delete), in order.
const MINT_STEPS: &[&str] = &[
    "locked",
    "key-orphans-deleted",
    "key-created",
    "temp-created:.openrouter_key",
    "key-stored",
    "temp-created:.webui_secret_key",
    "secret-prepared",
    "temp-created:.env",
    "env-prepared",
    "backup-prepared",
    "transaction-open",
    "before-commit",
    "database-committed",
    "env-committed",
];

/// Every pause point a rotation passes, in order.
const ROTATION_STEPS: &[&str] = &[
    "locked",
    "temp-created:.openrouter_key",
    "key-rotation-recorded",
    "key-orphans-deleted",
    "key-created",
    "key-stored",
    "secret-prepared",
    "temp-created:.env",
    "env-prepared",
    "temp-created:.env.backup",
    "backup-prepared",
    "transaction-open",
    "before-commit",
    "database-committed",
    "backup-written",
    "env-committed",
];

/// Every pause point of the run that deletes the replaced key.
const DELETION_STEPS: &[&str] = &[
    "locked",
    "previous-key-deleted",
    "temp-created:.openrouter_key",
];

const ROTATE: (&str, &str) = ("ROTATE_KEY", "2026-11-30");
const NO_GRACE: (&str, &str) = ("KEY_ROTATION_GRACE", "0");

/// Kill a run of `vars` at `step`; the run must have been paused there.
fn kill_at(sandbox: &Sandbox, standin: &StandIn, step: &str, vars: &[(&str, &str)]) {
    let mut cmd = sandbox.minting_command(standin);
    cmd.arg("--production");
    for (name, value) in vars {
        cmd.env(name, value);
    }
    let ended = spawn_paused(sandbox, cmd, step).kill();
    assert_eq!(ended.signal, Some(9), "{step}: {:?}", ended.run);
    assert_hides_keys(&ended.run, sandbox, standin);
}

/// The run after a kill succeeds, prints no secret and leaves no temp file.
fn recover(sandbox: &Sandbox, standin: &StandIn, vars: &[(&str, &str)], context: &str) {
    let run = sandbox.mint(standin, &["--production"], vars);
    assert_eq!(
        run.code, 0,
        "{context}: the run after the kill:\n{}",
        run.stderr
    );
    assert_hides_keys(&run, sandbox, standin);
    assert!(
        sandbox.temp_files().is_empty(),
        "{context}: {:?}",
        sandbox.temp_files()
    );
    assert_integrity(&sandbox.db_path(), context);
}

#[test]
fn a_kill_at_every_step_of_minting_converges_on_one_key() {
    for step in MINT_STEPS {
        let context = format!("mint, SIGKILL at {step}");
        let standin = StandIn::start(MANAGEMENT_KEY);
        // A key an earlier run created but never stored.
        standin.add_key(ACME_KEY_NAME);
        let sandbox = Sandbox::with_shape(Shape::Startup);
        kill_at(&sandbox, &standin, step, &[]);
        assert!(
            standin.live_keys().len() <= 2,
            "{context}: {:#?}",
            standin.live_keys()
        );
        recover(&sandbox, &standin, &[], &context);
        assert_one_key_everywhere(&sandbox, &standin);
        sandbox.assert_secrets_only_where_they_belong(&[&MANAGEMENT_KEY[9..]]);
    }
}

#[test]
fn a_kill_at_every_step_of_a_rotation_converges_on_one_key_once_the_application_moved() {
    for step in ROTATION_STEPS {
        let context = format!("rotation, SIGKILL at {step}");
        let standin = StandIn::start(MANAGEMENT_KEY);
        let sandbox = Sandbox::with_shape(Shape::Startup);
        sandbox.mint(&standin, &["--production"], &[]).expect(0);
        let old = assert_one_key_everywhere(&sandbox, &standin);
        kill_at(&sandbox, &standin, step, &[ROTATE, NO_GRACE]);

        // The next run finishes the rotation: the new key everywhere, the
        // old one live beside it until the application has moved.
        recover(&sandbox, &standin, &[ROTATE, NO_GRACE], &context);
        let stored = sandbox.stored().expect("a stored key");
        assert_ne!(
            stored.hash, old.hash,
            "{context}: the rotation was finished"
        );
        assert_eq!(
            stored.previous.as_deref(),
            Some(old.hash.as_str()),
            "{context}"
        );
        assert_eq!(
            standin.live_keys().len(),
            2,
            "{context}: the new key and the replaced one, no other"
        );

        // The application starts with the new key; the next run deletes
        // the old one.
        sandbox.application_starts_with(&stored.secret, now() + 5);
        recover(&sandbox, &standin, &[ROTATE, NO_GRACE], &context);
        let key = assert_one_key_everywhere(&sandbox, &standin);
        assert_eq!(key.hash, stored.hash, "{context}");
        assert_eq!(sandbox.stored().unwrap().previous, None, "{context}");
    }
}

#[test]
fn a_kill_while_deleting_the_replaced_key_converges_on_one_key() {
    for step in DELETION_STEPS {
        let context = format!("deletion, SIGKILL at {step}");
        let standin = StandIn::start(MANAGEMENT_KEY);
        let sandbox = Sandbox::with_shape(Shape::Startup);
        sandbox.mint(&standin, &["--production"], &[]).expect(0);
        sandbox
            .mint(&standin, &["--production"], &[ROTATE])
            .expect(0);
        let stored = sandbox.stored().unwrap();
        sandbox.application_starts_with(&stored.secret, now() + 5);
        kill_at(&sandbox, &standin, step, &[ROTATE, NO_GRACE]);
        recover(&sandbox, &standin, &[ROTATE, NO_GRACE], &context);
        let key = assert_one_key_everywhere(&sandbox, &standin);
        assert_eq!(key.hash, stored.hash, "{context}");
        assert_eq!(sandbox.stored().unwrap().previous, None, "{context}");
    }
}

/// A kill right after the PATCH that set a changed limit: the key is the
/// same, the limit stays set, and the next run mints nothing.
#[test]
fn a_kill_after_reconciling_the_limit_keeps_the_key() {
    let standin = StandIn::start(MANAGEMENT_KEY);
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.mint(&standin, &["--production"], &[]).expect(0);
    let before = assert_one_key_everywhere(&sandbox, &standin);
    let limit = ("SPENDING_LIMIT", "2500");
    kill_at(&sandbox, &standin, "key-reconciled", &[limit]);
    recover(
        &sandbox,
        &standin,
        &[limit],
        "reconcile, SIGKILL at key-reconciled",
    );
    let after = assert_one_key_everywhere(&sandbox, &standin);
    assert_eq!(after.hash, before.hash, "no new key for a limit");
    assert_eq!(after.limit, Some(2500.0));
    assert_eq!(standin.all_keys().len(), 1);
}
