//! The verdict, shared by every back-end: run the gold query, run the prediction, compare.

use super::compare::{difference, equal_up_to_column_order, Row};
use super::guard::{has_any_order_by, has_top_level_order_by, remove_distinct};
use super::{Comparison, QueryFailure, SqlErrorType, SqlEvalError, SqlVerdict};

/// A database that runs one query at a time under its guards and returns normalized rows.
pub trait QueryRunner {
    /// Runs `sql`: `Ok(Ok(rows))` when it ran, `Ok(Err(failure))` when the query failed (a wrong prediction, or
    /// a broken gold query), `Err` when the database itself is unusable (the example cannot be judged).
    fn run_query(&mut self, sql: &str) -> Result<Result<Vec<Row>, QueryFailure>, SqlEvalError>;

    /// Names the database in messages: a file path, or a URL (password redacted) and schema.
    fn database(&self) -> String;
}

/// The official script's `postprocess`: join `> =`, `< =` and `! =`.
fn join_split_operators(sql: &str) -> String {
    sql.replace("> =", ">=")
        .replace("< =", "<=")
        .replace("! =", "!=")
}

/// Judges `predicted` against `gold` on `runner` under `comparison`. Errors only when the gold query fails or
/// the database is unusable.
pub fn evaluate(
    runner: &mut impl QueryRunner,
    comparison: Comparison,
    predicted: &str,
    gold: &str,
) -> Result<SqlVerdict, SqlEvalError> {
    let (predicted, gold) = match comparison {
        Comparison::Strict => (predicted.to_owned(), gold.to_owned()),
        Comparison::SpiderOfficial { keep_distinct } => {
            let (p, g) = (join_split_operators(predicted), join_split_operators(gold));
            if keep_distinct {
                (p, g)
            } else {
                (remove_distinct(&p), remove_distinct(&g))
            }
        }
    };
    let gold_rows = runner
        .run_query(&gold)?
        .map_err(|f| SqlEvalError::GoldFailed {
            database: runner.database(),
            query: gold.clone(),
            error_type: f.error_type,
            message: f.message,
        })?;
    let order_matters = match comparison {
        Comparison::Strict => has_top_level_order_by(&gold),
        Comparison::SpiderOfficial { .. } => has_any_order_by(&gold),
    };
    let mut verdict = SqlVerdict {
        correct: false,
        error_type: None,
        message: None,
        order_matters,
        predicted_rows: None,
        gold_rows: gold_rows.len(),
    };
    match runner.run_query(&predicted)? {
        Err(failure) => {
            verdict.error_type = Some(failure.error_type);
            verdict.message = Some(failure.message);
        }
        Ok(rows) => {
            verdict.predicted_rows = Some(rows.len());
            match mismatch(comparison, &rows, &gold_rows, order_matters) {
                None => verdict.correct = true,
                Some(message) => {
                    let empty = rows.is_empty() && !gold_rows.is_empty();
                    verdict.error_type = Some(if empty {
                        SqlErrorType::EmptyResult
                    } else {
                        SqlErrorType::WrongResult
                    });
                    verdict.message = Some(message);
                }
            }
        }
    }
    Ok(verdict)
}

/// How the results differ under `comparison`, or `None` when they match.
fn mismatch(
    comparison: Comparison,
    rows: &[Row],
    gold_rows: &[Row],
    order_matters: bool,
) -> Option<String> {
    match comparison {
        Comparison::Strict => difference(rows, gold_rows, order_matters),
        Comparison::SpiderOfficial { .. } => {
            (!equal_up_to_column_order(rows, gold_rows, order_matters)).then(|| {
                difference(rows, gold_rows, order_matters)
                    .unwrap_or_else(|| "no column permutation makes the results equal".into())
            })
        }
    }
}
