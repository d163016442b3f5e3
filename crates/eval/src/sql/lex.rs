//! A small SQL lexer for the guards: it finds words, semicolons and parentheses outside string literals, quoted
//! identifiers and comments, following the lexical rules of SQLite or PostgreSQL ([`Dialect`]).
//!
//! It only has to agree with the server on what is code and what is not: PostgreSQL's nested `/* */` comments,
//! `E'...'` strings with backslash escapes, dollar-quoted strings (`$$...$$`, `$tag$...$tag$`) and `$1`
//! parameters; SQLite's `` `...` `` and `[...]` identifiers and flat comments. Text it cannot close (an
//! unterminated string or comment) runs to the end, where the server reports a syntax error.

use std::ops::Range;

/// Whose lexical rules to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: `'...'`, `"..."`, `` `...` ``, `[...]`; `/* */` comments do not nest.
    Sqlite,
    /// PostgreSQL (with `standard_conforming_strings` on, the default since 9.1): `'...'`, `E'...'`,
    /// `"..."`, `$tag$...$tag$`; `/* */` comments nest.
    Postgres,
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A bare word: keyword or unquoted identifier.
    Word,
    /// A string literal, quoted identifier or parameter.
    Quoted,
    /// `;`
    Semicolon,
    /// `(`
    Open,
    /// `)`
    Close,
    /// A number, operator or other punctuation.
    Other,
}

/// One token: its kind, its byte range in the text, and the parenthesis depth it is at.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: Kind,
    pub range: Range<usize>,
    pub depth: i32,
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn ident_char(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// The end of a quoted run that opened at `start` (the opening quote) and closes with `close`; a doubled
/// `close` is an escaped one, and with `backslash` a `\` escapes the next byte. The text's end when unclosed.
fn quoted_end(bytes: &[u8], start: usize, close: u8, doubled: bool, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if backslash && b == b'\\' {
            i += 2;
        } else if b == close {
            if doubled && bytes.get(i + 1) == Some(&close) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// The end of a comment starting at `start` (`/*`), nested when `nest`.
fn block_comment_end(bytes: &[u8], start: usize, nest: bool) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'/', Some(b'*')) if nest || depth == 0 => {
                depth += 1;
                i += 2;
            }
            (b'*', Some(b'/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The end of a PostgreSQL dollar-quoted string when one starts at `start` (`$tag$`), else `None`.
fn dollar_quote_end(sql: &str, start: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    let mut i = start + 1;
    if bytes.get(i).is_some_and(|&b| ident_start(b)) {
        i += 1;
        while bytes
            .get(i)
            .is_some_and(|&b| ident_start(b) || b.is_ascii_digit())
        {
            i += 1;
        }
    }
    if bytes.get(i) != Some(&b'$') {
        return None;
    }
    let tag = &sql[start..=i];
    let body = i + 1;
    Some(
        sql[body..]
            .find(tag)
            .map_or(sql.len(), |n| body + n + tag.len()),
    )
}

/// The tokens of `sql` under `dialect`'s rules (white space and comments left out).
pub(crate) fn tokens(sql: &str, dialect: Dialect) -> Vec<Token> {
    let pg = dialect == Dialect::Postgres;
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        let start = i;
        let kind = match b {
            b if b.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'-' if next == Some(b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
                continue;
            }
            b'/' if next == Some(b'*') => {
                i = block_comment_end(bytes, i, pg);
                continue;
            }
            b'\'' => {
                // An E'...' string: the `E` was lexed as a word just before, touching the quote.
                let escaped = pg
                    && out.last().is_some_and(|t: &Token| {
                        t.kind == Kind::Word
                            && t.range.end == i
                            && sql[t.range.clone()].eq_ignore_ascii_case("e")
                    });
                if escaped {
                    out.pop();
                }
                i = quoted_end(bytes, i, b'\'', true, escaped);
                Kind::Quoted
            }
            b'"' => {
                i = quoted_end(bytes, i, b'"', true, false);
                Kind::Quoted
            }
            b'`' if !pg => {
                i = quoted_end(bytes, i, b'`', true, false);
                Kind::Quoted
            }
            b'[' if !pg => {
                i = quoted_end(bytes, i, b']', false, false);
                Kind::Quoted
            }
            b'$' if pg => {
                if next.is_some_and(|d| d.is_ascii_digit()) {
                    i += 1;
                    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                    Kind::Quoted
                } else if let Some(end) = dollar_quote_end(sql, i) {
                    i = end;
                    Kind::Quoted
                } else {
                    i += 1;
                    Kind::Other
                }
            }
            // SQLite parameters: `?1`, `:name`, `@name`, `$name`.
            b'?' | b':' | b'@' | b'$' if !pg && next.is_some_and(ident_char) => {
                i += 1;
                while bytes.get(i).is_some_and(|&b| ident_char(b)) {
                    i += 1;
                }
                Kind::Quoted
            }
            b';' => {
                i += 1;
                Kind::Semicolon
            }
            b'(' => {
                i += 1;
                depth += 1;
                out.push(Token {
                    kind: Kind::Open,
                    range: start..i,
                    depth: depth - 1,
                });
                continue;
            }
            b')' => {
                i += 1;
                depth -= 1;
                Kind::Close
            }
            b if ident_start(b) => {
                while bytes.get(i).is_some_and(|&b| ident_char(b)) {
                    i += 1;
                }
                Kind::Word
            }
            // Numbers stop at letters, so `1into` still shows the word `into` (older servers read it so).
            b if b.is_ascii_digit() => {
                while bytes
                    .get(i)
                    .is_some_and(|&b| b.is_ascii_digit() || b == b'.' || b == b'_')
                {
                    i += 1;
                }
                Kind::Other
            }
            _ => {
                i += 1;
                Kind::Other
            }
        };
        out.push(Token {
            kind,
            range: start..i,
            depth,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(sql: &str, dialect: Dialect) -> Vec<&str> {
        tokens(sql, dialect)
            .into_iter()
            .filter(|t| t.kind == Kind::Word)
            .map(|t| &sql[t.range])
            .collect()
    }

    #[test]
    fn literals_and_comments_hide_words() {
        let pg = Dialect::Postgres;
        assert_eq!(
            words("SELECT 'a''delete' /* x /* y */ insert */ FROM t", pg),
            ["SELECT", "FROM", "t"]
        );
        // In SQLite the comment ends at the first `*/`.
        assert_eq!(
            words("SELECT /* x /* y */ insert */ 1", Dialect::Sqlite),
            ["SELECT", "insert"]
        );
        assert_eq!(
            words("SELECT $$ delete $$, $a$ x $$ insert $a$, $1 FROM t", pg),
            ["SELECT", "FROM", "t"]
        );
        // An escaped quote does not end an E'' string; it does end a standard one.
        assert_eq!(
            words(r"SELECT E'\' delete', '\' into", pg),
            ["SELECT", "into"]
        );
        // Identifiers may hold `$` (no dollar quote there); numbers stop at letters.
        assert_eq!(
            words("SELECT a$b$ c, 1into x", pg),
            ["SELECT", "a$b$", "c", "into", "x"]
        );
        assert_eq!(
            words(
                "SELECT [delete], `into`, \"update\" -- merge\n FROM t",
                Dialect::Sqlite
            ),
            ["SELECT", "FROM", "t"]
        );
        let t = tokens("(a;(b))", pg);
        let depths: Vec<(Kind, i32)> = t.iter().map(|t| (t.kind, t.depth)).collect();
        assert_eq!(
            depths,
            [
                (Kind::Open, 0),
                (Kind::Word, 1),
                (Kind::Semicolon, 1),
                (Kind::Open, 1),
                (Kind::Word, 2),
                (Kind::Close, 1),
                (Kind::Close, 0)
            ]
        );
    }
}
