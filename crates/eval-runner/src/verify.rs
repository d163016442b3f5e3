//! Verification at inference time (`[verify]`): several candidate answers and a vote, and SQL repair rounds.
//!
//! Candidate 0 is greedy (temperature 0) and candidates 1.. are sampled at `verify.temperature` with seeds
//! `seed + i`. The vote uses only the model's own outputs and the example's database, never the gold answer or
//! the scoring tests:
//! - SQL: each query runs on the database the scorer uses (same read-only guard and limits); candidates are
//!   grouped by their result as a multiset of rows; queries that fail get no vote unless all fail.
//! - tool calls: the call list with names and arguments in canonical JSON (keys sorted).
//! - code: programs that at least run (compile, import) without the tests, by their normalised text.
//! - other outputs: the answer text.
//!
//! The largest group wins; ties go to the earliest candidate, and with no vote at all candidate 0 wins.
//! Repair (SQL): a query the database rejects is handed back with the error as a new user turn, and the model
//! answers again, up to `verify.repair_rounds` times per candidate; a query that returns no rows is no error.

use std::time::Duration;

use serde_json::{json, Value};
use tuneup_eval::sql::Row;

use crate::backend::{Backend, Completion};
use crate::dataset::Example;
use crate::extract::Answer;
use crate::prompt::Prompt;
use crate::score::Scorer;
use crate::task::{Generation, OutputKind, Task, Verify};

/// All generations of one example, added up: the cost of verification.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Requests made (candidates plus repair rounds).
    pub generations: usize,
    /// Prompt tokens, all requests.
    pub prompt_tokens: usize,
    /// Generated tokens, all requests.
    pub completion_tokens: usize,
    /// Time to the first token of the first request.
    pub ttft: Option<Duration>,
    /// Time of all requests.
    pub total: Duration,
    decode: Duration,
    decode_tokens: usize,
}

impl Usage {
    /// Adds one request.
    pub fn add(&mut self, c: &Completion) {
        self.generations += 1;
        self.prompt_tokens += c.prompt_tokens;
        self.completion_tokens += c.completion_tokens;
        self.ttft.get_or_insert(c.ttft);
        self.total += c.total;
        if c.completion_tokens > 1 {
            self.decode += c.total.saturating_sub(c.ttft);
            self.decode_tokens += c.completion_tokens - 1;
        }
    }

    /// Mean time per generated token after each request's first (`None` without such tokens).
    pub fn per_token(&self) -> Option<Duration> {
        (self.decode_tokens > 0).then(|| self.decode / self.decode_tokens as u32)
    }
}

/// The answer chosen for one example and what choosing it cost.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The chosen candidate's last reply (after its repairs), with the prompt it answered.
    pub completion: Completion,
    /// Its extracted answer.
    pub answer: Answer,
    /// Candidates that produced a reply.
    pub candidates: usize,
    /// Repair rounds used, all candidates together.
    pub repairs: usize,
    /// All requests added up.
    pub usage: Usage,
}

/// What running a candidate's query gave.
#[derive(Debug, Clone, PartialEq)]
enum Exec {
    /// Not run (not SQL, or no verification that needs it).
    NotRun,
    /// No query in the reply, or no database to run it on.
    NoQuery,
    /// The rows, sorted (a multiset).
    Rows(Vec<Row>),
    /// The database's error.
    Failed(String),
}

struct Candidate {
    completion: Completion,
    answer: Answer,
    exec: Exec,
}

/// Generates the answer of `e` for `prompt`: one plain request without `[verify]`, else candidates, repairs and
/// the vote. `answer_of` extracts an answer from a reply. `Err` only when the first request fails.
pub fn generate(
    task: &Task,
    e: &Example,
    prompt: &Prompt,
    generation: &Generation,
    backend: &mut dyn Backend,
    scorer: &mut Scorer,
    answer_of: &dyn Fn(&str) -> Answer,
) -> Result<Verified, String> {
    let spec = task.verify.clone().unwrap_or_default();
    let n = spec.candidates.max(1);
    let sql = task.prompt.output == OutputKind::Sql;
    let rounds = if sql { spec.repair_rounds } else { 0 };
    let ctx = Attempt {
        e,
        prompt,
        rounds,
        run_queries: sql && (rounds > 0 || n > 1),
        dialect: if task.dataset.db_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        answer_of,
    };
    let mut usage = Usage::default();
    let (mut candidates, mut repairs) = (Vec::with_capacity(n), 0);
    for i in 0..n {
        let g = candidate_generation(generation, &spec, i, n);
        match ctx.run(&g, backend, scorer, &mut usage) {
            Ok((c, used)) => {
                repairs += used;
                candidates.push(c);
            }
            Err(msg) if i == 0 => return Err(msg),
            // A sampled candidate whose request failed gets no vote.
            Err(_) => {}
        }
    }
    let keys = vote_keys(task, e, &candidates, scorer);
    let pick = majority(&keys);
    let count = candidates.len();
    let chosen = candidates.swap_remove(pick);
    Ok(Verified {
        completion: chosen.completion,
        answer: chosen.answer,
        candidates: count,
        repairs,
        usage,
    })
}

/// Generation settings of candidate `i` of `n`: the task's own with one candidate; else candidate 0 greedy and
/// the others at `verify.temperature`, each with seed `seed + i`.
pub fn candidate_generation(base: &Generation, spec: &Verify, i: usize, n: usize) -> Generation {
    if n < 2 {
        return base.clone();
    }
    Generation {
        temperature: if i == 0 { 0.0 } else { spec.temperature },
        seed: base.seed.wrapping_add(i as u64),
        ..base.clone()
    }
}

/// The user turn that hands a database error back to the model.
pub fn repair_message(error: &str, dialect: &str) -> String {
    format!("That query failed on the database: {error}. Write a corrected {dialect} query.")
}

struct Attempt<'a> {
    e: &'a Example,
    prompt: &'a Prompt,
    rounds: usize,
    run_queries: bool,
    dialect: &'static str,
    answer_of: &'a dyn Fn(&str) -> Answer,
}

impl Attempt<'_> {
    /// One candidate with its repair rounds; returns it and the rounds used.
    fn run(
        &self,
        g: &Generation,
        backend: &mut dyn Backend,
        scorer: &mut Scorer,
        usage: &mut Usage,
    ) -> Result<(Candidate, usize), String> {
        let mut prompt = self.prompt.clone();
        let mut c = backend.complete(&prompt, g)?;
        usage.add(&c);
        let mut answer = (self.answer_of)(&c.text);
        let mut exec = self.execute(scorer, &answer);
        let mut used = 0;
        while used < self.rounds {
            let Exec::Failed(error) = &exec else {
                break;
            };
            prompt
                .messages
                .push(json!({"role": "assistant", "content": c.text}));
            prompt.messages.push(
                json!({"role": "user", "content": repair_message(error.trim_end_matches('.'), self.dialect)}),
            );
            // A failed repair request keeps the last reply.
            let Ok(next) = backend.complete(&prompt, g) else {
                break;
            };
            usage.add(&next);
            used += 1;
            c = next;
            answer = (self.answer_of)(&c.text);
            exec = self.execute(scorer, &answer);
        }
        Ok((
            Candidate {
                completion: c,
                answer,
                exec,
            },
            used,
        ))
    }

    fn execute(&self, scorer: &mut Scorer, answer: &Answer) -> Exec {
        if !self.run_queries {
            return Exec::NotRun;
        }
        let Answer::Text(sql) = answer else {
            return Exec::NoQuery;
        };
        if sql.trim().is_empty() {
            return Exec::NoQuery;
        }
        match scorer.run_sql(self.e, sql) {
            Some(Ok(mut rows)) => {
                rows.sort();
                Exec::Rows(rows)
            }
            Some(Err(message)) => Exec::Failed(message),
            None => Exec::NoQuery,
        }
    }
}

/// Each candidate's vote (`None`: no vote), by output kind; see the module documentation.
fn vote_keys(
    task: &Task,
    e: &Example,
    candidates: &[Candidate],
    scorer: &Scorer,
) -> Vec<Option<String>> {
    if candidates.len() < 2 {
        return vec![None; candidates.len()];
    }
    candidates
        .iter()
        .map(|c| match (task.prompt.output, &c.answer) {
            (OutputKind::Sql, _) => match &c.exec {
                Exec::Rows(rows) => serde_json::to_string(rows).ok(),
                _ => None,
            },
            (OutputKind::ToolCalls, Answer::Calls(calls)) => {
                let list: Vec<Value> = calls
                    .iter()
                    .map(|f| json!({"name": f.name, "arguments": Value::Object(f.arguments.clone())}))
                    .collect();
                Some(canonical_json(&Value::Array(list)))
            }
            (OutputKind::Code, Answer::Text(code)) => scorer
                .program_runs(e, code)
                .unwrap_or(true)
                .then(|| normalize_code(code)),
            (_, Answer::None) => None,
            (_, a) => Some(a.text().trim().to_owned()),
        })
        .collect()
}

/// The index of the first member of the largest group of equal keys (earliest on ties); 0 when no key is set.
pub fn majority(keys: &[Option<String>]) -> usize {
    let mut best: Option<(usize, usize)> = None;
    for (i, key) in keys.iter().enumerate() {
        let Some(k) = key else { continue };
        let count = keys.iter().filter(|x| x.as_ref() == Some(k)).count();
        if best.is_none_or(|(c, _)| count > c) {
            best = Some((count, i));
        }
    }
    best.map_or(0, |(_, i)| i)
}

/// JSON text with every object's keys sorted, so equal calls compare equal whatever their key order.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

/// Program text for voting: trailing spaces, blank lines and whole-line comments (`#`, `//`) dropped.
pub fn normalize_code(code: &str) -> String {
    code.lines()
        .map(str::trim_end)
        .filter(|l| {
            let t = l.trim_start();
            !(t.is_empty() || t.starts_with('#') || t.starts_with("//"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_prefers_the_largest_group_then_the_earliest() {
        let k = |s: &str| Some(s.to_owned());
        assert_eq!(majority(&[k("a"), k("b"), k("b")]), 1);
        assert_eq!(majority(&[k("a"), k("b"), k("a"), k("b")]), 0);
        assert_eq!(majority(&[None, k("b"), None]), 1);
        assert_eq!(majority(&[None, None]), 0);
        assert_eq!(majority(&[]), 0);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a =
            json!({"name": "f", "arguments": {"y": 1, "x": {"b": 2, "a": [ {"d": 1, "c": 2} ]}}});
        let b =
            json!({"arguments": {"x": {"a": [ {"c": 2, "d": 1} ], "b": 2}, "y": 1}, "name": "f"});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_ne!(canonical_json(&a), canonical_json(&json!({"name": "f"})));
    }

    #[test]
    fn code_normalisation_ignores_comments_and_blank_lines() {
        let a = "def f(x):\n    # add one\n    return x + 1   \n\n";
        let b = "def f(x):\n    return x + 1";
        assert_eq!(normalize_code(a), normalize_code(b));
        assert_ne!(
            normalize_code(b),
            normalize_code("def f(x):\n    return x + 2")
        );
    }

    #[test]
    fn candidate_zero_is_greedy_and_the_others_sample_with_their_own_seeds() {
        let base = Generation {
            temperature: 0.3,
            seed: 10,
            ..Generation::default()
        };
        let spec = Verify {
            candidates: 3,
            temperature: 0.9,
            repair_rounds: 0,
        };
        let g0 = candidate_generation(&base, &spec, 0, 3);
        let g2 = candidate_generation(&base, &spec, 2, 3);
        assert_eq!((g0.temperature, g0.seed), (0.0, 10));
        assert_eq!((g2.temperature, g2.seed), (0.9, 12));
        let only = candidate_generation(&base, &spec, 0, 1);
        assert_eq!((only.temperature, only.seed), (0.3, 10));
    }
}
