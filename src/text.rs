//! Small text helpers shared by status, events and logs.

/// The longest prefix of `s` that is at most `max` bytes and ends on a UTF-8 character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` made safe to show and bounded: line breaks and tabs become spaces; other control characters
/// (C0, DEL, C1: terminal escape sequences start with them) and bidirectional overrides become
/// U+FFFD; then it is cut to at most `max` bytes on a character boundary. Every message that
/// reaches status, an Event or the CLI's terminal goes through it: tenants and ARM write into them.
pub fn clean(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {
                '\u{FFFD}'
            }
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect();
    truncate(&cleaned, max).to_string()
}

/// The longest suffix of `bytes` that is at most `max` bytes and valid UTF-8 (a cut through a
/// multi-byte character moves forward to the next boundary; invalid bytes become U+FFFD first).
pub fn tail_utf8(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    let mut tail = &bytes[start..];
    // Skip continuation bytes (10xxxxxx) of a character cut in half.
    while let Some((&b, rest)) = tail.split_first() {
        if b & 0b1100_0000 == 0b1000_0000 {
            tail = rest;
        } else {
            break;
        }
    }
    let text = String::from_utf8_lossy(tail).into_owned();
    // Lossy replacement can grow the text past `max`; cut from the front again if so.
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_at_char_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("aé", 2), "a"); // é is 2 bytes
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn clean_removes_escapes_and_overrides_and_bounds() {
        let hostile = "ok\x1b]0;pwned\x07 \x1b[2J\u{202E}txt.exe\nnext\u{9b}31m";
        let shown = clean(hostile, 1024);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(!shown.contains('\u{202E}'), "{shown:?}");
        assert!(
            shown.starts_with("ok") && shown.contains("next"),
            "{shown:?}"
        );
        assert_eq!(clean("aé", 2), "a");
        assert_eq!(clean("plain message", 1024), "plain message");
    }

    #[test]
    fn tail_is_valid_utf8_and_bounded() {
        assert_eq!(tail_utf8(b"hello world", 5), "world");
        assert_eq!(tail_utf8("xé".as_bytes(), 1), ""); // only the second byte of é fits
        assert_eq!(tail_utf8("xéy".as_bytes(), 2), "y");
        assert_eq!(tail_utf8("xéy".as_bytes(), 3), "éy");
        assert_eq!(tail_utf8(b"abc", 0), "");
        let t = tail_utf8(&[0xff, 0xfe, b'a'], 3);
        assert!(t.len() <= 3 && t.ends_with('a'));
        for max in 0..20 {
            let s = "日本語のテキスト";
            let t = tail_utf8(s.as_bytes(), max);
            assert!(t.len() <= max && s.ends_with(&t), "{max}: {t}");
        }
    }
}
