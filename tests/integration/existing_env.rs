//! Lines already in the `.env`, through the built binary (issue 10):
//!
//! - a line python-dotenv reads cleanly only while no quote follows it
//!   (`'C:\backups\'`, an open `'` or `"`) is refused with 65 in every mode,
//!   before the `.env` or the database is touched, once the keys the job
//!   would write bring such a quote;
//! - a CRLF file's managed keys read back exactly in python-dotenv, `sh`
//!   and Compose, and its other lines keep their bytes;
//! - a managed value python-dotenv reads right but `sh` does not is
//!   rewritten in the job's own form.

use std::fs;

use crate::common::*;

const DATA: i32 = 65;
const MODES: [&str; 3] = ["env", "--init-database", "--production"];
/// An unmanaged value that may be a secret: it must never be shown.
const PRIVATE: &str = "hunter2-private";

/// `(case, the existing file, ORGANIZATION_NAME, what the message says)`.
fn lines_that_read_on() -> [(&'static str, String, &'static str, [&'static str; 3]); 3] {
    [
        (
            "single-quoted value ending in a backslash",
            format!("# operator's notes\nCUSTOM=keep\nBACKUP_DIR='C:\\backups\\{PRIVATE}\\'\n"),
            "Acme Ltd",
            [
                "line 3 (BACKUP_DIR)",
                "backslash right before the closing single quote",
                "double quotes with every backslash doubled",
            ],
        ),
        (
            "unterminated single quote",
            format!("# operator's notes\nNOTE='{PRIVATE}\nCUSTOM=keep\n"),
            "Acme Ltd",
            [
                "line 2 (NOTE)",
                "opens a single quote that is never closed, so python-dotenv reads on into the following lines",
                "Close the quote on that line",
            ],
        ),
        (
            "unterminated double quote, a name with an apostrophe",
            format!("CUSTOM=keep\nNOTE=\"{PRIVATE}\n"),
            "O'Brien & Sons",
            [
                "line 2 (NOTE)",
                "opens a double quote that is never closed",
                "Close the quote on that line",
            ],
        ),
    ]
}

/// A deployment whose row and `.env` a run would change: a refusal has
/// both to spoil.
fn deployment_with_env(text: &str) -> Sandbox {
    let sandbox = deployment();
    sandbox.write_env(text);
    sandbox
}

#[test]
fn lines_python_dotenv_would_read_on_from_are_refused_with_65_in_every_mode() {
    for (case, existing, name, says) in lines_that_read_on() {
        for mode in MODES {
            let sandbox = deployment_with_env(&existing);
            let mut cmd = sandbox.command();
            cmd.env("ORGANIZATION_NAME", name);
            if mode != "env" {
                cmd.arg(mode);
            }
            let mut needles = vec![".env", "nothing was changed"];
            needles.extend(says);
            refused_by(&sandbox, cmd, &format!("{case}, {mode}"), DATA, &needles)
                .assert_absent(PRIVATE);
        }
    }
}

#[test]
fn dry_run_and_check_refuse_the_same_lines() {
    for (case, existing, name, _) in lines_that_read_on() {
        for flag in ["--dry-run", "--check"] {
            let sandbox = deployment_with_env(&existing);
            let mut cmd = sandbox.command();
            cmd.env("ORGANIZATION_NAME", name)
                .args(["--production", flag]);
            refused_by(&sandbox, cmd, &format!("{case}, {flag}"), DATA, &["line "]);
        }
    }
}

/// The same lines are harmless while nothing the job writes holds the
/// quote that would close them: the run goes on, and python-dotenv reads
/// the unmanaged values as before.
#[test]
fn the_same_lines_are_kept_when_no_quote_follows_them() {
    let existing = "BACKUP_DIR='C:\\backups\\'\nCUSTOM=keep\n";
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.write_env(existing);
    sandbox.run(&["--production"]).expect(0);
    let text = sandbox.env_text();
    assert!(text.starts_with(existing), "{text}");
    let values = python_dotenv(&sandbox.env_path());
    assert_eq!(values["BACKUP_DIR"], "C:\\backups\\");
    assert_eq!(values["ORGANIZATION_NAME"], NAME);
    assert_eq!(values["OPENROUTER_API_KEY"], KEY);
}

#[test]
fn a_crlf_file_reads_back_exactly_in_python_sh_and_compose() {
    let compose = compose_for("CRLF .env");
    let existing = format!(
        "# operator's notes\r\nCUSTOM='keep me'\r\nORGANIZATION_NAME=Old\r\nOPENROUTER_API_KEY={OTHER_KEY}\r\n"
    );
    let name = "Acme Ltd";
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.write_env(&existing);
    sandbox
        .run_with(&["--production"], &[("ORGANIZATION_NAME", name)])
        .expect(0);
    let text = sandbox.env_text();
    assert!(
        text.starts_with("# operator's notes\r\nCUSTOM='keep me'\r\n"),
        "other lines keep their CRLF:\n{text:?}"
    );
    assert!(
        text.contains("\nORGANIZATION_NAME='Acme Ltd'\nOPENROUTER_API_KEY="),
        "{text:?}"
    );
    let env = sandbox.env_path();
    let python = python_dotenv(&sandbox.env_path());
    let id = mai_provision::identity::derive(name);
    let expected = [
        ("ORGANIZATION_NAME", name),
        ("OPENROUTER_API_KEY", KEY),
        ("OPENROUTER_EXTERNAL_USER", id.as_str()),
        ("WEBUI_SECRET_KEY", SECRET_KEY),
        ("OPENROUTER_HOST", "https://openrouter.ai/api/v1"),
    ];
    assert_eq!(python["CUSTOM"], "keep me");
    let from_compose = compose.map(|compose| compose_env_file_values(&compose, &env));
    for (key, value) in expected {
        assert_eq!(python[key], value, "python-dotenv {key}");
        assert_eq!(sh_value(&env, key), value, "sh {key}");
        if let Some(from_compose) = &from_compose {
            assert_eq!(from_compose[key], value, "compose {key}");
        }
    }
    // The second run finds every managed line in its final form.
    let before = sandbox.snapshot();
    sandbox
        .run_with(&["--production"], &[("ORGANIZATION_NAME", name)])
        .expect(0)
        .assert_mentions(&["nothing to do"]);
    before.assert_same(&sandbox.snapshot(), "second run on a CRLF file");
}

#[test]
fn a_managed_value_sh_reads_otherwise_is_rewritten_in_the_jobs_form() {
    let compose = compose_for("unsafe managed form");
    let name = "Acme Adversary Ltd";
    let sandbox = Sandbox::new();
    sandbox.write_env(&format!("KEEP=1\nORGANIZATION_NAME={name}\nLAST=2\n"));
    let run = sandbox.run_with(&["--output", "json"], &[("ORGANIZATION_NAME", name)]);
    run.expect(0);
    let report = run.json();
    let status = report["env"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "ORGANIZATION_NAME")
        .map(|k| k["status"].clone());
    assert_eq!(status, Some("changed".into()));
    let text = sandbox.env_text();
    assert!(
        text.starts_with(&format!("KEEP=1\nORGANIZATION_NAME='{name}'\nLAST=2\n")),
        "{text}"
    );
    let env = sandbox.env_path();
    assert_eq!(sh_value(&env, "ORGANIZATION_NAME"), name);
    assert_eq!(python_dotenv(&env)["ORGANIZATION_NAME"], name);
    if let Some(compose) = compose {
        assert_eq!(
            compose_env_file_values(&compose, &env)["ORGANIZATION_NAME"],
            name
        );
    }
    let before = sandbox.snapshot();
    sandbox
        .run_with(&[], &[("ORGANIZATION_NAME", name)])
        .expect(0)
        .assert_mentions(&["nothing to do"]);
    before.assert_same(&sandbox.snapshot(), "second run");
    assert!(!fs::exists(sandbox.path().join("Adversary")).unwrap());
}
