//! The database and the `.env` never silently disagree. Everything that can
//! fail is tried before the database commits (the temp files, the backup,
//! the owner, an immutable target, a folder in the way); after the commit
//! only renames remain, and a signal no longer stops them. If a rename still
//! fails, the message and the JSON report say exactly which half was
//! applied, and the next run converges.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::common::*;

const CANNOT_CREATE: i32 = 73;
const NO_PERMISSION: i32 = 77;

/// `chattr FLAG PATH`; false (said loudly) where the file system or the
/// user cannot set attributes.
fn chattr(flag: &str, path: &Path, check: &str) -> bool {
    let ok = Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
        .is_ok_and(|out| out.status.success());
    if !ok {
        skip(
            check,
            &format!("`chattr {flag}` failed here (needs root and ext4/xfs-like file system)"),
        );
    }
    ok
}

/// Undoes `chattr +i`, also when the test fails, so the temp dir can go.
struct Immutable<'a>(&'a Path);

impl Drop for Immutable<'_> {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(self.0).output();
    }
}

/// A deployment whose next run changes the row and the `.env` (and so
/// writes a backup).
fn changing() -> (Sandbox, Command) {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    (sandbox, cmd)
}

#[test]
fn a_folder_at_the_backup_is_refused_before_anything_is_written() {
    let (sandbox, cmd) = changing();
    fs::create_dir(sandbox.backup_path()).unwrap();
    refused_by(
        &sandbox,
        cmd,
        "a folder at .env.backup",
        CANNOT_CREATE,
        &[".env.backup", "is a directory"],
    );
}

#[test]
fn an_immutable_file_is_refused_before_anything_is_written() {
    for target in [".env", ".env.backup", ".webui_secret_key"] {
        let (sandbox, mut cmd) = changing();
        let path = match target {
            ".env" => sandbox.env_path(),
            ".env.backup" => sandbox.backup_path(),
            _ => {
                // A store the run must rewrite: another key than the configured one.
                cmd.env("LOG_LEVEL", "debug");
                sandbox.secret_store()
            }
        };
        if !path.exists() {
            fs::write(&path, "another-key").unwrap();
        }
        if !chattr("+i", &path, "immutable files") {
            return;
        }
        let _undo = Immutable(&path);
        refused_by(
            &sandbox,
            cmd,
            &format!("immutable {target}"),
            NO_PERMISSION,
            &[target, "immutable", "chattr -i"],
        );
    }
}

/// The one way left to split the halves: a rename that fails after the
/// commit. The file is made immutable while the run pauses just after its
/// commit; the signal that ends the pause does not stop the run.
#[test]
fn a_rename_failing_after_the_commit_names_the_split_and_the_next_run_converges() {
    for (target, not_done) in [
        (".env.backup", "NOT done: the .env backup, the .env"),
        (".env", "NOT done: the .env,"),
    ] {
        let context = format!("{target} immutable after the commit");
        let (sandbox, mut cmd) = changing();
        let path = sandbox.path().join("shared").join(target);
        if !path.exists() {
            fs::write(&path, "old backup").unwrap();
        }
        let env_before = fs::read(sandbox.env_path()).unwrap();
        cmd.args(["--output", "json"]);
        let live = spawn_paused(&sandbox, cmd, "database-committed");
        if !chattr("+i", &path, &context) {
            return;
        }
        let undo = Immutable(&path);
        live.signal("TERM");
        let ended = live.wait(STEP_TIMEOUT);
        let run = &ended.run;
        assert_eq!(run.code, NO_PERMISSION, "{context}: {}", run.stderr);
        run.assert_mentions(&[
            "only partly applied",
            "done: the database",
            not_done,
            "run again",
        ]);
        let report = run.json();
        assert_eq!(report["status"], "error", "{context}");
        assert!(
            report["partly_applied"]["done"]
                .as_array()
                .unwrap()
                .contains(&"the database".into()),
            "{context}: {report}"
        );
        assert!(
            report["partly_applied"]["not_done"]
                .as_array()
                .unwrap()
                .contains(&"the .env".into()),
            "{context}: {report}"
        );
        assert_eq!(
            fs::read(sandbox.env_path()).unwrap(),
            env_before,
            "{context}"
        );
        assert_eq!(
            sandbox.row(ACME_ID).api_key,
            KEY,
            "{context}: the database half"
        );
        assert!(
            sandbox.temp_files().is_empty(),
            "{context}: temp files left"
        );

        drop(undo);
        sandbox.run(&["--production"]).expect(0);
        assert_eq!(
            python_dotenv(&sandbox.env_path())["OPENROUTER_API_KEY"],
            KEY,
            "{context}: the next run converges"
        );
        sandbox.run(&["--production", "--check"]).expect(0);
    }
}

#[test]
fn a_replaced_env_and_its_backup_keep_the_owner() {
    let (sandbox, mut cmd) = changing();
    if !is_root() {
        skip("owner kept", "needs root to hand the .env to another user");
        return;
    }
    std::os::unix::fs::chown(sandbox.env_path(), Some(1000), Some(1001)).unwrap();
    Run::from(cmd.output().unwrap()).expect(0);
    for path in [sandbox.env_path(), sandbox.backup_path()] {
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (1000, 1001, 0o600),
            "{}",
            path.display()
        );
    }
}

/// A user who cannot give files away cannot keep another user's `.env`
/// theirs: refused before anything is written.
#[test]
fn an_owner_that_cannot_be_kept_is_refused_before_anything_is_written() {
    let (sandbox, cmd) = changing();
    if !is_root() {
        skip(
            "owner cannot be kept",
            "needs root to set up files of two users",
        );
        return;
    }
    for dir in [
        sandbox.path().to_owned(),
        sandbox.data_dir(),
        sandbox.path().join("shared"),
    ] {
        std::os::unix::fs::chown(&dir, Some(65532), Some(65532)).unwrap();
    }
    for file in [sandbox.db_path(), sandbox.secret_store()] {
        if file.exists() {
            std::os::unix::fs::chown(&file, Some(65532), Some(65532)).unwrap();
        }
    }
    std::os::unix::fs::chown(sandbox.env_path(), Some(1000), Some(1000)).unwrap();
    fs::set_permissions(
        sandbox.env_path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let mut as_job = wrap(
        &cmd,
        "setpriv",
        &["--reuid=65532", "--regid=65532", "--clear-groups", "--"],
    );
    as_job.current_dir(sandbox.path());
    refused_by(
        &sandbox,
        as_job,
        "the .env belongs to another user",
        NO_PERMISSION,
        &["cannot keep the owner 1000:1000", ".env"],
    );
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
