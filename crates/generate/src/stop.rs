//! Stop strings over streamed text: text that could still turn into a stop
//! string is held back until it is decided.
//!
//! Matching is linear in the generated text: each stop string keeps a
//! Knuth–Morris–Pratt state (the length of its longest prefix that is a suffix
//! of the text so far), advanced once per new byte, so a token costs
//! O(bytes × stop strings) whatever the text's length, and the held-back text
//! never exceeds the longest stop string.

/// One stop string with its KMP failure table and current state.
#[derive(Debug, Clone)]
struct Pattern {
    bytes: Vec<u8>,
    /// `fail[i]`: length of the longest proper prefix of `bytes[..=i]` that is also its suffix.
    fail: Vec<usize>,
    /// Length of the longest prefix of `bytes` that ends the text seen so far.
    state: usize,
}

impl Pattern {
    fn new(s: &str) -> Self {
        let bytes = s.as_bytes().to_vec();
        let mut fail = vec![0; bytes.len()];
        let mut k = 0;
        for i in 1..bytes.len() {
            while k > 0 && bytes[i] != bytes[k] {
                k = fail[k - 1];
            }
            if bytes[i] == bytes[k] {
                k += 1;
            }
            fail[i] = k;
        }
        Self {
            bytes,
            fail,
            state: 0,
        }
    }

    /// Feeds one byte; true when the whole pattern now ends the text.
    fn step(&mut self, b: u8) -> bool {
        if self.state == self.bytes.len() {
            self.state = self.fail[self.state - 1];
        }
        while self.state > 0 && self.bytes[self.state] != b {
            self.state = self.fail[self.state - 1];
        }
        if self.bytes[self.state] == b {
            self.state += 1;
        }
        self.state == self.bytes.len()
    }
}

/// Watches generated text for stop strings.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<Pattern>,
    /// Text not yet emitted: always a suffix that is a prefix of some stop string.
    pending: String,
}

/// What [`StopMatcher::push`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopDecision {
    /// Text that is safe to emit now.
    pub emit: String,
    /// Whether a stop string was found (generation must end).
    pub stopped: bool,
}

impl StopMatcher {
    /// A matcher for these stop strings (empty ones are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| Pattern::new(s))
                .collect(),
            pending: String::new(),
        }
    }

    /// Adds newly decoded text.
    pub fn push(&mut self, text: &str) -> StopDecision {
        if self.stops.is_empty() {
            self.pending.push_str(text);
            return StopDecision {
                emit: std::mem::take(&mut self.pending),
                stopped: false,
            };
        }
        let base = self.pending.len();
        self.pending.push_str(text);
        for (i, &b) in text.as_bytes().iter().enumerate() {
            let end = base + i + 1;
            let mut hit: Option<usize> = None;
            for p in &mut self.stops {
                if p.step(b) {
                    let start = end - p.bytes.len();
                    hit = Some(hit.map_or(start, |h: usize| h.min(start)));
                }
            }
            if let Some(start) = hit {
                // A stop string ends here; it started in the held-back text or the new text.
                let emit = self.pending[..start].to_string();
                self.pending.clear();
                for p in &mut self.stops {
                    p.state = 0;
                }
                return StopDecision {
                    emit,
                    stopped: true,
                };
            }
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let hold = self.stops.iter().map(|p| p.state).max().unwrap_or(0);
        let cut = self.pending.len() - hold;
        let emit = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        StopDecision {
            emit,
            stopped: false,
        }
    }

    /// Text still held back when generation ends for another reason.
    pub fn finish(&mut self) -> String {
        for p in &mut self.stops {
            p.state = 0;
        }
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_partial_and_stops_on_full_match() {
        let mut m = StopMatcher::new(&["```\n".to_string(), "END".to_string()]);
        assert_eq!(m.push("SELECT 1;").emit, "SELECT 1;");
        let d = m.push("\n``");
        assert_eq!(d.emit, "\n");
        assert!(!d.stopped);
        let d = m.push("`\nmore");
        assert_eq!(d.emit, "");
        assert!(d.stopped);
    }

    #[test]
    fn false_alarm_is_released() {
        let mut m = StopMatcher::new(&["END".to_string()]);
        assert_eq!(m.push("the EN").emit, "the ");
        assert_eq!(m.push("D").emit, "");
        let mut m = StopMatcher::new(&["END".to_string()]);
        m.push("EN");
        assert_eq!(m.push("ough").emit, "ENough");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn multibyte_stop_strings() {
        let mut m = StopMatcher::new(&["끝".to_string()]);
        let d = m.push("서울 끝 이후");
        assert_eq!(d.emit, "서울 ");
        assert!(d.stopped);
    }

    #[test]
    fn overlapping_and_repeated_prefixes() {
        let mut m = StopMatcher::new(&["aab".to_string()]);
        assert_eq!(m.push("aaa").emit, "a");
        let d = m.push("ab!");
        assert_eq!(d.emit, "a");
        assert!(d.stopped);
        // Of two stop strings ending together, the output is cut where the earlier one starts.
        let mut m = StopMatcher::new(&["bc".to_string(), "abc".to_string()]);
        let d = m.push("xabc");
        assert_eq!(d.emit, "x");
        assert!(d.stopped);
    }

    #[test]
    fn matching_is_linear_in_the_text() {
        // Worst case for re-scanning matchers: a text of 'a's against stop strings that are
        // 'a'×255 + 'b', fed one byte at a time. Re-checking every prefix of every stop string
        // after each byte costs ~4×256²/2 byte comparisons per byte (minutes for 400k bytes
        // unoptimised); the KMP states make it a few steps per byte.
        let stops: Vec<String> = (0..4)
            .map(|i| format!("{}{}", "a".repeat(255), (b'b' + i) as char))
            .collect();
        let mut m = StopMatcher::new(&stops);
        let start = std::time::Instant::now();
        let mut emitted = 0;
        for _ in 0..400_000 {
            let d = m.push("a");
            assert!(!d.stopped);
            emitted += d.emit.len();
        }
        assert_eq!(
            emitted,
            400_000 - 255,
            "the hold-back is bounded by the longest stop string"
        );
        assert!(m.push("c").stopped);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
    }
}
