//! Awkward organization names through the built binary and back: every name
//! the job accepts must read back unchanged from the `.env` in python-dotenv
//! (the application), `sh` (`set -a; . .env`) and Docker Compose's
//! `env_file`, and land unchanged in the database row. Names that no quoting
//! can carry to all three are refused before anything is written: each
//! reason is a unit test in src/config/tests.rs, and the refusal through
//! the binary is a row of the table in `config_rules.rs`.

use crate::common::*;
use mai_provision::envfile::{Document, render_value};
use mai_provision::identity::derive;

/// `(what ORGANIZATION_NAME is set to, the name the job should use)`.
const ACCEPTED: &[(&str, &str)] = &[
    ("Company_A", "Company_A"),
    ("ACME-2024.pl", "ACME-2024.pl"),
    ("a=b", "a=b"),
    ("ABC Company Sp. z o.o.", "ABC Company Sp. z o.o."),
    ("O'Brien & Sons", "O'Brien & Sons"),
    ("The \"Best\" Company", "The \"Best\" Company"),
    ("Say \"hi\", it's fine", "Say \"hi\", it's fine"),
    ("Cost $5 Ltd", "Cost $5 Ltd"),
    ("$HOME Corp", "$HOME Corp"),
    ("Cost $$ Ltd $", "Cost $$ Ltd $"),
    ("Say \"$5\"", "Say \"$5\""),
    ("{Braces} $ {x}", "{Braces} $ {x}"),
    ("Firma #1", "Firma #1"),
    ("Hash#Tag # not a comment", "Hash#Tag # not a comment"),
    ("Back\\slash Ltd", "Back\\slash Ltd"),
    ("\\Leading backslash", "\\Leading backslash"),
    ("Double\\\\Backslash", "Double\\\\Backslash"),
    ("O'Neil\\Path", "O'Neil\\Path"),
    ("It's \"quoted\" \\ back", "It's \"quoted\" \\ back"),
    (
        "Zażółć Gęślą Jaźń Sp. z o.o.",
        "Zażółć Gęślą Jaźń Sp. z o.o.",
    ),
    ("Müller & Söhne Straße GmbH", "Müller & Söhne Straße GmbH"),
    ("東京株式会社", "東京株式会社"),
    ("Rocket 🚀 Labs 🇵🇱", "Rocket 🚀 Labs 🇵🇱"),
    ("a=b=c Corp", "a=b=c Corp"),
    ("Semi;colon & Amp | Pipe", "Semi;colon & Amp | Pipe"),
    ("Back`tick` Inc", "Back`tick` Inc"),
    ("~Tilde~Co ~/x a:~/y", "~Tilde~Co ~/x a:~/y"),
    ("Bang! Inc!!", "Bang! Inc!!"),
    (
        "(Parens) <Angles> [Brackets] *?^%",
        "(Parens) <Angles> [Brackets] *?^%",
    ),
    ("Non\u{a0}Breaking", "Non\u{a0}Breaking"),
    ("   Spaced Name   ", "Spaced Name"),
    ("\t Tabbed & trimmed \t", "Tabbed & trimmed"),
];

/// The binary writes a name, and every reader gets exactly the name back.
#[test]
fn accepted_names_read_back_unchanged_in_python_sh_and_compose() {
    let compose = compose_for("roundtrip of organization names");
    for &(raw, name) in ACCEPTED {
        let sandbox = Sandbox::new();
        sandbox
            .run_with(&[], &[("ORGANIZATION_NAME", raw)])
            .expect(0);
        let env = sandbox.env_path();
        let text = sandbox.env_text();

        let line = format!("ORGANIZATION_NAME={}", render_value(name).unwrap());
        assert!(
            text.lines().any(|l| l == line),
            "{raw:?}: no line {line:?} in\n{text}"
        );
        assert_eq!(
            Document::parse(&text).value("ORGANIZATION_NAME"),
            Some(name),
            "{raw:?}: our own parser"
        );

        let python = python_dotenv(&env);
        assert_eq!(
            python["ORGANIZATION_NAME"], name,
            "{raw:?}: python-dotenv read\n{text}"
        );
        assert_eq!(python["OPENROUTER_EXTERNAL_USER"], derive(name), "{raw:?}");

        assert_eq!(
            sh_value(&env, "ORGANIZATION_NAME"),
            name,
            "{raw:?}: sh read\n{text}"
        );

        if let Some(compose) = &compose {
            let from_compose = compose_env_file_values(compose, &env);
            assert_eq!(
                from_compose["ORGANIZATION_NAME"], name,
                "{raw:?}: compose read\n{text}"
            );
            // Every other line of the file reads the same in compose too.
            assert_eq!(from_compose, python, "{raw:?}: compose vs python-dotenv");
        }

        // The job reads its own file back as the same name: nothing to do.
        let before = sandbox.snapshot();
        sandbox
            .run_with(&[], &[("ORGANIZATION_NAME", raw)])
            .expect(0)
            .assert_mentions(&["nothing to do"]);
        before.assert_same(&sandbox.snapshot(), &format!("{raw:?}: second run"));
    }
}

#[test]
fn accepted_names_land_unchanged_in_the_database_row() {
    for &(raw, name) in ACCEPTED {
        let sandbox = Sandbox::with_shape(Shape::Startup);
        sandbox
            .run_with(&["--init-database"], &[("ORGANIZATION_NAME", raw)])
            .expect(0);
        let rows = sandbox.rows();
        assert_eq!(rows.len(), 1, "{raw:?}");
        assert_eq!(rows[0].name, name, "{raw:?}");
        assert_eq!(rows[0].id, derive(name), "{raw:?}");
        let python = python_dotenv(&sandbox.env_path());
        assert_eq!(python["ORGANIZATION_NAME"], name, "{raw:?}");
        assert_eq!(python["OPENROUTER_EXTERNAL_USER"], rows[0].id, "{raw:?}");
    }
}

/// The compose reader above has teeth: it decodes `$$` and shows where
/// Compose and python-dotenv part ways.
#[test]
fn the_compose_reader_sees_what_compose_sees() {
    let Some(compose) = compose_for("compose reader") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.env");
    std::fs::write(
        &path,
        "A='x$$y $'\nB=\"O'Brien\"\nC=\"a\\$b\"\nD=abc\t# kept by compose\n",
    )
    .unwrap();
    let values = compose_env_file_values(&compose, &path);
    assert_eq!(values["A"], "x$$y $");
    assert_eq!(values["B"], "O'Brien");
    assert_eq!(values["C"], "a$b");
    assert_eq!(values["D"], "abc\t# kept by compose");
    let python = python_dotenv(&path);
    assert_eq!(python["C"], "a\\$b");
    assert_eq!(python["D"], "abc");
}
