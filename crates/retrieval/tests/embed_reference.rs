//! The embedder against sentence-transformers on the same weights
//! (fixture: `scripts/fixtures/make_retrieval_embeddings.py`).

mod common;

use tuneup_retrieval::embed::{Embedder, Pooling, Precision};

#[derive(serde::Deserialize)]
struct Fixture {
    max_seq_length: usize,
    items: Vec<Item>,
}

#[derive(serde::Deserialize)]
struct Item {
    text: String,
    embedding: Vec<f32>,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/retrieval/minilm_embeddings.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(dir) = common::minilm_dir() else {
        return;
    };
    let fixture = fixture();
    let texts: Vec<&str> = fixture.items.iter().map(|i| i.text.as_str()).collect();
    // (precision, least cosine, largest element difference): f32 is the reference arithmetic; Fast rounds the
    // projections' inputs to bf16 where the CPU has AVX512-BF16.
    for (precision, min_cos, max_diff) in [
        (Precision::F32, 0.99999, 5e-4),
        (Precision::Fast, 0.9999, 2e-3),
    ] {
        let embedder = Embedder::load_with(&dir, "all-minilm-l6-v2", precision)
            .unwrap()
            .with_batch_size(3);
        assert_eq!(embedder.dim(), 384);
        assert_eq!(embedder.max_tokens(), fixture.max_seq_length);
        assert_eq!(embedder.pooling(), Pooling::Mean);
        assert!(embedder.normalizes());
        assert!(precision == Precision::Fast || !embedder.uses_bf16());
        let got = embedder.embed(&texts).unwrap();
        for (item, vector) in fixture.items.iter().zip(&got) {
            let cos = common::cosine(vector, &item.embedding);
            let diff = vector
                .iter()
                .zip(&item.embedding)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                cos >= min_cos,
                "{precision:?} {:?}: cosine {cos}",
                item.text
            );
            assert!(
                diff < max_diff,
                "{precision:?} {:?}: max |diff| {diff}",
                item.text
            );
            let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
        }
        // Batching does not change a text's vector (texts are packed, not padded).
        let alone = embedder.embed(&[texts[0]]).unwrap();
        assert!(common::cosine(&alone[0], &got[0]) > 0.99999);
    }
}

#[test]
fn a_broken_model_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Embedder::load(dir.path(), "x").expect_err("empty folder must fail");
    assert!(err.to_string().contains("config.json"), "{err}");
    std::fs::write(dir.path().join("config.json"), "{\"hidden_size\": 4}").unwrap();
    let err = Embedder::load(dir.path(), "x").expect_err("no weights");
    assert!(err.to_string().contains("config"), "{err}");
}
