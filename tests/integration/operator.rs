//! The operator's view: `--dry-run`, `--check`, `--output json` and
//! `LOG_FORMAT=json`. The errors an operator meets most are checked with
//! their case, each on stderr's last line: the configuration's in
//! `config_rules.rs`, the database's in `database_states.rs` and
//! `hostile.rs`, a held lock in `concurrency.rs`.

use std::fs;

use crate::common::*;
use serde_json::Value as Json;

#[test]
fn dry_run_writes_nothing_but_the_lock() {
    // The worst case for writing: a first boot that would create a schema,
    // generate and store a secret, and replace an existing .env.
    let sandbox = Sandbox::new();
    sandbox.write_env("OTHER=1\n");
    let before = sandbox.snapshot();
    let mut cmd = sandbox.command();
    cmd.env_remove("WEBUI_SECRET_KEY")
        .env("CREATE_SCHEMA", "true")
        .args(["--production", "--dry-run"]);
    let run = Run::from(cmd.output().unwrap());
    run.expect(0).assert_mentions(&[
        "create the usage schema, then insert",
        "WEBUI_SECRET_KEY: generated, stored in",
        "rewrite (previous file kept as",
        "add       OPENROUTER_API_KEY (secret, value hidden)",
    ]);
    before.assert_same(&sandbox.snapshot(), "dry run");
    assert!(!sandbox.db_path().exists());
}

#[test]
fn dry_run_creates_no_data_directory() {
    let sandbox = Sandbox::new();
    fs::remove_dir(sandbox.data_dir()).unwrap();
    sandbox
        .run_with(&["--production", "--dry-run"], &[("CREATE_SCHEMA", "true")])
        .expect(0);
    assert!(!sandbox.data_dir().exists());
}

#[test]
fn dry_run_names_the_changed_columns() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.run(&["--production"]).expect(0);
    let run = sandbox.run_with(
        &["--production", "--dry-run"],
        &[("MARKUP_RATE", "2"), ("ORGANIZATION_NAME", "Acme")],
    );
    run.expect(0)
        .assert_mentions(&["update the organization row (markup_rate)"]);
    let run = sandbox.run(&["--production", "--dry-run"]);
    run.expect(0)
        .assert_mentions(&["organization row unchanged", "Nothing to change."]);
}

#[test]
fn check_exits_0_when_everything_matches_and_1_when_not() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    let before = sandbox.snapshot();
    sandbox
        .run(&["--production", "--check"])
        .expect(1)
        .assert_mentions(&["add the column timezone", "insert the organization row"]);
    before.assert_same(&sandbox.snapshot(), "check");
    sandbox.run(&["--production"]).expect(0);
    sandbox
        .run(&["--production", "--check"])
        .expect(0)
        .assert_mentions(&["Nothing to change."]);
    // A change on either side is drift: the .env ...
    let env = sandbox.env_text();
    fs::write(sandbox.env_path(), env.replace("unlimited", "5.0")).unwrap();
    sandbox
        .run(&["--production", "--check"])
        .expect(1)
        .assert_mentions(&["change    SPENDING_LIMIT"]);
    fs::write(sandbox.env_path(), &env).unwrap();
    // ... or the row (NULL is damage; 0 would be a deliberate state).
    sandbox.sql("UPDATE client_organizations SET is_active = NULL");
    sandbox
        .run(&["--production", "--check"])
        .expect(1)
        .assert_mentions(&["(is_active)"]);
}

#[test]
fn json_output_is_one_object_with_the_documented_fields() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.sql(&format!(
        "INSERT INTO client_organizations (id, name, openrouter_api_key, created_at, updated_at) \
         VALUES ('mai_client_other', 'Other', '{OTHER_KEY}', 5, 6)"
    ));
    let run = sandbox.run(&["--production", "--output", "json"]);
    run.expect(0);
    let report = run.json();
    assert_eq!(report["status"], "applied");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["id"], ACME_ID);
    assert_eq!(report["id_source"], "derived");
    assert_eq!(report["mode"], "production");
    assert_eq!(report["env"]["changed"], true);
    assert_eq!(report["env"]["keys"][0]["key"], "OPENROUTER_API_KEY");
    assert_eq!(report["env"]["keys"][0]["status"], "added");
    assert_eq!(report["database"]["action"], "insert");
    assert!(
        report["database"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "markup_rate")
    );
    assert_eq!(report["secret_key"], "configured");
    assert_eq!(report["verified"], true);
    assert!(report["duration_ms"].is_u64());
    assert!(
        report["warnings"][0]
            .as_str()
            .unwrap()
            .contains("mai_client_other")
    );

    let again = sandbox.run(&["--production", "--output", "json"]);
    let report = again.json();
    assert_eq!(report["status"], "unchanged");
    assert_eq!(report["database"]["action"], "unchanged");
}

#[test]
fn json_output_reports_errors_too() {
    let sandbox = deployment();
    let mut cmd = sandbox.command();
    cmd.args(["--production", "--output", "json"])
        .env("MARKUP_RATE", "1,3");
    let run = refused_by(&sandbox, cmd, "json", 78, &["MARKUP_RATE"]);
    let report = run.json();
    assert_eq!(report["status"], "error");
    assert_eq!(report["exit_code"], 78);
    let error = report["error"].as_str().unwrap();
    assert!(error.starts_with("MARKUP_RATE uses a comma"), "{error}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let sandbox = Sandbox::new();
    let run = sandbox.run_with(&["--production"], &[("LOG_FORMAT", "json")]);
    run.expect(0);
    let lines: Vec<Json> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{}", run.stderr);
    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["message"].is_string(), "{line}");
    }
    let last = lines.last().unwrap();
    assert_eq!(last["exit_code"], 0, "fields are included: {last}");
    assert!(last["message"].as_str().unwrap().contains(" ms"));
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"),
        "the first-boot warning"
    );
}

#[test]
fn the_last_log_line_sums_up_the_run() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let run = sandbox.run(&["--production"]);
    let last = run.stderr.lines().last().unwrap();
    assert!(last.contains("provisioned mai_client_79d89452"), "{last}");
    assert!(
        last.contains(".env created (11 keys)")
            && last.contains("row inserted")
            && last.contains("ms"),
        "{last}"
    );
    let run = sandbox.run_with(&["--production"], &[("MARKUP_RATE", "9")]);
    let last = run.stderr.lines().last().unwrap();
    assert!(last.contains("row updated (markup_rate)"), "{last}");
}

#[test]
fn dry_run_on_a_wal_database_leaves_no_side_files() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.sql("PRAGMA journal_mode=WAL;");
    let before = sandbox.snapshot();
    for flags in [["--production", "--dry-run"], ["--production", "--check"]] {
        let run = sandbox.run(&flags);
        assert!(run.code == 0 || run.code == 1, "{run:?}");
        before.assert_same(&sandbox.snapshot(), &format!("{flags:?} on a WAL database"));
    }
}

/// A plan speaks of what would happen, counts keys in good English, and
/// names the file once.
#[test]
fn summaries_say_what_would_happen_and_count_right() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let run = sandbox.run(&["--production", "--dry-run"]);
    run.expect(0).assert_mentions(&[
        "planned for mai_client_79d89452: .env would be created (11 keys), row would be inserted",
        "  .env at ",
    ]);
    assert!(!run.stdout.contains(".env .env"), "{}", run.stdout);
    sandbox.run(&["--production"]).expect(0);
    let one = sandbox.run_with(&["--production", "--check"], &[("SPENDING_LIMIT", "5")]);
    one.expect(1)
        .assert_mentions(&[".env would be written (1 key changed)"]);
    let two = sandbox.run_with(
        &["--production"],
        &[("SPENDING_LIMIT", "5"), ("ORGANIZATION_NAME", "Acme")],
    );
    two.expect(0)
        .assert_mentions(&[".env written (1 key changed)"]);
}

/// LOG_LEVEL=debug tells each step: the configuration, the locks, what
/// was found, the plan, each write. Secrets only as fingerprints.
#[test]
fn the_debug_log_tells_every_step_without_a_secret() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    let run = sandbox.run_with(&["--production"], &[("LOG_LEVEL", "debug")]);
    run.expect(0).assert_mentions(&[
        "configuration: mode production, organization \"Acme\"",
        "OpenRouter key sk-or-v1-…sha256:",
        "took the lock after",
        "found: no .env yet",
        "schema lacks [\"timezone\"]",
        "decided:",
        "prepared, written and synced",
        "database committed",
        "replaced the .env",
    ]);
}
