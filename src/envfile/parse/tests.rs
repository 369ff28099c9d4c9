use super::*;

use proptest::prelude::*;

/// `(key, value)` of every binding, in file order.
fn pairs(text: &str) -> Vec<(String, Option<String>)> {
    Document::parse(text)
        .bindings()
        .map(|b| (b.key.clone(), b.value.clone()))
        .collect()
}

fn some(key: &str, value: &str) -> (String, Option<String>) {
    (key.to_owned(), Some(value.to_owned()))
}

/// The only binding of a one-statement text.
fn only(text: &str) -> Binding {
    let doc = Document::parse(text);
    let bindings: Vec<&Binding> = doc.bindings().collect();
    assert_eq!(bindings.len(), 1, "{text:?} -> {doc:?}");
    bindings[0].clone()
}

fn value(text: &str) -> Option<String> {
    only(text).value
}

#[test]
fn an_empty_file_has_no_entries() {
    let doc = Document::parse("");
    assert!(doc.entries.is_empty());
    assert_eq!(doc.text(), "");
}

#[test]
fn comments_and_blank_lines_bind_nothing_but_are_kept() {
    let text = "# a comment\n\n   \n\t# indented comment\nA=1\n\n#last";
    let doc = Document::parse(text);
    assert_eq!(pairs(text), [some("A", "1")]);
    assert_eq!(doc.text(), text);
    // Blank lines belong to the statement after them; comments are entries.
    let texts: Vec<&str> = doc.entries.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "# a comment\n",
            "\n   \n\t# indented comment\n",
            "A=1\n",
            "\n#last"
        ]
    );
    assert!(doc.entries[0].binding.is_none());
    assert!(doc.entries[3].binding.is_none());
}

#[test]
fn trailing_blank_lines_are_an_entry_without_binding() {
    let doc = Document::parse("A=1\n\n  \n");
    assert_eq!(doc.entries.len(), 2);
    assert_eq!(doc.entries[1].text, "\n  \n");
    assert!(doc.entries[1].binding.is_none());
}

#[test]
fn bare_values_are_trimmed_and_keep_inner_characters() {
    assert_eq!(value("A=abc"), Some("abc".into()));
    assert_eq!(value("A=  abc  "), Some("abc".into()));
    assert_eq!(value("A = abc"), Some("abc".into()));
    assert_eq!(value("A\t=\tabc\t"), Some("abc".into()));
    assert_eq!(value("A=a b"), Some("a b".into()));
    assert_eq!(value("A=a=b=="), Some("a=b==".into()));
    assert_eq!(value("A=a\\nb"), Some("a\\nb".into()));
    assert_eq!(value("A=a'b\"c"), Some("a'b\"c".into()));
    assert_eq!(value("A=$HOME ${X}"), Some("$HOME ${X}".into()));
    assert_eq!(value("A=Zürich 日本"), Some("Zürich 日本".into()));
    // Unicode whitespace is trimmed too, as `str.rstrip()` does.
    assert_eq!(value("A=a\u{a0}"), Some("a".into()));
    assert_eq!(value("A=\u{a0}a"), Some("a".into()));
    assert_eq!(value("A=a\u{3000}\u{1f}"), Some("a".into()));
}

#[test]
fn empty_values() {
    assert_eq!(value("A="), Some(String::new()));
    assert_eq!(value("A=\n"), Some(String::new()));
    assert_eq!(value("A=   \n"), Some(String::new()));
    assert_eq!(value("A=''"), Some(String::new()));
    assert_eq!(value("A=\"\""), Some(String::new()));
    assert_eq!(value("A=\r\n"), Some(String::new()));
}

#[test]
fn a_hash_starts_a_bare_comment_only_after_whitespace() {
    assert_eq!(value("A=a#b"), Some("a#b".into()));
    assert_eq!(value("A=#a"), Some("#a".into()));
    assert_eq!(value("A=a #b"), Some("a".into()));
    assert_eq!(value("A=a\t# b"), Some("a".into()));
    assert_eq!(value("A=a\u{a0}#b"), Some("a".into()));
    assert_eq!(value("A=a b # c # d"), Some("a b".into()));
    assert_eq!(value("A=a#b #c"), Some("a#b".into()));
    // The blanks after `=` belong to the equal sign, so `#x` is the value.
    assert_eq!(value("A= #x"), Some("#x".into()));
}

#[test]
fn the_comment_field_holds_what_follows_the_value() {
    let b = only("A=abc   # note\n");
    assert_eq!(b.value.as_deref(), Some("abc"));
    assert_eq!(b.comment, "   # note");
    assert_eq!(b.line_end, "\n");

    let b = only("A='x y'  # quoted note\r\n");
    assert_eq!(b.value.as_deref(), Some("x y"));
    assert_eq!(b.comment, "  # quoted note");
    assert_eq!(b.line_end, "\r\n");

    let b = only("A=\"x\"# tight");
    assert_eq!(b.comment, "# tight");
    assert_eq!(b.line_end, "");

    let b = only("A=abc  \n");
    assert_eq!(b.comment, "");

    let b = only("A # no value\n");
    assert_eq!(b.value, None);
    // The blanks after a key belong to the key, not to the comment.
    assert_eq!(b.comment, "# no value");
}

#[test]
fn a_quoted_value_ends_at_its_quote_and_a_comment_may_follow() {
    assert_eq!(value("A='a # b'"), Some("a # b".into()));
    assert_eq!(value("A=\"a # b\""), Some("a # b".into()));
    assert_eq!(value("A='a'   "), Some("a".into()));
    assert_eq!(value("A='a' # c"), Some("a".into()));
    assert_eq!(value("A='a'#c"), Some("a".into()));
    assert_eq!(value("A=\"a\" #c 'd'"), Some("a".into()));
}

#[test]
fn text_after_a_closing_quote_makes_the_line_unparsable() {
    assert_eq!(pairs("A='a'junk\nB=2\n"), [some("B", "2")]);
    assert_eq!(pairs("A=\"a\"b\nB=2\n"), [some("B", "2")]);
    assert_eq!(pairs("A='a' junk\nB=2"), [some("B", "2")]);
    let text = "A='a'junk\nB=2\n";
    let doc = Document::parse(text);
    assert_eq!(doc.entries[0].text, "A='a'junk\n");
    assert!(doc.entries[0].binding.is_none());
    assert_eq!(doc.text(), text);
}

#[test]
fn single_quotes_decode_only_backslash_and_single_quote() {
    assert_eq!(value(r"A='a\\b'"), Some(r"a\b".into()));
    assert_eq!(value(r"A='a\'b'"), Some("a'b".into()));
    assert_eq!(value(r"A='a\nb'"), Some(r"a\nb".into()));
    assert_eq!(value(r#"A='a\tb\"c'"#), Some(r#"a\tb\"c"#.into()));
    assert_eq!(value(r"A='a\b'"), Some(r"a\b".into()));
    assert_eq!(value("A='$X ${Y} `z`'"), Some("$X ${Y} `z`".into()));
    assert_eq!(value("A='a\"b'"), Some("a\"b".into()));
}

#[test]
fn double_quotes_decode_python_escapes_and_keep_the_rest() {
    assert_eq!(value(r#"A="a\\b""#), Some(r"a\b".into()));
    assert_eq!(value(r#"A="a\"b""#), Some("a\"b".into()));
    assert_eq!(value(r#"A="a\'b""#), Some("a'b".into()));
    assert_eq!(
        value(r#"A="\a\b\f\n\r\t\v""#),
        Some("\u{7}\u{8}\u{c}\n\r\t\u{b}".into())
    );
    assert_eq!(
        value(r#"A="a\$b\`c\qd\u00e9\x41""#),
        Some(r"a\$b\`c\qd\u00e9\x41".into())
    );
    // Escapes are decoded left to right without overlapping.
    assert_eq!(value(r#"A="a\\nb""#), Some(r"a\nb".into()));
    assert_eq!(value(r#"A="a\\\\b""#), Some(r"a\\b".into()));
    assert_eq!(value(r#"A="it's""#), Some("it's".into()));
}

#[test]
fn an_escaped_closing_quote_runs_on_like_the_regex() {
    // `\"` never closes while a plain quote follows, even lines later.
    let text = "A=\"a\\\\\"\nB=\"q\"\nC=3\n";
    // The value `"a\\"` reads as `a\` + escaped quote; the run-on value ends
    // at the quote before `q`, and what follows on that line is junk.
    assert_eq!(pairs(text), [some("C", "3")]);
    assert_eq!(Document::parse(text).text(), text);
    // With no plain quote left, the regex backtracks to the last escaped one.
    assert_eq!(value("A=\"a\\\\\""), Some("a\\".into()));
    assert_eq!(value("A='x\\'"), Some("x\\".into()));
    assert_eq!(value("A='a\\'b\\'"), Some("a'b\\".into()));
    assert_eq!(
        pairs("A='a\\'b\\' # c\nB=2"),
        [some("A", "a'b\\"), some("B", "2")]
    );
}

#[test]
fn an_unterminated_quote_skips_its_line_and_later_lines_parse() {
    assert_eq!(pairs("A='abc\nB=2\n"), [some("B", "2")]);
    assert_eq!(pairs("A=\"abc\nB=2\nC=3"), [some("B", "2"), some("C", "3")]);
    assert_eq!(pairs("A=\"abc"), []);
    let text = "X=0\nA='abc\r\nB=2\r\n";
    let doc = Document::parse(text);
    assert_eq!(doc.text(), text);
    // python-dotenv's `_rest_of_line` tries `\r` before `\r\n`, so the `\n`
    // starts the next statement (as a blank line).
    assert_eq!(doc.entries[1].text, "A='abc\r");
    assert_eq!(doc.entries[2].text, "\nB=2\r\n");
    assert!(doc.entries[1].binding.is_none());
    assert_eq!(pairs(text), [some("X", "0"), some("B", "2")]);
}

#[test]
fn quoted_values_may_span_lines() {
    let text = "A='line one\nline two'\nB=\"x\ny\"\nC=3\n";
    assert_eq!(
        pairs(text),
        [
            some("A", "line one\nline two"),
            some("B", "x\ny"),
            some("C", "3")
        ]
    );
    let doc = Document::parse(text);
    assert_eq!(doc.entries[0].text, "A='line one\nline two'\n");
    assert_eq!(doc.text(), text);
    // A raw CR inside quotes is kept as it is (python-dotenv, reading in
    // text mode, would see an LF there).
    assert_eq!(value("A='a\r\nb'"), Some("a\r\nb".into()));
}

#[test]
fn crlf_and_cr_line_ends() {
    let text = "A=1\r\nB = 'two' \r\nC=3 # c\r\nD\r\n";
    let doc = Document::parse(text);
    assert_eq!(
        pairs(text),
        [
            some("A", "1"),
            some("B", "two"),
            some("C", "3"),
            ("D".to_owned(), None)
        ]
    );
    assert!(doc.bindings().all(|b| b.line_end == "\r\n"));
    assert_eq!(doc.text(), text);

    let doc = Document::parse("A=1\rB=2\r");
    assert_eq!(pairs("A=1\rB=2\r"), [some("A", "1"), some("B", "2")]);
    assert!(doc.bindings().all(|b| b.line_end == "\r"));
}

#[test]
fn the_export_prefix_needs_blanks_after_it() {
    assert_eq!(pairs("export A=1"), [some("A", "1")]);
    assert_eq!(pairs("export \t A='x y'"), [some("A", "x y")]);
    assert_eq!(pairs("exportA=1"), [some("exportA", "1")]);
    assert_eq!(pairs("export_A=1"), [some("export_A", "1")]);
    assert_eq!(pairs("  export A=1"), [some("A", "1")]);
    // `export` alone is a key without a value.
    assert_eq!(pairs("export\n"), [("export".to_owned(), None)]);
    assert_eq!(pairs("export=1"), [some("export", "1")]);
    // Blanks and then nothing to read as a key: unparsable.
    assert_eq!(pairs("export \nB=2"), [some("B", "2")]);
    let b = only("  export   A=1\n");
    assert_eq!(b.key_start, "  export   ".len());
}

#[test]
fn key_start_points_at_the_key_after_blank_lines_and_export() {
    let text = "\n\n  export KEY=1 # c\nZ=2";
    let doc = Document::parse(text);
    let entry = &doc.entries[0];
    let b = entry.binding.as_ref().unwrap();
    assert_eq!(&entry.text[b.key_start..b.key_start + 3], "KEY");
    assert_eq!(&entry.text[..b.key_start], "\n\n  export ");
    let b = only("'quoted key'=1");
    assert_eq!(b.key, "quoted key");
    assert_eq!(b.key_start, 0);
    let b = only("\u{a0}\u{2028}ключ=значение");
    assert_eq!(b.key, "ключ");
    assert_eq!(b.key_start, "\u{a0}\u{2028}".len());
}

#[test]
fn keys_are_anything_up_to_equal_hash_or_space() {
    assert_eq!(pairs("K.DOT-DASH=1"), [some("K.DOT-DASH", "1")]);
    assert_eq!(pairs("1K=1"), [some("1K", "1")]);
    assert_eq!(pairs("KÄ=1"), [some("KÄ", "1")]);
    assert_eq!(pairs("a'b\"c=1"), [some("a'b\"c", "1")]);
    assert_eq!(pairs("'a b'=1"), [some("a b", "1")]);
    assert_eq!(pairs("'a=b#c'=1"), [some("a=b#c", "1")]);
    // An empty quoted key or an empty key is unparsable.
    assert_eq!(pairs("''=1\nB=2"), [some("B", "2")]);
    assert_eq!(pairs("=1\nB=2"), [some("B", "2")]);
    assert_eq!(pairs("'unterminated=1\nB=2"), [some("B", "2")]);
    // A key directly followed by a comment has no value.
    assert_eq!(pairs("A#comment\n"), [("A".to_owned(), None)]);
}

#[test]
fn a_key_without_equal_sign_has_no_value() {
    let text = "KEY\nOTHER  \n";
    assert_eq!(
        pairs(text),
        [("KEY".to_owned(), None), ("OTHER".to_owned(), None)]
    );
    let doc = Document::parse(text);
    assert_eq!(doc.value("KEY"), None);
    assert_eq!(doc.text(), text);
    // Something after the key other than `=` or a comment is an error.
    assert_eq!(pairs("KEY junk\nB=2"), [some("B", "2")]);
}

#[test]
fn the_last_binding_of_a_key_wins() {
    let doc = Document::parse("A=1\nB=x\nA=2\n");
    assert_eq!(doc.value("A"), Some("2"));
    assert_eq!(doc.value("B"), Some("x"));
    assert_eq!(doc.value("C"), None);
    // A later bare `A` unsets it, as in python-dotenv's dict.
    let doc = Document::parse("A=1\nA\n");
    assert_eq!(doc.value("A"), None);
    assert_eq!(doc.bindings().filter(|b| b.key == "A").count(), 2);
    // An unparsable later line does not.
    let doc = Document::parse("A=1\nA='x\n");
    assert_eq!(doc.value("A"), Some("1"));
}

#[test]
fn whitespace_is_python_whitespace() {
    for c in [
        '\u{1c}', '\u{1d}', '\u{1e}', '\u{1f}', '\u{85}', '\u{a0}', '\u{2028}', '\u{3000}',
    ] {
        assert!(is_space(c), "U+{:04X}", u32::from(c));
    }
    for c in ['\u{200b}', '\u{feff}', '\u{180e}', 'a', '\0'] {
        assert!(!is_space(c), "U+{:04X}", u32::from(c));
    }
    assert!(!is_inline_space('\r') && !is_inline_space('\n'));
    assert!(is_inline_space('\u{b}') && is_inline_space('\u{c}'));
    // A vertical tab is a blank, not a line end.
    let b = only("A=1\u{b}\n");
    assert_eq!(b.value.as_deref(), Some("1"));
    assert_eq!(b.line_end, "\n");
}

#[test]
fn line_end_records_how_the_statement_ended() {
    let doc = Document::parse("A=1\nB=2\r\nC=3\rD=4");
    let ends: Vec<&str> = doc.bindings().map(|b| b.line_end.as_str()).collect();
    assert_eq!(ends, ["\n", "\r\n", "\r", ""]);
}

#[test]
fn text_reproduces_awkward_input() {
    for text in [
        "\u{feff}A=1\n",
        "A='never closed",
        "A=\"a\\\\\"\nB=\"q\"\n",
        "\r\r\n\n\r",
        "#\r#\n#",
        "export",
        "export ",
        "'",
        "\"",
        "=",
        "A=1\0B=2",
        "A=1 \u{2028}\n",
        "   \t  ",
        "日本=語 # 注釈\r\n",
    ] {
        assert_eq!(Document::parse(text).text(), text, "{text:?}");
    }
}

/// Strings built from the characters the grammar cares about, so that
/// proptest reaches quotes, escapes, comments and line ends often.
fn envish() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "A", "b", "_", "=", "#", "'", "\"", "\\", " ", "\t", "\n", "\r", "\r\n", "export ",
        "export", "ł", "日", "🚀", "\u{a0}", "\u{2028}", "\u{85}", "\u{b}", "\u{1c}", "$", "{",
    ]);
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn text_is_the_input_for_any_string(s in any::<String>()) {
        prop_assert_eq!(Document::parse(&s).text(), s);
    }

    #[test]
    fn text_is_the_input_for_envish_strings(s in envish()) {
        let doc = Document::parse(&s);
        prop_assert_eq!(doc.text(), s.clone());
        for entry in &doc.entries {
            prop_assert!(!entry.text.is_empty(), "{:?}", s);
            if let Some(b) = &entry.binding {
                // The key starts where the fields say, and the entry ends
                // with the recorded line end.
                prop_assert!(entry.text[b.key_start..].starts_with(&b.key)
                    || entry.text[b.key_start..].starts_with(&format!("'{}'", b.key)), "{:?}", s);
                let before_end = entry.text.strip_suffix(b.line_end.as_str());
                prop_assert!(before_end.is_some_and(|t| t.ends_with(&b.comment)), "{:?}", s);
                prop_assert!(!b.key.is_empty());
            }
        }
    }
}
