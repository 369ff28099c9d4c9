//! What a crashed application leaves beside its database, read the way the
//! application's next start reads it: a hot rollback journal (a writer
//! killed in the middle of a transaction) and a WAL whose index (`-shm`) is
//! gone. `--check` and `--dry-run` answer from the committed state, and a
//! dry run creates no file but its lock.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;
use rusqlite::{Connection, OpenFlags};

/// `<database><suffix>`.
fn side_file(sandbox: &Sandbox, suffix: &str) -> PathBuf {
    let mut path = sandbox.db_path().into_os_string();
    path.push(suffix);
    PathBuf::from(path)
}

/// The key stored in the row as the database file holds it, ignoring any
/// journal or WAL: what a reader that skipped the recovery would see.
/// `None` when the file alone cannot even be read that far.
fn key_in_the_file_alone(db: &Path) -> Option<String> {
    let uri = format!("file:{}?immutable=1", db.display());
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(uri, flags).expect("open immutable");
    conn.query_row(
        "SELECT openrouter_api_key FROM client_organizations WHERE id = ?1",
        [ACME_ID],
        |r| r.get(0),
    )
    .ok()
}

/// A provisioned deployment (the row holds KEY) whose application was
/// killed with SIGKILL in the middle of a transaction that gave the row
/// another key: so many pages changed that SQLite spilled them into the
/// database file, and only the hot journal beside it holds the committed
/// pages.
fn crashed_mid_transaction() -> Sandbox {
    let sandbox = deployment();
    sandbox.run(&["--production"]).expect(0);
    sandbox.sql("CREATE TABLE filler (x);");
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
        c.execute('PRAGMA journal_mode = DELETE')\n\
        c.execute('PRAGMA cache_size = 2')\n\
        c.execute('BEGIN')\n\
        c.execute('UPDATE client_organizations SET openrouter_api_key = ?', (sys.argv[2],))\n\
        c.executemany('INSERT INTO filler VALUES (?)', [('x' * 2000,) for _ in range(400)])\n\
        print('ready', flush=True)\n\
        sys.stdin.read()\n";
    let mut writer = Command::new("python3")
        .args(["-c", script])
        .arg(sandbox.db_path())
        .arg(OTHER_KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(writer.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read from the writer");
    assert_eq!(line.trim(), "ready", "the writer failed");
    writer.kill().expect("SIGKILL the writer");
    writer.wait().expect("reap the writer");
    let journal = side_file(&sandbox, "-journal");
    assert!(
        fs::metadata(&journal).is_ok_and(|m| m.len() > 0),
        "the killed writer left no journal"
    );
    assert_ne!(
        key_in_the_file_alone(&sandbox.db_path()).as_deref(),
        Some(KEY),
        "the uncommitted pages did not reach the database file; the journal is not needed to read it"
    );
    sandbox
}

#[track_caller]
fn assert_rolled_back(sandbox: &Sandbox, context: &str) {
    assert!(
        !side_file(sandbox, "-journal").exists(),
        "{context}: the hot journal is still there"
    );
    assert_eq!(
        key_in_the_file_alone(&sandbox.db_path()).as_deref(),
        Some(KEY),
        "{context}: the file does not hold the committed row"
    );
    assert_integrity(&sandbox.db_path(), context);
    let filler: i64 = sandbox
        .db()
        .query_row("SELECT count(*) FROM filler", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        filler, 0,
        "{context}: the crashed transaction's rows survived"
    );
}

/// `--check` answers from the committed state: the row already holds KEY
/// (0); with another MARKUP_RATE it would change (1). Before, both modes
/// met the hot journal through a read-only connection and exited 77 with
/// "attempt to write a readonly database".
#[test]
fn check_answers_from_the_committed_state_behind_a_hot_journal() {
    let crashed = crashed_mid_transaction();
    let sandbox = crashed.copy();
    let env = fs::read(sandbox.env_path()).unwrap();
    sandbox.run(&["--production", "--check"]).expect(0);
    assert_rolled_back(&sandbox, "--check");
    assert_eq!(fs::read(sandbox.env_path()).unwrap(), env);

    let sandbox = crashed.copy();
    sandbox
        .run_with(&["--production", "--check"], &[("MARKUP_RATE", "1.7")])
        .expect(1)
        .assert_mentions(&["markup_rate"]);
    assert_rolled_back(&sandbox, "--check with a new markup");
    sandbox.run(&["--production"]).expect(0);
}

#[test]
fn dry_run_answers_from_the_committed_state_behind_a_hot_journal() {
    let sandbox = crashed_mid_transaction();
    let env = fs::read(sandbox.env_path()).unwrap();
    let names = sandbox.snapshot().names();
    let run = sandbox.run(&["--production", "--dry-run"]);
    // The committed row already holds KEY; the torn file alone does not.
    run.expect(0)
        .assert_mentions(&["organization row unchanged", "Nothing to change."]);
    assert_rolled_back(&sandbox, "--dry-run");
    assert_eq!(fs::read(sandbox.env_path()).unwrap(), env);
    // The journal went, and nothing came instead.
    let mut expected = names;
    expected.retain(|name| !name.ends_with("-journal"));
    assert_eq!(sandbox.snapshot().names(), expected);
}

#[test]
fn a_run_after_a_crashed_writer_provisions_as_usual() {
    let sandbox = crashed_mid_transaction();
    sandbox
        .run_with(&["--production"], &[("MARKUP_RATE", "1.7")])
        .expect(0);
    assert_rolled_back(&sandbox, "a normal run");
    let row = sandbox.row(ACME_ID);
    assert_eq!(row.markup_rate, rusqlite::types::Value::Real(1.7));
    assert_eq!(row.api_key, KEY);
}

/// A WAL database whose last transactions are only in its `-wal`, and
/// whose `-shm` is gone (a restore that copied the database and its
/// `-wal`, say). A read-only SQLite connection would create the `-shm`; a
/// dry run must create nothing and still see the WAL's transactions.
#[test]
fn dry_run_of_a_wal_without_its_index_creates_no_file() {
    let sandbox = deployment();
    sandbox.sql("PRAGMA journal_mode = WAL;");
    sandbox.run(&["--production"]).expect(0);
    {
        // The application deactivates the organization and stops without a
        // checkpoint: the change lives in the -wal alone.
        let app = sandbox.db();
        app.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
        app.execute(
            "UPDATE client_organizations SET is_active = 0 WHERE id = ?1",
            [ACME_ID],
        )
        .unwrap();
    }
    let wal = side_file(&sandbox, "-wal");
    assert!(fs::metadata(&wal).is_ok_and(|m| m.len() > 0), "no WAL");
    fs::remove_file(side_file(&sandbox, "-shm")).expect("remove the -shm");
    let before = Untouched::record(&sandbox);
    for flags in [["--production", "--dry-run"], ["--production", "--check"]] {
        let case = format!("{flags:?} on a WAL without -shm");
        let run = sandbox.run(&flags);
        run.expect(0).assert_mentions(&["is inactive"]);
        before.check(&sandbox, &case);
        assert!(!side_file(&sandbox, "-shm").exists(), "{case}: -shm made");
    }
    // The next real run reads the same and keeps the deactivation.
    sandbox.run(&["--production"]).expect(0);
    assert_eq!(
        sandbox.row(ACME_ID).is_active,
        rusqlite::types::Value::Integer(0)
    );
}

/// A hot journal that this user may not roll back (the database is
/// read-only for it): said plainly, with advice that fits, and nothing
/// changed.
#[test]
fn a_hot_journal_this_user_may_not_roll_back_is_a_permission_error() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = crashed_mid_transaction();
    fs::set_permissions(sandbox.db_path(), fs::Permissions::from_mode(0o444)).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let probe = outside.path().join("unreadable");
    fs::write(&probe, "x").unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = sandbox.command();
    cmd.args(["--production", "--check"]);
    let Some(cmd) = without_dac_override(cmd, probe.to_str().unwrap()) else {
        return;
    };
    refused_by(
        &sandbox,
        cmd,
        "a hot journal on a read-only database",
        77,
        &[
            "webui.db",
            "has a hot journal",
            "its mode 0444",
            "chmod u+w",
            "start the application once",
        ],
    );
}
