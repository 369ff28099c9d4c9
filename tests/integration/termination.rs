//! The termination message: one short line with the outcome, written to
//! the termination log only when that file exists (Kubernetes creates it),
//! never with a secret, and never at the cost of the run's own result.
//! `MAI_PROVISION_TERMINATION_LOG` points the binary at a file of the test's.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const VAR: &str = "MAI_PROVISION_TERMINATION_LOG";

fn message(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    for secret in [KEY, OTHER_KEY, SECRET_KEY, &KEY[9..], &SECRET_KEY[5..]] {
        assert!(!text.contains(secret), "a secret in the message: {text}");
    }
    assert!(!text.contains('\n'), "more than one line: {text:?}");
    assert!(text.len() <= 1024, "{} bytes: {text}", text.len());
    text
}

#[test]
fn a_successful_run_leaves_its_outcome() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    let log = sandbox.termination_log();
    let path = log.to_str().unwrap();
    sandbox
        .run_with(&["--production"], &[(VAR, path)])
        .expect(0);
    let first = message(&log);
    assert!(first.starts_with("applied exit=0: "), "{first}");
    for needle in [
        ACME_ID,
        ".env created (11 keys)",
        "row inserted",
        "verified",
        " ms",
    ] {
        assert!(first.contains(needle), "no {needle:?} in {first}");
    }

    // The next run replaces the message; it does not append.
    sandbox
        .run_with(&["--production"], &[(VAR, path)])
        .expect(0);
    let second = message(&log);
    assert!(second.starts_with("unchanged exit=0: "), "{second}");
    assert!(second.contains(".env unchanged, row unchanged"), "{second}");
}

#[test]
fn a_failure_leaves_the_error_without_the_secret() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let log = sandbox.termination_log();
    let path = log.to_str().unwrap();
    let bad = "sk-or-v1-has space inside0123456789";
    sandbox
        .run_with(&[], &[(VAR, path), ("OPENROUTER_API_KEY", bad)])
        .expect(78);
    let text = message(&log);
    assert!(text.starts_with("error exit=78 after "), "{text}");
    assert!(text.contains("OPENROUTER_API_KEY"), "{text}");
    assert!(!text.contains("has space inside"), "{text}");

    // Another organization's key: the data error names the organization.
    sandbox.sql(&format!(
        "INSERT INTO client_organizations (id, name, openrouter_api_key, markup_rate, is_active, created_at, updated_at) \
         VALUES ('mai_client_other', 'Other', '{OTHER_KEY}', 1.3, 1, 1700000000, 1700000000);"
    ));
    sandbox
        .run_with(
            &["--production"],
            &[(VAR, path), ("OPENROUTER_API_KEY", OTHER_KEY)],
        )
        .expect(65);
    let text = message(&log);
    assert!(text.starts_with("error exit=65 "), "{text}");
    assert!(text.contains("mai_client_other"), "{text}");
}

#[test]
fn check_and_usage_errors_are_reported_too() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    let log = sandbox.termination_log();
    let path = log.to_str().unwrap();
    sandbox
        .run_with(&["--production", "--check"], &[(VAR, path)])
        .expect(1);
    assert!(message(&log).starts_with("planned exit=1: planned for "));
    sandbox
        .run_with(&["--no-such-flag"], &[(VAR, path)])
        .expect(64);
    assert!(message(&log).starts_with("error exit=64: usage error"));
}

#[test]
fn nothing_is_written_where_no_log_exists() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path().join("termination-log");
    sandbox
        .run_with(&[], &[(VAR, missing.to_str().unwrap())])
        .expect(0);
    assert!(!missing.exists(), "the message file was created");

    // --version is not a run: an existing log stays as it was.
    let log = sandbox.termination_log();
    fs::write(&log, "before").unwrap();
    sandbox
        .run_with(&["--version"], &[(VAR, log.to_str().unwrap())])
        .expect(0);
    assert_eq!(fs::read_to_string(&log).unwrap(), "before");
}

#[test]
fn a_log_that_cannot_be_written_changes_nothing_else() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    // A folder is not a message file.
    sandbox
        .run_with(&[], &[(VAR, sandbox.path().to_str().unwrap())])
        .expect(0);

    // A FIFO would block a writer until someone reads it; the run must end.
    let fifo = sandbox.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let started = Instant::now();
    sandbox
        .run_with(&["--init-database"], &[(VAR, fifo.to_str().unwrap())])
        .expect(0);
    assert!(started.elapsed() < Duration::from_secs(20));

    // A read-only file: the run keeps its own exit code and output.
    let log = sandbox.termination_log();
    fs::write(&log, "old").unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o444);
    fs::set_permissions(&log, mode).unwrap();
    let mut cmd = sandbox.command();
    cmd.env(VAR, &log)
        .env("LOG_LEVEL", "debug")
        .arg("--init-database");
    let Some(mut cmd) = unable_to_write(cmd, &log) else {
        return;
    };
    let run = Run::from(cmd.stdin(Stdio::null()).output().unwrap());
    run.expect(0);
    assert_eq!(fs::read_to_string(&log).unwrap(), "old");
    assert!(run.stderr.contains("cannot write the termination message"));
}

/// `cmd` as it must run for `file` (mode 0444) to be unwritable: as it is
/// for an ordinary user; for root (which writes any file) under `setpriv`
/// without the capability that overrides file modes. `None`, after saying
/// so loudly, when neither works.
fn unable_to_write(cmd: Command, file: &Path) -> Option<Command> {
    if fs::OpenOptions::new().append(true).open(file).is_err() {
        return Some(cmd);
    }
    const DROP: &str = DROP_DAC_OVERRIDE;
    let probe = Command::new("setpriv")
        .args([DROP, "--", "sh", "-c", ": >> \"$0\""])
        .arg(file)
        .output();
    if !matches!(&probe, Ok(out) if !out.status.success()) {
        skip(
            "unwritable termination log",
            &format!(
                "this test runs with the privilege to write a mode 0444 file (root), and `setpriv {DROP}` \
                 could not take it away ({probe:?}); the unwritable case is NOT checked here"
            ),
        );
        return None;
    }
    Some(without_dac_override_unchecked(&cmd))
}
