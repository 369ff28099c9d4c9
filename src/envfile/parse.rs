//! A port of python-dotenv's parser (`dotenv/parser.py`), because the
//! application reads the file with python-dotenv: a value means here what it
//! means there. Every entry keeps its exact original text, so lines this job
//! does not manage are written back byte for byte.

/// A parsed `.env` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    pub entries: Vec<Entry>,
}

/// One statement as python-dotenv splits the file: a binding, a comment or
/// blank lines, or a line it cannot parse (which it skips, and we keep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The exact original text, including leading blank lines and the line end.
    pub text: String,
    pub binding: Option<Binding>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub key: String,
    /// `None` for a bare `KEY` line without `=`.
    pub value: Option<String>,
    /// Byte offset in `text` where the key starts (after blank lines and `export `).
    pub key_start: usize,
    /// An inline comment after the value, with its leading blanks.
    pub comment: String,
    /// The line end that closed the statement: `\n`, `\r\n`, `\r` or nothing.
    pub line_end: String,
}

impl Document {
    pub fn parse(text: &str) -> Self {
        let mut reader = Reader { text, pos: 0 };
        let mut entries = Vec::new();
        while reader.has_next() {
            entries.push(parse_entry(&mut reader));
        }
        Self { entries }
    }

    /// The value python-dotenv would load for `key`: the last binding wins.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.bindings()
            .filter(|b| b.key == key)
            .last()?
            .value
            .as_deref()
    }

    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.entries.iter().filter_map(|e| e.binding.as_ref())
    }

    pub fn text(&self) -> String {
        self.entries.iter().map(|e| e.text.as_str()).collect()
    }
}

/// python-dotenv matches `\s` on `str`, which is Unicode whitespace plus the
/// four ASCII separators U+001C to U+001F.
pub(super) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

pub(super) fn is_inline_space(c: char) -> bool {
    is_space(c) && c != '\r' && c != '\n'
}

struct ParseError;

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn has_next(&self) -> bool {
        self.pos < self.text.len()
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        let len = self.rest().find(|c| !keep(c)).unwrap_or(self.rest().len());
        self.pos += len;
        &self.text[start..self.pos]
    }

    /// `[^\S\r\n]*(?:\r\n|\n|\r|$)`
    fn end_of_line(&mut self) -> Result<String, ParseError> {
        self.skip_while(is_inline_space);
        for end in ["\r\n", "\n", "\r"] {
            if self.rest().starts_with(end) {
                self.pos += end.len();
                return Ok(end.to_owned());
            }
        }
        if self.has_next() {
            Err(ParseError)
        } else {
            Ok(String::new())
        }
    }

    /// `[^\r\n]*(?:\r|\n|\r\n)?` — note python-dotenv tries `\r` before `\r\n`.
    fn rest_of_line(&mut self) {
        self.skip_while(|c| c != '\r' && c != '\n');
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }
}

fn parse_entry(reader: &mut Reader) -> Entry {
    let start = reader.pos;
    let binding = parse_binding(reader, start).unwrap_or_else(|ParseError| {
        reader.rest_of_line();
        None
    });
    Entry {
        text: reader.text[start..reader.pos].to_owned(),
        binding,
    }
}

fn parse_binding(reader: &mut Reader, start: usize) -> Result<Option<Binding>, ParseError> {
    reader.skip_while(is_space);
    if !reader.has_next() {
        return Ok(None);
    }
    skip_export(reader);
    let key_start = reader.pos - start;
    let key = parse_key(reader)?;
    reader.skip_while(is_inline_space);
    let mut comment = String::new();
    let value = if reader.peek() == Some('=') {
        reader.pos += 1;
        reader.skip_while(is_inline_space);
        let (value, unquoted_comment) = parse_value(reader)?;
        comment = unquoted_comment;
        Some(value)
    } else {
        None
    };
    comment.push_str(&parse_comment(reader));
    let line_end = reader.end_of_line()?;
    Ok(key.map(|key| Binding {
        key,
        value,
        key_start,
        comment,
        line_end,
    }))
}

/// `(?:export[^\S\r\n]+)?`
fn skip_export(reader: &mut Reader) {
    if let Some(after) = reader.rest().strip_prefix("export") {
        let spaces = after.len() - after.trim_start_matches(is_inline_space).len();
        if spaces > 0 {
            reader.pos += "export".len() + spaces;
        }
    }
}

/// `None` for a comment line; `'quoted'` or `[^=\#\s]+` otherwise.
fn parse_key(reader: &mut Reader) -> Result<Option<String>, ParseError> {
    match reader.peek() {
        Some('#') => Ok(None),
        Some('\'') => {
            let body = &reader.rest()[1..];
            let end = body.find('\'').filter(|&n| n > 0).ok_or(ParseError)?;
            let key = body[..end].to_owned();
            reader.pos += end + 2;
            Ok(Some(key))
        }
        _ => {
            let key = reader.skip_while(|c| c != '=' && c != '#' && !is_space(c));
            if key.is_empty() {
                Err(ParseError)
            } else {
                Ok(Some(key.to_owned()))
            }
        }
    }
}

/// The value, and for an unquoted one the inline comment it carried.
fn parse_value(reader: &mut Reader) -> Result<(String, String), ParseError> {
    match reader.peek() {
        Some(quote @ ('\'' | '"')) => {
            let body = quoted_body(reader, quote)?;
            Ok((decode_escapes(&body, quote), String::new()))
        }
        None | Some('\r' | '\n') => Ok((String::new(), String::new())),
        Some(_) => {
            let part = reader.skip_while(|c| c != '\r' && c != '\n');
            let (value, comment) = split_unquoted_comment(part);
            Ok((
                value.trim_end_matches(is_space).to_owned(),
                comment.to_owned(),
            ))
        }
    }
}

/// `'((?:\\'|[^'])*)'` (or with `"`), including the regex's backtracking:
/// with no plain closing quote, the last escaped quote closes the value.
fn quoted_body(reader: &mut Reader, quote: char) -> Result<String, ParseError> {
    let body_start = reader.pos + 1;
    let body = &reader.text[body_start..];
    let mut chars = body.char_indices().peekable();
    let mut last_escaped_quote = None;
    let mut close = None;
    while let Some((i, c)) = chars.next() {
        if c == '\\' && chars.peek().map(|&(_, next)| next) == Some(quote) {
            let (quote_at, _) = chars.next().ok_or(ParseError)?;
            last_escaped_quote = Some(quote_at);
        } else if c == quote {
            close = Some(i);
            break;
        }
    }
    let close = close.or(last_escaped_quote).ok_or(ParseError)?;
    reader.pos = body_start + close + quote.len_utf8();
    Ok(body[..close].to_owned())
}

/// python-dotenv: `re.sub(r"\s+#.*", "", part)`.
fn split_unquoted_comment(part: &str) -> (&str, &str) {
    for (i, c) in part.char_indices() {
        if is_space(c) && part[i..].trim_start_matches(is_space).starts_with('#') {
            return (&part[..i], &part[i..]);
        }
    }
    (part, "")
}

/// `(?:[^\S\r\n]*#[^\r\n]*)?`
fn parse_comment(reader: &mut Reader) -> String {
    let rest = reader.rest();
    let after_spaces = rest.trim_start_matches(is_inline_space);
    if !after_spaces.starts_with('#') {
        return String::new();
    }
    let len = rest.find(['\r', '\n']).unwrap_or(rest.len());
    reader.pos += len;
    rest[..len].to_owned()
}

/// python-dotenv decodes `\\[\\'"abfnrtv]` in double quotes and `\\[\\']`
/// in single quotes; every other backslash stays as it is.
fn decode_escapes(body: &str, quote: char) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        let decoded = match (c, chars.peek().copied()) {
            ('\\', Some(next)) => escape(next, quote),
            _ => None,
        };
        match decoded {
            Some(d) => {
                chars.next();
                out.push(d);
            }
            None => out.push(c),
        }
    }
    out
}

fn escape(next: char, quote: char) -> Option<char> {
    match (quote, next) {
        (_, '\\') => Some('\\'),
        (_, '\'') => Some('\''),
        ('"', '"') => Some('"'),
        ('"', 'a') => Some('\u{7}'),
        ('"', 'b') => Some('\u{8}'),
        ('"', 'f') => Some('\u{c}'),
        ('"', 'n') => Some('\n'),
        ('"', 'r') => Some('\r'),
        ('"', 't') => Some('\t'),
        ('"', 'v') => Some('\u{b}'),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
