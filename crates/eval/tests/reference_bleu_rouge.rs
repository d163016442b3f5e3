//! BLEU against sacreBLEU and ROUGE against rouge-score, on `fixtures/eval/{bleu,rouge}.json`
//! (made by `scripts/fixtures/make_eval_text_fixtures.py`).

mod common;

use common::{assert_close, f, load_fixture, strings};
use serde_json::Value;
use tuneup_eval::bleu::{self, BleuScore};
use tuneup_eval::rouge::{self, RougeScores, RougeValue};

fn assert_bleu(actual: &BleuScore, expected: &Value, what: &str) {
    assert_close(
        actual.score,
        f(&expected["score"]),
        &format!("{what} score"),
    );
    assert_close(actual.bp, f(&expected["bp"]), &format!("{what} bp"));
    assert_eq!(
        actual.sys_len,
        expected["sys_len"].as_u64().unwrap(),
        "{what} sys_len"
    );
    assert_eq!(
        actual.ref_len,
        expected["ref_len"].as_u64().unwrap(),
        "{what} ref_len"
    );
    for n in 0..4 {
        assert_eq!(
            actual.counts[n],
            expected["counts"][n].as_u64().unwrap(),
            "{what} counts[{n}]"
        );
        assert_eq!(
            actual.totals[n],
            expected["totals"][n].as_u64().unwrap(),
            "{what} totals[{n}]"
        );
        assert_close(
            actual.precisions[n],
            f(&expected["precisions"][n]),
            &format!("{what} precisions[{n}]"),
        );
    }
}

#[test]
fn tokenizer_13a_matches_sacrebleu() {
    let fixture = load_fixture("bleu.json");
    for case in fixture["cases"].as_array().unwrap() {
        let hypothesis = case["hypothesis"].as_str().unwrap();
        let trimmed = hypothesis
            .trim_end_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c));
        assert_eq!(
            bleu::tokenize_13a(trimmed),
            case["tokenized_13a"][0].as_str().unwrap(),
            "{hypothesis:?}"
        );
    }
}

#[test]
fn sentence_bleu_matches_sacrebleu() {
    let fixture = load_fixture("bleu.json");
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 70);
    for case in cases {
        let hypothesis = case["hypothesis"].as_str().unwrap();
        let score = bleu::sentence_bleu(hypothesis, &strings(&case["references"])).unwrap();
        assert_bleu(
            &score,
            &case["sentence_bleu"],
            &format!("sentence_bleu({hypothesis:?})"),
        );
    }
}

#[test]
fn corpus_bleu_matches_sacrebleu() {
    let fixture = load_fixture("bleu.json");
    let cases = fixture["cases"].as_array().unwrap();
    let hypotheses: Vec<&str> = cases
        .iter()
        .map(|c| c["hypothesis"].as_str().unwrap())
        .collect();
    let references: Vec<Vec<String>> = cases.iter().map(|c| strings(&c["references"])).collect();
    let score = bleu::corpus_bleu(&hypotheses, &references).unwrap();
    assert_bleu(
        &score,
        &fixture["corpus"],
        "corpus_bleu(all, multi-reference)",
    );

    let start = fixture["real_text_start"].as_u64().unwrap() as usize;
    let single: Vec<Vec<String>> = references[start..]
        .iter()
        .map(|r| vec![r[0].clone()])
        .collect();
    let score = bleu::corpus_bleu(&hypotheses[start..], &single).unwrap();
    assert_bleu(
        &score,
        &fixture["corpus_single_reference_real_text"],
        "corpus_bleu(real text, single reference)",
    );
}

fn assert_rouge(actual: &RougeScores, expected: &Value, what: &str) {
    let pairs: [(&str, RougeValue); 3] = [
        ("rouge1", actual.rouge1),
        ("rouge2", actual.rouge2),
        ("rougeL", actual.rouge_l),
    ];
    for (name, value) in pairs {
        let reference = &expected[name];
        assert_close(
            value.precision,
            f(&reference["precision"]),
            &format!("{what} {name} precision"),
        );
        assert_close(
            value.recall,
            f(&reference["recall"]),
            &format!("{what} {name} recall"),
        );
        assert_close(
            value.fmeasure,
            f(&reference["fmeasure"]),
            &format!("{what} {name} fmeasure"),
        );
    }
}

#[test]
fn rouge_matches_rouge_score() {
    let fixture = load_fixture("rouge.json");
    let inputs = load_fixture("bleu.json");
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 70);
    for case in cases {
        let input = &inputs["cases"][case["case"].as_u64().unwrap() as usize];
        let targets = strings(&input["references"]);
        let prediction = input["hypothesis"].as_str().unwrap();
        let target = targets[0].as_str();
        assert_rouge(
            &rouge::score(target, prediction),
            &case["score"],
            &format!("score({target:?}, {prediction:?})"),
        );
        let multi = rouge::score_multi(&targets, prediction).unwrap();
        assert_rouge(
            &multi,
            &case["score_multi"],
            &format!("score_multi({prediction:?})"),
        );
    }
}
