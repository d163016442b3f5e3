//! SQL result values and result-set comparison.

use std::collections::HashMap;

use rusqlite::types::ValueRef;

/// One value of a result row, normalized for comparison.
///
/// A REAL that holds an integral value in the `i64` range becomes [`CellValue::Integer`], so `1` and `1.0`
/// compare equal while `2^53 + 1` and `2^53 as f64` do not (the same rule as Python's `int == float`).
/// `-0.0` becomes `0`. TEXT is compared byte for byte; NULL equals NULL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum CellValue {
    /// SQL NULL.
    Null,
    /// An INTEGER, or a REAL with an integral value.
    Integer(i64),
    /// A non-integral REAL, by its bit pattern (SQLite never returns NaN).
    Real(u64),
    /// TEXT as raw bytes (SQLite does not guarantee UTF-8).
    Text(Vec<u8>),
    /// A BLOB.
    Blob(Vec<u8>),
}

/// Smallest power of two above `i64::MAX`; reals at or beyond ±2^63 are not converted to integers.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

impl CellValue {
    /// Normalizes a SQLite value.
    pub fn from_sqlite(value: ValueRef<'_>) -> Self {
        match value {
            ValueRef::Null => Self::Null,
            ValueRef::Integer(i) => Self::Integer(i),
            ValueRef::Real(r) => Self::from_real(r),
            ValueRef::Text(t) => Self::Text(t.to_vec()),
            ValueRef::Blob(b) => Self::Blob(b.to_vec()),
        }
    }

    /// Normalizes a float: an integral value in the `i64` range becomes [`CellValue::Integer`].
    pub fn from_real(r: f64) -> Self {
        if r.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&r) {
            Self::Integer(r as i64)
        } else {
            Self::Real(r.to_bits())
        }
    }

    /// The value as a float, if numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Integer(i) => Some(*i as f64),
            Self::Real(bits) => Some(f64::from_bits(*bits)),
            _ => None,
        }
    }
}

/// One result row.
pub type Row = Vec<CellValue>;

/// How two result sets differ, or `None` when they are equal.
///
/// Unordered comparison treats rows as a multiset (a row repeated twice must appear twice); ordered comparison
/// also requires the same sequence.
pub fn difference(predicted: &[Row], gold: &[Row], order_matters: bool) -> Option<String> {
    if predicted.len() != gold.len() {
        return Some(format!(
            "predicted {} rows, gold {} rows",
            predicted.len(),
            gold.len()
        ));
    }
    if let (Some(p), Some(g)) = (predicted.first(), gold.first()) {
        if p.len() != g.len() {
            return Some(format!(
                "predicted {} columns, gold {} columns",
                p.len(),
                g.len()
            ));
        }
    }
    if order_matters {
        return predicted
            .iter()
            .zip(gold)
            .position(|(p, g)| p != g)
            .map(|i| format!("row {i} differs (gold query orders its result)"));
    }
    let mut counts: HashMap<&Row, i64> = HashMap::new();
    for row in gold {
        *counts.entry(row).or_insert(0) += 1;
    }
    for row in predicted {
        *counts.entry(row).or_insert(0) -= 1;
    }
    let missing = counts.values().filter(|&&c| c > 0).sum::<i64>();
    (missing > 0)
        .then(|| format!("{missing} gold rows missing from the prediction (compared as multisets)"))
}

/// Most column assignments [`equal_up_to_column_order`] tries before giving up (answering "different").
const MAX_COLUMN_ASSIGNMENTS: usize = 100_000;

fn column_multiset(rows: &[Row], column: usize) -> Vec<&CellValue> {
    let mut values: Vec<&CellValue> = rows.iter().map(|r| &r[column]).collect();
    values.sort();
    values
}

/// Spider's official result equality (`result_eq` in test-suite-sql-eval): two empty results are equal whatever
/// their columns; otherwise the row and column counts must agree and some permutation of the predicted columns
/// must make the results equal (as sequences when `ordered`, else as multisets).
///
/// Columns are only paired when they hold the same multiset of values, which prunes the search; after
/// 100,000 candidate permutations the results count as different.
pub fn equal_up_to_column_order(predicted: &[Row], gold: &[Row], ordered: bool) -> bool {
    if predicted.is_empty() && gold.is_empty() {
        return true;
    }
    if predicted.len() != gold.len() || predicted[0].len() != gold[0].len() {
        return false;
    }
    let columns = gold[0].len();
    if predicted.iter().chain(gold).any(|row| row.len() != columns) {
        return false;
    }
    let gold_columns: Vec<_> = (0..columns).map(|c| column_multiset(gold, c)).collect();
    let predicted_columns: Vec<_> = (0..columns)
        .map(|c| column_multiset(predicted, c))
        .collect();
    let candidates: Vec<Vec<usize>> = gold_columns
        .iter()
        .map(|g| {
            (0..columns)
                .filter(|&p| &predicted_columns[p] == g)
                .collect()
        })
        .collect();
    let mut assignment = Vec::with_capacity(columns);
    let mut used = vec![false; columns];
    let mut budget = MAX_COLUMN_ASSIGNMENTS;
    search(
        predicted,
        gold,
        ordered,
        &candidates,
        &mut assignment,
        &mut used,
        &mut budget,
    )
}

fn search(
    predicted: &[Row],
    gold: &[Row],
    ordered: bool,
    candidates: &[Vec<usize>],
    assignment: &mut Vec<usize>,
    used: &mut [bool],
    budget: &mut usize,
) -> bool {
    let column = assignment.len();
    if column == candidates.len() {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let permuted: Vec<Row> = predicted
            .iter()
            .map(|row| assignment.iter().map(|&p| row[p].clone()).collect())
            .collect();
        return difference(&permuted, gold, ordered).is_none();
    }
    for &p in &candidates[column] {
        if used[p] {
            continue;
        }
        used[p] = true;
        assignment.push(p);
        let found = search(
            predicted, gold, ordered, candidates, assignment, used, budget,
        );
        assignment.pop();
        used[p] = false;
        if found {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use CellValue::*;

    #[test]
    fn numbers_normalize_like_python() {
        assert_eq!(CellValue::from_sqlite(ValueRef::Real(1.0)), Integer(1));
        assert_eq!(CellValue::from_sqlite(ValueRef::Real(-0.0)), Integer(0));
        assert_ne!(
            CellValue::from_sqlite(ValueRef::Real(9007199254740992.0)),
            Integer(9007199254740993)
        );
        assert_eq!(
            CellValue::from_sqlite(ValueRef::Real(0.5)),
            Real(0.5f64.to_bits())
        );
        assert_eq!(
            CellValue::from_sqlite(ValueRef::Real(1e300)),
            Real(1e300f64.to_bits())
        );
        assert_ne!(CellValue::from_sqlite(ValueRef::Text(b"1")), Integer(1));
    }

    #[test]
    fn multiset_and_ordered_comparison() {
        let a = vec![vec![Integer(1)], vec![Integer(2)], vec![Integer(2)]];
        let b = vec![vec![Integer(2)], vec![Integer(1)], vec![Integer(2)]];
        let c = vec![vec![Integer(1)], vec![Integer(1)], vec![Integer(2)]];
        assert_eq!(difference(&a, &b, false), None);
        assert!(difference(&a, &b, true).is_some());
        assert!(difference(&a, &c, false).is_some());
        assert!(difference(&a, &a[..2], false).unwrap().contains("3 rows"));
        assert_eq!(difference(&[vec![Null]], &[vec![Null]], true), None);
    }

    #[test]
    fn column_permutations_like_spider() {
        let gold = vec![
            vec![Integer(1), Text(b"a".to_vec())],
            vec![Integer(2), Text(b"b".to_vec())],
        ];
        let swapped = vec![
            vec![Text(b"b".to_vec()), Integer(2)],
            vec![Text(b"a".to_vec()), Integer(1)],
        ];
        assert!(equal_up_to_column_order(&swapped, &gold, false));
        assert!(!equal_up_to_column_order(&swapped, &gold, true));
        assert!(difference(&swapped, &gold, false).is_some());
        // Same column multisets but rows paired differently.
        let crossed = vec![
            vec![Integer(1), Text(b"b".to_vec())],
            vec![Integer(2), Text(b"a".to_vec())],
        ];
        assert!(!equal_up_to_column_order(&crossed, &gold, false));
        assert!(equal_up_to_column_order(&[], &[], true));
        assert!(!equal_up_to_column_order(&[vec![Null]], &[], false));
    }
}
