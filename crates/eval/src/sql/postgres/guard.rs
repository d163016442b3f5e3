//! Statement kinds refused before they reach the server.
//!
//! The `READ ONLY` transaction already refuses writes; these statements would instead end or reshape the
//! transaction the guard relies on (`COMMIT`, `SET TRANSACTION`, `SET`/`RESET` of session settings), touch
//! the server's files or programs (`COPY ... TO PROGRAM`), or run code and other side channels (`DO`, `CALL`,
//! `NOTIFY`, `LOAD`), or maintain tables (`ANALYZE`, `VACUUM`, refused on SQLite too).

/// Leading keywords of refused statements.
pub const REFUSED_KEYWORDS: &[&str] = &[
    "ABORT",
    "ANALYZE",
    "BEGIN",
    "CALL",
    "CHECKPOINT",
    "COMMIT",
    "COPY",
    "DEALLOCATE",
    "DISCARD",
    "DO",
    "END",
    "EXECUTE",
    "LISTEN",
    "LOAD",
    "NOTIFY",
    "PREPARE",
    "RELEASE",
    "RESET",
    "ROLLBACK",
    "SAVEPOINT",
    "SET",
    "START",
    "UNLISTEN",
    "VACUUM",
];

/// The first keyword of `sql` in upper case, skipping white space, `--` comments, (nested) `/* */` comments and
/// opening parentheses, as PostgreSQL's lexer does; `None` when the text does not start with a word.
pub fn leading_keyword(sql: &str) -> Option<String> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    loop {
        match bytes.get(i)? {
            b if b.is_ascii_whitespace() || *b == b'(' => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while bytes.get(i).is_some_and(|&b| b != b'\n') {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                loop {
                    match (bytes.get(i)?, bytes.get(i + 1)) {
                        (b'/', Some(b'*')) => {
                            depth += 1;
                            i += 2;
                        }
                        (b'*', Some(b'/')) => {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => i += 1,
                    }
                }
            }
            b if b.is_ascii_alphabetic() || *b == b'_' => {
                let end = bytes[i..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                    .map_or(bytes.len(), |n| i + n);
                return Some(sql[i..end].to_ascii_uppercase());
            }
            _ => return None,
        }
    }
}

/// The refused keyword `sql` starts with, if any ([`REFUSED_KEYWORDS`]).
pub fn refused_statement(sql: &str) -> Option<String> {
    leading_keyword(sql).filter(|k| REFUSED_KEYWORDS.contains(&k.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_keyword_behind_comments_and_parentheses() {
        assert_eq!(leading_keyword("  select 1").as_deref(), Some("SELECT"));
        assert_eq!(
            leading_keyword("-- hi\n/* a /* nested */ still comment */ (commit)").as_deref(),
            Some("COMMIT")
        );
        assert_eq!(leading_keyword("/* never closed"), None);
        assert_eq!(leading_keyword("'x'"), None);
        assert_eq!(
            refused_statement("set transaction read write").as_deref(),
            Some("SET")
        );
        assert_eq!(refused_statement("END"), Some("END".into()));
        assert_eq!(
            refused_statement("COPY t TO PROGRAM 'x'"),
            Some("COPY".into())
        );
        assert_eq!(refused_statement("SELECT 1; COMMIT"), None);
        assert_eq!(refused_statement("settings"), None);
        assert_eq!(
            refused_statement("WITH x AS (SELECT 1) SELECT * FROM x"),
            None
        );
    }
}
