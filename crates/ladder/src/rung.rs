//! The rungs, in climbing order, and which apply to a task.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tuneup_eval_runner::task::OutputKind;

/// One rung of the tuning ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RungKind {
    /// The reference model or endpoint: the bar, measured on the same test split (not a rung to climb).
    Reference,
    /// The task's own prompt, zero-shot.
    Baseline,
    /// Role prompt, few-shot (fixed and similar), chain of thought, schema renderings, constrained JSON.
    Prompting,
    /// Context retrieved from the task's `rag` index.
    Retrieval,
    /// Several candidates voted by executed result / agreement, and execution-feedback repair.
    Verification,
    /// LoRA (QLoRA on a quantized base) on the train split, checkpoint chosen by the validation metric.
    Lora,
    /// Full fine-tuning, where the model is small enough.
    Full,
}

impl RungKind {
    /// Every rung, in climbing order.
    pub const ALL: [RungKind; 7] = [
        RungKind::Reference,
        RungKind::Baseline,
        RungKind::Prompting,
        RungKind::Retrieval,
        RungKind::Verification,
        RungKind::Lora,
        RungKind::Full,
    ];

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reference => "reference",
            Self::Baseline => "baseline",
            Self::Prompting => "prompting",
            Self::Retrieval => "retrieval",
            Self::Verification => "verification",
            Self::Lora => "lora",
            Self::Full => "full",
        }
    }

    /// Whether this rung trains weights.
    pub fn trains(self) -> bool {
        matches!(self, Self::Lora | Self::Full)
    }

    /// Why this rung does not apply to a task with this output kind, or `None` when it does.
    pub fn not_applicable(
        self,
        output: OutputKind,
        has_corpus: bool,
        has_reference: bool,
    ) -> Option<String> {
        match self {
            Self::Reference if !has_reference => Some("no [reference] model or endpoint".into()),
            Self::Retrieval if !has_corpus => {
                Some("the task names no corpus ([retrieval] index in the ladder file)".into())
            }
            Self::Verification
                if !matches!(
                    output,
                    OutputKind::Sql | OutputKind::ToolCalls | OutputKind::Code
                ) =>
            {
                Some(format!(
                    "no verifier for {output:?} answers (SQL, tool calls and code have one)"
                ))
            }
            _ => None,
        }
    }
}

impl fmt::Display for RungKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RungKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|r| r.name()).collect();
                format!("unknown rung {s:?} (one of {})", names.join(", "))
            })
    }
}

/// Parses `a,b,c` into rungs.
pub fn parse_list(s: &str) -> Result<Vec<RungKind>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in RungKind::ALL {
            assert_eq!(r.name().parse::<RungKind>(), Ok(r));
        }
        assert!("lorra"
            .parse::<RungKind>()
            .unwrap_err()
            .contains("one of reference"));
        assert_eq!(
            parse_list("baseline, lora").unwrap(),
            vec![RungKind::Baseline, RungKind::Lora]
        );
    }

    #[test]
    fn rungs_say_why_they_do_not_apply() {
        assert!(RungKind::Retrieval
            .not_applicable(OutputKind::Sql, false, false)
            .is_some());
        assert!(RungKind::Verification
            .not_applicable(OutputKind::Text, false, false)
            .is_some());
        assert!(RungKind::Verification
            .not_applicable(OutputKind::Sql, false, false)
            .is_none());
    }
}
