//! `--wait-for-database`: on a first boot, wait for the application to create
//! its schema, then provision the row, so that MARKUP_RATE applies from the
//! very first start.

use std::time::{Duration, Instant};

use crate::common::*;
use rusqlite::types::Value;

#[test]
fn the_row_is_written_once_the_application_creates_its_schema() {
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command();
    cmd.args(["--production", "--wait-for-database=20"])
        .env("MARKUP_RATE", "1.7");
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        sandbox.rows_if_any().is_none(),
        "nothing may be created while waiting"
    );
    // The application creates the file, then migrates: tables appear in steps.
    sandbox.sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);");
    std::thread::sleep(Duration::from_millis(700));
    sandbox.sql(
        STARTUP_SQL
            .replace(
                "CREATE TABLE alembic_version",
                "CREATE TABLE IF NOT EXISTS alembic_version",
            )
            .as_str(),
    );
    let run = Run::from(child.wait_with_output().unwrap());
    run.expect(0);
    let row = sandbox.row(ACME_ID);
    assert_eq!(row.markup_rate, Value::Real(1.7));
}

#[test]
fn a_schema_that_never_comes_is_a_temporary_failure() {
    let sandbox = Sandbox::new();
    let started = Instant::now();
    let run = sandbox.run_with(&["--init-database"], &[("WAIT_FOR_DATABASE", "1")]);
    run.expect(75)
        .assert_mentions(&["waited", "schema", "--wait-for-database"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!sandbox.db_path().exists());
}

#[test]
fn waiting_is_skipped_in_env_mode_and_when_the_schema_exists() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    let started = Instant::now();
    sandbox
        .run(&["--production", "--wait-for-database=30"])
        .expect(0);
    assert!(started.elapsed() < Duration::from_secs(5));
    let fresh = Sandbox::new();
    fresh.run(&["--wait-for-database=30"]).expect(0);
    assert!(started.elapsed() < Duration::from_secs(10));
}
