//! Command-line overrides of task options (`--limit`, `--model`, `--endpoint`, `--shots`, ...).

use crate::task::{Selection, Task};

/// Command-line overrides of task options.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--limit`.
    pub limit: Option<usize>,
    /// `--model`.
    pub model: Option<String>,
    /// `--endpoint`.
    pub endpoint: Option<String>,
    /// `--api-model` (name sent to the endpoint).
    pub api_model: Option<String>,
    /// `--shots K` (0 removes few-shot).
    pub shots: Option<usize>,
    /// `--select`.
    pub select: Option<Selection>,
    /// `--cot`.
    pub chain_of_thought: Option<bool>,
    /// `--max-tokens`.
    pub max_tokens: Option<usize>,
    /// `--temperature`.
    pub temperature: Option<f32>,
    /// `--seed` (generation).
    pub seed: Option<u64>,
    /// `--threads`.
    pub threads: Option<usize>,
    /// `--system TEXT` (role/system prompt; empty removes it).
    pub system: Option<String>,
    /// `--samples` (completions per example).
    pub samples: Option<usize>,
    /// `--adapter`.
    pub adapter: Option<std::path::PathBuf>,
    /// `--gpu` (only turns the GPU on; a task's `gpu = true` stays).
    pub gpu: bool,
}

impl Task {
    /// Applies command-line overrides.
    pub fn apply(&mut self, o: &Overrides) {
        if o.limit.is_some() {
            self.dataset.limit = o.limit;
        }
        if let Some(m) = &o.model {
            self.model.name = Some(m.clone());
        }
        if let Some(a) = &o.adapter {
            self.model.adapter = Some(a.clone());
        }
        if let Some(e) = &o.endpoint {
            self.model.endpoint = Some(e.clone());
        }
        if let Some(m) = &o.api_model {
            self.model.model = Some(m.clone());
        }
        match (o.shots, &mut self.prompt.few_shot) {
            (Some(0), fs) => *fs = None,
            (Some(k), Some(fs)) => fs.k = k,
            _ => {}
        }
        if let (Some(s), Some(fs)) = (o.select, &mut self.prompt.few_shot) {
            fs.select = s;
        }
        if let Some(c) = o.chain_of_thought {
            self.prompt.chain_of_thought = c;
        }
        if let Some(n) = o.max_tokens {
            self.generation.max_tokens = n;
        }
        if let Some(t) = o.temperature {
            self.generation.temperature = t;
        }
        if let Some(s) = o.seed {
            self.generation.seed = s;
        }
        if let Some(text) = &o.system {
            self.prompt.system = (!text.is_empty()).then(|| text.clone());
        }
        if let Some(n) = o.samples {
            self.generation.samples = n;
        }
        if o.threads.is_some() {
            self.model.threads = o.threads;
        }
        if o.gpu {
            self.model.gpu = true;
        }
    }
}
