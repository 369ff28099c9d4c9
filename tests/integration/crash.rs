//! Crash consistency: the job is killed with SIGKILL at every named step and
//! at random moments. After each kill the database is intact and holds the
//! old row or the new one, every file is the old or the new version (never
//! partial or empty), the next run removes the temp files the killed one
//! left, and the next normal run succeeds and converges.
//!
//! `MAI_PROVISION_CRASH_RUNS` sets the number of random kills (default
//! 200); `MAI_PROVISION_CRASH_SEED` replays a sequence of delays.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::*;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// A scenario's old state (as a template to copy) and the states a run
/// may leave: before it, and after it (without the times of the run).
struct Case {
    scenario: Scenario,
    template: Sandbox,
    old: State,
    new: State,
}

impl Case {
    fn new(scenario: Scenario) -> Self {
        let template = scenario.prepare();
        let old = State::read(&template).timeless();
        let reference = template.copy();
        Run::from(scenario.command(&reference).output().unwrap()).expect(0);
        let new = State::read(&reference).timeless();
        assert_ne!(old, new, "{scenario:?}: the run must change something");
        Self {
            scenario,
            template,
            old,
            new,
        }
    }

    /// After a kill: an intact database, and each file old or new.
    /// Returns which of the two the database and the `.env` are.
    fn check_after_kill(&self, sandbox: &Sandbox, context: &str) -> (bool, bool) {
        // SQLite: intact; PostgreSQL: the dead run's session and its
        // advisory lock are gone.
        sandbox.assert_database_released(context);
        let now = State::read(sandbox).timeless();
        let db_new = now.rows == self.new.rows;
        assert!(
            db_new || now.rows == self.old.rows,
            "{context}: the rows are neither old nor new: {:?}",
            now.rows
        );
        let env_new = now.env == self.new.env;
        assert!(
            env_new || now.env == self.old.env,
            "{context}: the .env is neither old nor new:\n{:?}",
            now.env
        );
        assert!(
            now.backup == self.old.backup || now.backup == self.new.backup,
            "{context}: the backup is neither old nor new:\n{:?}",
            now.backup
        );
        (db_new, env_new)
    }

    /// The next normal run succeeds, converges on the new state and
    /// removes every temp file.
    fn recover(&self, sandbox: &Sandbox, context: &str) {
        let run = Run::from(self.scenario.command(sandbox).output().unwrap());
        assert_eq!(
            run.code, 0,
            "{context}: the run after the kill failed:\n{}",
            run.stderr
        );
        run.assert_no_secret();
        assert_eq!(
            State::read(sandbox).timeless(),
            self.new,
            "{context}: the run after the kill did not converge"
        );
        sandbox.assert_database_released(context);
        assert!(
            sandbox.temp_files().is_empty(),
            "{context}: temp files left after the next run: {:?}",
            sandbox.temp_files()
        );
        let stored = std::fs::read_to_string(sandbox.secret_store()).ok();
        if let Some(key) = &stored {
            // A hex key is written bare.
            assert!(
                sandbox
                    .env_text()
                    .contains(&format!("\nWEBUI_SECRET_KEY={key}\n")),
                "{context}: the .env holds the stored key"
            );
        }
        sandbox.assert_stored_key_not_in(&run, context);
        let extra: Vec<&str> = stored.iter().map(|k| &k[..16]).collect();
        sandbox.assert_secrets_only_where_they_belong(&extra);
    }
}

#[test]
fn a_kill_at_every_step_leaves_old_or_new_and_the_next_run_converges() {
    for scenario in scenarios("SIGKILL at every step") {
        let case = Case::new(scenario);
        for step in scenario.steps() {
            let context = format!("{scenario:?}, SIGKILL at {step}");
            let sandbox = case.template.copy();
            let ended = spawn_paused(&sandbox, scenario.command(&sandbox), step).kill();
            assert_eq!(ended.signal, Some(9), "{context}: {:?}", ended.run);
            sandbox.assert_stored_key_not_in(&ended.run, &context);
            let (db_new, env_new) = case.check_after_kill(&sandbox, &context);
            assert_eq!(db_new, scenario.committed_at(step), "{context}: database");
            assert_eq!(env_new, *step == "env-committed", "{context}: .env");

            // A later run, killed in turn, removes the first one's leftovers
            // (its own are younger): temp files never pile up.
            let left = sandbox.temp_files();
            let again =
                spawn_paused(&sandbox, scenario.command(&sandbox), "secret-prepared").kill();
            assert_eq!(again.signal, Some(9));
            let still: Vec<_> = left
                .iter()
                .filter(|p| sandbox.temp_files().contains(p))
                .collect();
            assert!(still.is_empty(), "{context}: leftovers piled up: {still:?}");
            case.check_after_kill(&sandbox, &format!("{context}, killed again"));

            case.recover(&sandbox, &context);
        }
    }
}

/// How long an undisturbed run takes here (spawn to exit), so that the
/// random kills spread over a whole run on this machine, loaded or not.
fn run_duration(case: &Case) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let sandbox = case.template.copy();
            let started = Instant::now();
            Run::from(case.scenario.command(&sandbox).output().unwrap()).expect(0);
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

#[test]
fn random_kills_leave_old_or_new_and_the_next_run_converges() {
    let runs: usize = std::env::var("MAI_PROVISION_CRASH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("MAI_PROVISION_CRASH_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("random kills: {runs} runs, MAI_PROVISION_CRASH_SEED={seed}");
    let mut rng = SmallRng::seed_from_u64(seed);
    let cases: Vec<(Case, Duration)> = SCENARIOS
        .into_iter()
        .map(|scenario| {
            let case = Case::new(scenario);
            let window = run_duration(&case).mul_f64(1.2);
            (case, window)
        })
        .collect();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..runs {
        let (case, window) = &cases[i % cases.len()];
        let delay = window.mul_f64(rng.random_range(0.0..1.0));
        let context = format!(
            "run {i} ({:?}, killed after {delay:?}, seed {seed})",
            case.scenario
        );
        let sandbox = case.template.copy();
        let live = spawn(case.scenario.command(&sandbox));
        std::thread::sleep(delay);
        let ended = live.kill();
        sandbox.assert_stored_key_not_in(&ended.run, &context);
        let killed = ended.signal == Some(9);
        if !killed {
            assert_eq!(ended.run.code, 0, "{context}: {:?}", ended.run);
        }
        let (db_new, env_new) = case.check_after_kill(&sandbox, &context);
        let outcome = match (killed, db_new, env_new) {
            (false, ..) => "finished before the kill",
            (true, false, false) => "killed: all old",
            (true, true, false) => "killed: database new, .env old",
            (true, true, true) => "killed: all new",
            (true, false, true) => {
                panic!("{context}: the .env was replaced before the database committed")
            }
        };
        *outcomes
            .entry(format!("{:?}: {outcome}", case.scenario))
            .or_default() += 1;
        case.recover(&sandbox, &context);
    }
    eprintln!("random kills, outcomes: {outcomes:#?}");
}
