//! SIGTERM and SIGINT: at every step of a run before the database commit,
//! while waiting for the lock, for a busy database or for the application's
//! schema, the job rolls back what it has not committed, removes its temp
//! files, releases its locks and exits 143 or 130 within a second. After the
//! commit it finishes its renames first (stopping there would leave the
//! database and the `.env` apart) and exits 0 within a second, with both
//! halves new. Also as PID 1 of a PID namespace (a container without an
//! init), where a signal without a handler is ignored.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

/// The bound the job must meet, from sending the signal to its exit.
const WITHIN: Duration = Duration::from_secs(1);

const SIGNALS: [(&str, i32); 2] = [("TERM", 143), ("INT", 130)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Launch {
    /// A child of the test, as under a shell or an init.
    Child,
    /// PID 1 of its own PID namespace, as in a container.
    Pid1,
}

const LAUNCHES: [Launch; 2] = [Launch::Child, Launch::Pid1];

/// `cmd` started as `launch` asks; `None` when that is impossible here
/// (already reported loudly).
fn start(cmd: Command, launch: Launch, check: &str) -> Option<Live> {
    match launch {
        Launch::Child => Some(spawn(cmd)),
        Launch::Pid1 => as_pid_1(&cmd, check).map(spawn),
    }
}

/// The PID to signal: the job's own, which for `Pid1` is the child of
/// `unshare`, and is 1 inside its namespace.
fn job_pid(live: &Live, launch: Launch) -> u32 {
    match launch {
        Launch::Child => live.pid(),
        Launch::Pid1 => {
            let (host, inner) = only_child(live.pid());
            assert_eq!(inner, 1, "the job is not PID 1 of its namespace");
            host
        }
    }
}

/// Signal the job and wait: it must exit with `code` within `WITHIN`.
fn stop(live: Live, launch: Launch, signal: &str, code: i32, context: &str) -> Run {
    let name = if signal == "TERM" {
        "SIGTERM"
    } else {
        "SIGINT"
    };
    let run = stop_with(live, launch, signal, code, context);
    run.assert_mentions(&[&format!("interrupted by {name}")]);
    run
}

/// Signal the job and wait: it must exit with `code` within `WITHIN`,
/// whatever it says.
fn stop_with(live: Live, launch: Launch, signal: &str, code: i32, context: &str) -> Run {
    let pid = job_pid(&live, launch);
    let sent = Instant::now();
    send_signal(pid, signal);
    let ended = live.wait(STEP_TIMEOUT);
    let took = sent.elapsed();
    eprintln!("{context}: exited {took:?} after the signal");
    assert_eq!(
        (ended.run.code, ended.signal),
        (code, None),
        "{context}: stderr:\n{}",
        ended.run.stderr
    );
    assert!(took < WITHIN, "{context}: exited {took:?} after the signal");
    ended.run.assert_no_secret();
    ended.run
}

fn assert_released(sandbox: &Sandbox, context: &str) {
    sandbox.assert_database_released(context);
    for lock in ["data/.mai-provision.lock", "shared/.env.lock"] {
        let path = sandbox.path().join(lock);
        assert!(
            !path.exists() || lock_is_free(&path),
            "{context}: {lock} is still held"
        );
    }
    assert!(
        sandbox.temp_files().is_empty(),
        "{context}: temp files left: {:?}",
        sandbox.temp_files()
    );
}

#[test]
fn a_signal_at_every_step_rolls_back_cleans_up_and_exits_in_time() {
    for scenario in scenarios("a signal at every step") {
        let template = scenario.prepare();
        let old = State::read(&template).timeless();
        let new = {
            let undisturbed = template.copy();
            Run::from(scenario.command(&undisturbed).output().unwrap()).expect(0);
            State::read(&undisturbed).timeless()
        };
        'launch: for launch in LAUNCHES {
            for step in scenario.steps() {
                for (signal, code) in SIGNALS {
                    let context = format!("{scenario:?} {launch:?}: SIG{signal} at {step}");
                    let sandbox = template.copy();
                    let mut cmd = scenario.command(&sandbox);
                    let marker = sandbox.marker();
                    cmd.env("MAI_PROVISION_TEST_PAUSE", step)
                        .env("MAI_PROVISION_TEST_PAUSE_FILE", &marker)
                        .env("MAI_PROVISION_TEST_PAUSE_SECS", "60");
                    // Where PID 1 cannot be had, that launch is skipped
                    // (loudly); the other launch and scenarios still run.
                    let Some(mut live) = start(cmd, launch, "signals as PID 1") else {
                        continue 'launch;
                    };
                    live.wait_for_marker(&marker);
                    std::fs::remove_file(&marker).unwrap();
                    let committed = scenario.committed_at(step);
                    let run = if committed {
                        stop_with(live, launch, signal, 0, &context)
                            .assert_mentions(&["arrived after the database commit"])
                            .clone()
                    } else {
                        stop(live, launch, signal, code, &context)
                    };
                    sandbox.assert_stored_key_not_in(&run, &context);
                    assert_released(&sandbox, &context);
                    let now = State::read(&sandbox).timeless();
                    if committed {
                        assert_eq!(now, new, "{context}: not both halves new");
                    } else {
                        assert_eq!(now.rows, old.rows, "{context}: not rolled back");
                        assert_eq!(now.env, old.env, "{context}: the .env changed");
                    }
                    // Nothing is left half-done for the next run.
                    let next = Run::from(scenario.command(&sandbox).output().unwrap());
                    next.expect(0);
                    sandbox.assert_stored_key_not_in(&next, &context);
                }
            }
        }
    }
}

#[test]
fn a_signal_while_waiting_for_the_lock_stops_in_time() {
    for launch in LAUNCHES {
        for (signal, code) in SIGNALS {
            let context = format!("{launch:?}: SIG{signal} while waiting for the lock");
            let sandbox = Sandbox::with_shape(Shape::Alembic);
            let before = sandbox.snapshot();
            let held = hold_lock(&sandbox.data_dir().join(".mai-provision.lock"));
            let mut cmd = sandbox.command();
            cmd.arg("--production").env("LOCK_TIMEOUT", "60");
            let Some(mut live) = start(cmd, launch, "signals as PID 1") else {
                return;
            };
            live.wait_for_log("another run holds the lock");
            stop(live, launch, signal, code, &context);
            drop(held);
            before.assert_same(&sandbox.snapshot(), &context);
            assert_released(&sandbox, &context);
        }
    }
}

#[test]
fn a_signal_while_the_database_is_busy_stops_in_time() {
    for launch in LAUNCHES {
        for (signal, code) in SIGNALS {
            for busy in BUSY {
                let context = format!("{launch:?}: SIG{signal} while {busy:?} holds the database");
                let sandbox = Sandbox::with_shape(Shape::Startup);
                let holder = hold_busy(&sandbox, busy);
                let mut cmd = sandbox.command();
                cmd.arg("--production")
                    .env("LOCK_TIMEOUT", "60")
                    .env("LOG_LEVEL", "debug");
                let Some(mut live) = start(cmd, launch, "signals as PID 1") else {
                    return;
                };
                live.wait_for_log("another connection is using the database");
                stop(live, launch, signal, code, &context);
                holder.execute_batch("ROLLBACK").unwrap();
                drop(holder);
                assert!(sandbox.rows().is_empty(), "{context}: a row was written");
                assert!(
                    !sandbox.env_path().exists(),
                    "{context}: the .env was written"
                );
                assert_released(&sandbox, &context);
            }
        }
    }
}

#[test]
fn a_signal_while_waiting_for_the_schema_stops_in_time() {
    for launch in LAUNCHES {
        for (signal, code) in SIGNALS {
            let context = format!("{launch:?}: SIG{signal} during --wait-for-database");
            let sandbox = Sandbox::new();
            let mut cmd = sandbox.command();
            cmd.args(["--production", "--wait-for-database=60"]);
            let Some(mut live) = start(cmd, launch, "signals as PID 1") else {
                return;
            };
            live.wait_for_log("waiting up to");
            stop(live, launch, signal, code, &context);
            assert!(!sandbox.db_path().exists(), "{context}");
            assert_released(&sandbox, &context);
        }
    }
}

#[test]
fn the_pid_1_harness_is_meaningful_a_process_without_handlers_ignores_sigterm() {
    // `sleep` installs no handler: as PID 1 the kernel drops SIGTERM, which
    // is the container trap the job's own handlers must avoid.
    let mut sleeper = Command::new("sleep");
    sleeper.arg("60");
    let Some(cmd) = as_pid_1(&sleeper, "PID 1 harness check") else {
        return;
    };
    let live = spawn(cmd);
    let pid = job_pid(&live, Launch::Pid1);
    send_signal(pid, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "PID 1 without a handler died of SIGTERM: the harness does not model a container"
    );
    // Kill PID 1 itself (killing unshare would leave it running).
    send_signal(pid, "KILL");
    live.wait(STEP_TIMEOUT);
}
