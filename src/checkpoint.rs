//! Step boundaries. Each checks for a termination signal; for the signal
//! and crash tests it can also pause: with
//! `MAI_PROVISION_TEST_PAUSE=<step>` the run stops at that step, creates the
//! file named by `MAI_PROVISION_TEST_PAUSE_FILE`, and sleeps (waking for
//! signals). Compiled into debug builds and the `test-hooks` feature only;
//! a release binary ignores these variables.
//!
//! The steps, in the order a run reaches them: `locked`,
//! `temp-created:<key store name>`, `secret-prepared`, `temp-created:<env
//! file name>`, `env-prepared`, `temp-created:<env file name>.backup`,
//! `backup-prepared`, `transaction-open`, `schema-created`, `before-commit`,
//! `database-committed`, `secret-stored`, `backup-written`,
//! `env-committed`. A step is reached only when the run does that work (no
//! `schema-created` without CREATE_SCHEMA), except the `*-prepared` steps
//! and `database-committed`, which every run passes.

use crate::signals::Interrupted;

/// A step boundary where a run may still stop: `Err` once a termination
/// signal has arrived.
pub fn checkpoint(step: &str) -> Result<(), Interrupted> {
    crate::signals::check()?;
    pause(step)
}

/// A step boundary after the database committed. A signal no longer stops
/// the run here: only renames are left, and stopping between them would
/// leave the database and the `.env` disagreeing.
pub fn checkpoint_committed(step: &str) {
    // A pause ends early on a signal, which the caller then ignores.
    let _ = pause(step);
}

#[cfg(any(debug_assertions, feature = "test-hooks"))]
fn pause(step: &str) -> Result<(), Interrupted> {
    use std::time::Duration;

    if std::env::var("MAI_PROVISION_TEST_PAUSE").ok().as_deref() != Some(step) {
        return Ok(());
    }
    if let Some(marker) = std::env::var_os("MAI_PROVISION_TEST_PAUSE_FILE") {
        let _ = std::fs::write(marker, step);
    }
    let seconds = std::env::var("MAI_PROVISION_TEST_PAUSE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30.0);
    crate::signals::sleep(Duration::from_secs_f64(seconds))
}

#[cfg(not(any(debug_assertions, feature = "test-hooks")))]
fn pause(_step: &str) -> Result<(), Interrupted> {
    Ok(())
}
