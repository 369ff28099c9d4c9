//! The README is part of the interface: every variable and every exit code
//! the binary knows must be documented in its tables.

use mai_provision::config::VARIABLES;
use mai_provision::exit::TABLE;

const README: &str = include_str!("../../README.md");

#[test]
fn every_variable_is_in_the_readme_table() {
    for var in VARIABLES {
        let row = format!("| `{}` |", var.name);
        assert!(
            README.contains(&row),
            "README has no table row for {}",
            var.name
        );
    }
}

#[test]
fn every_exit_code_is_in_the_readme_table() {
    for (code, _) in TABLE {
        let row = format!("\n| {} |", code.code());
        assert!(
            README.contains(&row),
            "README has no table row for exit code {}",
            code.code()
        );
    }
}

#[test]
fn the_readme_test_command_is_what_ci_runs() {
    let ci = include_str!("../../.ci/run");
    assert!(
        README.contains("```sh\ncargo test\n```"),
        "README's test command changed"
    );
    assert!(
        ci.contains("\ncargo test"),
        ".ci/run no longer runs cargo test"
    );
}
