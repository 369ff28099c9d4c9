//! Property test of organization names (issue 4, item 6), with proptest:
//!
//! - any name the job accepts reads back exactly (trimmed, as the job uses
//!   it) from the `.env` renderer's output in python-dotenv, Docker
//!   Compose's `env_file` rules and `sh`;
//! - any name it rejects is refused by the binary with exit 78 and leaves
//!   every file of a deployment untouched.
//!
//! Running three readers per case would take minutes, so the names are
//! generated and classified in-process (`config::from_vars`, the job's own
//! rules), every accepted one is rendered into one file, and that file is
//! read once by each reader. The rejected ones all go through the binary.
//!
//! `MAI_PROVISION_FUZZ_CASES` (default 2000) and `MAI_PROVISION_FUZZ_SEED`
//! (default fixed, so CI is reproducible) tune a run. A failure prints the
//! seed and the offending names.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::*;
use mai_provision::envfile::{Document, render_value};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const DEFAULT_CASES: u32 = 2000;
const DEFAULT_SEED: u64 = 0x6d61_692d_7072_6f76; // "mai-prov"

/// Characters an operator, a copy-paste or an attacker might put in a name,
/// without the control and invisible ones.
fn clean_char() -> impl Strategy<Value = char> {
    prop_oneof![
        10 => prop::char::range(' ', '~'),
        6 => prop::sample::select(vec!['\'', '"', '$', '{', '}', '\\', '#', ' ', '`', '=', '!', '~']),
        3 => prop::sample::select(vec![
            'é', 'ż', 'ł', 'ß', '東', '京', '🚀', '👍', '🇵', '🇱',
            '\u{a0}',  // no-break space (trimmed at the ends like a space)
            '\u{301}', // combining acute accent
            '\u{308}', // combining diaeresis
            '\u{fe0f}', // emoji variation selector
            '\u{3000}', // ideographic space
            '\u{ad}',  // soft hyphen
        ]),
        1 => any::<char>().prop_filter("not a control or invisible character", |c| {
            !c.is_control() && !is_invisible(*c)
        }),
    ]
}

/// Characters the job must refuse in a name: control characters (U+0001,
/// next to NUL, included) and invisible ones.
fn hostile_char() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{1}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}',
        '\u{200b}', '\u{200d}', '\u{2028}', '\u{2029}', '\u{202e}', '\u{2066}', '\u{feff}',
    ])
}

/// The job's list of invisible characters (config.rs), for the generator.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Names of 0 to 120 characters: mostly clean ones (to reach the quoting
/// rules), some with a hostile character mixed in. NUL is left out: no
/// environment variable can hold it (see hostile.rs).
fn name() -> impl Strategy<Value = String> {
    let clean = prop::collection::vec(clean_char(), 0..120);
    let mixed = prop::collection::vec(prop_oneof![12 => clean_char(), 1 => hostile_char()], 0..120);
    let padded = (
        prop::sample::select(vec!["", " ", "  ", "\t", "\u{a0}", "\n"]),
        prop::collection::vec(clean_char(), 0..40),
        prop::sample::select(vec!["", " ", "\t ", "\u{3000}", "\r\n"]),
    )
        .prop_map(|(head, body, tail)| {
            format!("{head}{}{tail}", body.into_iter().collect::<String>())
        });
    // Names as operators write them: bare tokens, and words with the
    // punctuation of company names.
    let bare = "[A-Za-z0-9_./:@+,%=-]{0,40}";
    let company = "[A-ZŻŁŚ][a-ząęłńóśźż]{1,12}( [A-Za-z0-9&'.\"()-]{1,12}){0,4}( Sp\\. z o\\.o\\.| GmbH| Ltd\\.)?";
    prop_oneof![
        2 => bare,
        2 => company,
        5 => clean.prop_map(|cs| cs.into_iter().collect::<String>()),
        2 => mixed.prop_map(|cs| cs.into_iter().collect::<String>()),
        2 => padded,
    ]
}

/// The job's verdict on a name: the name it would use, or the message.
fn classify(raw: &str) -> Result<String, String> {
    let vars: Vec<(OsString, OsString)> = vec![
        ("ORGANIZATION_NAME".into(), raw.into()),
        ("OPENROUTER_API_KEY".into(), KEY.into()),
        ("WEBUI_SECRET_KEY".into(), SECRET_KEY.into()),
    ];
    mai_provision::config::from_vars(vars)
        .map(|config| config.organization_name)
        .map_err(|e| e.to_string())
}

#[derive(Default)]
struct Generated {
    /// `(as given, as the job uses it)`.
    accepted: Vec<(String, String)>,
    rejected: Vec<String>,
}

#[test]
fn names_round_trip_or_are_refused_without_a_trace() {
    let cases = env_number("MAI_PROVISION_FUZZ_CASES", DEFAULT_CASES);
    let seed = env_number("MAI_PROVISION_FUZZ_SEED", DEFAULT_SEED);
    println!("fuzzing {cases} names, MAI_PROVISION_FUZZ_SEED={seed}");
    let generated = RefCell::new(Generated::default());

    // In-process, per case, shrunk by proptest on failure: the verdict is
    // about the name, an accepted name is the trimmed input, and it
    // renders to a line this project's parser reads back.
    let outcome = seeded_runner(cases, seed).run(&name(), |raw| {
        match classify(&raw) {
            Ok(name) => {
                prop_assert_eq!(&name, raw.trim(), "accepted, but not as the trimmed input");
                let line = render_value(&name)
                    .map_err(|e| TestCaseError::fail(format!("accepted but unrenderable: {e}")))?;
                let parsed = Document::parse(&format!("K={line}\n"));
                prop_assert_eq!(
                    parsed.value("K"),
                    Some(name.as_str()),
                    "our parser, line K={}",
                    line
                );
                generated.borrow_mut().accepted.push((raw, name));
            }
            Err(message) => {
                prop_assert!(
                    message.starts_with("ORGANIZATION_NAME"),
                    "refused for another reason: {}",
                    message
                );
                generated.borrow_mut().rejected.push(raw);
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("MAI_PROVISION_FUZZ_SEED={seed}: {e}");
    }

    let generated = generated.into_inner();
    let (accepted, rejected) = (&generated.accepted, &generated.rejected);
    println!("{} accepted, {} rejected", accepted.len(), rejected.len());
    assert_not_degenerate(cases, accepted, rejected);
    readers_agree(seed, accepted);
    rejected_names_touch_nothing(seed, rejected);
    binary_writes_what_was_read_back(seed, accepted);
}

/// A generator that drifted to all-accepted or all-rejected would pass
/// while proving nothing; so would one that never reached a quoting rule.
fn assert_not_degenerate(cases: u32, accepted: &[(String, String)], rejected: &[String]) {
    let share = cases as usize / 5;
    assert!(
        accepted.len() >= share,
        "only {} of {cases} names accepted",
        accepted.len()
    );
    assert!(
        rejected.len() >= share,
        "only {} of {cases} names rejected",
        rejected.len()
    );
    if cases < DEFAULT_CASES {
        return;
    }
    let has = |pred: &dyn Fn(&str) -> bool| accepted.iter().filter(|(_, n)| pred(n)).count();
    let kinds: [(&str, usize); 8] = [
        ("a single quote", has(&|n| n.contains('\''))),
        ("a double quote", has(&|n| n.contains('"'))),
        ("a dollar", has(&|n| n.contains('$'))),
        ("a backslash", has(&|n| n.contains('\\'))),
        ("a hash", has(&|n| n.contains('#'))),
        ("a backtick", has(&|n| n.contains('`'))),
        ("non-ASCII", has(&|n| !n.is_ascii())),
        ("bare", has(&|n| render_value(n).is_ok_and(|r| r == *n))),
    ];
    println!("accepted names holding each kind of character: {kinds:?}");
    for (kind, count) in kinds {
        assert!(count >= 10, "only {count} accepted names hold {kind}");
    }
    let refused = |word: &str| {
        rejected
            .iter()
            .filter(|r| classify(r).is_err_and(|m| m.contains(word)))
            .count()
    };
    let reasons = [
        "control or invisible",
        "characters after trimming",
        "${",
        "single quote",
        "ends with a backslash",
        "not set",
    ]
    .map(|reason| (reason, refused(reason)));
    println!("rejected names by reason: {reasons:?}");
    for (reason, count) in reasons {
        assert!(count >= 3, "only {count} names refused for {reason:?}");
    }
}

/// All accepted names in one file, `K0=…`, read once by each reader.
fn readers_agree(seed: u64, accepted: &[(String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.env");
    let text: String = accepted
        .iter()
        .enumerate()
        .map(|(i, (_, name))| format!("K{i}={}\n", render_value(name).unwrap()))
        .collect();
    fs::write(&path, &text).unwrap();
    let expected: BTreeMap<String, String> = accepted
        .iter()
        .enumerate()
        .map(|(i, (_, name))| (format!("K{i}"), name.clone()))
        .collect();

    compare(
        seed,
        "python-dotenv",
        &expected,
        &python_dotenv(&path),
        &text,
    );
    match sh_values(&path, expected.len()) {
        Ok(from_sh) => compare(seed, "sh", &expected, &from_sh, &text),
        Err(error) => panic!(
            "MAI_PROVISION_FUZZ_SEED={seed}: sh cannot source the file ({error}); \
             the names it chokes on:\n{}",
            sh_culprits(accepted, dir.path())
        ),
    }
    if let Some(compose) = compose_for("fuzzed names") {
        let from_compose = compose_env_file_values(&compose, &path);
        compare(seed, "Docker Compose", &expected, &from_compose, &text);
    }
}

#[track_caller]
fn compare(
    seed: u64,
    reader: &str,
    expected: &BTreeMap<String, String>,
    found: &BTreeMap<String, String>,
    text: &str,
) {
    let lines: Vec<&str> = text.lines().collect();
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(key, value)| found.get(*key) != Some(*value))
        .map(|(key, value)| {
            let line = key[1..].parse::<usize>().ok().and_then(|i| lines.get(i));
            format!(
                "  name {value:?}\n    line   {line:?}\n    {reader} read {:?}",
                found.get(key)
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "MAI_PROVISION_FUZZ_SEED={seed}: {reader} reads {} of {} names differently:\n{}",
        wrong.len(),
        expected.len(),
        wrong.join("\n")
    );
    assert_eq!(found.len(), expected.len(), "{reader} read extra keys");
}

/// Every `K0..K{n-1}` after `set -a; . file` in one `sh`, NUL-separated.
/// PATH points nowhere: a renderer bug must not run a generated command.
fn sh_values(path: &Path, n: usize) -> Result<BTreeMap<String, String>, String> {
    let keys: Vec<String> = (0..n).map(|i| format!("\"$K{i}\"")).collect();
    let script = format!("set -a; . \"$1\"; printf '%s\\0' {}", keys.join(" "));
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("/bin/sh")
        .env_clear()
        .env("PATH", "/nonexistent")
        .current_dir(dir.path())
        .args(["-c", &script, "sh"])
        .arg(path)
        .output()
        .expect("sh");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    if fs::read_dir(dir.path()).unwrap().count() != 0 {
        return Err("sourcing the file created files".to_owned());
    }
    let text = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
    let mut values: Vec<&str> = text.split('\0').collect();
    if values.pop() != Some("") {
        return Err("the output does not end with NUL".to_owned());
    }
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("K{i}"), v.to_owned()))
        .collect())
}

/// When `sh` fails on the whole file: each name on its own, to show which.
fn sh_culprits(accepted: &[(String, String)], dir: &Path) -> String {
    let path = dir.join("one.env");
    let mut culprits = Vec::new();
    for (_, name) in accepted {
        let line = format!("K0={}\n", render_value(name).unwrap());
        fs::write(&path, &line).unwrap();
        let found = sh_values(&path, 1).map(|mut v| v.remove("K0"));
        if found.as_ref() != Ok(&Some(name.clone())) {
            culprits.push(format!(
                "  name {name:?}\n    line {line:?}\n    sh: {found:?}"
            ));
        }
        if culprits.len() == 10 {
            break;
        }
    }
    culprits.join("\n")
}

/// Every rejected name through the binary, against one deployment: exit
/// 78, a message about the name, nothing echoed raw, and every file
/// exactly as it was.
fn rejected_names_touch_nothing(seed: u64, rejected: &[String]) {
    let sandbox = Sandbox::with_shape(Shape::Startup);
    sandbox.sql(&format!(
        "INSERT INTO client_organizations (id, name, openrouter_api_key, created_at, updated_at) \
         VALUES ('{ACME_ID}', 'Acme', '{OTHER_KEY}', 1000, 2000)"
    ));
    sandbox.write_env(&format!("OPENROUTER_API_KEY={OTHER_KEY}\nCUSTOM=keep\n"));
    let before = sandbox.snapshot();
    for raw in rejected {
        let mut cmd = sandbox.command();
        cmd.arg("--production").env("ORGANIZATION_NAME", raw);
        let run = Run::from(cmd.output().expect("run binary"));
        let context = format!("MAI_PROVISION_FUZZ_SEED={seed}, ORGANIZATION_NAME={raw:?}");
        assert_eq!(run.code, 78, "{context}\n{}", run.stderr);
        run.assert_no_secret();
        assert!(
            run.stderr.contains("ORGANIZATION_NAME"),
            "{context}\n{}",
            run.stderr
        );
        assert!(
            !run.output().chars().any(|c| c.is_control() && c != '\n'),
            "{context}: a control character reached the output"
        );
        before.assert_same(&sandbox.snapshot(), &context);
    }
}

/// The binary writes exactly the renderer's line for a sample of accepted
/// names, so what the readers agreed on above is what lands in the `.env`.
fn binary_writes_what_was_read_back(seed: u64, accepted: &[(String, String)]) {
    for (raw, name) in accepted.iter().step_by(40) {
        let sandbox = Sandbox::new();
        let context = format!("MAI_PROVISION_FUZZ_SEED={seed}, ORGANIZATION_NAME={raw:?}");
        let run = sandbox.run_with(&[], &[("ORGANIZATION_NAME", raw)]);
        assert_eq!(run.code, 0, "{context}\n{}", run.stderr);
        let line = format!("ORGANIZATION_NAME={}", render_value(name).unwrap());
        let text = sandbox.env_text();
        assert!(
            text.lines().any(|l| l == line),
            "{context}: no {line:?} in\n{text}"
        );
    }
}
