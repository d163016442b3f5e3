//! Answering one input at a time the way a task's evaluation answers its examples: the same prompt (system,
//! template, schema rendering, few-shot examples, retrieval, chain of thought), the same generation settings and
//! the same verification (candidates and vote, SQL repair on the task's database). `tuneup serve --ladder` uses
//! it to serve exactly the configuration a ladder measured.

use serde_json::{Map, Value};

use crate::backend::Backend;
use crate::dataset::Example;
use crate::error::Result;
use crate::prompt::PromptBuilder;
use crate::runner::{answer_of, with_prepared};
use crate::score::Scorer;
use crate::task::Task;
use crate::verify::Usage;

/// One input to answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Question {
    /// The model input (the text the task's `dataset.input` field holds: a question, a problem).
    pub input: String,
    /// The database it is about (tasks over several databases); `None`: the task's only database.
    pub db_id: Option<String>,
    /// Functions offered, for tool-calling tasks.
    pub tools: Option<Vec<Value>>,
}

/// The chosen reply and what choosing it cost.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The chosen reply, as the model wrote it.
    pub text: String,
    /// The answer extracted from it (the SQL, the program, the calls), `Null` when none was found.
    pub answer: Value,
    /// The prompt as the model saw it.
    pub prompt_text: String,
    /// `stop` or `length`, of the chosen reply.
    pub finish_reason: String,
    /// Candidates that produced a reply.
    pub candidates: usize,
    /// Repair rounds used.
    pub repairs: usize,
    /// All requests added up (prompt and generated tokens, time).
    pub usage: Usage,
}

/// Answers questions for one task (see [`with_answerer`]).
pub struct Answerer<'a> {
    task: &'a Task,
    builder: &'a PromptBuilder<'a>,
    scorer: Scorer,
    default_db: Option<String>,
    asked: usize,
}

/// Loads what `task`'s prompts need (few-shot pool, retriever, schemas, the database for verification) once and
/// calls `f` with an [`Answerer`] over it.
pub fn with_answerer<T>(task: &Task, f: impl FnOnce(&mut Answerer<'_>) -> Result<T>) -> Result<T> {
    with_prepared(task, |examples, builder| {
        let mut answerer = Answerer {
            task,
            builder,
            scorer: Scorer::new(task)?,
            default_db: only_database(task, examples),
            asked: 0,
        };
        f(&mut answerer)
    })
}

/// The one database every example of the task's data names, if there is exactly one.
fn only_database(task: &Task, examples: &[Example]) -> Option<String> {
    task.dataset.db_id.as_ref()?;
    let mut ids = examples.iter().filter_map(|e| e.db_id.as_deref());
    let first = ids.next()?;
    ids.all(|d| d == first).then(|| first.to_owned())
}

impl Answerer<'_> {
    /// The database a question without one is asked about (`None`: the task has several, or none).
    pub fn default_database(&self) -> Option<&str> {
        self.default_db.as_deref()
    }

    /// Answers `q` with `backend`: prompt, generation and verification as the task's evaluation does them.
    /// `Err` when the prompt cannot be built (e.g. an unknown database) or the model request fails.
    pub fn answer(
        &mut self,
        q: &Question,
        backend: &mut dyn Backend,
    ) -> std::result::Result<Answered, String> {
        let db_id = q.db_id.clone().or_else(|| self.default_db.clone());
        if self.task.dataset.db_id.is_some() && db_id.is_none() {
            return Err(
                "this task has several databases: name one (`metadata.db_id` in the request)"
                    .into(),
            );
        }
        let mut record = Map::new();
        record.insert(
            self.task.dataset.input.clone(),
            Value::String(q.input.clone()),
        );
        self.asked += 1;
        let e = Example {
            id: format!("request-{}", self.asked),
            index: self.asked,
            input: q.input.clone(),
            target: None,
            category: None,
            db_id,
            tools: q.tools.clone(),
            record,
        };
        let prompt = self.builder.build(&e).map_err(|err| err.to_string())?;
        let task = self.task;
        let extract = |text: &str| answer_of(task, &e, text);
        let v = crate::verify::generate(
            task,
            &e,
            &prompt,
            &task.generation,
            backend,
            &mut self.scorer,
            &extract,
        )?;
        Ok(Answered {
            answer: if v.answer == crate::extract::Answer::None {
                Value::Null
            } else {
                v.answer.to_json()
            },
            text: v.completion.text,
            prompt_text: v.completion.prompt_text,
            finish_reason: v.completion.finish_reason,
            candidates: v.candidates,
            repairs: v.repairs,
            usage: v.usage,
        })
    }
}
