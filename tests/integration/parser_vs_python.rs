//! Differential test of the python-dotenv port: a corpus of tricky `.env`
//! files, hand-written and seeded-random, each read by
//! `mai_provision::envfile::Document::parse` and by python-dotenv itself
//! (`dotenv_values(path, interpolate=False)`), in one python process.
//!
//! The one intended difference: python-dotenv opens the file in text mode,
//! so Python's universal newlines turn every raw CR and CRLF into LF before
//! the parser sees them. Outside a quoted value that changes nothing (a CR
//! ends a line either way), but a raw CR inside quotes comes back as LF. The
//! port reads the bytes as they are, so for such files the two disagree by
//! design. They are compared in two other ways instead:
//!
//! * python-dotenv's parser on the exact text (the file opened with
//!   `newline=""`, passed as `stream=`) must agree with the port on *every*
//!   file, CRs included;
//! * `dotenv_values(path)` must agree with the port reading the text after
//!   the same newline translation.
//!
//! Set `PARSER_DIFF_SEED` to try another random corpus.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::common::python_batch;

use mai_provision::envfile::{Document, as_python_dotenv_reads, universal_newlines};

/// Key to value as python-dotenv's `dotenv_values` returns them: the last
/// binding of a key wins, and a bare `KEY` line gives `None`.
type Values = BTreeMap<String, Option<String>>;

fn ours(text: &str) -> Values {
    let doc = Document::parse(text);
    let mut values = Values::new();
    for binding in doc.bindings() {
        values.insert(binding.key.clone(), binding.value.clone());
    }
    for (key, value) in &values {
        assert_eq!(doc.value(key), value.as_deref(), "Document::value({key:?})");
    }
    values
}

const PYTHON: &str = r#"
import json, logging, sys
logging.disable(logging.CRITICAL)  # "could not parse statement" warnings
from dotenv import dotenv_values
out = []
for path in json.load(open(sys.argv[1], encoding="utf-8")):
    as_file = dotenv_values(path, interpolate=False)
    with open(path, encoding="utf-8", newline="") as stream:
        exact = dotenv_values(stream=stream, interpolate=False)
    out.append([as_file, exact])
json.dump(out, sys.stdout)
"#;

/// python-dotenv's reading of every text: `(dotenv_values(path), the
/// parser on the exact text)`. One python process for the whole batch.
fn python_values(texts: &[String]) -> Vec<(Values, Values)> {
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    python_batch(PYTHON, &texts)
}

/// Hand-written cases: the findings table, the regex corner cases, and
/// everything the parser's unit tests state.
fn hand_written() -> Vec<String> {
    let cases: &[&str] = &[
        "",
        "\n\n",
        "# comment only",
        "A=1\nB=2\n",
        "A=1\r\nB=2\r\n",
        "A=1\rB=2\r",
        "A=1\n\r\nB=2\r\r",
        "  A=1\n\tB=2\n",
        "A = 1\nB\t=\t2\t\n",
        "A=a b\nB=a\tb\nC= a \n",
        "A=a#b\nB=#a\nC=a #b\nD=a\t#b\nE=a\u{a0}#b\nF=a b # c # d\nG=a#b #c\nH= #x",
        "A='a#b'\nB='a # b'\nC=\"a # b\"\nD='a' # c\nE='a'#c\nF=\"a\" #c 'd'\n",
        "A='a'junk\nB=2\n",
        "A=\"a\"b\nB=2\n",
        "A='a' junk\nB=2",
        "A='a b'   \nB=\"c d\"\t\n",
        r"A='a\\b'",
        r"A='a\'b'",
        r"A='a\nb'",
        r#"A='a\tb\"c'"#,
        r"A='a\b'",
        "A='$X ${Y} `z`'",
        r#"A="a\\b""#,
        r#"A="a\"b""#,
        r#"A="a\'b""#,
        r#"A="\a\b\f\n\r\t\v""#,
        r#"A="a\$b\`c\qd\u00e9\x41""#,
        r#"A="a\\nb""#,
        r#"A="a\\\\b""#,
        r#"A="it's""#,
        r#"A="a'b\\c""#,
        r#"A="a\\\"b""#,
        "A=\"a\\\\\"\nB=\"q\"\nC=3\n",
        "A=\"a\\\\\"",
        "A='x\\'",
        "A='a\\'b\\'",
        "A='a\\'b\\' # c\nB=2",
        "A='ends with backslash\\'\nB='x'\n",
        "A='a''\nB=2",
        "A='abc\nB=2\n",
        "A=\"abc\nB=2\nC=3",
        "A=\"abc",
        "X=0\nA='abc\r\nB=2\r\n",
        "A='line one\nline two'\nB=\"x\ny\"\nC=3\n",
        "A='a\r\nb'\nB=\"c\rd\"\n",
        "A=1\r\nB = 'two' \r\nC=3 # c\r\nD\r\n",
        "export A=1",
        "export \t A='x y'",
        "exportA=1",
        "export_A=1",
        "  export A=1",
        "export\n",
        "export=1",
        "export \nB=2",
        "export  K=abc\nexport K2=\"a b\"",
        "\n\n  export KEY=1 # c\nZ=2",
        "'quoted key'=1",
        "\u{a0}\u{2028}ключ=значение",
        "K.DOT-DASH=1\n1K=1\nKÄ=1\na'b\"c=1\n'a b'=1\n'a=b#c'=1",
        "''=1\nB=2",
        "=1\nB=2",
        "'unterminated=1\nB=2",
        "A#comment\n",
        "KEY\nOTHER  \n",
        "KEY junk\nB=2",
        "A=1\nB=x\nA=2\n",
        "A=1\nA\n",
        "A=1\nA='x\n",
        "A=1\u{b}\n",
        "A=a\u{a0}\nB=\u{a0}a\nC=a\u{3000}\u{1f}\nD=a\u{85}\nE=a\u{1c}b",
        "\u{feff}A=1\n",
        "A=1\0B=2",
        "A=1 \u{2028}\n",
        "\u{2028}A=1\u{2029}B=2\u{85}C=3",
        "\u{1c}\u{1d}A=1",
        "A=1\u{c}#c\nB=2\u{b}#c",
        "   \t  ",
        "日本=語 # 注釈\r\n",
        "K=a$b\nK2=a${X}b\nK3='a${X}b'\nK4=\"a\\${X}b\"",
        "K='Zürich ł 日本'\nK2=\"Zürich ł 日本\"\nK3=🚀 🚀",
        "K=\"abc\nY=1",
        "K='a\u{2028}b\u{85}c'",
        "K=\"x'\\\"y\"\nK2=\"x'$ y\"",
        "K=\"a\"b\nK2='a b'junk\nK3=ok",
        "#\r#\n#",
        "'",
        "\"",
        "=",
        "\\",
        "A=\\",
        "A=\"\\\"",
        "A='\\'",
        "A=\"\\\\\"\nB=\"\\\"\"",
        "A=\"a\\\"b\\\"\"",
        "A=\"\\\"\" # c\nB=\"x\"",
        "A=''''\nB=''",
        "A=\"\"\"\"",
        "A='''x'''",
        "A='\n'\nB='\n\n'",
        "A=\"\n\"#c\n",
        // Issue 10: lines that read cleanly only while no quote follows.
        "BACKUP_DIR='C:\\backups\\'\n",
        "BACKUP_DIR='C:\\backups\\'\nB=1\nC='x y'\n",
        "NOTE='x\r\nB=1\r\nC='x y'\r\n",
        "NOTE=\"it's\nB=\"O'Brien\"\n",
        "'KEY=1\nB=\"O'Brien\"\nC='x'\n",
        "\u{feff}A=1\r\nB='x\ry'\rC=3\r",
        "\u{feff}'A'=1\n",
        "A=1\r\rB='x\\'\r\nC='y'\r",
    ];
    cases.iter().map(|c| (*c).to_owned()).collect()
}

/// splitmix64: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn repeat(&mut self, items: &[&str], max: usize) -> String {
        let n = self.below(max + 1);
        (0..n).map(|_| self.pick(items)).collect()
    }
}

const KEYS: &[&str] = &[
    "K", "K1", "A_B", "_x", "lower", "a.b", "k-d", "1K", "KÄ", "日本", "'k k'", "'k=#'", "''",
    "'open", "", "#", "export", "exportK", "K'q", "K\"q",
];
const LEADS: &[&str] = &[
    "", "", "", " ", "\t", "  ", "\u{a0}", "\n", "\r\n", "\u{2028}",
];
const EXPORTS: &[&str] = &[
    "",
    "",
    "",
    "",
    "export ",
    "export\t",
    "export  ",
    "export",
    "export\u{a0}",
];
const AFTER_KEY: &[&str] = &["", "", "", " ", "\t", "\u{b}"];
const EQUALS: &[&str] = &[
    "=", "=", "=", "=", "= ", "=\t", "=  ", "", " junk", "#c", "==",
];
const BARE: &[&str] = &[
    "a", "b", "Z", "1", "_", " ", " ", "\t", "#", " #", "$", "{", "}", "${X}", "\\", "\\\\", "'",
    "\"", "~", "!", ";", "&", "|", "`", "=", "ł", "日", "🚀", "\u{a0}", "\u{2028}", "\u{85}",
    "\u{1f}", "\u{c}",
];
const QUOTED: &[&str] = &[
    "a", "b", " ", "\t", "#", " # ", "\\", "\\\\", "\\'", "\\\"", "'", "\"", "\n", "\r\n", "\r",
    "$", "${X}", "\\n", "\\t", "\\a", "\\b", "\\v", "\\q", "\\u00e9", "\\x41", "`", "ł", "🚀",
    "\u{a0}", "\u{2028}", "=",
];
const TAILS: &[&str] = &[
    "",
    "",
    "",
    "",
    " ",
    "\t",
    " # c",
    "#c",
    "\t# c 'q' \"d\"",
    " junk",
    "junk",
    " #",
    "  ",
    "'",
    "\"",
];
const ENDS: &[&str] = &["\n", "\n", "\n", "\n", "\r\n", "\r", ""];
const SOUP: &[&str] = &[
    "A", "b", "_", "=", "=", "#", "'", "'", "\"", "\"", "\\", "\\", " ", "\t", "\n", "\n", "\r",
    "\r\n", "export ", "export", "ł", "日", "🚀", "\u{a0}", "\u{2028}", "\u{85}", "\u{b}",
    "\u{1c}", "$", "{", "}", "\0",
];

/// One statement built from the grammar's parts, mostly well formed.
fn statement(rng: &mut Rng) -> String {
    let quote = rng.pick(&["'", "\""]);
    let value = match rng.below(4) {
        0 => rng.repeat(BARE, 8),
        1 | 2 => {
            let close = if rng.below(8) == 0 { "" } else { quote };
            format!("{quote}{}{close}", rng.repeat(QUOTED, 8))
        }
        _ => String::new(),
    };
    [
        rng.pick(LEADS),
        rng.pick(EXPORTS),
        rng.pick(KEYS),
        rng.pick(AFTER_KEY),
        rng.pick(EQUALS),
        &value,
        rng.pick(TAILS),
        rng.pick(ENDS),
    ]
    .concat()
}

fn random_corpus(seed: u64, files: usize) -> Vec<String> {
    let mut rng = Rng(seed);
    (0..files)
        .map(|i| {
            let text: String = if i % 4 == 3 {
                rng.repeat(SOUP, 60)
            } else {
                let lines = 1 + rng.below(8);
                (0..lines).map(|_| statement(&mut rng)).collect()
            };
            // A UTF-8 BOM, which python-dotenv keeps as part of the first key.
            if i % 10 == 9 {
                format!("\u{feff}{text}")
            } else {
                text
            }
        })
        .collect()
}

fn seed() -> u64 {
    match std::env::var("PARSER_DIFF_SEED") {
        Ok(seed) => seed.parse().expect("PARSER_DIFF_SEED must be a number"),
        Err(_) => 0x00C0_FFEE,
    }
}

#[test]
fn the_port_reads_every_file_as_python_dotenv_does() {
    let seed = seed();
    let mut texts = hand_written();
    let hand_written = texts.len();
    texts.extend(random_corpus(seed, 2000));
    let python = python_values(&texts);

    let mut mismatches = String::new();
    let mut cr_in_quotes = 0;
    let mut bindings = 0;
    let mut none_values = 0;
    let mut multi_line = 0;
    let mut unparsable = 0;
    for (i, (text, (as_file, exact))) in texts.iter().zip(&python).enumerate() {
        let origin = if i < hand_written {
            format!("hand-written case {i}")
        } else {
            format!("random case {i} (seed {seed})")
        };
        let mine = ours(text);
        bindings += mine.len();
        none_values += mine.values().filter(|v| v.is_none()).count();
        multi_line += mine.values().flatten().filter(|v| v.contains('\n')).count();
        let doc = Document::parse(text);
        unparsable += doc
            .entries
            .iter()
            .filter(|e| e.binding.is_none() && !e.text.trim().is_empty())
            .filter(|e| !e.text.trim_start().starts_with('#'))
            .count();

        if &mine != exact {
            writeln!(
                mismatches,
                "{origin}: {text:?}\n  port:          {mine:?}\n  python-dotenv: {exact:?}"
            )
            .unwrap();
            continue;
        }
        // What python-dotenv reads through the file: the same parser, after
        // the newline translation the port deliberately does not do.
        let translated = ours(&universal_newlines(text));
        // The reader the job checks a merge with, before writing it.
        assert_eq!(
            &as_python_dotenv_reads(text),
            &translated,
            "{origin}: as_python_dotenv_reads"
        );
        if &translated != as_file {
            writeln!(
                mismatches,
                "{origin} (read as a file): {text:?}\n  port:          {translated:?}\n  python-dotenv: {as_file:?}"
            )
            .unwrap();
        } else if translated != mine {
            // The documented difference, and only for a raw CR.
            assert!(text.contains('\r'), "{origin}: {text:?}");
            cr_in_quotes += 1;
        }
    }
    assert!(
        mismatches.is_empty(),
        "the port disagrees with python-dotenv:\n{mismatches}"
    );

    // The corpus really reaches the corners it is meant to.
    let files = texts.len();
    eprintln!(
        "{files} files (seed {seed}): {bindings} keys, {none_values} without a value, \
         {multi_line} multi-line values, {unparsable} unparsable statements, \
         {cr_in_quotes} files with a raw CR inside quotes"
    );
    assert!(
        bindings > 3 * files / 2,
        "{bindings} bindings in {files} files"
    );
    assert!(none_values > 100, "{none_values} keys without a value");
    assert!(multi_line > 100, "{multi_line} multi-line values");
    assert!(unparsable > 300, "{unparsable} unparsable statements");
    assert!(
        (20..files / 5).contains(&cr_in_quotes),
        "{cr_in_quotes} files with a raw CR inside quotes"
    );
}

#[test]
fn a_raw_cr_inside_quotes_is_the_one_intended_difference() {
    let text = "A='a\r\nb'\nB=\"c\rd\"\nC='\\r'\n".to_owned();
    let python = python_values(std::slice::from_ref(&text));
    let (as_file, exact) = &python[0];
    let mine = ours(&text);
    assert_eq!(&mine, exact);
    assert_eq!(mine["A"].as_deref(), Some("a\r\nb"));
    assert_eq!(mine["B"].as_deref(), Some("c\rd"));
    assert_eq!(as_file["A"].as_deref(), Some("a\nb"));
    assert_eq!(as_file["B"].as_deref(), Some("c\nd"));
    // An escaped `\r` is not a raw CR: single quotes keep it as two characters.
    assert_eq!(as_file["C"].as_deref(), Some("\\r"));
    assert_eq!(mine["C"], as_file["C"]);
}
