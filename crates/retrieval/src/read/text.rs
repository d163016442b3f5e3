//! Decoding bytes into text and normalizing line ends and over-long lines.

/// How many leading bytes are checked for NUL (a sign of a binary file).
const SNIFF_BYTES: usize = 8 * 1024;

/// Bytes to UTF-8 text: rejects NUL bytes in the first 8 KiB, and text that is not UTF-8 unless under 1% of its
/// characters are invalid (those become U+FFFD). A UTF-8 byte-order mark is dropped.
pub(super) fn decode(bytes: &[u8]) -> Result<String, String> {
    let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
    if head.contains(&0) {
        return Err("binary file (NUL bytes)".into());
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => {
            let lossy = String::from_utf8_lossy(bytes);
            let total = lossy.chars().count().max(1);
            let bad = lossy
                .chars()
                .filter(|&c| c == char::REPLACEMENT_CHARACTER)
                .count();
            if bad * 100 >= total {
                Err(format!("not UTF-8 text ({bad} of {total} characters invalid; binary or another encoding)"))
            } else {
                Ok(lossy.into_owned())
            }
        }
    }
}

/// `\r\n` and lone `\r` become `\n`, trailing whitespace on lines is dropped, runs of more than one blank line
/// become one, and lines over `max_line` bytes are broken (at whitespace where possible).
pub(super) fn normalize(text: &str, max_line: usize) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.split('\n') {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        for piece in break_line(line, max_line) {
            out.push_str(piece);
            out.push('\n');
        }
    }
    let trimmed_len = out.trim_end().len();
    out.truncate(trimmed_len);
    let leading = out.len() - out.trim_start_matches('\n').len();
    out.drain(..leading);
    out
}

/// Splits `line` into pieces of at most `max` bytes, preferring to cut at whitespace (which is dropped).
fn break_line(line: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = line;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            cut = rest.chars().next().map_or(1, char::len_utf8);
        }
        let head = &rest[..cut];
        match head.rfind(char::is_whitespace) {
            Some(ws) if ws > 0 => {
                pieces.push(rest[..ws].trim_end());
                rest = rest[ws..].trim_start();
            }
            _ => {
                pieces.push(head);
                rest = &rest[cut..];
            }
        }
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rejects_binary_and_accepts_mostly_utf8() {
        assert!(decode(b"abc\0def").unwrap_err().contains("binary"));
        assert_eq!(decode(b"\xEF\xBB\xBFhello").unwrap(), "hello");
        let mut mostly = "a".repeat(500).into_bytes();
        mostly.push(0xFF);
        assert!(decode(&mostly).unwrap().ends_with('\u{FFFD}'));
        assert!(decode(&[0xFF, 0xFE, 0x41, 0x80, 0x81])
            .unwrap_err()
            .contains("not UTF-8"));
    }

    #[test]
    fn normalize_line_ends_blank_runs_and_long_lines() {
        assert_eq!(normalize("\n\na \r\nb\r\r\n\n\nc\n\n", 100), "a\nb\n\nc");
        assert_eq!(normalize("aaa bbb ccc", 5), "aaa\nbbb\nccc");
        assert_eq!(normalize("abcdefgh", 3), "abc\ndef\ngh");
        assert_eq!(normalize("é".repeat(3).as_str(), 3), "é\né\né");
    }
}
