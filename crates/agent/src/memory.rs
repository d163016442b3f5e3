//! The conversation memory: the system message (always kept) and a window of the latest messages.
//!
//! Trimming drops the oldest messages until at most `window` are left, but never drops the current turn
//! (from its user message on) and never leaves tool results without the assistant message that called them.

use serde_json::{json, Value};

/// System message and message window.
#[derive(Debug, Clone)]
pub struct Memory {
    system: Option<String>,
    messages: Vec<Value>,
    window: usize,
}

fn role(m: &Value) -> &str {
    m["role"].as_str().unwrap_or_default()
}

impl Memory {
    /// Empty memory keeping `window` messages between turns, with an optional system prompt.
    pub fn new(system: Option<String>, window: usize) -> Self {
        Self {
            system,
            messages: Vec::new(),
            window,
        }
    }

    /// The messages after the system message, oldest first.
    pub fn messages(&self) -> &[Value] {
        &self.messages
    }

    /// Adds a message.
    pub fn push(&mut self, message: Value) {
        self.messages.push(message);
    }

    /// Starts a turn with the user's message: older messages are trimmed to the window first. Returns the
    /// index of the user message, which stays until the next turn.
    pub fn begin_turn(&mut self, user: &str) -> usize {
        self.messages.push(json!({"role": "user", "content": user}));
        let current = self.messages.len() - 1;
        self.trim(current)
    }

    /// Drops the oldest messages down to the window, keeping everything from index `keep_from`; returns where
    /// `keep_from` moved to.
    pub fn trim(&mut self, keep_from: usize) -> usize {
        let keep_from = keep_from.min(self.messages.len());
        let mut cut = self
            .messages
            .len()
            .saturating_sub(self.window)
            .min(keep_from);
        // Results whose call is cut would be orphans: drop them too.
        while cut < keep_from && role(&self.messages[cut]) == "tool" {
            cut += 1;
        }
        self.messages.drain(..cut);
        keep_from - cut
    }

    /// Keeps only the first `len` messages (undoes a failed turn).
    pub fn truncate(&mut self, len: usize) {
        self.messages.truncate(len);
    }

    /// Ends a turn: trims to the window.
    pub fn end_turn(&mut self) {
        self.trim(self.messages.len());
    }

    /// Forgets the conversation (not the system prompt).
    pub fn clear(&mut self) {
        self.messages.clear();
    }

    /// The system message followed by the kept messages, ready for the chat template; `extra` is appended
    /// to the system message (e.g. tool instructions for templates that ignore `tools`).
    pub fn prompt(&self, extra: Option<&str>) -> Vec<Value> {
        let system = match (&self.system, extra) {
            (Some(s), Some(e)) => Some(format!("{s}\n\n{e}")),
            (Some(s), None) => Some(s.clone()),
            (None, Some(e)) => Some(e.to_string()),
            (None, None) => None,
        };
        system
            .map(|s| json!({"role": "system", "content": s}))
            .into_iter()
            .chain(self.messages.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> Value {
        json!({"role": role, "content": content})
    }

    fn roles(m: &Memory) -> Vec<String> {
        m.messages()
            .iter()
            .map(|v| format!("{}:{}", role(v), v["content"].as_str().unwrap()))
            .collect()
    }

    #[test]
    fn window_keeps_the_latest_and_the_system_message() {
        let mut m = Memory::new(Some("sys".into()), 4);
        for i in 0..3 {
            m.begin_turn(&format!("q{i}"));
            m.push(msg("assistant", &format!("a{i}")));
            m.end_turn();
        }
        assert_eq!(
            roles(&m),
            ["user:q1", "assistant:a1", "user:q2", "assistant:a2"]
        );
        let p = m.prompt(None);
        assert_eq!(p[0], msg("system", "sys"));
        assert_eq!(p.len(), 5);
        assert_eq!(m.prompt(Some("tools"))[0]["content"], "sys\n\ntools");
    }

    #[test]
    fn tool_results_never_lose_their_call() {
        let mut m = Memory::new(None, 3);
        m.begin_turn("q0");
        m.push(
            json!({"role": "assistant", "content": "", "tool_calls": [{"id": "c1"}, {"id": "c2"}]}),
        );
        m.push(msg("tool", "r1"));
        m.push(msg("tool", "r2"));
        m.push(msg("assistant", "a0"));
        // Keeping 3 of [q0, call, r1, r2, a0, q1] would start at r2, an orphan: it goes too.
        let at = m.begin_turn("q1");
        assert_eq!(roles(&m), ["assistant:a0", "user:q1"]);
        assert_eq!(at, 1);
        assert_eq!(m.prompt(None).len(), 2);
    }

    #[test]
    fn the_current_turn_is_kept_whole() {
        let mut m = Memory::new(None, 2);
        m.begin_turn("old");
        m.push(msg("assistant", "old answer"));
        let at = m.begin_turn("q");
        for i in 0..3 {
            m.push(json!({"role": "assistant", "content": "", "tool_calls": [{"id": i}]}));
            m.push(msg("tool", "r"));
        }
        assert_eq!(m.trim(at), 0);
        assert_eq!(m.messages().len(), 7);
        assert_eq!(m.messages()[0], msg("user", "q"));
        m.clear();
        assert!(m.messages().is_empty());
        assert_eq!(m.prompt(None), Vec::<Value>::new());
    }
}
