//! The hostile input matrix: every file, folder, mount and stored value an
//! attacker, a typo or a broken volume can hand the job, one test each.
//! Each asserts the documented exit code, a message that names the path
//! and says what to do, no secret in the output, and that the database and
//! the `.env` (indeed every file of the deployment) are byte for byte as
//! they were.
//!
//! Hostile values of the variables (line breaks, `${…}`, escape sequences,
//! secret files that are pipes, not UTF-8, over 64 KiB) are rows of the
//! table in `config_rules.rs`. Cases that need privileges (mounts, dropping
//! root's file-permission override) are skipped loudly where those are not
//! available.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

const DATA: i32 = 65;
const NO_INPUT: i32 = 66;
const CANNOT_CREATE: i32 = 73;
const IO: i32 = 74;
const TEMP_FAIL: i32 = 75;
const NO_PERMISSION: i32 = 77;

const EVIL_HOST: &str = "https://evil.example";

// ------------------------------------------------------------------ helpers

/// A named pipe `fifo.<ext>` in `dir`, and a device `null.<ext>` beside it
/// where this user may make one (else a loud skip naming `check`).
fn pipe_and_device(dir: &Path, ext: &str, check: &str) -> Vec<std::path::PathBuf> {
    let fifo = dir.join(format!("fifo.{ext}"));
    mkfifo(&fifo);
    let null = dir.join(format!("null.{ext}"));
    let mut paths = vec![fifo];
    if mknod_null(&null, check) {
        paths.push(null);
    }
    paths
}

/// A character device like /dev/null at `path`; `false`, after a loud
/// skip, where this user may not make device nodes.
fn mknod_null(path: &Path, check: &str) -> bool {
    let made = Command::new("mknod")
        .arg(path)
        .args(["c", "1", "3"])
        .output();
    match made {
        Ok(out) if out.status.success() => true,
        other => {
            skip(
                check,
                &format!(
                    "cannot make a device node here (mknod gave {other:?}); run as root to check it"
                ),
            );
            false
        }
    }
}

/// A `--production` run of `deployment()`, with `setup` adding or removing
/// variables, refused with `code`.
#[track_caller]
fn refused(
    case: &str,
    setup: impl FnOnce(&Sandbox, &mut Command),
    code: i32,
    needles: &[&str],
) -> Run {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    setup(&sandbox, &mut cmd);
    refused_by(&sandbox, cmd, case, code, needles)
}

/// A mount made for one test, removed when the test ends, also when it
/// fails: a tmpfs of a given size (a full disk on demand) or a read-only
/// bind mount. `None`, after a loud skip, where mounting is not permitted.
struct Mount {
    dir: PathBuf,
}

impl Mount {
    fn tmpfs(dir: &Path, bytes: usize, check: &str) -> Option<Self> {
        let options = format!("size={bytes},mode=0755");
        mount(&["-t", "tmpfs", "-o", &options, "tmpfs"], dir, check)?;
        Some(Self {
            dir: dir.to_owned(),
        })
    }

    /// `dir` bound onto itself, then remounted read-only.
    fn read_only(dir: &Path, check: &str) -> Option<Self> {
        mount(&["--bind", dir.to_str().expect("utf-8 path")], dir, check)?;
        // From here on the guard unmounts, also when the remount fails.
        let bound = Self {
            dir: dir.to_owned(),
        };
        mount(&["-o", "remount,ro,bind"], dir, check)?;
        Some(bound)
    }
}

/// `mount ARGS.. DIR`; `None` after a loud skip when it fails.
fn mount(args: &[&str], dir: &Path, check: &str) -> Option<()> {
    match Command::new("mount").args(args).arg(dir).output() {
        Ok(out) if out.status.success() => Some(()),
        other => {
            skip(
                check,
                &format!(
                    "cannot mount here (`mount {}` gave {other:?}); run the tests as root with \
                     CAP_SYS_ADMIN to check this case",
                    args.join(" ")
                ),
            );
            None
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let done = Command::new("umount").arg(&self.dir).status();
        if !done.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Fill the file system holding `dir` to the last byte, with a file named
/// `filler`, and prove that not one more byte fits.
fn fill(dir: &Path) {
    let mut filler = fs::File::create(dir.join("filler")).expect("create filler");
    let chunk = [b'x'; 4096];
    while filler.write_all(&chunk).is_ok() {}
    while filler.write_all(b"x").is_ok() {}
    drop(filler);
    let probe = dir.join("probe");
    let err = fs::write(&probe, b"x").expect_err("the file system should be full");
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
    let _ = fs::remove_file(probe);
}

/// `cmd` run with root's permission override dropped (or as it is for an
/// ordinary user). `None` after a loud skip where that is impossible.
fn as_unprivileged(sandbox: &Sandbox, cmd: Command) -> Option<Command> {
    let probe = sandbox.path().join("unreadable-probe");
    fs::write(&probe, "x").unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).unwrap();
    let cmd = without_dac_override(cmd, probe.to_str().unwrap());
    fs::remove_file(&probe).unwrap();
    cmd
}

// ------------------------------------------------------- KEY=value injection

/// Injections that need no refusal: quoted so that python-dotenv, sh and
/// Compose all read the very characters given, as the name and nothing
/// else; no command runs and no other key appears. The database gets the
/// same text through a bound parameter.
#[test]
fn injection_through_organization_name_without_a_line_break_is_only_text() {
    let compose = compose_for("hostile names");
    let payloads = [
        format!("Acme' OPENROUTER_HOST='{EVIL_HOST}"),
        format!("Acme\" OPENROUTER_HOST=\"{EVIL_HOST}"),
        format!("Acme # OPENROUTER_HOST={EVIL_HOST}"),
        "Acme $(touch pwned)".to_owned(),
        "Acme `touch pwned`".to_owned(),
        "Acme\"; touch pwned; echo \"".to_owned(),
        "Acme'); DROP TABLE client_organizations; --".to_owned(),
        "Acme \\\" \\' \\n".to_owned(),
    ];
    for name in payloads {
        let sandbox = Sandbox::with_shape(Shape::Startup);
        sandbox
            .run_with(&["--production"], &[("ORGANIZATION_NAME", &name)])
            .expect(0);
        let env = sandbox.env_path();
        let python = python_dotenv(&env);
        assert_eq!(python["ORGANIZATION_NAME"], name, "python-dotenv");
        assert_eq!(python["OPENROUTER_HOST"], "https://openrouter.ai/api/v1");
        assert_eq!(python.len(), 11, "{name:?}: keys {python:?}");
        assert_eq!(sh_value(&env, "ORGANIZATION_NAME"), name, "sh");
        assert_eq!(
            sh_value(&env, "OPENROUTER_HOST"),
            "https://openrouter.ai/api/v1"
        );
        if let Some(compose) = &compose {
            assert_eq!(compose_env_file_values(compose, &env), python, "{name:?}");
        }
        assert!(!sandbox.path().join("pwned").exists(), "{name:?} ran");
        let rows = sandbox.rows();
        assert_eq!(rows.len(), 1, "{name:?}");
        assert_eq!(rows[0].name, name);
    }
}

/// Not a variable, but it reaches the `.env` all the same: the secret key
/// a previous run stored on the volume. Whoever can write the volume must
/// not get a line of their choosing into the `.env`.
#[test]
fn injection_through_the_stored_secret_key_is_refused() {
    for (content, hidden) in [
        (
            format!("abc\nOPENROUTER_HOST={EVIL_HOST}\n"),
            "evil.example",
        ),
        ("abc${OPENROUTER_API_KEY}".to_owned(), "abc${"),
        ("it's $weird".to_owned(), "$weird"),
    ] {
        let run = refused(
            "stored secret key",
            |sandbox, cmd| {
                fs::write(sandbox.secret_store(), &content).unwrap();
                cmd.env_remove("WEBUI_SECRET_KEY");
            },
            DATA,
            &[
                ".webui_secret_key",
                "WEBUI_SECRET_KEY",
                "cannot be written to the .env",
                "Set WEBUI_SECRET_KEY",
            ],
        );
        run.assert_absent("internal error").assert_absent(hidden);
    }
}

/// The store on the volume holding something that is no key at all: said
/// in terms of the store, not of a `.env`.
#[test]
fn stored_secret_key_that_is_no_key_file_is_refused() {
    type Make = fn(&Path);
    let cases: [(&str, Make); 3] = [
        ("is a directory", |p| fs::create_dir(p).unwrap()),
        ("is not UTF-8 text", |p| fs::write(p, b"\xff\xfe").unwrap()),
        ("is far larger than any key", |p| {
            fs::write(p, vec![b'k'; 5 * 1024 * 1024]).unwrap()
        }),
    ];
    for (problem, make) in cases {
        let run = refused(
            problem,
            |sandbox, cmd| {
                make(&sandbox.secret_store());
                cmd.env_remove("WEBUI_SECRET_KEY");
            },
            DATA,
            &[".webui_secret_key", problem, "Set WEBUI_SECRET_KEY"],
        );
        run.assert_absent("ENV_FILE");
    }
    // A pipe would block the read for good. It lives outside the sandbox,
    // whose snapshot reads every file, so DATA_DIR points there.
    let outside = tempfile::tempdir().unwrap();
    let fifo = outside.path().join(".webui_secret_key");
    mkfifo(&fifo);
    refused(
        "a pipe",
        |_, cmd| {
            cmd.env_remove("WEBUI_SECRET_KEY")
                .env("DATA_DIR", outside.path())
                .env(
                    "DATABASE_URL",
                    format!("sqlite:///{}", outside.path().join("webui.db").display()),
                );
        },
        DATA,
        &[
            ".webui_secret_key",
            "is not a regular file (a pipe",
            "Set WEBUI_SECRET_KEY",
        ],
    );
    assert!(!fs::metadata(&fifo).unwrap().is_file());
}

/// Text the job quotes back from the files it reads (an id in the `.env`,
/// another organization's id and name in the database) reaches the
/// terminal escaped: no forged log line, no escape sequence.
#[test]
fn hostile_text_in_the_env_and_the_database_is_quoted_escaped() {
    let forged = "evil\nFAKE 2026-01-01T00:00:00Z  INFO all good\u{1b}[2J";
    let sandbox = deployment();
    sandbox.write_env(&format!(
        "OPENROUTER_EXTERNAL_USER=\"{}\"\n",
        forged.replace('\n', "\\n").replace('"', "\\\"")
    ));
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    let run = refused_by(
        &sandbox,
        cmd,
        "id in the .env",
        DATA,
        &["links this deployment to organization id", "evil\\n"],
    );
    run.assert_no_control_characters();

    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox
        .db()
        .execute(
            "INSERT INTO client_organizations \
             (id, name, openrouter_api_key, is_active, created_at, updated_at) \
             VALUES (?1, ?2, ?3, 1, 5, 6)",
            [forged, forged, KEY],
        )
        .unwrap();
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    let run = refused_by(
        &sandbox,
        cmd,
        "another organization's key",
        DATA,
        &["already used by organization", "evil\\n", "own key"],
    );
    run.assert_no_control_characters();
    // Another active organization only warns, and the run goes on.
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox
        .db()
        .execute(
            "INSERT INTO client_organizations \
             (id, name, openrouter_api_key, is_active, created_at, updated_at) \
             VALUES (?1, ?2, ?3, 1, 5, 6)",
            [forged, forged, OTHER_KEY],
        )
        .unwrap();
    let run = sandbox.run(&["--production"]);
    run.expect(0)
        .assert_mentions(&["other active organizations", "evil\\n"]);
    run.assert_no_control_characters();
}

// ------------------------------------------------------------- the database

#[test]
fn database_that_is_a_directory_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.write_env(&existing_env());
    fs::create_dir(sandbox.db_path()).unwrap();
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    refused_by(
        &sandbox,
        cmd,
        "directory",
        DATA,
        &[
            "webui.db",
            "is a directory, not a file",
            "Point DATA_DIR or DATABASE_URL",
        ],
    );
}

/// A zero-byte file is what SQLite itself calls an empty database: the
/// first boot (README, Database states). The step is skipped with a
/// warning and the file is left exactly as it was.
#[test]
fn database_of_zero_bytes_is_a_first_boot() {
    let sandbox = Sandbox::new();
    fs::write(sandbox.db_path(), b"").unwrap();
    let before = sandbox.snapshot();
    let run = sandbox.run(&["--production"]);
    run.expect(0).assert_mentions(&[
        "webui.db",
        "has no tables yet (first boot)",
        "REQUIRE_DATABASE=true",
    ]);
    assert_eq!(fs::read(sandbox.db_path()).unwrap(), b"");
    let key = PathBuf::from("data/webui.db");
    assert_eq!(
        before.0[&key],
        sandbox.snapshot().0[&key],
        "the file was touched"
    );
    assert_eq!(
        python_dotenv(&sandbox.env_path())["ORGANIZATION_NAME"],
        NAME
    );
}

#[test]
fn database_of_zero_bytes_with_require_database_exits_66() {
    let sandbox = Sandbox::new();
    sandbox.write_env(&existing_env());
    fs::write(sandbox.db_path(), b"").unwrap();
    let mut cmd = sandbox.command();
    cmd.arg("--production").env("REQUIRE_DATABASE", "true");
    refused_by(
        &sandbox,
        cmd,
        "zero bytes, required",
        NO_INPUT,
        &[
            "webui.db has no tables yet and REQUIRE_DATABASE=true",
            "Start the application once",
        ],
    );
}

#[test]
fn database_of_zero_bytes_with_create_schema_is_filled() {
    let sandbox = Sandbox::new();
    fs::write(sandbox.db_path(), b"").unwrap();
    sandbox
        .run_with(&["--production"], &[("CREATE_SCHEMA", "true")])
        .expect(0)
        .assert_mentions(&["CREATE_SCHEMA=true", "standalone"]);
    let rows = sandbox.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, ACME_ID);
}

/// Random bytes, and SQLite's header followed by garbage.
#[test]
fn database_that_is_not_sqlite_is_refused() {
    // A fixed pseudo-random sequence (a 64-bit LCG): the same in every run.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 56) as u8
        })
        .collect();
    let header = b"SQLite format 3\0this is not really a database at all".to_vec();
    for (case, bytes) in [("random bytes", noise), ("a header only", header)] {
        let sandbox = Sandbox::new();
        sandbox.write_env(&existing_env());
        fs::write(sandbox.db_path(), bytes).unwrap();
        let mut cmd = sandbox.command();
        cmd.arg("--production");
        let needles = [
            &sandbox.db_path().display().to_string(),
            "is not a SQLite database",
            "Check DATA_DIR/DATABASE_URL",
            "the file was left as it was",
        ];
        refused_by(&sandbox, cmd, case, DATA, &needles).assert_last_line_mentions(&needles);
    }
}

#[test]
fn database_truncated_copy_is_refused() {
    let sandbox = deployment();
    // More than a page of rows, so that the cut goes through the table.
    sandbox.sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) \
         INSERT INTO client_organizations (id, name, openrouter_api_key, is_active, created_at, updated_at) \
         SELECT 'org' || i, 'Org ' || i, 'sk-or-v1-k' || i, 0, 1, 1 FROM n;",
    );
    let bytes = fs::read(sandbox.db_path()).unwrap();
    fs::write(sandbox.db_path(), &bytes[..bytes.len() / 2]).unwrap();
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    let run = refused_by(
        &sandbox,
        cmd,
        "truncated",
        DATA,
        &["webui.db", "is corrupt", "Restore it from a backup"],
    );
    run.assert_no_control_characters();
}

#[test]
fn database_symlink_loop_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.write_env(&existing_env());
    symlink("webui.db", sandbox.db_path()).unwrap();
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    refused_by(
        &sandbox,
        cmd,
        "symlink loop",
        DATA,
        &[
            "webui.db",
            "symbolic link",
            "Point DATA_DIR or DATABASE_URL at the real database file",
        ],
    );
}

/// SQLite reads a device as an empty database (a first boot, as far as it
/// can tell) and blocks on a pipe; neither is a database. Both live outside
/// the sandbox, whose snapshot reads every file.
#[test]
fn database_that_is_a_pipe_or_a_device_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let paths = pipe_and_device(outside.path(), "db", "a database that is a device");
    let sandbox = deployment();
    for path in paths {
        let mut cmd = sandbox.command();
        cmd.args(["--production"])
            .env("DATABASE_URL", format!("sqlite:///{}", path.display()))
            .env("CREATE_SCHEMA", "true");
        refused_by(
            &sandbox,
            cmd,
            &path.display().to_string(),
            DATA,
            &[
                &path.display().to_string(),
                "is not a regular file (a pipe, socket or device)",
                "Point DATA_DIR or DATABASE_URL at the database file",
            ],
        );
        assert!(!fs::metadata(&path).unwrap().is_file());
    }
}

/// The advice must fit who runs the job. A job that already is the file's
/// owner (root, in the compose deployment) is not helped by "run as the
/// volume's owner (uid 0)": the file's mode is what keeps it out.
#[test]
fn read_only_database_file_of_this_user_blames_the_mode() {
    let sandbox = deployment();
    fs::set_permissions(sandbox.db_path(), fs::Permissions::from_mode(0o444)).unwrap();
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    let Some(cmd) = as_unprivileged(&sandbox, cmd) else {
        return;
    };
    let run = refused_by(
        &sandbox,
        cmd,
        "read-only database of this user",
        NO_PERMISSION,
        &[
            "webui.db",
            "is read-only for this user",
            "fix the file's permissions",
            "its mode 0444 keeps its owner",
            "this run already is uid",
            "chmod u+w",
        ],
    );
    run.assert_absent("Run as the volume's owner");
}

/// Root without the permission override, on a file another user owns:
/// here running as that owner is the advice.
#[test]
fn read_only_database_file_of_another_user_names_the_owner() {
    let sandbox = deployment();
    let chowned = Command::new("chown")
        .args(["65532:65532"])
        .arg(sandbox.db_path())
        .output();
    if !chowned.as_ref().is_ok_and(|out| out.status.success()) {
        skip(
            "a database of another user",
            &format!("cannot chown here ({chowned:?}); run as root to check it"),
        );
        return;
    }
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    let Some(cmd) = as_unprivileged(&sandbox, cmd) else {
        return;
    };
    refused_by(
        &sandbox,
        cmd,
        "read-only database of another user",
        NO_PERMISSION,
        &[
            "webui.db",
            "is read-only for this user (uid 0)",
            "Run as the volume's owner (uid 65532)",
        ],
    );
}

/// A read-only file system: no user may write, not even root with every
/// capability; the advice is to remount, never to change users or modes.
#[test]
fn database_on_a_read_only_file_system_is_refused() {
    let sandbox = deployment();
    let data = sandbox.data_dir();
    // What an earlier run leaves on the volume: its lock file and the key
    // store, so that the database is the first thing this run must write.
    fs::write(data.join(".mai-provision.lock"), "").unwrap();
    fs::write(sandbox.secret_store(), SECRET_KEY).unwrap();
    let Some(_mount) = Mount::read_only(&data, "the database on a read-only file system") else {
        return;
    };
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    let run = refused_by(
        &sandbox,
        cmd,
        "read-only file system under the database",
        NO_PERMISSION,
        &[
            "webui.db",
            "read-only file system (EROFS)",
            "Remount the data volume read-write",
        ],
    );
    run.assert_absent("Run as the volume's owner");
    run.assert_absent("chmod");
}

/// Another process holds the database's lock for longer than LOCK_TIMEOUT:
/// the job waits that long, then gives up with the retryable code. In
/// rollback-journal mode the lock stops even the first read; in WAL mode
/// reads go on and the write transaction is what waits.
#[test]
fn database_locked_past_the_timeout_exits_75() {
    for journal in ["DELETE", "WAL"] {
        let sandbox = deployment();
        let holder = DbLockHolder::start(&sandbox.db_path(), journal, &[("EXCLUSIVE", 600.0)]);
        let mut cmd = sandbox.command();
        cmd.arg("--production").env("LOCK_TIMEOUT", "1");
        let case = format!("locked, journal mode {journal}");
        let started = Instant::now();
        let run = refused_by(
            &sandbox,
            cmd,
            &case,
            TEMP_FAIL,
            &[
                "webui.db",
                "database is locked",
                "past LOCK_TIMEOUT",
                "run again",
            ],
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(1),
            "{case}: gave up after {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(8),
            "{case}: waited {waited:?}\n{}",
            run.stderr
        );
        drop(holder);
        assert_eq!(sandbox.row(ACME_ID).api_key, OTHER_KEY, "{case}");
    }
}

// -------------------------------------------------------------------- ENV_FILE

#[test]
fn env_file_in_a_missing_directory_is_refused() {
    let sandbox = deployment();
    let path = sandbox.path().join("nowhere/.env");
    let mut cmd = sandbox.command();
    cmd.arg("--production").env("ENV_FILE", &path);
    let needles = [
        &format!("the directory of {} does not exist", path.display()),
        "Create it or mount the shared volume there",
    ];
    refused_by(&sandbox, cmd, "missing directory", CANNOT_CREATE, &needles)
        .assert_last_line_mentions(&needles);
}

#[test]
fn env_file_in_a_read_only_directory_is_refused() {
    // With and without the lock file a previous run leaves behind: the
    // refusal comes from the lock or from the temp file, 77 either way.
    for lock_exists in [false, true] {
        let sandbox = deployment();
        let shared = sandbox.path().join("shared");
        if lock_exists {
            fs::write(shared.join(".env.lock"), "").unwrap();
        }
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o555)).unwrap();
        let mut cmd = sandbox.command();
        cmd.arg("--production");
        let Some(cmd) = as_unprivileged(&sandbox, cmd) else {
            return;
        };
        refused_by(
            &sandbox,
            cmd,
            &format!("read-only directory, lock exists: {lock_exists}"),
            NO_PERMISSION,
            &["shared", "Permission denied", "writable by this user"],
        );
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn env_file_on_a_read_only_file_system_is_refused() {
    let sandbox = deployment();
    let shared = sandbox.path().join("shared");
    fs::write(shared.join(".env.lock"), "").unwrap();
    let Some(_mount) = Mount::read_only(&shared, "ENV_FILE on a read-only file system") else {
        return;
    };
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    refused_by(
        &sandbox,
        cmd,
        "read-only file system",
        NO_PERMISSION,
        &["shared", "Read-only file system", "writable by this user"],
    );
}

#[test]
fn env_file_that_is_a_directory_is_refused() {
    refused(
        "directory",
        |sandbox, cmd| {
            cmd.env("ENV_FILE", sandbox.path().join("shared"));
        },
        CANNOT_CREATE,
        &["shared is a directory", "Point ENV_FILE at the .env file"],
    );
}

/// A pipe would block the job for good (not even SIGTERM ends an open()
/// of a pipe without a writer); a rename over a device node would replace
/// it, and as root that could be /dev/null itself.
#[test]
fn env_file_that_is_a_pipe_or_a_device_is_refused() {
    // Outside the sandbox, whose snapshot reads every file (and would
    // block on the pipe itself).
    let outside = tempfile::tempdir().unwrap();
    let paths = pipe_and_device(outside.path(), "env", "ENV_FILE that is a device");
    let sandbox = deployment();
    for path in paths {
        let mut cmd = sandbox.command();
        cmd.arg("--production").env("ENV_FILE", &path);
        refused_by(
            &sandbox,
            cmd,
            &path.display().to_string(),
            CANNOT_CREATE,
            &[
                &path.display().to_string(),
                "is not a regular file (a pipe, socket or device)",
                "point ENV_FILE at a regular file",
            ],
        );
        assert!(!fs::metadata(&path).unwrap().is_file());
        let names: Vec<_> = fs::read_dir(outside.path()).unwrap().collect();
        assert!(names.len() <= 2, "files were added beside it: {names:?}");
    }
}

/// The chosen behaviour (README, The .env): a link that leaves its folder
/// is refused, since the job writes only inside the folder it was given.
#[test]
fn env_file_linking_out_of_its_folder_is_refused() {
    let sandbox = deployment();
    let outside = sandbox.path().join("outside.env");
    fs::write(&outside, "OUTSIDE=1\n").unwrap();
    fs::remove_file(sandbox.env_path()).unwrap();
    symlink("../outside.env", sandbox.env_path()).unwrap();
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    refused_by(
        &sandbox,
        cmd,
        "link out of its folder",
        CANNOT_CREATE,
        &[
            "is a symbolic link to",
            "outside.env",
            "outside its own directory",
            "Point ENV_FILE at the real file",
        ],
    );
    assert_eq!(fs::read_to_string(outside).unwrap(), "OUTSIDE=1\n");
}

#[test]
fn env_file_linking_nowhere_is_refused() {
    let sandbox = deployment();
    fs::remove_file(sandbox.env_path()).unwrap();
    symlink("missing.env", sandbox.env_path()).unwrap();
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    refused_by(
        &sandbox,
        cmd,
        "dangling link",
        CANNOT_CREATE,
        &[
            ".env is a symbolic link to a file that does not exist",
            "Remove the link",
        ],
    );
}

/// The other half of the chosen behaviour: a link to a file in the same
/// folder (how some set-ups version their `.env`) is followed; the link
/// stays a link and its target gets the new content.
#[test]
fn env_file_linking_inside_its_folder_is_followed() {
    let sandbox = deployment();
    let real = sandbox.path().join("shared/real.env");
    fs::rename(sandbox.env_path(), &real).unwrap();
    symlink("real.env", sandbox.env_path()).unwrap();
    sandbox.run(&["--production"]).expect(0);
    assert!(
        fs::symlink_metadata(sandbox.env_path())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(python_dotenv(&real)["ORGANIZATION_NAME"], NAME);
    assert_eq!(python_dotenv(&real)["CUSTOM_FLAG"], "keep");
    assert_eq!(
        fs::read_to_string(sandbox.path().join("shared/real.env.backup")).unwrap(),
        existing_env()
    );
}

// ------------------------------------------------------------ a full disk

/// The `.env` on a full file system: the temp file cannot be written, the
/// old `.env` stays, no temp file is left behind, the database is not
/// touched (the `.env` is prepared before the database commits).
#[test]
fn env_file_on_a_full_file_system_exits_74() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    seed_row(&sandbox);
    let shared = sandbox.path().join("shared");
    let Some(_mount) = Mount::tmpfs(&shared, 64 * 1024, "ENV_FILE on a full disk") else {
        return;
    };
    sandbox.write_env(&existing_env());
    fill(&shared);
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    refused_by(
        &sandbox,
        cmd,
        "full disk under the .env",
        IO,
        &["shared", "No space left on device", "Free space"],
    );
    let names: Vec<String> = fs::read_dir(&shared)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "a temp file was left: {names:?}"
    );
}

/// The database on a full file system: SQLite cannot write its journal,
/// the transaction rolls back, and the prepared `.env` is discarded.
#[test]
fn database_on_a_full_file_system_exits_74() {
    let sandbox = Sandbox::new();
    sandbox.write_env(&existing_env());
    let data = sandbox.data_dir();
    let Some(_mount) = Mount::tmpfs(&data, 512 * 1024, "the database on a full disk") else {
        return;
    };
    sandbox.sql(STARTUP_SQL);
    seed_row(&sandbox);
    // The key store already holds the key, as after any earlier run: the
    // first write this run needs on the full volume is the database's.
    std::fs::write(sandbox.secret_store(), SECRET_KEY).unwrap();
    fill(&data);
    let mut cmd = sandbox.command();
    cmd.arg("--production");
    refused_by(
        &sandbox,
        cmd,
        "full disk under the database",
        IO,
        &["webui.db", "disk is full", "free space and run again"],
    );
}

/// A new secret key cannot be stored on a full volume: nothing else is
/// written either, since the `.env` must not name a key that is not kept.
#[test]
fn secret_key_store_on_a_full_file_system_exits_74() {
    let sandbox = Sandbox::new();
    sandbox.write_env(&existing_env());
    let data = sandbox.data_dir();
    let Some(_mount) = Mount::tmpfs(&data, 64 * 1024, "the secret key on a full disk") else {
        return;
    };
    fill(&data);
    let mut cmd = sandbox.command();
    cmd.env_remove("WEBUI_SECRET_KEY");
    refused_by(
        &sandbox,
        cmd,
        "full disk under DATA_DIR",
        IO,
        &[".webui_secret_key", "No space left on device", "Free space"],
    );
}

#[test]
fn a_dangling_link_at_the_database_path_is_not_a_first_boot() {
    let sandbox = Sandbox::new();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("elsewhere.db");
    std::os::unix::fs::symlink(&target, sandbox.db_path()).unwrap();
    let before = sandbox.snapshot();
    let run = sandbox.run_with(&["--production"], &[("CREATE_SCHEMA", "true")]);
    run.expect(65)
        .assert_mentions(&["symbolic link", "webui.db"]);
    before.assert_same(&sandbox.snapshot(), "a dangling database link");
    assert!(
        !target.exists(),
        "the database was created through the link"
    );
}

#[test]
fn a_folder_at_the_key_store_is_refused_even_with_a_configured_key() {
    // The start script would `cat` a folder and get no key at all.
    let sandbox = deployment();
    std::fs::create_dir(sandbox.secret_store()).unwrap();
    refused_by(
        &sandbox,
        sandbox.command(),
        "a folder at the key store",
        DATA,
        &[".webui_secret_key", "is a directory", "remove it"],
    );
}

#[test]
fn a_key_store_that_is_not_text_is_rewritten_with_the_configured_key() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.secret_store(), [0xff, 0xfe, 0x00]).unwrap();
    sandbox.run(&[]).expect(0);
    assert_eq!(
        python_dotenv(&sandbox.env_path())["WEBUI_SECRET_KEY"],
        SECRET_KEY
    );
    assert_eq!(
        std::fs::read_to_string(sandbox.secret_store()).unwrap(),
        SECRET_KEY
    );
}

/// An empty folder at the .env is what Docker leaves when the application
/// started first: the advice is to remove it.
#[test]
fn an_empty_folder_at_the_env_is_to_be_removed() {
    refused(
        "empty folder",
        |sandbox, _| {
            std::fs::remove_file(sandbox.env_path()).unwrap();
            std::fs::create_dir(sandbox.env_path()).unwrap();
        },
        CANNOT_CREATE,
        &[
            ".env is a directory",
            "docker compose up --no-deps",
            "remove the folder and run again",
        ],
    );
}

/// A lock file that is a symbolic link is never followed: nothing is
/// created or locked at its target, and the run is refused.
#[test]
fn lock_files_that_are_links_are_refused_and_never_followed() {
    for lock in ["data/.mai-provision.lock", "shared/.env.lock"] {
        let sandbox = deployment();
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("created-through-the-link");
        symlink(&target, sandbox.path().join(lock)).unwrap();
        let mut cmd = sandbox.command();
        cmd.arg("--production");
        refused_by(
            &sandbox,
            cmd,
            &format!("{lock} is a link"),
            CANNOT_CREATE,
            &[
                lock.rsplit('/').next().unwrap(),
                "symbolic link",
                "Remove the link",
            ],
        );
        assert!(!target.exists(), "{lock}: the link's target was created");
    }
}
