//! The fast path for splitting a client frame into its top-level members: validates the whole
//! text as JSON and returns each member's name and raw value text, in about a third of the
//! time serde_json takes for the same job on a 1 KiB offer.
//!
//! It only ever *accepts* what is valid JSON, and gives up (`None`) on anything unusual:
//! control bytes anywhere (so also pretty-printed whitespace), escapes in member names, nesting
//! deeper than serde_json allows, or any syntax error. The caller then runs the general
//! serde_json parser, which decides and explains. So this module can make rdv faster but can
//! never make it accept a frame serde_json would refuse; the tests check that property on
//! every input they have.

use std::borrow::Cow;

use memchr::memchr2;

/// Deeper input falls back to serde_json, where `inbound` refuses nesting beyond
/// [`super::MAX_NESTING`] (a receiver's parser should never have to recurse further than
/// that).
const MAX_DEPTH: usize = super::MAX_NESTING;

/// `(name, raw value)` of each top-level member of `text`, in order, if `text` is a JSON
/// object this scanner is sure about. (Names are always borrowed here; the type is the one
/// the general parser needs for names with escapes.)
pub fn object_members(text: &str) -> Option<Members<'_>> {
    let bytes = text.as_bytes();
    if has_control_bytes(bytes) {
        return None;
    }
    let mut scanner = Scanner { text, bytes, at: 0 };
    let mut members = Vec::with_capacity(4);
    scanner.skip_spaces();
    scanner.object(0, Some(&mut members))?;
    scanner.skip_spaces();
    (scanner.at == bytes.len()).then_some(members)
}

/// Members as [`object_members`] returns them.
type Members<'a> = Vec<(Cow<'a, str>, &'a str)>;

/// Whether any byte is below 0x20. The smallest byte, found without branches, compiles to a
/// vector minimum over the whole frame; raw control characters are rare in signaling JSON,
/// and excluding them up front means strings need only be searched for `"` and `\`.
fn has_control_bytes(bytes: &[u8]) -> bool {
    bytes.iter().fold(u8::MAX, |low, &b| low.min(b)) < 0x20
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }

    /// Only spaces: tabs and line breaks are control bytes, which never reach here.
    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    /// A member name without escapes, returned without its quotes.
    fn plain_name(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let end = start + memchr2(b'"', b'\\', &self.bytes[start..])?;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        // Both ends sit next to ASCII quotes, so they are character boundaries.
        self.text.get(start..end)
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' => self.object(depth, None),
            b'[' => self.array(depth),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn string(&mut self) -> Option<()> {
        self.expect(b'"')?;
        loop {
            let found = self.at + memchr2(b'"', b'\\', &self.bytes[self.at..])?;
            self.at = found + 1;
            if self.bytes[found] == b'"' {
                return Some(());
            }
            match self.next()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    let hex = self.bytes.get(self.at..self.at + 4)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.at += 4;
                }
                _ => return None,
            }
        }
    }

    /// An object; with `members`, its members are also collected (and their names must then
    /// be plain).
    fn object(&mut self, depth: usize, mut members: Option<&mut Members<'a>>) -> Option<()> {
        self.sequence(depth, [b'{', b'}'], |scanner, depth| {
            let name = if members.is_some() {
                Some(scanner.plain_name()?)
            } else {
                scanner.string()?;
                None
            };
            scanner.skip_spaces();
            scanner.expect(b':')?;
            scanner.skip_spaces();
            let start = scanner.at;
            scanner.value(depth)?;
            if let (Some(members), Some(name)) = (members.as_deref_mut(), name) {
                members.push((Cow::Borrowed(name), &scanner.text[start..scanner.at]));
            }
            Some(())
        })
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.sequence(depth, [b'[', b']'], Self::value)
    }

    /// `open close`, or `open item (, item)* close` with each item one level deeper; at most
    /// `MAX_DEPTH` levels.
    fn sequence(
        &mut self,
        depth: usize,
        [open, close]: [u8; 2],
        mut item: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.expect(open)?;
        self.skip_spaces();
        if self.peek() == Some(close) {
            self.at += 1;
            return Some(());
        }
        loop {
            self.skip_spaces();
            item(self, depth + 1)?;
            self.skip_spaces();
            match self.next()? {
                b',' => continue,
                byte if byte == close => return Some(()),
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.one_or_more_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.one_or_more_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn one_or_more_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use serde_json::value::RawValue;

    /// serde_json's answer for the same text: the members as (name, raw value), or None.
    fn serde_members(text: &str) -> Option<Vec<(String, String)>> {
        let Pairs(pairs) = serde_json::from_str(text).ok()?;
        Some(
            pairs
                .into_iter()
                .map(|(k, v)| (k, v.get().to_owned()))
                .collect(),
        )
    }

    /// Every member in order, duplicates included, values as raw text.
    struct Pairs<'a>(Vec<(String, &'a RawValue)>);

    impl<'de> Deserialize<'de> for Pairs<'de> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct PairsVisitor;
            impl<'de> Visitor<'de> for PairsVisitor {
                type Value = Pairs<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut pairs = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        pairs.push((key, map.next_value()?));
                    }
                    Ok(Pairs(pairs))
                }
            }
            deserializer.deserialize_map(PairsVisitor)
        }
    }

    /// The property that makes the fast path safe: whatever it accepts, serde_json accepts
    /// too, with the same members.
    fn check(text: &str) {
        if let Some(fast) = object_members(text) {
            let fast: Vec<(String, String)> = fast
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.to_owned()))
                .collect();
            assert_eq!(Some(fast), serde_members(text), "accepted {text:?}");
        }
    }

    const SAMPLES: &[&str] = &[
        r#"{"type":"offer","to":"abc","sdp":{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"}}"#,
        r#"{"type":"ice-candidate","to":"x","candidate":{"candidate":"candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}}"#,
        r#"{ "type" : "answer" , "to" : "b" , "n" : [ 1 , -2.5e+3 , 0 , 0.0 , 1E9 , true , false , null , { } , [ ] ] }"#,
        r#"{"a":"\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t","é😀":"ü"}"#,
        r#"{}"#,
        r#"  {"a":1}  "#,
    ];

    #[test]
    fn valid_samples_are_split_like_serde_json_does() {
        for text in SAMPLES {
            let members = object_members(text).unwrap_or_else(|| panic!("refused {text}"));
            assert!(!members.is_empty() || *text == "{}");
            check(text);
        }
        let members = object_members(SAMPLES[0]).unwrap();
        assert_eq!(members[0], (Cow::Borrowed("type"), r#""offer""#));
        assert_eq!(
            members[2].1,
            r#"{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"}"#
        );
    }

    #[test]
    fn invalid_json_is_never_accepted() {
        let invalid = [
            "",
            "{",
            "}",
            "[]",
            r#""a""#,
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":+1}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12G4"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a":"unterminated}"#,
            r#"{"a":1}x"#,
            r#"{"a":1}{"b":2}"#,
            "{\"a\":\"tab\there\"}",
            "{\"a\":\"nul\u{0}\"}",
            r#"{'a':1}"#,
            r#"{"a":NaN}"#,
            r#"{"a":Infinity}"#,
        ];
        for text in invalid {
            assert!(object_members(text).is_none(), "accepted {text:?}");
            assert!(serde_members(text).is_none(), "serde accepted {text:?}");
        }
    }

    #[test]
    fn unusual_but_valid_input_is_left_to_serde_json() {
        // Pretty-printed, escaped member names, very deep: all valid, all declined.
        for text in [
            "{\n  \"a\": 1\n}",
            r#"{"t\u0079pe":"offer"}"#,
            &format!(r#"{{"a":{}{}}}"#, "[".repeat(200), "]".repeat(200)),
        ] {
            assert!(object_members(text).is_none(), "{text}");
        }
        let deep_enough = format!(r#"{{"a":{}{}}}"#, "[".repeat(60), "]".repeat(60));
        assert!(object_members(&deep_enough).is_some());
        check(&deep_enough);
    }

    #[test]
    fn every_truncation_and_single_byte_change_of_the_samples_agrees_with_serde_json() {
        let replacements = b"{}[]\",:\\ -+.0159eEtrufalsn\x01xu";
        for text in SAMPLES {
            for end in 0..=text.len() {
                if text.is_char_boundary(end) {
                    check(&text[..end]);
                }
            }
            let bytes = text.as_bytes();
            for at in 0..bytes.len() {
                for &replacement in replacements {
                    let mut changed = bytes.to_vec();
                    changed[at] = replacement;
                    if let Ok(changed) = String::from_utf8(changed) {
                        check(&changed);
                    }
                }
            }
        }
    }
}
