//! No secret in any output: the API key and WEBUI_SECRET_KEY must not reach
//! stdout or stderr at any log level, in either log format, on success or on
//! any kind of failure. (`Run::expect` checks every run in every test; these
//! runs go through the paths most likely to print a value.)

use crate::common::*;

const LOUD: [(&str, &str); 1] = [("LOG_LEVEL", "trace")];

fn each_format(sandbox: &Sandbox, args: &[&str], extra: &[(&str, &str)], code: i32) {
    for format in ["text", "json"] {
        let mut vars: Vec<(&str, &str)> = LOUD.to_vec();
        vars.push(("LOG_FORMAT", format));
        vars.extend_from_slice(extra);
        let run = sandbox.run_with(args, &vars);
        run.expect(code);
        assert!(!run.stderr.is_empty(), "trace logging printed nothing");
    }
}

#[test]
fn a_full_provisioning_at_trace_level_shows_no_secret() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    each_format(&sandbox, &["--production"], &[], 0);
    each_format(&sandbox, &["--production", "--dry-run"], &[], 0);
    each_format(&sandbox, &["--production", "--output", "json"], &[], 0);
    each_format(
        &sandbox,
        &["--production", "--check"],
        &[("OPENROUTER_API_KEY", OTHER_KEY)],
        1,
    );
}

#[test]
fn a_generated_secret_key_never_shows() {
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command();
    cmd.env_remove("WEBUI_SECRET_KEY")
        .env("LOG_LEVEL", "trace")
        .args(["--output", "json"]);
    let run = Run::from(cmd.output().unwrap());
    run.expect(0);
    let generated = std::fs::read_to_string(sandbox.secret_store()).unwrap();
    assert!(!run.output().contains(&generated));
    assert!(!run.output().contains(&generated[..16]));
}

#[test]
fn a_key_conflict_names_the_organization_but_not_the_key() {
    let sandbox = Sandbox::with_shape(Shape::Alembic);
    sandbox.sql(&format!(
        "INSERT INTO client_organizations (id, name, openrouter_api_key, is_active, created_at, updated_at) \
         VALUES ('mai_client_other', 'Other', '{KEY}', 1, 5, 6)"
    ));
    each_format(&sandbox, &["--production"], &[], 65);
}

#[test]
fn a_key_from_a_file_stays_secret() {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    let key_file = sandbox.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let mut cmd = sandbox.command();
    cmd.env_remove("OPENROUTER_API_KEY")
        .env("OPENROUTER_API_KEY_FILE", &key_file)
        .env("LOG_LEVEL", "trace")
        .arg("--production");
    Run::from(cmd.output().unwrap()).expect(0);
    assert_eq!(
        sandbox.rows()[0].api_key,
        KEY,
        "the trailing newline was dropped"
    );
    assert_eq!(
        python_dotenv(&sandbox.env_path())["OPENROUTER_API_KEY"],
        KEY
    );
}

#[test]
fn a_changed_key_is_planned_without_either_value() {
    // A different key in the .env than in the configuration, dry-run: the
    // plan reports the change without either value.
    let sandbox = Sandbox::new();
    sandbox.write_env(&format!(
        "OPENROUTER_API_KEY={OTHER_KEY}\nOPENAI_API_KEY={OTHER_KEY}\n"
    ));
    let run = sandbox.run_with(&["--dry-run"], &LOUD);
    run.expect(0)
        .assert_mentions(&["change", "OPENROUTER_API_KEY (secret, value hidden)"]);
}
