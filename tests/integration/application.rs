//! What the real mAI application needs, checked the way it reads: its ORM
//! selects all 11 columns it maps, by the id the `.env` gives it, among
//! active rows (docs/mai-contract.md). The column list below is written out
//! here on purpose, from the contract, not taken from the code under test.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use rusqlite::types::Value;

/// The application's ORM model of `client_organizations`, in its order.
const ORM_COLUMNS: [&str; 11] = [
    "id",
    "name",
    "openrouter_api_key",
    "openrouter_key_hash",
    "markup_rate",
    "monthly_limit",
    "billing_email",
    "is_active",
    "created_at",
    "updated_at",
    "timezone",
];

/// The application's lookup: the id from the `.env` as python-dotenv loads
/// it, every ORM column, active rows only. `Err` carries SQLite's message,
/// as the application would log it.
fn application_lookup(sandbox: &Sandbox) -> Result<Vec<(String, Value)>, String> {
    let id = python_dotenv(&sandbox.env_path())
        .remove("OPENROUTER_EXTERNAL_USER")
        .ok_or("no OPENROUTER_EXTERNAL_USER in the .env")?;
    let conn = sandbox.db();
    let sql = format!(
        "SELECT {} FROM client_organizations WHERE id = ?1 AND is_active = 1",
        ORM_COLUMNS.join(", ")
    );
    let mut statement = conn.prepare(&sql).map_err(|e| e.to_string())?;
    let row = statement
        .query_row([&id], |row| {
            ORM_COLUMNS
                .iter()
                .enumerate()
                .map(|(i, name)| Ok((name.to_string(), row.get::<_, Value>(i)?)))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| e.to_string())?;
    Ok(row)
}

/// The lookup finds the row, with what the application's data model needs.
#[track_caller]
fn assert_application_finds_the_row(sandbox: &Sandbox, context: &str) {
    let row = application_lookup(sandbox)
        .unwrap_or_else(|e| panic!("{context}: the application's lookup fails: {e}"));
    let get = |name: &str| row.iter().find(|(n, _)| n == name).unwrap().1.clone();
    for column in ["created_at", "updated_at"] {
        assert!(
            matches!(get(column), Value::Integer(_)),
            "{context}: {column} is {:?}",
            get(column)
        );
    }
    assert!(
        matches!(get("markup_rate"), Value::Real(rate) if rate > 0.0),
        "{context}: markup_rate {:?}",
        get("markup_rate")
    );
    assert_eq!(get("is_active"), Value::Integer(1), "{context}");
    assert_eq!(get("name"), Value::Text(NAME.to_owned()), "{context}");
    assert_eq!(
        get("openrouter_api_key"),
        Value::Text(KEY.to_owned()),
        "{context}"
    );
}

#[test]
fn the_applications_lookup_finds_the_row_after_every_database_mode() {
    for shape in SHAPES {
        for flag in ["--init-database", "--production"] {
            let sandbox = Sandbox::with_shape(shape);
            sandbox.run(&[flag]).expect(0);
            assert_application_finds_the_row(&sandbox, &format!("{shape:?} {flag}"));
        }
    }
}

#[test]
fn the_migration_shape_is_repaired_once_and_then_left_alone() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    // The application as it stands fails on this shape, as the real one does.
    seed_row(&sandbox);
    let orm_read = format!(
        "SELECT {} FROM client_organizations WHERE id = '{ACME_ID}' AND is_active = 1",
        ORM_COLUMNS.join(", ")
    );
    let err = sandbox.db().prepare(&orm_read).map(|_| ()).unwrap_err();
    assert!(
        err.to_string().contains("no such column: timezone"),
        "{err}"
    );

    let check = sandbox.run(&["--production", "--check"]);
    check
        .expect(1)
        .assert_mentions(&["add the column timezone"]);
    let planned = sandbox
        .run(&["--production", "--dry-run", "--output", "json"])
        .json();
    assert_eq!(
        planned["database"]["repaired_columns"],
        serde_json::json!(["timezone"])
    );

    let run = sandbox.run(&["--production", "--output", "json"]);
    run.expect(0);
    let report = run.json();
    assert_eq!(
        report["database"]["repaired_columns"],
        serde_json::json!(["timezone"])
    );
    assert_eq!(report["verified"], true);
    assert!(
        run.stderr.contains("column timezone added"),
        "{}",
        run.stderr
    );
    assert_application_finds_the_row(&sandbox, "after the repair");

    let before = sandbox.snapshot();
    std::thread::sleep(Duration::from_millis(20));
    let again = sandbox.run(&["--production", "--output", "json"]);
    again.expect(0);
    assert_eq!(again.json()["status"], "unchanged");
    assert_eq!(
        again.json()["database"]["repaired_columns"],
        serde_json::json!([])
    );
    before.assert_same(&sandbox.snapshot(), "the run after the repair");
    sandbox.run(&["--production", "--check"]).expect(0);
}

#[test]
fn a_repair_that_is_the_only_change_is_applied_and_verified() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    sandbox.run(&["--init-database"]).expect(0);
    sandbox.sql("ALTER TABLE client_organizations DROP COLUMN timezone");
    let run = sandbox.run(&["--production", "--output", "json"]);
    run.expect(0);
    let report = run.json();
    assert_eq!(report["status"], "applied");
    assert_eq!(report["database"]["action"], "unchanged");
    assert_eq!(
        report["database"]["repaired_columns"],
        serde_json::json!(["timezone"])
    );
    assert_application_finds_the_row(&sandbox, "repair only");
}

/// The repair adds a column the way mAI's own does: every other row and
/// every existing column is kept exactly, and nothing is dropped or retyped.
#[test]
fn the_repair_keeps_every_row_and_column() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    sandbox.sql(&format!(
        "INSERT INTO client_organizations (id, name, openrouter_api_key, markup_rate, monthly_limit, \
         billing_email, is_active, created_at, updated_at) \
         VALUES ('mai_client_other', 'Other', '{OTHER_KEY}', 2.5, 100.0, 'b@example.com', 0, 5, 6)"
    ));
    let columns = |sandbox: &Sandbox| -> Vec<(String, String)> {
        let conn = sandbox.db();
        let mut statement = conn
            .prepare("SELECT name, type FROM pragma_table_info('client_organizations')")
            .unwrap();
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let other = |sandbox: &Sandbox| -> Vec<Value> {
        sandbox
            .db()
            .query_row(
                "SELECT id, name, openrouter_api_key, markup_rate, monthly_limit, billing_email, \
                 is_active, created_at, updated_at FROM client_organizations WHERE id = 'mai_client_other'",
                [],
                |r| (0..9).map(|i| r.get::<_, Value>(i)).collect(),
            )
            .unwrap()
    };
    let (columns_before, other_before) = (columns(&sandbox), other(&sandbox));
    sandbox.run(&["--production"]).expect(0);
    let columns_after = columns(&sandbox);
    assert_eq!(columns_after[..columns_before.len()], columns_before[..]);
    assert_eq!(
        columns_after[columns_before.len()..],
        [("timezone".to_owned(), "TEXT".to_owned())]
    );
    assert_eq!(
        other(&sandbox),
        other_before,
        "another organization's row changed"
    );
    let timezone: String = sandbox
        .db()
        .query_row(
            "SELECT timezone FROM client_organizations WHERE id = 'mai_client_other'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        timezone, "Europe/Warsaw",
        "mAI's repair gives existing rows its default"
    );
}

#[test]
fn an_inactive_row_stays_inactive_and_every_run_says_no_usage_is_recorded() {
    for shape in SHAPES {
        let sandbox = Sandbox::with_shape(shape);
        sandbox.run(&["--production"]).expect(0);
        // The application deactivates an organization this way.
        sandbox.sql("UPDATE client_organizations SET is_active = 0");
        for round in 0..2 {
            let context = format!("{shape:?}, run {round}");
            let run = sandbox.run(&["--production", "--output", "json"]);
            run.expect(0)
                .assert_mentions(&["records NO usage", "ORGANIZATION_ACTIVE=true"]);
            let report = run.json();
            assert_eq!(report["database"]["active"], false, "{context}");
            assert_eq!(report["status"], "unchanged", "{context}");
            assert!(
                report["warnings"].to_string().contains("records NO usage"),
                "{context}"
            );
            assert_eq!(
                sandbox.row(ACME_ID).is_active,
                Value::Integer(0),
                "{context}"
            );
        }
        // Deliberate, so not drift; but --check says it too.
        sandbox
            .run(&["--production", "--check"])
            .expect(0)
            .assert_mentions(&["records NO usage"]);
        assert!(
            application_lookup(&sandbox).is_err(),
            "{shape:?}: the row is inactive"
        );
    }
}

#[test]
fn organization_active_activates_and_deactivates() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    sandbox.run(&["--production"]).expect(0);
    let off = [("ORGANIZATION_ACTIVE", "false")];
    sandbox
        .run_with(&["--production", "--check"], &off)
        .expect(1)
        .assert_mentions(&["(is_active)"]);
    sandbox
        .run_with(&["--production"], &off)
        .expect(0)
        .assert_mentions(&["ORGANIZATION_ACTIVE=false", "records NO usage"]);
    assert_eq!(sandbox.row(ACME_ID).is_active, Value::Integer(0));
    // Unset: the inactive row is kept.
    sandbox.run(&["--production"]).expect(0);
    assert_eq!(sandbox.row(ACME_ID).is_active, Value::Integer(0));
    let on = [("ORGANIZATION_ACTIVE", "true")];
    sandbox
        .run_with(&["--production", "--check"], &on)
        .expect(1);
    let run = sandbox.run_with(&["--production"], &on);
    run.expect(0);
    assert!(!run.stderr.contains("NO usage"), "{}", run.stderr);
    assert_eq!(sandbox.row(ACME_ID).is_active, Value::Integer(1));
    assert_application_finds_the_row(&sandbox, "reactivated");
    // A new row with ORGANIZATION_ACTIVE=false is inserted inactive.
    let fresh = Sandbox::with_shape(Shape::Startup);
    fresh.run_with(&["--production"], &off).expect(0);
    assert_eq!(fresh.row(ACME_ID).is_active, Value::Integer(0));
}

#[test]
fn ids_the_application_treats_specially_are_warned_about() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox
        .run_with(&["--production"], &[("OPENROUTER_EXTERNAL_USER", "acme-1")])
        .expect(0)
        .assert_mentions(&["^mai_client_[a-zA-Z0-9_]+$", "user-mapping check"]);
    let dev = Sandbox::with_shape(Shape::Startup);
    dev.run_with(
        &["--production"],
        &[("OPENROUTER_EXTERNAL_USER", "mai_client_DevTeam")],
    )
    .expect(0)
    .assert_mentions(&["contains `dev`", "development mode"]);
    let plain = Sandbox::with_shape(Shape::Startup);
    let run = plain.run(&["--production"]);
    run.expect(0);
    assert!(
        !run.stderr.contains("WARN"),
        "a derived id warns of nothing:\n{}",
        run.stderr
    );
}

/// What the image's start script does: `WEBUI_SECRET_KEY=$(cat file)`.
fn start_script_key(path: &std::path::Path) -> String {
    let out = Command::new("sh")
        .args(["-c", "printf '%s' \"$(cat \"$1\")\"", "sh"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_start_script_reads_the_key_the_env_holds() {
    // Configured, kept from an existing .env, and generated.
    let configured = Sandbox::new();
    configured.run(&[]).expect(0);
    let from_env = Sandbox::new();
    from_env.write_env("WEBUI_SECRET_KEY=kept-from-the-env-file\n");
    let run = Run::from(
        from_env
            .command()
            .env_remove("WEBUI_SECRET_KEY")
            .output()
            .unwrap(),
    );
    run.expect(0);
    let generated = Sandbox::new();
    Run::from(
        generated
            .command()
            .env_remove("WEBUI_SECRET_KEY")
            .output()
            .unwrap(),
    )
    .expect(0);
    for (sandbox, expected) in [
        (&configured, Some(SECRET_KEY)),
        (&from_env, Some("kept-from-the-env-file")),
        (&generated, None),
    ] {
        let env_key = python_dotenv(&sandbox.env_path())["WEBUI_SECRET_KEY"].clone();
        if let Some(expected) = expected {
            assert_eq!(env_key, expected);
        }
        assert_eq!(start_script_key(&sandbox.secret_store()), env_key);
        assert_eq!(
            fs::read_to_string(sandbox.secret_store()).unwrap(),
            env_key,
            "no line break"
        );
        let mode = fs::metadata(sandbox.secret_store()).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
}

#[test]
fn the_key_store_can_live_beside_the_env() {
    let sandbox = Sandbox::new();
    let store = sandbox.path().join("shared/.webui_secret_key");
    let store_text = store.to_str().unwrap().to_owned();
    sandbox
        .run_with(
            &["--production"],
            &[("WEBUI_SECRET_KEY_STORE", &store_text)],
        )
        .expect(0);
    assert_eq!(start_script_key(&store), SECRET_KEY);
    assert!(
        !sandbox.secret_store().exists(),
        "the default store was written too"
    );
    // A store the key no longer matches is rewritten, and --check sees it.
    fs::write(&store, "another-key").unwrap();
    sandbox
        .run_with(
            &["--production", "--check"],
            &[("WEBUI_SECRET_KEY_STORE", &store_text)],
        )
        .expect(1);
    sandbox
        .run_with(
            &["--production"],
            &[("WEBUI_SECRET_KEY_STORE", &store_text)],
        )
        .expect(0);
    assert_eq!(start_script_key(&store), SECRET_KEY);
}

#[test]
fn a_skipped_database_is_never_verified() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["--production", "--output", "json"]);
    run.expect(0);
    let report = run.json();
    assert_eq!(report["database"]["action"], "skipped");
    assert_eq!(report["verified"], false);
    assert!(!run.stderr.contains("verified"), "{}", run.stderr);
    // A DATA_DIR that does not exist is said to be possibly unmounted.
    let typo = sandbox.path().join("dta");
    let run = sandbox.run_with(&["--production"], &[("DATA_DIR", typo.to_str().unwrap())]);
    run.expect(0)
        .assert_mentions(&["nor its folder exists", "not mounted"]);
    assert!(!run.stderr.contains("verified"), "{}", run.stderr);
}

#[test]
fn create_schema_warns_of_what_the_application_then_does() {
    let sandbox = Sandbox::new();
    sandbox
        .run_with(&["--production"], &[("CREATE_SCHEMA", "true")])
        .expect(0)
        .assert_mentions(&[
            "its migration fails on every start",
            "swallows that error",
            "no later migration ever applies",
        ]);
}

/// A native sidecar: it waits for the schema the application creates,
/// provisions, then idles until the pod stops, and exits 0.
#[test]
fn the_sidecar_provisions_once_the_schema_exists_then_idles_until_sigterm() {
    let sandbox = Sandbox::new();
    let termination = sandbox.termination_log();
    let mut cmd = sandbox.command();
    cmd.args(["--production", "--sidecar"])
        .env("MAI_PROVISION_TERMINATION_LOG", &termination);
    let mut live = spawn(cmd);
    live.wait_for_log("waiting up to 300 s");
    // The application starts and migrates.
    sandbox.sql(ALEMBIC_SQL);
    live.wait_for_log("idle until the pod stops");
    assert_application_finds_the_row(&sandbox, "sidecar");
    let outcome = fs::read_to_string(&termination).unwrap();
    assert!(
        outcome.starts_with("applied exit=0: provisioned"),
        "{outcome}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        live.child.try_wait().unwrap().is_none(),
        "the sidecar exited"
    );
    let started = Instant::now();
    live.signal("TERM");
    let ended = live.wait(Duration::from_secs(5));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ended.run.code, 0, "{}", ended.run.stderr);
    assert!(
        ended.run.stderr.contains("stopped by SIGTERM"),
        "{}",
        ended.run.stderr
    );
    assert_eq!(
        fs::read_to_string(&termination).unwrap(),
        outcome,
        "the outcome stays"
    );
}

#[test]
fn the_sidecar_needs_a_database_mode_and_cannot_only_plan() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox
        .run(&["--sidecar"])
        .expect(78)
        .assert_mentions(&["--sidecar", "PROVISION_MODE"]);
    sandbox
        .run(&["--production", "--sidecar", "--check"])
        .expect(64);
    // A signal while it provisions is still an interruption.
    let mut cmd = sandbox.command();
    cmd.args(["--production", "--sidecar"]);
    let live = spawn_paused(&sandbox, cmd, "locked");
    live.signal("TERM");
    assert_eq!(live.wait(Duration::from_secs(5)).run.code, 143);
}
