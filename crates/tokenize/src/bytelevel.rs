//! GPT-2's reversible byte ↔ printable-character mapping.

use std::sync::OnceLock;

/// `BYTE_TO_CHAR[b]` is the character GPT-2 uses for byte `b`.
fn byte_to_char() -> &'static [char; 256] {
    static TABLE: OnceLock<[char; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = ['\0'; 256];
        let mut n = 0u32;
        for b in 0..256u32 {
            let printable = (0x21..=0x7e).contains(&b)
                || (0xa1..=0xac).contains(&b)
                || (0xae..=0xff).contains(&b);
            let c = if printable {
                b
            } else {
                n += 1;
                255 + n
            };
            table[b as usize] = char::from_u32(c).unwrap_or('\u{fffd}');
        }
        table
    })
}

/// Text of the hidden "unknown character" token added to byte-level vocabularies that
/// lack some byte characters (see `Tokenizer::blocker_id`).
pub(crate) const BLOCKER_TOKEN: &str = "\u{0}tuneup:missing-byte\u{0}";

/// Whether the vocabulary has a token for every one of the 256 byte characters.
pub(crate) fn all_bytes_in(vocab: &std::collections::HashMap<String, u32>) -> bool {
    byte_to_char()
        .iter()
        .all(|c| vocab.contains_key(c.encode_utf8(&mut [0; 4]) as &str))
}

/// The byte a GPT-2 byte-level character stands for.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    if cp < 0x100 {
        let b = cp as u8;
        return (byte_to_char()[b as usize] == c).then_some(b);
    }
    if cp <= 0x143 {
        // The 68 non-printable bytes map to U+0100..=U+0143 in byte order.
        return byte_to_char().iter().position(|&x| x == c).map(|b| b as u8);
    }
    None
}

/// Decodes a byte-level token text to bytes. Like Hugging Face's `ByteLevel` decoder, a
/// token containing any character outside the mapping is returned as its raw UTF-8.
pub(crate) fn decode_token(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => return text.as_bytes().to_vec(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte() {
        for b in 0..=255u8 {
            let c = byte_to_char()[b as usize];
            assert_eq!(char_to_byte(c), Some(b));
        }
        assert_eq!(byte_to_char()[b' ' as usize], 'Ġ');
        assert_eq!(byte_to_char()[b'\n' as usize], 'Ċ');
        assert_eq!(decode_token("Ġhello"), b" hello");
        assert_eq!(decode_token("<|im_end|>"), b"<|im_end|>");
        assert_eq!(decode_token("▁x"), "▁x".as_bytes());
    }
}
