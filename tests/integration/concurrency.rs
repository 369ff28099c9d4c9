//! Replicas that start together on one shared volume, a run that holds the
//! lock too long, and another connection that keeps the database busy: the
//! job serialises, waits or gives up cleanly, and never corrupts anything.

use std::time::{Duration, Instant};

use crate::common::*;
use rusqlite::types::Value;

const REPLICAS: usize = 32;

fn replicas(sandbox: &Sandbox, args: &[&str], vars: &[(&str, &str)]) -> Vec<Run> {
    let commands = (0..REPLICAS)
        .map(|_| {
            let mut cmd = sandbox.command();
            cmd.args(args).env("LOG_LEVEL", "debug");
            for (name, value) in vars {
                cmd.env(name, value);
            }
            cmd
        })
        .collect();
    run_together(commands)
}

/// Every replica exited 0, printed no secret and never met SQLite's lock;
/// and they did run together: some had to wait for the lock.
fn assert_all_succeeded(runs: &[Run], context: &str) {
    let waited = runs
        .iter()
        .filter(|r| r.stderr.contains("another run holds the lock"))
        .count();
    eprintln!(
        "{context}: {waited} of {} replicas waited for the lock",
        runs.len()
    );
    assert!(waited > 0, "{context}: the replicas never overlapped");
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(
            run.code, 0,
            "{context}: replica {i} failed; stderr:\n{}",
            run.stderr
        );
        run.assert_no_secret();
        let all = run.output().to_lowercase();
        assert!(
            !all.contains("database is locked") && !all.contains("database is busy"),
            "{context}: replica {i} met a locked database:\n{}",
            run.stderr
        );
    }
}

/// The same run once, alone, in a fresh sandbox prepared by `setup`.
fn single_run(setup: impl Fn() -> Sandbox, args: &[&str], vars: &[(&str, &str)]) -> Sandbox {
    let sandbox = setup();
    sandbox.run_with(args, vars).expect(0);
    sandbox
}

/// What must match a single run: the `.env` byte for byte, the set of
/// files, the row (timestamps aside), an intact database, no temp files.
fn assert_like_single_run(sandbox: &Sandbox, single: &Sandbox, context: &str) {
    assert_eq!(
        std::fs::read(sandbox.env_path()).unwrap(),
        std::fs::read(single.env_path()).unwrap(),
        "{context}: the .env differs from a single run's"
    );
    assert_eq!(
        sandbox.snapshot().names(),
        single.snapshot().names(),
        "{context}: other files than a single run's"
    );
    assert_integrity(&sandbox.db_path(), context);
    let rows = sandbox.rows();
    assert_eq!(rows.len(), 1, "{context}: {rows:?}");
    let (row, expected) = (&rows[0], &single.rows()[0]);
    assert_eq!(
        (
            &row.id,
            &row.name,
            &row.api_key,
            &row.markup_rate,
            &row.is_active
        ),
        (
            &expected.id,
            &expected.name,
            &expected.api_key,
            &expected.markup_rate,
            &expected.is_active
        ),
        "{context}"
    );
    assert!(
        sandbox.temp_files().is_empty(),
        "{context}: temp files left"
    );
    sandbox.assert_secrets_only_where_they_belong(&[]);
}

#[test]
fn thirty_two_replicas_on_both_shapes_converge_on_one_row() {
    for (shape, journal) in SHAPES.into_iter().flat_map(|s| [(s, "DELETE"), (s, "WAL")]) {
        let context = format!("{shape:?} {journal}");
        let sandbox = Sandbox::with_shape(shape);
        sandbox.sql(&format!("PRAGMA journal_mode = {journal};"));
        let runs = replicas(&sandbox, &["--production"], &[]);
        assert_all_succeeded(&runs, &context);
        let single = single_run(|| Sandbox::with_shape(shape), &["--production"], &[]);
        assert_like_single_run(&sandbox, &single, &context);
        let written = runs
            .iter()
            .filter(|r| r.stderr.contains("provisioned"))
            .count();
        assert_eq!(written, 1, "{context}: exactly one replica writes");
    }
}

#[test]
fn thirty_two_replicas_on_a_first_boot_create_the_schema_once() {
    // The volume as the first replica finds it: empty, or not even there.
    for data_dir_exists in [true, false] {
        let context = format!("first boot, DATA_DIR exists: {data_dir_exists}");
        let setup = || {
            let sandbox = Sandbox::new();
            if !data_dir_exists {
                std::fs::remove_dir(sandbox.data_dir()).unwrap();
            }
            sandbox
        };
        let vars = [("CREATE_SCHEMA", "true")];
        let sandbox = setup();
        let runs = replicas(&sandbox, &["--production"], &vars);
        assert_all_succeeded(&runs, &context);
        let single = single_run(setup, &["--production"], &vars);
        assert_like_single_run(&sandbox, &single, &context);
    }
}

#[test]
fn thirty_two_replicas_without_a_configured_secret_agree_on_one_key() {
    for args in [&["--production"][..], &[][..]] {
        let context = format!("args {args:?}");
        let sandbox = Sandbox::with_shape(Shape::Startup);
        let commands = (0..REPLICAS)
            .map(|_| {
                let mut cmd = sandbox.command();
                cmd.env_remove("WEBUI_SECRET_KEY")
                    .env("LOG_LEVEL", "debug")
                    .args(args);
                cmd
            })
            .collect();
        let runs = run_together(commands);
        assert_all_succeeded(&runs, &context);
        let stored = std::fs::read_to_string(sandbox.secret_store()).unwrap();
        assert_eq!(stored.len(), 64, "{context}: a 32-byte hex key");
        assert_eq!(
            python_dotenv(&sandbox.env_path())["WEBUI_SECRET_KEY"],
            stored,
            "{context}: the .env holds the stored key"
        );
        let generated = runs
            .iter()
            .filter(|r| r.stderr.contains("stored a new WEBUI_SECRET_KEY"))
            .count();
        assert_eq!(generated, 1, "{context}: exactly one replica generates");
        for run in &runs {
            assert!(
                !run.output().contains(&stored[..16]),
                "{context}: key leaked"
            );
        }
        sandbox.assert_secrets_only_where_they_belong(&[&stored[..16]]);
        // Apart from the key, the .env is a single configured run's.
        let single = single_run(|| Sandbox::with_shape(Shape::Startup), args, &[]);
        assert_eq!(
            sandbox.env_text().replace(&stored, SECRET_KEY),
            single.env_text(),
            "{context}"
        );
        assert!(
            sandbox.temp_files().is_empty(),
            "{context}: temp files left"
        );
    }
}

/// Env-only runs with their own `.env` share the key store on DATA_DIR:
/// the store's folder lock serialises them, so exactly one generates the
/// key, every `.env` holds it, and no run removes another's temp file.
#[test]
fn thirty_two_env_runs_with_their_own_env_files_share_one_key_store() {
    let sandbox = Sandbox::new();
    let commands = (0..REPLICAS)
        .map(|i| {
            let mut cmd = sandbox.command();
            cmd.env_remove("WEBUI_SECRET_KEY")
                .env("ENV_FILE", sandbox.path().join(format!("shared/{i}.env")));
            cmd
        })
        .collect();
    let runs = run_together(commands);
    assert_all_succeeded(&runs, "env runs on one DATA_DIR");
    let stored = std::fs::read_to_string(sandbox.secret_store()).unwrap();
    assert_eq!(stored.len(), 64);
    let generated = runs
        .iter()
        .filter(|r| r.stderr.contains("stored a new WEBUI_SECRET_KEY"))
        .count();
    assert_eq!(generated, 1, "exactly one run generates the key");
    let envs: Vec<_> = (0..REPLICAS)
        .map(|i| sandbox.path().join(format!("shared/{i}.env")))
        .collect();
    for (i, values) in python_dotenv_all(&envs).iter().enumerate() {
        assert_eq!(values["WEBUI_SECRET_KEY"], stored, "{i}.env");
    }
    assert!(sandbox.temp_files().is_empty(), "temp files left");
}

#[test]
fn a_lock_held_past_lock_timeout_is_exit_75_in_time_and_nothing_is_written() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    // The database lock (database modes) and the .env lock (every mode).
    let cases: [(&[&str], &str); 3] = [
        (&["--production"], "data/.mai-provision.lock"),
        (&["--production"], "shared/.env.lock"),
        (&[], "shared/.env.lock"),
    ];
    for (args, lock) in cases {
        let context = format!("{args:?} with {lock} held");
        let sandbox = Sandbox::with_shape(Shape::Alembic);
        sandbox.write_env("KEEP=1\n");
        let before = sandbox.snapshot();
        let held = hold_lock(&sandbox.path().join(lock));
        let started = Instant::now();
        let run = sandbox.run_with(args, &[("LOCK_TIMEOUT", "1")]);
        let elapsed = started.elapsed();
        run.expect(75)
            .assert_mentions(&["LOCK_TIMEOUT", lock])
            .assert_last_line_mentions(&[
                "another mai-provision run has held",
                lock.rsplit('/').next().unwrap(),
                "raise LOCK_TIMEOUT",
            ]);
        assert!(
            elapsed >= TIMEOUT && elapsed < TIMEOUT + Duration::from_secs(1),
            "{context}: exit after {elapsed:?}"
        );
        before.assert_same(&sandbox.snapshot(), &context);
        drop(held);
        sandbox.run(args).expect(0);
    }
}

#[test]
fn a_busy_database_is_waited_for_and_the_row_written_after_the_other_commit() {
    // The cases wait in parallel: each holds its database for seconds.
    std::thread::scope(|scope| {
        for busy in BUSY {
            for shape in SHAPES {
                scope.spawn(move || busy_case(busy, shape));
            }
        }
    });
}

fn busy_case(busy: Busy, shape: Shape) {
    const HOLD: Duration = Duration::from_secs(2);
    let context = format!("{busy:?} {shape:?}");
    let sandbox = Sandbox::with_shape(shape);
    let holder = hold_busy(&sandbox, busy);
    let held_since = Instant::now();
    let mut cmd = sandbox.command();
    cmd.args(["--production"])
        .env("MARKUP_RATE", "1.7")
        .env("LOG_LEVEL", "debug");
    let mut live = spawn(cmd);
    live.wait_for_log("another connection is using the database");
    std::thread::sleep(HOLD.saturating_sub(held_since.elapsed()));
    holder.execute_batch("COMMIT").unwrap();
    let ended = live.wait(STEP_TIMEOUT);
    ended.run.expect(0);
    assert!(
        !ended
            .run
            .stderr
            .to_lowercase()
            .contains("database is locked"),
        "{context}: {}",
        ended.run.stderr
    );
    drop(holder);
    assert_integrity(&sandbox.db_path(), &context);
    let rows = sandbox.rows();
    assert_eq!(rows.len(), 1, "{context}: {rows:?}");
    assert_eq!(rows[0].markup_rate, Value::Real(1.7), "{context}");
    if busy != Busy::RollbackReader {
        assert_eq!(
            rows[0].created_at,
            Value::Integer(1_700_000_000),
            "{context}: created_at of the application's insert is kept"
        );
    }
}

#[test]
fn a_database_busy_past_lock_timeout_is_exit_75_and_the_env_is_not_replaced() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    std::thread::scope(|scope| {
        for busy in BUSY {
            scope.spawn(move || {
                let context = format!("{busy:?}");
                let sandbox = Sandbox::with_shape(Shape::Startup);
                sandbox.write_env("KEEP=1\n");
                let holder = hold_busy(&sandbox, busy);
                let started = Instant::now();
                let run = sandbox.run_with(&["--production"], &[("LOCK_TIMEOUT", "1")]);
                let elapsed = started.elapsed();
                run.expect(75).assert_mentions(&["LOCK_TIMEOUT"]);
                assert!(
                    elapsed >= TIMEOUT && elapsed < TIMEOUT + Duration::from_secs(1),
                    "{context}: exit after {elapsed:?}"
                );
                holder.execute_batch("ROLLBACK").unwrap();
                drop(holder);
                assert_eq!(sandbox.env_text(), "KEEP=1\n", "{context}");
                assert!(sandbox.rows().is_empty(), "{context}");
                assert!(sandbox.temp_files().is_empty(), "{context}");
                assert_integrity(&sandbox.db_path(), &context);
            });
        }
    });
}

#[test]
fn lock_timeout_bounds_the_wait_for_both_locks_together() {
    // One run holds the database lock almost to the timeout, another holds
    // the .env lock: the job still gives up within LOCK_TIMEOUT plus 1 s.
    const TIMEOUT: Duration = Duration::from_secs(2);
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    let before = sandbox.snapshot();
    let database_lock = hold_lock(&sandbox.data_dir().join(".mai-provision.lock"));
    let _env_lock = hold_lock(&sandbox.path().join("shared/.env.lock"));
    let started = Instant::now();
    let mut cmd = sandbox.command();
    cmd.arg("--production").env("LOCK_TIMEOUT", "2");
    let mut live = spawn(cmd);
    live.wait_for_log("another run holds the lock");
    std::thread::sleep(TIMEOUT.mul_f64(0.75).saturating_sub(started.elapsed()));
    drop(database_lock);
    let ended = live.wait(STEP_TIMEOUT);
    let elapsed = started.elapsed();
    ended.run.expect(75);
    assert!(
        elapsed < TIMEOUT + Duration::from_secs(1),
        "exit after {elapsed:?}"
    );
    before.assert_same(&sandbox.snapshot(), "nothing written");
}

#[test]
fn thirty_two_replicas_applying_a_change_keep_one_backup_of_the_old_file() {
    let scenario = Scenario::Update { wal: false };
    let template = scenario.prepare();
    let old_env = std::fs::read(template.env_path()).unwrap();
    let sandbox = template.copy();
    let commands = (0..REPLICAS)
        .map(|_| {
            let mut cmd = scenario.command(&sandbox);
            cmd.env("LOG_LEVEL", "debug");
            cmd
        })
        .collect();
    let runs = run_together(commands);
    assert_all_succeeded(&runs, "update");
    let single = template.copy();
    Run::from(scenario.command(&single).output().unwrap()).expect(0);
    assert_eq!(
        State::read(&sandbox).timeless(),
        State::read(&single).timeless()
    );
    assert_eq!(std::fs::read(sandbox.backup_path()).unwrap(), old_env);
    assert_like_single_run(&sandbox, &single, "update");
}
