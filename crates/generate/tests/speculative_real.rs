//! Speculative decoding on the real default models gives exactly the tokens
//! of plain greedy decoding (the verification pass computes every row as
//! single-token decoding does), on SQL prompts where drafts are accepted.

mod common;
use common::model_path;

use serde_json::json;
use tuneup_generate::{
    ChatModel, DraftModel, GenerateParams, Generator, NullSink, PromptLookup, SamplingParams,
    Speculation,
};
use tuneup_models::{LoadOptions, ModelFiles};

const SCHEMA: &str = "You write SQLite queries. Schema: CREATE TABLE users (id INTEGER PRIMARY KEY, \
name TEXT, email TEXT, created_at DATE); CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER \
REFERENCES users(id), amount REAL, ordered_at DATE);";

fn prompt(m: &ChatModel, question: &str) -> Vec<u32> {
    let messages = [
        json!({"role": "system", "content": SCHEMA}),
        json!({"role": "user", "content": question}),
    ];
    m.chat_prompt(&messages, None).unwrap().1
}

fn params(max_tokens: usize, speculation: Speculation) -> GenerateParams {
    GenerateParams {
        max_tokens,
        sampling: SamplingParams::greedy(),
        speculation,
        ..GenerateParams::default()
    }
}

fn check(var: &str, max_tokens: usize, n_questions: usize, with_draft_model: bool) {
    let Some(path) = model_path(var) else { return };
    let m = ChatModel::load(&ModelFiles::Gguf(path), &LoadOptions::default()).unwrap();
    let questions = [
        "Rewrite this query to also return each user's number of orders: SELECT users.name, \
         SUM(orders.amount) FROM users JOIN orders ON orders.user_id = users.id GROUP BY users.id;",
        "List the 10 users with the highest total order amount in the last 30 days, with their email.",
    ];
    let mut accepted = 0;
    for q in questions.into_iter().take(n_questions) {
        let ids = prompt(&m, q);
        let mut gen = Generator::new(&m.model.decoder, &m.tokenizer);
        let plain = gen
            .generate(
                &ids,
                &mut params(max_tokens, Speculation::Off),
                &mut NullSink,
            )
            .unwrap();
        let lookup = Speculation::PromptLookup(PromptLookup::default());
        let spec = Generator::new(&m.model.decoder, &m.tokenizer)
            .generate(&ids, &mut params(max_tokens, lookup), &mut NullSink)
            .unwrap();
        assert_eq!(
            plain.tokens, spec.tokens,
            "{var}: prompt lookup changed the output for {q:?}"
        );
        accepted += spec.stats.draft_accepted;
        if with_draft_model {
            let vocab = m.model.decoder.embedding().rows();
            let draft = DraftModel::new(m.model.decoder.clone(), vocab, 4).unwrap();
            let drafted = Generator::new(&m.model.decoder, &m.tokenizer)
                .generate(
                    &ids,
                    &mut params(max_tokens, Speculation::DraftModel(Box::new(draft))),
                    &mut NullSink,
                )
                .unwrap();
            assert_eq!(
                plain.tokens, drafted.tokens,
                "{var}: the draft model changed the output"
            );
            // The same weights as draft agree with themselves nearly
            // everywhere (the draft prefills the prompt in one batch, so a
            // near tie can still go the other way there).
            let (ok, tried) = (drafted.stats.draft_accepted, drafted.stats.draft_proposed);
            assert!(
                ok * 10 >= tried * 9,
                "{var}: self-draft accepted only {ok} of {tried}"
            );
        }
    }
    assert!(
        accepted > 0,
        "{var}: no draft was ever accepted, nothing was tested"
    );
}

#[test]
fn smollm2_speculative_equals_greedy() {
    // 128 tokens: without exact verification rows SmolLM2 diverges here.
    check("TUNEUP_SMOLLM2_GGUF", 128, 2, true);
}

#[test]
fn qwen25_coder_speculative_equals_greedy() {
    check("TUNEUP_QWEN_GGUF", 64, 1, false);
}
