//! Render a value so that python-dotenv, Docker Compose's `env_file` and a
//! POSIX shell (`set -a; . ./.env`) all read back exactly that value. The
//! three disagree on escapes and on `$`, so the renderer picks the first form
//! that all of them read the same, and refuses a value that has none.

/// Characters that mean the same bare in all three readers: no quoting,
/// comment, expansion or word-splitting character among them.
fn is_bare_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_./:@+,%=-".contains(c)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("contains the control character U+{0:04X}, which a .env line cannot hold")]
    ControlCharacter(u32),
    #[error("contains `${{`, which python-dotenv expands as a variable in every kind of quoting")]
    VariableReference,
    #[error(
        "ends with a backslash, which Docker Compose or python-dotenv would read as escaping the closing quote"
    )]
    TrailingBackslash,
    #[error(
        "contains a single quote or a double backslash together with `$` or a backtick; \
         no quoting reads back the same in python-dotenv, Docker Compose and sh"
    )]
    NoCommonQuoting,
}

pub fn render_value(value: &str) -> Result<String, RenderError> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(RenderError::ControlCharacter(u32::from(c)));
    }
    if value.contains("${") {
        return Err(RenderError::VariableReference);
    }
    if value.ends_with('\\') {
        return Err(RenderError::TrailingBackslash);
    }
    if !value.is_empty() && value.chars().all(is_bare_char) {
        return Ok(value.to_owned());
    }
    if single_quotes_fit(value) {
        return Ok(format!("'{value}'"));
    }
    if double_quotes_fit(value) {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        return Ok(format!("\"{escaped}\""));
    }
    Err(RenderError::NoCommonQuoting)
}

/// Inside single quotes sh and Compose take every character literally, but
/// python-dotenv still reads `\\` and `\'` as escapes.
fn single_quotes_fit(value: &str) -> bool {
    !value.contains('\'') && !value.contains("\\\\")
}

/// Inside double quotes all three agree on `\\` and `\"`; sh alone would
/// expand `$` and backticks, which python-dotenv keeps.
fn double_quotes_fit(value: &str) -> bool {
    !value.contains('$') && !value.contains('`')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_values_stay_bare() {
        assert_eq!(
            render_value("https://openrouter.ai/api/v1").unwrap(),
            "https://openrouter.ai/api/v1"
        );
        assert_eq!(
            render_value("sk-or-v1-abc_DEF").unwrap(),
            "sk-or-v1-abc_DEF"
        );
        assert_eq!(render_value("1000.0").unwrap(), "1000.0");
    }

    #[test]
    fn spaces_and_specials_take_single_quotes() {
        assert_eq!(
            render_value("ABC Company Sp. z o.o.").unwrap(),
            "'ABC Company Sp. z o.o.'"
        );
        assert_eq!(render_value("Cost $5 #1").unwrap(), "'Cost $5 #1'");
        assert_eq!(render_value("Zürich").unwrap(), "'Zürich'");
        assert_eq!(
            render_value(r#"{"0":{"enable":true}}"#).unwrap(),
            r#"'{"0":{"enable":true}}'"#
        );
        assert_eq!(render_value("").unwrap(), "''");
    }

    #[test]
    fn single_quotes_and_double_backslashes_take_double_quotes() {
        assert_eq!(render_value("O'Brien").unwrap(), r#""O'Brien""#);
        assert_eq!(
            render_value(r#"O'Brien "Sons""#).unwrap(),
            r#""O'Brien \"Sons\"""#
        );
        assert_eq!(render_value(r"a\\b").unwrap(), r#""a\\\\b""#);
    }

    #[test]
    fn values_without_a_common_form_are_refused() {
        assert_eq!(
            render_value("O'Brien $5"),
            Err(RenderError::NoCommonQuoting)
        );
        assert_eq!(
            render_value("it's `cmd`"),
            Err(RenderError::NoCommonQuoting)
        );
        assert_eq!(
            render_value("a${HOME}"),
            Err(RenderError::VariableReference)
        );
        assert_eq!(render_value("a\nb"), Err(RenderError::ControlCharacter(10)));
        assert_eq!(
            render_value("a\u{1b}[31m"),
            Err(RenderError::ControlCharacter(0x1b))
        );
    }
}
