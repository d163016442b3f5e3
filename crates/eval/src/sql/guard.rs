//! Read-only guard for model-written SQL: the authorizer policy and query-shape helpers.

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// PRAGMAs that only read schema information; allowed with or without an argument. All other PRAGMAs are refused.
pub const READ_ONLY_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "database_list",
    "collation_list",
    "function_list",
];

/// The authorizer policy: allow reads (SELECT, column reads, functions, recursive CTEs, transactions and
/// savepoints, schema-reading PRAGMAs); deny everything that could write or reach other files (INSERT, UPDATE,
/// DELETE, CREATE, DROP, ALTER, REINDEX, ANALYZE, ATTACH, DETACH, virtual tables, other PRAGMAs).
pub fn authorize(context: AuthContext<'_>) -> Authorization {
    match context.action {
        AuthAction::Select
        | AuthAction::Read { .. }
        | AuthAction::Function { .. }
        | AuthAction::Recursive
        | AuthAction::Transaction { .. }
        | AuthAction::Savepoint { .. } => Authorization::Allow,
        AuthAction::Pragma { pragma_name, .. } => {
            if READ_ONLY_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(pragma_name))
            {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        _ => Authorization::Deny,
    }
}

/// Splits SQL into upper-cased words outside string literals, quoted identifiers and comments, each with its
/// parenthesis depth. Punctuation other than parentheses is dropped.
fn words_with_depth(sql: &str) -> Vec<(String, i32)> {
    let chars: Vec<char> = sql.chars().collect();
    let mut words = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                i += 1;
                while i < chars.len() {
                    if chars[i] == close {
                        // A doubled quote is an escaped quote inside the literal.
                        if close != ']' && chars.get(i + 1) == Some(&close) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            '(' => {
                depth += 1;
                i += 1;
            }
            ')' => {
                depth -= 1;
                i += 1;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                }
                words.push((
                    chars[start..i].iter().collect::<String>().to_uppercase(),
                    depth,
                ));
            }
            _ => i += 1,
        }
    }
    words
}

/// `true` when the statement has an `ORDER BY` outside all parentheses (so it orders the final result), ignoring
/// string literals, quoted identifiers and comments.
pub fn has_top_level_order_by(sql: &str) -> bool {
    let words = words_with_depth(sql);
    words
        .windows(2)
        .any(|w| w[0].1 == 0 && w[1].1 == 0 && w[0].0 == "ORDER" && w[1].0 == "BY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_detection_is_top_level_only() {
        assert!(has_top_level_order_by("SELECT a FROM t ORDER BY a"));
        assert!(has_top_level_order_by(
            "select a from t order\n  by a desc limit 3"
        ));
        assert!(has_top_level_order_by(
            "SELECT a FROM t UNION SELECT b FROM u ORDER BY 1"
        ));
        assert!(!has_top_level_order_by(
            "SELECT a FROM t WHERE b IN (SELECT b FROM u ORDER BY c LIMIT 1)"
        ));
        assert!(!has_top_level_order_by("SELECT 'order by' FROM t"));
        assert!(!has_top_level_order_by(
            "SELECT \"order\" , by FROM t -- order by a"
        ));
        assert!(!has_top_level_order_by("SELECT a /* ORDER BY a */ FROM t"));
        assert!(!has_top_level_order_by("SELECT reorder_by FROM t"));
    }
}
