//! Property test of whole-file merges (issue 10), with proptest: random
//! existing `.env` files built from python-dotenv's corner cases (quotes
//! single and double, open, escaped, ending in a backslash; `export `;
//! comments with and without a blank before `#`; CRLF and lone CR; a BOM;
//! blank lines; duplicate keys; lines without `=`; quoted keys; managed keys
//! already there in odd forms; Unicode), merged with realistic managed
//! values (a name with an apostrophe, one with spaces, a JSON
//! `OPENAI_API_CONFIGS`).
//!
//! The job's verdict is taken in-process (`merge` and the read-back check
//! it runs before writing), and then judged by the real readers:
//!
//! - every accepted merge reads back right in the real python-dotenv
//!   (managed keys exactly, with and without interpolation; every other key
//!   exactly as python-dotenv read the original), and merging it again
//!   changes nothing;
//! - every refusal is justified: python-dotenv really would read the merged
//!   text wrongly; and for a sample, the binary exits 65 with the `.env`
//!   and the database untouched and no secret in its output;
//! - `sh` (`set -a; . ./.env`) and Docker Compose read the managed keys of
//!   accepted merges exactly, where the reader reads the original file the
//!   way python-dotenv does. Where it cannot source the original, or reads
//!   it otherwise, no line written after it can be promised to that reader:
//!   those cases are counted and printed. Compose runs on a sample (a run
//!   costs about 65 ms);
//! - for a sample of accepted cases, the binary writes exactly the merged
//!   text predicted in-process.
//!
//! A reader "reads the original the way python-dotenv does" when it reads
//! it without an error or a complaint and loads the same values (for sh, up
//! to the CR it keeps at the end of a CRLF line). Half the files or so are
//! tame, as hand-written files mostly are, so that both shares are large.
//!
//! All files go through one python3 process, and one sh process (each file
//! in a subshell). `MAI_PROVISION_MERGE_FUZZ_CASES` (default 1500),
//! `MAI_PROVISION_MERGE_FUZZ_SEED` (default fixed, so CI is reproducible)
//! and `MAI_PROVISION_MERGE_FUZZ_COMPOSE` (cases sampled for Compose,
//! default 100) tune a run. A failure prints the seed and the file.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;
use mai_provision::envfile::{Document, FileError, ManagedKey, merge};
use proptest::prelude::*;

const DEFAULT_CASES: u32 = 1500;
const DEFAULT_SEED: u64 = 0x656e_762d_6d72_6765; // "env-mrge"
const DEFAULT_COMPOSE_SAMPLE: usize = 100;
/// Binary runs per verdict: "a few dozen".
const BINARY_SAMPLE: usize = 30;

const HOST: &str = "https://openrouter.ai/api/v1";
const MODEL_IDS: &str = "openai/gpt-4o,anthropic/claude-3.5-sonnet";

/// Key to value as `dotenv_values` returns them (`None`: a bare `KEY`).
type Values = BTreeMap<String, Option<String>>;

// ---------------------------------------------------------------- scenario

/// The configuration of one run.
#[derive(Debug, Clone)]
struct Scenario {
    name: &'static str,
    model_ids: bool,
}

const NAMES: &[&str] = &[
    "Acme",
    "Acme Ltd",
    "O'Brien & Sons",
    "ABC Company Sp. z o.o.",
    "Zażółć \"Gęślą\" Jaźń",
    "Firma #1 Sp. z o.o.",
];

impl Scenario {
    /// The managed keys in the job's order, as `plan::managed_keys` makes
    /// them; the binary sample below proves the two agree.
    fn wanted(&self) -> Vec<ManagedKey> {
        let plain = |key: &'static str, value: &str| ManagedKey {
            key,
            value: Some(value.to_owned()),
            secret: false,
        };
        let secret = |key: &'static str, value: &str| ManagedKey {
            secret: true,
            ..plain(key, value)
        };
        let ids: Vec<&str> = MODEL_IDS.split(',').collect();
        let configs = self
            .model_ids
            .then(|| serde_json::json!({ "0": { "enable": true, "model_ids": ids } }).to_string());
        vec![
            secret("OPENROUTER_API_KEY", KEY),
            plain("OPENROUTER_HOST", HOST),
            plain("OPENROUTER_EXTERNAL_USER", ACME_ID),
            plain("ENABLE_OPENAI_API", "True"),
            plain("OPENAI_API_BASE_URL", HOST),
            secret("OPENAI_API_KEY", KEY),
            plain("ORGANIZATION_NAME", self.name),
            plain("SPENDING_LIMIT", "unlimited"),
            plain("ENABLE_MODEL_FILTER", "True"),
            plain("BYPASS_MODEL_ACCESS_CONTROL", "False"),
            ManagedKey {
                key: "OPENAI_API_CONFIGS",
                value: configs,
                secret: false,
            },
            secret("WEBUI_SECRET_KEY", SECRET_KEY),
        ]
    }

    /// The variables that make the binary want exactly `wanted()`.
    fn vars(&self) -> Vec<(&'static str, &'static str)> {
        let mut vars = vec![
            ("ORGANIZATION_NAME", self.name),
            ("OPENROUTER_EXTERNAL_USER", ACME_ID),
        ];
        if self.model_ids {
            vars.push(("MODEL_IDS", MODEL_IDS));
        }
        vars
    }
}

// --------------------------------------------------------------- generator

const UNMANAGED_KEYS: &[&str] = &[
    "CUSTOM",
    "NOTE",
    "BACKUP_DIR",
    "lower_key",
    "_X1",
    "K.DOT",
    "ключ",
    "NOTE",
];
const MANAGED_IN_FILES: &[&str] = &[
    "ORGANIZATION_NAME",
    "OPENROUTER_API_KEY",
    "OPENROUTER_HOST",
    "OPENAI_API_CONFIGS",
    "SPENDING_LIMIT",
    "WEBUI_SECRET_KEY",
];

fn pick(items: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(items)
}

/// Up to `max` pieces of `items`, joined.
fn pieces(items: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(pick(items), 0..=max).prop_map(|p| p.concat())
}

const BARE_PIECES: &[&str] = &[
    "a", "b", "Z", "1", "_", "-", ".", "/", ":", "@", " ", " ", "'", "\"", "#", " #", "\\", "$",
    "=", "ł", "日", "🚀", "\u{a0}", "`",
];
const QUOTED_PIECES: &[&str] = &[
    "a", "b", " ", "#", " # ", "\\\\", "\\'", "\\\"", "'", "\"", "$", "${X}", "\\n", "ł", "🚀",
    "\n", "\r\n", "=", "\\",
];
const TAILS: &[&str] = &[
    "",
    "",
    "",
    "",
    "",
    " # note",
    "#note",
    "  # it's \"q\"",
    "\t# c",
    " junk",
    " ",
];
const PREFIXES: &[&str] = &["", "", "", "", "", "export ", "  ", "\t", "export\t"];
const SEPARATORS: &[&str] = &["=", "=", "=", "=", " = ", "= ", "=\t"];

/// A value as it may be written: bare, or quoted with the quote closed,
/// left open, or "closed" by an escaped quote (a trailing backslash).
fn written_value() -> impl Strategy<Value = String> {
    let bare = pieces(BARE_PIECES, 6);
    let quoted = (
        pick(&["'", "\""]),
        pieces(QUOTED_PIECES, 6),
        prop_oneof![2 => Just("close"), 1 => Just("open"), 1 => Just("backslash")],
    )
        .prop_map(|(quote, body, end)| match end {
            "close" => format!("{quote}{body}{quote}"),
            "open" => format!("{quote}{body}"),
            _ => format!("{quote}{body}\\{quote}"),
        });
    prop_oneof![3 => bare, 5 => quoted, 1 => Just(String::new())]
}

fn binding(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        pick(PREFIXES),
        pick(keys),
        pick(SEPARATORS),
        written_value(),
        pick(TAILS),
    )
        .prop_map(|(prefix, key, sep, value, tail)| format!("{prefix}{key}{sep}{value}{tail}"))
}

/// A managed key already in the file: its wanted value in one of the forms
/// people write (some every reader agrees on, some not), or an old value.
fn managed_line(
    scenario: &Scenario,
    forms: &[&'static str],
) -> impl Strategy<Value = String> + use<> {
    let wanted: Vec<(&'static str, String)> = scenario
        .wanted()
        .into_iter()
        .filter_map(|w| w.value.map(|v| (w.key, v)))
        .filter(|(key, _)| MANAGED_IN_FILES.contains(key))
        .collect();
    (
        prop::sample::select(wanted),
        prop::sample::select(forms.to_vec()),
        prop::bool::weighted(0.3),
    )
        .prop_map(|((key, value), form, old)| {
            let value = if old { "old value" } else { value.as_str() };
            form.replace("{k}", key).replace("{v}", value)
        })
}

/// Forms of a managed line: some every reader agrees on, some not.
const MANAGED_FORMS: &[&str] = &[
    "{k}={v}",
    "{k}='{v}'",
    "{k}=\"{v}\"",
    "{k} = '{v}'",
    "'{k}'='{v}'",
    "export {k}='{v}' # set by hand",
    "{k}='{v}'#c",
    "  {k}=\"{v}\"",
    "{k}",
];
/// The forms that mean the same to sh (for most values).
const TAME_MANAGED_FORMS: &[&str] = &["{k}='{v}'", "{k}=\"{v}\"", "export {k}='{v}' # set by hand"];

/// Any line: python-dotenv's corner cases, the lines of issue 10, managed
/// keys in odd forms, and lines python-dotenv cannot parse.
fn wild_line(scenario: &Scenario) -> impl Strategy<Value = String> + use<> {
    prop_oneof![
        2 => pick(&["", "  ", "\t"]).prop_map(str::to_owned),
        2 => pick(&[
            "# comment",
            "  # it's \"quoted\" $HOME",
            "#",
            "# Managed by mai-provision: the keys below are rewritten on every run.",
        ])
        .prop_map(str::to_owned),
        8 => binding(UNMANAGED_KEYS),
        10 => pick(ISSUE_10_LINES).prop_map(str::to_owned),
        3 => managed_line(scenario, MANAGED_FORMS),
        1 => binding(MANAGED_IN_FILES),
        1 => pick(&["FLAG", "junk words here", "export", "K-EBAB=1", "=1"]).prop_map(str::to_owned),
        1 => pick(&["'QUOTED'=1", "'open=1", "'k k'=v"]).prop_map(str::to_owned),
    ]
}

/// The lines of issue 10 as people write them.
const ISSUE_10_LINES: &[&str] = &[
    "BACKUP_DIR='C:\\backups\\'",
    "NOTE='x",
    "NOTE=\"it's",
    "export PATH_HINT=\"C:\\tmp\\\"",
];

const TAME_BARE: &[&str] = &["a", "b", "Z", "1", "_", "-", ".", "/", ":", "@", "ł"];
const TAME_QUOTED: &[&str] = &["a", "b", " ", "#", " # ", "=", "ł", "🚀", "-"];

/// A line that means the same to python-dotenv, sh and Compose, as most
/// hand-written files are; the readers can be held to the merge only
/// where they read the original alike.
fn tame_line(scenario: &Scenario) -> impl Strategy<Value = String> + use<> {
    let value = prop_oneof![
        pieces(TAME_BARE, 6).prop_filter("not empty", |v| !v.is_empty()),
        pieces(TAME_QUOTED, 6).prop_map(|v| format!("'{v}'")),
        pieces(TAME_QUOTED, 6).prop_map(|v| format!("\"{v}\"")),
        Just("\"it's\"".to_owned()),
    ];
    let binding = (
        pick(&["", "", "export "]),
        pick(&["CUSTOM", "NOTE", "BACKUP_DIR", "lower_key", "_X1"]),
        value,
        pick(&["", "", " # note", " # it's \"q\""]),
    )
        .prop_map(|(prefix, key, value, tail)| format!("{prefix}{key}={value}{tail}"));
    prop_oneof![
        1 => pick(&["# comment", "# it's $HOME"]).prop_map(str::to_owned),
        6 => binding,
        2 => managed_line(scenario, TAME_MANAGED_FORMS),
        2 => pick(ISSUE_10_LINES).prop_map(str::to_owned),
    ]
}

fn line(scenario: &Scenario, tame: bool) -> BoxedStrategy<String> {
    if tame {
        tame_line(scenario).boxed()
    } else {
        wild_line(scenario).boxed()
    }
}

/// How a file ends its lines: LF, CRLF, or a mix with lone CRs.
fn ending(style: u8) -> BoxedStrategy<&'static str> {
    match style {
        0 => Just("\n").boxed(),
        1 => Just("\r\n").boxed(),
        _ => pick(&["\n", "\n", "\r\n", "\r"]).boxed(),
    }
}

#[derive(Debug, Clone)]
struct Case {
    scenario: Scenario,
    existing: String,
}

/// A file: a tame one (LF or CRLF, no BOM, tame lines) or a wild one.
fn case() -> impl Strategy<Value = Case> {
    (
        pick(NAMES),
        prop::bool::weighted(0.4),
        prop::bool::weighted(0.6),
    )
        .prop_map(|(name, model_ids, tame)| (Scenario { name, model_ids }, tame))
        .prop_flat_map(|(scenario, tame)| {
            let style = if tame {
                prop_oneof![Just(0u8), Just(1)].boxed()
            } else {
                prop_oneof![4 => Just(0u8), 3 => Just(1), 4 => Just(2)].boxed()
            };
            (
                prop::collection::vec(line(&scenario, tame), 1..=8),
                Just(scenario),
                style,
                prop::bool::weighted(if tame { 0.0 } else { 0.25 }),
                prop::bool::weighted(0.8),
            )
        })
        .prop_flat_map(|(lines, scenario, style, bom, last_ends)| {
            let endings = prop::collection::vec(ending(style), lines.len());
            (
                Just(lines),
                endings,
                Just(scenario),
                Just(bom),
                Just(last_ends),
            )
        })
        .prop_map(|(lines, endings, scenario, bom, last_ends)| {
            let mut existing = String::from(if bom { "\u{feff}" } else { "" });
            let count = lines.len();
            for (i, (text, end)) in lines.into_iter().zip(endings).enumerate() {
                existing.push_str(&text);
                if i + 1 < count || last_ends {
                    existing.push_str(end);
                }
            }
            Case { scenario, existing }
        })
}

// ----------------------------------------------------------------- verdicts

/// A case with the job's in-process verdict.
struct Judged {
    case: Case,
    /// The merged text, also for a refused case (what it would have written).
    merged: String,
    /// `None` when accepted; the message when refused.
    refusal: Option<String>,
    /// The real python-dotenv's reading of the existing file, once taken.
    python_before: Values,
}

fn judge(case: Case) -> Judged {
    let document = Document::parse(&case.existing);
    let merged = merge(&document, &case.scenario.wanted()).expect("every managed value renders");
    let refusal = match merged.check_read_back(&document, Path::new(".env")) {
        Ok(()) => None,
        Err(e @ FileError::Misread { .. }) => Some(e.to_string()),
        Err(other) => panic!("not a read-back refusal: {other}"),
    };
    Judged {
        case,
        merged: merged.text,
        refusal,
        python_before: Values::new(),
    }
}

#[test]
fn merges_read_back_right_or_are_refused_without_a_trace() {
    let cases = env_number("MAI_PROVISION_MERGE_FUZZ_CASES", DEFAULT_CASES);
    let seed = env_number("MAI_PROVISION_MERGE_FUZZ_SEED", DEFAULT_SEED);
    let compose_sample = env_number("MAI_PROVISION_MERGE_FUZZ_COMPOSE", DEFAULT_COMPOSE_SAMPLE);
    println!("merging {cases} generated .env files, MAI_PROVISION_MERGE_FUZZ_SEED={seed}");

    // In-process, per case: the verdict, and the properties that need no
    // outside reader (shrunk by proptest on failure).
    let judged = RefCell::new(Vec::new());
    let outcome = seeded_runner(cases, seed).run(&case(), |case| {
        let verdict = judge(case);
        if let Some(message) = &verdict.refusal {
            prop_assert!(message.contains(", line "), "{}", message);
            for secret in [KEY, SECRET_KEY] {
                prop_assert!(!message.contains(secret), "a secret in {}", message);
            }
        } else {
            let again = judge(Case {
                existing: verdict.merged.clone(),
                ..verdict.case.clone()
            });
            prop_assert!(
                again.refusal.is_none(),
                "the merged file is refused: {:?}",
                again.refusal
            );
            prop_assert_eq!(
                &again.merged,
                &verdict.merged,
                "a second merge changed the file"
            );
        }
        judged.borrow_mut().push(verdict);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("MAI_PROVISION_MERGE_FUZZ_SEED={seed}: {e}");
    }
    let mut judged = judged.into_inner();
    python_dotenv_agrees(seed, &mut judged);
    let (accepted, refused): (Vec<&Judged>, Vec<&Judged>) =
        judged.iter().partition(|j| j.refusal.is_none());
    println!(
        "{} cases: {} accepted, {} refused",
        judged.len(),
        accepted.len(),
        refused.len()
    );
    print_corners(&judged);
    print_reasons(&refused);
    let share = judged.len() / 5;
    assert!(accepted.len() >= share, "only {} accepted", accepted.len());
    assert!(refused.len() >= share, "only {} refused", refused.len());

    sh_reads_the_managed_keys(seed, &accepted);
    compose_reads_the_managed_keys(seed, &accepted, compose_sample);
    the_binary_refuses_as_predicted(seed, &refused);
    the_binary_writes_what_was_predicted(seed, &accepted);
}

/// The refusals by what the message says is wrong with the line.
fn print_reasons(refused: &[&Judged]) {
    let said = |words: &str| {
        refused
            .iter()
            .filter(|j| j.refusal.as_deref().is_some_and(|m| m.contains(words)))
            .count()
    };
    let reasons = [
        ("open quote in a value", said("its value opens a")),
        ("escaped closing quote", said("reads as an escaped quote")),
        ("open quote in a key", said("its key opens")),
        ("anything else", said("reads it otherwise")),
    ];
    println!("refusals by reason: {reasons:?}");
}

/// How often the generator reached each corner, so that a drift is seen.
fn print_corners(judged: &[Judged]) {
    let count =
        |pred: &dyn Fn(&str) -> bool| judged.iter().filter(|j| pred(&j.case.existing)).count();
    let corners = [
        ("CRLF", count(&|t| t.contains("\r\n"))),
        ("lone CR", count(&|t| t.replace("\r\n", "").contains('\r'))),
        ("BOM", count(&|t| t.starts_with('\u{feff}'))),
        ("export", count(&|t| t.contains("export"))),
        (
            "escaped closing quote",
            count(&|t| t.contains("\\'") || t.contains("\\\"")),
        ),
        (
            "managed key present",
            count(&|t| MANAGED_IN_FILES.iter().any(|k| t.contains(k))),
        ),
        (
            "no line end at the end",
            count(&|t| !t.ends_with(['\n', '\r'])),
        ),
    ];
    println!("files with each corner: {corners:?}");
    for (corner, n) in corners {
        assert!(n * 20 >= judged.len(), "only {n} files with {corner}");
    }
}

// ------------------------------------------------------------ python-dotenv

const PYTHON: &str = r#"
import json, logging, sys
logging.disable(logging.CRITICAL)  # "could not parse statement" warnings
from dotenv import dotenv_values
out = []
for path in json.load(open(sys.argv[1], encoding="utf-8")):
    out.append([dotenv_values(path, interpolate=False), dotenv_values(path)])
json.dump(out, sys.stdout)
"#;

/// `(raw, interpolated)` readings of each text, by the real python-dotenv
/// on a file (text mode), all in one python process.
fn python_readings(texts: &[&str]) -> Vec<(Values, Values)> {
    python_batch(PYTHON, texts)
}

/// What is wrong with `read` for the merge of `judged`, if anything: a
/// managed key that is not exactly as wanted, or another key that reads
/// otherwise than in `before`.
fn misread(judged: &Judged, before: &Values, read: &Values) -> Option<String> {
    let wanted = judged.case.scenario.wanted();
    for want in &wanted {
        if read.get(want.key) != want.value.as_ref().map(|v| Some(v.clone())).as_ref() {
            return Some(format!(
                "managed key {} reads {:?}",
                want.key,
                read.get(want.key)
            ));
        }
    }
    let is_managed = |key: &str| wanted.iter().any(|w| w.key == key);
    before
        .keys()
        .chain(read.keys())
        .find(|key| !is_managed(key) && before.get(*key) != read.get(*key))
        .map(|key| {
            format!(
                "{key:?} read {:?}, now {:?}",
                before.get(key),
                read.get(key)
            )
        })
}

/// Judges every verdict by the real python-dotenv, and keeps its reading
/// of each existing file for the other readers to be compared with.
fn python_dotenv_agrees(seed: u64, judged: &mut [Judged]) {
    let texts: Vec<&str> = judged
        .iter()
        .flat_map(|j| [j.case.existing.as_str(), j.merged.as_str()])
        .collect();
    let readings = python_readings(&texts);
    let mut wrong = Vec::new();
    for (j, pair) in judged.iter_mut().zip(readings.chunks(2)) {
        let [(before, _), (raw, interpolated)] = pair else {
            unreachable!("two readings per case")
        };
        j.python_before = before.clone();
        let mut problems = Vec::new();
        match (&j.refusal, misread(j, before, raw)) {
            (None, Some(problem)) => {
                problems.push(format!("accepted, but python-dotenv: {problem}"))
            }
            (Some(message), None) => problems.push(format!(
                "refused, but python-dotenv reads it right: {message}"
            )),
            _ => {}
        }
        if j.refusal.is_none() {
            for want in j.case.scenario.wanted() {
                let found = interpolated.get(want.key).cloned().flatten();
                if found != want.value {
                    problems.push(format!("{} with interpolation: {found:?}", want.key));
                }
            }
        }
        if !problems.is_empty() {
            wrong.push(format!(
                "{}\n  file {:?}\n  merged {:?}",
                problems.join("; "),
                j.case.existing,
                j.merged
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "MAI_PROVISION_MERGE_FUZZ_SEED={seed}: {} cases disagree with python-dotenv:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("python-dotenv agrees with all {} verdicts", judged.len());
}

// ---------------------------------------------------------------------- sh

/// A reader's view of a file: `Err` when it could not read it cleanly.
type Reading = Result<BTreeMap<String, String>, String>;

fn is_sh_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// For each `(file, keys)`: the set keys among `keys` after `set -a; .
/// file`, each file in a subshell of one `sh` process (a process per file
/// would take most of this test's time). PATH points nowhere so that no
/// generated command runs. `Err` when sh fails on the file or complains.
fn sh_readings(files: &[(&Path, &[String])]) -> Vec<Reading> {
    let dir = tempfile::tempdir().unwrap();
    let (cwd, errors) = (dir.path().join("cwd"), dir.path().join("stderr"));
    fs::create_dir(&cwd).unwrap();
    fs::create_dir(&errors).unwrap();
    let mut script = String::new();
    for (i, (path, keys)) in files.iter().enumerate() {
        // The file's own output (a bare `export` lists the variables) must
        // not mix with ours.
        script.push_str(&format!(
            "printf '\\001'; (set -a; . '{}' >/dev/null || exit 9; ",
            path.display()
        ));
        for key in keys.iter().filter(|k| is_sh_name(k)) {
            script.push_str(&format!(
                "printf '%s\\0%s\\0%s\\0' {key} \"${{{key}+set}}\" \"${key}\"; "
            ));
        }
        script.push_str(&format!(
            ") 2>'{}/{i}'; printf '\\002%s' \"$?\"\n",
            errors.display()
        ));
    }
    let script_path = dir.path().join("read.sh");
    fs::write(&script_path, script).unwrap();
    let out = Command::new("/bin/sh")
        .env_clear()
        .env("PATH", "/nonexistent")
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .arg(&script_path)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_dir(&cwd).unwrap().count(),
        0,
        "sourcing created files"
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 from sh");
    let readings: Vec<Reading> = text
        .split('\u{1}')
        .skip(1)
        .enumerate()
        .map(|(i, case)| {
            let (fields, status) = case.rsplit_once('\u{2}').expect("a status");
            let complaint = fs::read_to_string(errors.join(i.to_string())).unwrap_or_default();
            if status != "0" || !complaint.is_empty() {
                return Err(format!("exit {status}: {}", complaint.trim()));
            }
            let fields: Vec<&str> = fields.split('\0').collect();
            Ok(fields
                .chunks_exact(3)
                .filter(|f| f[1] == "set")
                .map(|f| (f[0].to_owned(), f[2].to_owned()))
                .collect())
        })
        .collect();
    assert_eq!(readings.len(), files.len());
    readings
}

/// Why a reader's view of the original file is no basis for a promise:
/// it could not read it, or read it otherwise than python-dotenv (keys
/// python-dotenv leaves unset, bare `KEY` lines, are not loaded either).
/// `strip_cr`: sh keeps the CR of a CRLF line, which is not a different
/// reading of the line.
fn differs_from_python(reading: &Reading, python: &Values, strip_cr: bool) -> Option<&'static str> {
    let values = match reading {
        Err(_) => return Some("cannot read"),
        Ok(values) => values,
    };
    let loaded: BTreeMap<&String, &String> = python
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
    let read: BTreeMap<&String, String> = values
        .iter()
        .map(|(k, v)| {
            let v = if strip_cr {
                v.strip_suffix('\r').unwrap_or(v)
            } else {
                v
            };
            (k, v.to_owned())
        })
        .collect();
    let same = loaded.len() == read.len()
        && loaded
            .iter()
            .all(|(k, v)| read.get(k).is_some_and(|r| r == *v));
    (!same).then_some("reads otherwise")
}

/// The managed keys `reading` gets wrong, if any.
fn wrong_managed(reading: &Reading, scenario: &Scenario) -> Option<String> {
    let values = match reading {
        Err(e) => return Some(format!("cannot read it: {e}")),
        Ok(values) => values,
    };
    scenario
        .wanted()
        .into_iter()
        .find(|w| values.get(w.key) != w.value.as_ref())
        .map(|w| format!("{} = {:?}", w.key, values.get(w.key)))
}

#[derive(Debug, Default)]
struct Coverage {
    checked: usize,
    /// Of those, files with CRLF lines.
    checked_crlf: usize,
    cannot_read_original: usize,
    reads_original_otherwise: usize,
}

fn sh_reads_the_managed_keys(seed: u64, accepted: &[&Judged]) {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<(std::path::PathBuf, Vec<String>)> = Vec::new();
    for (i, j) in accepted.iter().enumerate() {
        let keys = keys_to_read(j);
        for (name, text) in [("orig", &j.case.existing), ("merged", &j.merged)] {
            let path = dir.path().join(format!("{i}.{name}.env"));
            fs::write(&path, text).unwrap();
            files.push((path, keys.clone()));
        }
    }
    let borrowed: Vec<(&Path, &[String])> = files
        .iter()
        .map(|(path, keys)| (path.as_path(), keys.as_slice()))
        .collect();
    let readings = sh_readings(&borrowed);
    let mut coverage = Coverage::default();
    for (j, pair) in accepted.iter().zip(readings.chunks(2)) {
        let [original, merged] = pair else {
            unreachable!("two readings per case")
        };
        match differs_from_python(original, &j.python_before, true) {
            Some("cannot read") => coverage.cannot_read_original += 1,
            Some(_) => coverage.reads_original_otherwise += 1,
            None => {
                let problem = wrong_managed(merged, &j.case.scenario);
                assert!(
                    problem.is_none(),
                    "MAI_PROVISION_MERGE_FUZZ_SEED={seed}: sh reads the original as python-dotenv does, \
                     but the merge wrong: {problem:?}\n  file {:?}\n  merged {:?}",
                    j.case.existing,
                    j.merged
                );
                coverage.checked += 1;
                coverage.checked_crlf += usize::from(j.case.existing.contains("\r\n"));
            }
        }
    }
    println!("sh: {coverage:?} of {} accepted", accepted.len());
    assert!(
        coverage.checked * 5 >= accepted.len(),
        "sh checked only {} of {} accepted cases",
        coverage.checked,
        accepted.len()
    );
}

/// Every variable sh could set from either file: each word that is a
/// shell name (a superset), and the managed keys; without the variables sh
/// sets itself.
fn keys_to_read(judged: &Judged) -> Vec<String> {
    const SHELL_OWN: &[&str] = &[
        "PWD", "OLDPWD", "IFS", "PS1", "PS2", "PS4", "OPTIND", "PPID", "PATH", "HOME",
    ];
    let text = format!("{}\n{}", judged.case.existing, judged.merged);
    let mut keys: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| is_sh_name(word) && !SHELL_OWN.contains(word))
        .map(str::to_owned)
        .collect();
    keys.extend(
        judged
            .case
            .scenario
            .wanted()
            .into_iter()
            .map(|w| w.key.to_owned()),
    );
    keys.sort();
    keys.dedup();
    keys
}

// ------------------------------------------------------------------ Compose

fn compose_reading(compose: &Path, path: &Path) -> Reading {
    Ok(compose_environment(compose, path)?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.replace("$$", "$"))))
        .collect())
}

/// Compose on every n-th accepted case, `sample` cases in all, two at a
/// time (a run of the binary costs about 65 ms).
fn compose_reads_the_managed_keys(seed: u64, accepted: &[&Judged], sample: usize) {
    let Some(compose) = compose_for("merged .env files") else {
        return;
    };
    let step = (accepted.len() / sample.max(1)).max(1);
    let picked: Vec<(usize, &Judged)> = accepted
        .iter()
        .copied()
        .enumerate()
        .step_by(step)
        .take(sample)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let outcomes: Vec<Result<Option<&'static str>, String>> = std::thread::scope(|scope| {
        let halves: Vec<_> = picked
            .chunks(picked.len().div_ceil(2).max(1))
            .map(|half| {
                let (compose, dir) = (&compose, dir.path());
                scope.spawn(move || {
                    half.iter()
                        .map(|(i, j)| compose_case(compose, dir, *i, j))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves
            .into_iter()
            .flat_map(|h| h.join().expect("compose worker"))
            .collect()
    });
    let mut coverage = Coverage::default();
    for (outcome, (_, j)) in outcomes.into_iter().zip(&picked) {
        match outcome {
            Ok(None) => {
                coverage.checked += 1;
                coverage.checked_crlf += usize::from(j.case.existing.contains("\r\n"));
            }
            Ok(Some("cannot read")) => coverage.cannot_read_original += 1,
            Ok(Some(_)) => coverage.reads_original_otherwise += 1,
            Err(failure) => panic!("MAI_PROVISION_MERGE_FUZZ_SEED={seed}: {failure}"),
        }
    }
    println!(
        "Compose: {coverage:?} of {} sampled accepted cases",
        picked.len()
    );
    assert!(
        coverage.checked * 5 >= picked.len(),
        "Compose checked only {} of {} sampled cases",
        coverage.checked,
        picked.len()
    );
}

/// `Ok(None)`: checked; `Ok(Some(why))`: the original gives no basis;
/// `Err`: Compose reads the original right and the merge wrong.
fn compose_case(
    compose: &Path,
    dir: &Path,
    i: usize,
    j: &Judged,
) -> Result<Option<&'static str>, String> {
    let original = dir.join(format!("{i}.orig.env"));
    let merged = dir.join(format!("{i}.env"));
    fs::write(&original, &j.case.existing).unwrap();
    fs::write(&merged, &j.merged).unwrap();
    if let Some(why) = differs_from_python(
        &compose_reading(compose, &original),
        &j.python_before,
        false,
    ) {
        return Ok(Some(why));
    }
    match wrong_managed(&compose_reading(compose, &merged), &j.case.scenario) {
        None => Ok(None),
        Some(problem) => Err(format!(
            "Compose reads the original as python-dotenv does, but the merge wrong: {problem}\n  \
             file {:?}\n  merged {:?}",
            j.case.existing, j.merged
        )),
    }
}

// ------------------------------------------------------------- the binary

/// Every n-th item, `n` items in all.
fn spread<'a, T>(items: &'a [&'a T], n: usize) -> impl Iterator<Item = &'a T> {
    let step = (items.len() / n.max(1)).max(1);
    items.iter().copied().step_by(step).take(n)
}

fn the_binary_refuses_as_predicted(seed: u64, refused: &[&Judged]) {
    const MODES: [&[&str]; 3] = [&[], &["--init-database"], &["--production"]];
    for (n, j) in spread(refused, BINARY_SAMPLE).enumerate() {
        let sandbox = deployment();
        sandbox.write_env(&j.case.existing);
        let mut cmd = sandbox.command();
        cmd.envs(j.case.scenario.vars()).args(MODES[n % 3]);
        let context = format!(
            "MAI_PROVISION_MERGE_FUZZ_SEED={seed}, file {:?}, {:?}",
            j.case.existing, j.case.scenario
        );
        refused_by(
            &sandbox,
            cmd,
            &context,
            65,
            &["line", "nothing was changed"],
        );
    }
}

fn the_binary_writes_what_was_predicted(seed: u64, accepted: &[&Judged]) {
    for j in spread(accepted, BINARY_SAMPLE) {
        let sandbox = Sandbox::new();
        sandbox.write_env(&j.case.existing);
        let run = sandbox.run_with(&[], &j.case.scenario.vars());
        let context = format!(
            "MAI_PROVISION_MERGE_FUZZ_SEED={seed}, file {:?}, {:?}",
            j.case.existing, j.case.scenario
        );
        assert_eq!(run.code, 0, "{context}\n{}", run.stderr);
        run.assert_no_secret();
        assert_eq!(sandbox.env_text(), j.merged, "{context}");
    }
}
