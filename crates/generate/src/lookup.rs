//! Prompt-lookup drafting: propose the tokens that followed the most recent
//! earlier occurrence of the current n-gram. SQL and code answers copy
//! table names, columns and identifiers from the prompt, so drafts are often
//! accepted whole, and the model verifies several tokens per weight pass.

/// How drafts are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptLookup {
    /// Longest n-gram tried first.
    pub max_ngram: usize,
    /// Shortest n-gram tried.
    pub min_ngram: usize,
    /// Most tokens proposed at once.
    pub max_draft: usize,
}

impl Default for PromptLookup {
    fn default() -> Self {
        Self {
            max_ngram: 3,
            min_ngram: 1,
            max_draft: 10,
        }
    }
}

impl PromptLookup {
    /// Draft tokens continuing `context` (empty when nothing matches).
    pub fn propose(&self, context: &[u32]) -> Vec<u32> {
        let n_ctx = context.len();
        for n in (self.min_ngram.max(1)..=self.max_ngram).rev() {
            if n_ctx <= n {
                continue;
            }
            let tail = &context[n_ctx - n..];
            // Most recent earlier occurrence wins.
            for start in (0..n_ctx - n).rev() {
                if &context[start..start + n] == tail {
                    let from = start + n;
                    let to = (from + self.max_draft).min(n_ctx);
                    if to > from {
                        return context[from..to].to_vec();
                    }
                }
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_latest_match() {
        let l = PromptLookup {
            max_ngram: 2,
            min_ngram: 1,
            max_draft: 3,
        };
        // ... 5 6 [7 8 9] ... 5 6 -> propose 7 8 9
        assert_eq!(l.propose(&[1, 5, 6, 7, 8, 9, 2, 5, 6]), vec![7, 8, 9]);
        assert!(l.propose(&[1, 2, 3]).is_empty());
    }
}
