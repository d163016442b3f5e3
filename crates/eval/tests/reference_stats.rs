//! Percentiles against numpy and McNemar p-values against scipy on `fixtures/eval/stats.json` (made by
//! `scripts/fixtures/make_eval_stats_fixtures.py`), and pass@k against openai/human-eval's estimator on
//! `fixtures/eval/pass_at_k.json` (made by `scripts/fixtures/make_eval_pass_at_k_fixtures.py`).

mod common;

use common::{assert_close, f, load_fixture};
use tuneup_eval::stats;

#[test]
fn percentiles_and_mean_match_numpy() {
    let fixture = load_fixture("stats.json");
    let mut checked = 0;
    for case in fixture["percentiles"].as_array().unwrap() {
        let values: Vec<f64> = case["values"].as_array().unwrap().iter().map(f).collect();
        for (q, expected) in case["q"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["expected"].as_array().unwrap())
        {
            let actual = stats::percentile(&values, f(q)).unwrap();
            assert_eq!(
                actual,
                f(expected),
                "percentile {q} of {} values",
                values.len()
            );
            checked += 1;
        }
        assert_close(stats::mean(&values).unwrap(), f(&case["mean"]), "mean");
    }
    assert!(checked >= 90);
}

#[test]
fn mcnemar_matches_scipy_binomtest() {
    let fixture = load_fixture("stats.json");
    for case in fixture["mcnemar"].as_array().unwrap() {
        let (a_only, b_only) = (
            case["a_only"].as_u64().unwrap(),
            case["b_only"].as_u64().unwrap(),
        );
        // Build per-example correctness with exactly these discordant counts plus some concordant pairs.
        let mut a = vec![true; 5];
        let mut b = vec![true; 5];
        a.extend(std::iter::repeat_n(true, a_only as usize));
        b.extend(std::iter::repeat_n(false, a_only as usize));
        a.extend(std::iter::repeat_n(false, b_only as usize + 3));
        b.extend(std::iter::repeat_n(true, b_only as usize));
        b.extend(std::iter::repeat_n(false, 3));
        let result = stats::mcnemar_exact(&a, &b).unwrap();
        assert_eq!((result.a_only, result.b_only), (a_only, b_only));
        assert_close(
            result.p_value / f(&case["p_value"]),
            1.0,
            &format!("McNemar p for ({a_only}, {b_only})"),
        );
    }
}

#[test]
fn pass_at_k_matches_the_human_eval_estimator() {
    let fixture = load_fixture("pass_at_k.json");
    for case in fixture["cases"].as_array().unwrap() {
        let [n, c, k] = ["n", "c", "k"].map(|key| case[key].as_u64().unwrap() as usize);
        let got = tuneup_eval::code::pass_at_k(n, c, k).unwrap();
        assert_close(
            got,
            f(&case["human_eval"]),
            &format!("pass@{k} n={n} c={c}"),
        );
        assert!((got - f(&case["exact"])).abs() < 1e-12, "n={n} c={c} k={k}");
    }
    assert_eq!(tuneup_eval::code::pass_at_k(3, 1, 4), None);
    assert_eq!(tuneup_eval::code::pass_at_k(3, 1, 0), None);
}
