//! File modes: the `.env`, its backup and `.webui_secret_key` hold secrets,
//! so none of them, nor any of their temp files, is ever readable beyond
//! its configured mode, whatever the umask: a temp file is created with at
//! most that mode, gets exactly that mode before any byte is written, and
//! is renamed into place with it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const SECRET_KEY_MODE: u32 = 0o600;
const ENV_MODES: [u32; 2] = [0o600, 0o640];
/// No mask, the usual one, and a strict one.
const UMASKS: [&str; 3] = ["000", "022", "077"];

/// A deployment whose run writes all three files: an old `.env` (so there
/// is a backup) without a secret key, and none configured (so one is
/// generated and stored).
fn writing_deployment() -> Sandbox {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.write_env("KEEP=1\n");
    sandbox
}

fn command(sandbox: &Sandbox, env_mode: u32, umask: &str) -> Command {
    let mut cmd = sandbox.command();
    cmd.env_remove("WEBUI_SECRET_KEY")
        .env("ENV_FILE_MODE", format!("{env_mode:04o}"))
        .arg("--production");
    with_umask(&cmd, umask)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The one temp file of ours for `target` (`.<target>.XXXXXX<suffix>`).
fn temp_of(sandbox: &Sandbox, target: &str) -> PathBuf {
    let prefix = format!(".{target}.");
    let found: Vec<PathBuf> = sandbox
        .temp_files()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
                .is_some_and(|random| !random.contains('.'))
        })
        .collect();
    assert_eq!(found.len(), 1, "temp files of {target}: {found:?}");
    found.into_iter().next().unwrap()
}

#[test]
fn temp_files_are_born_with_at_most_their_mode_and_get_it_before_any_byte() {
    let template = writing_deployment();
    for env_mode in ENV_MODES {
        for umask in UMASKS {
            let targets = [
                (".webui_secret_key", SECRET_KEY_MODE),
                (".env", env_mode),
                (".env.backup", env_mode),
            ];
            for (target, wanted) in targets {
                let context = format!("{target} temp, ENV_FILE_MODE {env_mode:o}, umask {umask}");
                let sandbox = template.copy();
                let step = format!("temp-created:{target}");
                let live = spawn_paused(&sandbox, command(&sandbox, env_mode, umask), &step);
                let temp = temp_of(&sandbox, target);
                let born = mode(&temp);
                assert_eq!(born & !wanted, 0, "{context}: born {born:o}, wider");
                if umask == "000" {
                    assert_eq!(born, wanted, "{context}: born {born:o}");
                }
                assert_eq!(
                    fs::metadata(&temp).unwrap().len(),
                    0,
                    "{context}: not empty"
                );
                live.kill();
            }
            // A prepared .env (complete, not yet renamed) has the exact mode.
            let context = format!("prepared .env, ENV_FILE_MODE {env_mode:o}, umask {umask}");
            let sandbox = template.copy();
            let live = spawn_paused(&sandbox, command(&sandbox, env_mode, umask), "env-prepared");
            let temp = temp_of(&sandbox, ".env");
            assert_eq!(mode(&temp), env_mode, "{context}");
            assert!(
                fs::read_to_string(&temp).unwrap().contains(ACME_ID),
                "{context}"
            );
            live.kill();
        }
    }
}

#[test]
fn the_files_have_their_modes_whatever_the_umask() {
    let template = writing_deployment();
    for env_mode in ENV_MODES {
        for umask in UMASKS {
            let context = format!("ENV_FILE_MODE {env_mode:o}, umask {umask}");
            let sandbox = template.copy();
            let run = Run::from(command(&sandbox, env_mode, umask).output().unwrap());
            run.expect(0);
            assert_eq!(mode(&sandbox.env_path()), env_mode, "{context}: .env");
            assert_eq!(mode(&sandbox.backup_path()), env_mode, "{context}: backup");
            assert_eq!(
                mode(&sandbox.secret_store()),
                SECRET_KEY_MODE,
                "{context}: key store"
            );
            let stored = fs::read_to_string(sandbox.secret_store()).unwrap();
            assert!(
                !run.output().contains(&stored[..16]),
                "{context}: key leaked"
            );
        }
    }
}

#[test]
fn a_world_readable_env_and_backup_are_narrowed_to_the_mode() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    sandbox.run(&["--production"]).expect(0);
    let env = sandbox.env_text();
    fs::set_permissions(sandbox.env_path(), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(sandbox.backup_path(), "OLD=1\n").unwrap();
    fs::set_permissions(sandbox.backup_path(), fs::Permissions::from_mode(0o666)).unwrap();
    let run = Run::from(
        with_umask(&sandbox.command(), "000")
            .arg("--production")
            .output()
            .unwrap(),
    );
    run.expect(0);
    assert_eq!(sandbox.env_text(), env, "only the mode was wrong");
    assert_eq!(mode(&sandbox.env_path()), 0o600);
    assert_eq!(mode(&sandbox.backup_path()), 0o600);
}
