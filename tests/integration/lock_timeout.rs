//! LOCK_TIMEOUT is one deadline for all of a run's waiting: the file locks
//! and every wait for a database that another process keeps busy. An
//! application that keeps re-taking its database lock cannot stretch it by
//! letting the job through one statement at a time, and a lock held by
//! another run cannot add its wait to the database's.

use std::time::{Duration, Instant};

use crate::common::*;

const TEMP_FAIL: i32 = 75;

/// The timeout every test here sets, and the slack the README promises.
const LOCK_TIMEOUT: Duration = Duration::from_secs(3);
const SLACK: Duration = Duration::from_secs(1);

/// `--production` on `sandbox` with LOCK_TIMEOUT=3, timed from its start.
fn timed_run(sandbox: &Sandbox) -> (Run, Duration) {
    let mut cmd = sandbox.command();
    cmd.arg("--production")
        .env("LOCK_TIMEOUT", LOCK_TIMEOUT.as_secs().to_string());
    let started = Instant::now();
    let output = output_within(&mut cmd, HANG).expect("run binary");
    (Run::from(output), started.elapsed())
}

#[track_caller]
fn assert_timed_out_in_time(run: &Run, took: Duration, case: &str) {
    run.expect(TEMP_FAIL)
        .assert_mentions(&["webui.db", "past LOCK_TIMEOUT", "run again"]);
    assert!(
        took >= LOCK_TIMEOUT - Duration::from_millis(100),
        "{case}: gave up after {took:?}, before LOCK_TIMEOUT"
    );
    assert!(
        took < LOCK_TIMEOUT + SLACK,
        "{case}: took {took:?}, past LOCK_TIMEOUT plus {SLACK:?}\n{}",
        run.stderr
    );
}

/// The application holds the database exclusively (the job cannot even
/// read) for 1.5 s, lets go for an instant and takes it again for writing
/// (reads pass, the job's write waits), over and over. The job's reads get
/// through at the first change; its wait for the write must end at the
/// same deadline as its wait for the read began, not LOCK_TIMEOUT later.
#[test]
fn a_database_lock_taken_again_and_again_is_bounded_by_lock_timeout() {
    let sandbox = deployment();
    let before = Untouched::record(&sandbox);
    let holder = DbLockHolder::start(
        &sandbox.db_path(),
        "DELETE",
        &[("EXCLUSIVE", 1.5), ("IMMEDIATE", 5.0)],
    );
    let (run, took) = timed_run(&sandbox);
    holder.stop();
    assert_timed_out_in_time(&run, took, "a lock taken again and again");
    before.check(&sandbox, "a lock taken again and again");
    println!("[re-taken lock] exit 75 after {took:?}");
}

/// Another run holds the database folder's lock for 2 s, and the
/// application keeps the database busy all along: LOCK_TIMEOUT covers the
/// file lock and the busy database together.
#[test]
fn a_file_lock_and_a_busy_database_share_one_lock_timeout() {
    let sandbox = deployment();
    let before = Untouched::record(&sandbox);
    let holder = DbLockHolder::start(&sandbox.db_path(), "DELETE", &[("IMMEDIATE", 60.0)]);
    let lock = hold_lock(&sandbox.data_dir().join(".mai-provision.lock"));
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        drop(lock);
    });
    let (run, took) = timed_run(&sandbox);
    releaser.join().expect("lock releaser");
    holder.stop();
    assert_timed_out_in_time(&run, took, "file lock, then a busy database");
    before.check(&sandbox, "file lock, then a busy database");
}

/// The guarantee the deadline must keep: an application that keeps taking
/// its lock for a while, then stops, only delays the job, which then
/// provisions as usual.
#[test]
fn a_database_lock_taken_again_and_again_delays_the_job_until_it_stops() {
    let sandbox = deployment();
    let holder = DbLockHolder::start(
        &sandbox.db_path(),
        "DELETE",
        &[("EXCLUSIVE", 0.4), ("IMMEDIATE", 0.4)],
    );
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        holder.stop();
    });
    let mut cmd = sandbox.command();
    cmd.arg("--production").env("LOCK_TIMEOUT", "20");
    let started = Instant::now();
    let run = Run::from(output_within(&mut cmd, HANG).expect("run binary"));
    let took = started.elapsed();
    stopper.join().expect("holder stopper");
    run.expect(0);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(sandbox.row(ACME_ID).api_key, KEY);
    assert_integrity(&sandbox.db_path(), "after the holder stopped");
}
