//! Stop strings over streamed text: text that could still turn into a stop
//! string is held back until it is decided.

/// Watches generated text for stop strings.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
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
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
        }
    }

    /// Adds newly decoded text.
    pub fn push(&mut self, text: &str) -> StopDecision {
        self.pending.push_str(text);
        if self.stops.is_empty() {
            return StopDecision {
                emit: std::mem::take(&mut self.pending),
                stopped: false,
            };
        }
        let first_hit = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(pos) = first_hit {
            let emit = self.pending[..pos].to_string();
            self.pending.clear();
            return StopDecision {
                emit,
                stopped: true,
            };
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let mut hold = 0;
        for s in &self.stops {
            for (i, _) in s.char_indices().skip(1) {
                if i > hold && self.pending.ends_with(&s[..i]) {
                    hold = i;
                }
            }
        }
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
}
