//! An unwritable stdout or stderr never changes the exit code a run earned,
//! and never panics: `>/dev/full`, `2>/dev/full`, and a pipe whose reader is
//! gone (`| head -c0`, `2>&1 | head -n1`), in every mode and output format.
//! Each run is compared with a twin run, on an identical deployment, whose
//! streams are fine; the termination log must hold the same outcome.

use std::fs;
use std::process::{Command, Stdio};

use crate::common::*;

#[derive(Debug, Clone, Copy)]
enum Sink {
    DevFull,
    ClosedPipe,
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

fn sink(kind: Sink) -> Stdio {
    match kind {
        Sink::DevFull => Stdio::from(fs::File::create("/dev/full").expect("/dev/full")),
        Sink::ClosedPipe => {
            // The write end of a pipe whose only reader, `true`, has exited.
            let mut reader = Command::new("true")
                .stdin(Stdio::piped())
                .spawn()
                .expect("true");
            let writer = reader.stdin.take().expect("pipe");
            reader.wait().expect("true exits");
            Stdio::from(writer)
        }
    }
}

/// A deployment where a run has something to do: a row to update and a
/// `.env` to rewrite (so that every mode prints a plan or a report).
fn deployment_with_work() -> Sandbox {
    let sandbox = deployment();
    sandbox.termination_log();
    sandbox
}

fn command(sandbox: &Sandbox, args: &[&str]) -> Command {
    let mut cmd = sandbox.command();
    cmd.args(args)
        .env("LOG_LEVEL", "debug")
        .env("MAI_PROVISION_TERMINATION_LOG", sandbox.termination_log())
        .stdin(Stdio::null());
    cmd
}

/// The termination log without the run's duration.
fn outcome(sandbox: &Sandbox) -> String {
    let line = fs::read_to_string(sandbox.path().join("termination-log")).unwrap();
    let cut = line.rfind(" in ").unwrap_or(line.len());
    line[..cut].to_owned()
}

#[test]
fn unwritable_output_never_changes_the_exit_code() {
    let modes: [&[&str]; 3] = [&[], &["--init-database"], &["--production"]];
    let plans: [&[&str]; 3] = [&[], &["--dry-run"], &["--check"]];
    let formats: [&[&str]; 2] = [&[], &["--output", "json"]];
    for mode in modes {
        for plan in plans {
            for format in formats {
                let args: Vec<&str> = [mode, plan, format].concat();
                let twin = deployment_with_work();
                let expected = command(&twin, &args).output().expect("twin run");
                let expected_code = expected.status.code().expect("twin exit code");
                assert!(
                    expected_code == 0 || (expected_code == 1 && plan == ["--check"]),
                    "{args:?}: the twin run itself failed: {}",
                    String::from_utf8_lossy(&expected.stderr)
                );
                for stream in [Stream::Stdout, Stream::Stderr] {
                    for kind in [Sink::DevFull, Sink::ClosedPipe] {
                        let context = format!("{args:?} with {stream:?} to {kind:?}");
                        let sandbox = deployment_with_work();
                        let mut cmd = command(&sandbox, &args);
                        match stream {
                            Stream::Stdout => cmd.stdout(sink(kind)).stderr(Stdio::piped()),
                            Stream::Stderr => cmd.stdout(Stdio::piped()).stderr(sink(kind)),
                        };
                        let out = cmd.output().expect("run");
                        let seen = format!(
                            "{}{}",
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        );
                        assert_eq!(
                            out.status.code(),
                            Some(expected_code),
                            "{context}: output:\n{seen}"
                        );
                        assert!(!seen.contains("panic"), "{context}: {seen}");
                        assert_eq!(outcome(&sandbox), outcome(&twin), "{context}");
                        assert_eq!(
                            sandbox.env_text(),
                            twin.env_text(),
                            "{context}: the .env differs from the twin's"
                        );
                    }
                }
            }
        }
    }
}

/// A usage error and `--version`, which end before the job runs, keep
/// their codes too.
#[test]
fn early_exits_keep_their_codes_with_unwritable_output() {
    for kind in [Sink::DevFull, Sink::ClosedPipe] {
        let version = Command::new(BIN)
            .arg("--version")
            .stdout(sink(kind))
            .output()
            .unwrap();
        assert_eq!(version.status.code(), Some(0), "--version to {kind:?}");
        for args in [&["--no-such-flag"][..], &["--wait-for-database=-1"]] {
            let usage = Command::new(BIN)
                .args(args)
                .stderr(sink(kind))
                .output()
                .unwrap();
            assert_eq!(
                usage.status.code(),
                Some(64),
                "{args:?} with stderr to {kind:?}"
            );
        }
    }
}
