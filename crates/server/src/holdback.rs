//! Streaming with tools: text that may be a tool call is held back until the
//! end, when it is parsed; everything before it streams as usual.

/// Decides which streamed text is safe to send now.
#[derive(Debug, Default)]
pub struct HoldBack {
    active: bool,
    buf: String,
    held: bool,
    emitted_any: bool,
}

const MARKERS: [&str; 2] = ["<tool_call>", "```"];

impl HoldBack {
    /// A filter; inactive (passes everything) when no tools are in play.
    pub fn new(active: bool) -> Self {
        Self {
            active,
            ..Self::default()
        }
    }

    /// Takes a piece of generated text and returns what may be sent now.
    pub fn push(&mut self, piece: &str) -> String {
        if !self.active {
            return piece.to_string();
        }
        self.buf.push_str(piece);
        if self.held {
            return String::new();
        }
        if !self.emitted_any {
            let t = self.buf.trim_start();
            if t.is_empty() {
                return String::new();
            }
            // A bare JSON answer may be a call: hold all of it.
            if t.starts_with('{') || t.starts_with('[') {
                self.held = true;
                return String::new();
            }
        }
        if let Some(at) = MARKERS.iter().filter_map(|m| self.buf.find(m)).min() {
            self.held = true;
            return self.release(at);
        }
        // Keep a tail that could still grow into a marker.
        let keep = MARKERS
            .iter()
            .map(|m| partial_suffix(&self.buf, m))
            .max()
            .unwrap_or(0);
        let at = self.buf.len() - keep;
        self.release(at)
    }

    fn release(&mut self, at: usize) -> String {
        let out: String = self.buf[..at].to_string();
        self.buf.drain(..at);
        if !out.is_empty() {
            self.emitted_any = true;
        }
        out
    }

    /// The text still held back (to be parsed for tool calls).
    pub fn finish(self) -> String {
        self.buf
    }
}

/// Length of the longest suffix of `s` that is a proper prefix of `marker`.
fn partial_suffix(s: &str, marker: &str) -> usize {
    (1..marker.len())
        .rev()
        .find(|&n| {
            s.len() >= n && s.is_char_boundary(s.len() - n) && marker.starts_with(&s[s.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&str]) -> (String, String) {
        let mut h = HoldBack::new(true);
        let sent: String = pieces.iter().map(|p| h.push(p)).collect();
        (sent, h.finish())
    }

    #[test]
    fn plain_text_streams() {
        let (sent, rest) = run(&["Hello", " wor", "ld <b>"]);
        assert_eq!(sent, "Hello world <b>");
        assert_eq!(rest, "");
    }

    #[test]
    fn tag_is_held() {
        let (sent, rest) = run(&["Sure. <tool", "_call>\n{\"name\"", ": \"x\"}</tool_call>"]);
        assert_eq!(sent, "Sure. ");
        assert_eq!(rest, "<tool_call>\n{\"name\": \"x\"}</tool_call>");
    }

    #[test]
    fn fence_and_bare_json_are_held() {
        let (sent, rest) = run(&["``", "`json\n{}\n```"]);
        assert_eq!(sent, "");
        assert_eq!(rest, "```json\n{}\n```");
        let (sent, rest) = run(&["\n", " {\"name\"", ": 1}"]);
        assert_eq!(sent, "");
        assert_eq!(rest, "\n {\"name\": 1}");
    }

    #[test]
    fn inactive_passes_through() {
        let mut h = HoldBack::new(false);
        assert_eq!(h.push("<tool_call>"), "<tool_call>");
        assert_eq!(h.finish(), "");
    }
}
