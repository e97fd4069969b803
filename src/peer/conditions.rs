//! The exit conditions of script mode: `--wait-peers`, `--expect`, `--until`, `--count`.
//! The run succeeds as soon as every condition given is met.

use serde_json::Value;

/// `--until PATH=VALUE`: a message whose member at PATH (like jq: `.sdp.type`, or `type`)
/// equals VALUE (compared as JSON when VALUE parses as JSON, else as a string).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMatch {
    path: Vec<String>,
    expected: Value,
    text: String,
}

impl FieldMatch {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (path, value) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not PATH=VALUE (e.g. .sdp.type=answer)"))?;
        let path: Vec<String> = path
            .trim_start_matches('.')
            .split('.')
            .map(str::to_owned)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(format!("{text:?} has an empty path segment"));
        }
        let expected =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        Ok(Self {
            path,
            expected,
            text: text.to_owned(),
        })
    }

    /// The match looks at server errors (`code=…` or `type=error`).
    pub fn is_about_errors(&self) -> bool {
        match self.path.as_slice() {
            [member] if member == "code" => true,
            [member] if member == "type" => self.expected == "error",
            _ => false,
        }
    }

    pub fn matches(&self, message: &Value) -> bool {
        self.path
            .iter()
            .try_fold(message, |value, key| match value {
                Value::Object(map) => map.get(key),
                Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            })
            .is_some_and(|found| *found == self.expected)
    }
}

impl std::fmt::Display for FieldMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Default)]
pub struct Conditions {
    wait_peers: Option<usize>,
    expect: Vec<(String, bool)>,
    until: Vec<(FieldMatch, bool)>,
    count: Option<u64>,
    received: u64,
    peers: usize,
}

impl Conditions {
    pub fn new(
        wait_peers: Option<usize>,
        expect: Vec<String>,
        until: Vec<FieldMatch>,
        count: Option<u64>,
    ) -> Self {
        Self {
            wait_peers,
            expect: expect.into_iter().map(|t| (t, false)).collect(),
            until: until.into_iter().map(|m| (m, false)).collect(),
            count,
            received: 0,
            peers: 0,
        }
    }

    /// Whether any condition was given at all.
    pub fn any(&self) -> bool {
        self.wait_peers.is_some()
            || !self.expect.is_empty()
            || !self.until.is_empty()
            || self.count.is_some()
    }

    pub fn on_message(&mut self, message: &Value) {
        self.received += 1;
        let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
        for (expected, seen) in &mut self.expect {
            *seen |= expected == kind;
        }
        for (matcher, seen) in &mut self.until {
            *seen |= matcher.matches(message);
        }
    }

    pub fn set_peer_count(&mut self, peers: usize) {
        self.peers = peers;
    }

    /// True once every condition given is met (never true when none were given).
    pub fn met(&self) -> bool {
        self.any()
            && self.wait_peers.is_none_or(|n| self.peers >= n)
            && self.expect.iter().all(|(_, seen)| *seen)
            && self.until.iter().all(|(_, seen)| *seen)
            && self.count.is_none_or(|n| self.received >= n)
    }

    /// What is still missing, for the message when the run ends without success.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if let Some(n) = self.wait_peers.filter(|n| self.peers < *n) {
            missing.push(format!("--wait-peers {n} (saw {})", self.peers));
        }
        for (kind, _) in self.expect.iter().filter(|(_, seen)| !seen) {
            missing.push(format!("--expect {kind}"));
        }
        for (matcher, _) in self.until.iter().filter(|(_, seen)| !seen) {
            missing.push(format!("--until {matcher}"));
        }
        if let Some(n) = self.count.filter(|n| self.received < *n) {
            missing.push(format!("--count {n} (got {})", self.received));
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_condition_must_be_met() {
        let mut conditions = Conditions::new(
            Some(1),
            vec!["offer".into(), "answer".into()],
            vec![FieldMatch::parse(".sdp.type=answer").unwrap()],
            Some(3),
        );
        assert!(conditions.any() && !conditions.met());
        conditions.on_message(&json!({"type": "offer"}));
        conditions.set_peer_count(1);
        conditions.on_message(&json!({"type": "answer", "sdp": {"type": "answer"}}));
        assert_eq!(conditions.missing(), vec!["--count 3 (got 2)"]);
        conditions.on_message(&json!({"type": "pong"}));
        assert!(conditions.met());
        assert!(
            !Conditions::default().met(),
            "no conditions, nothing to meet"
        );
    }

    #[test]
    fn field_matches_compare_json_or_text() {
        let numeric = FieldMatch::parse("candidate.seq=3").unwrap();
        assert!(numeric.matches(&json!({"candidate": {"seq": 3}})));
        assert!(!numeric.matches(&json!({"candidate": {"seq": "3"}})));
        let text = FieldMatch::parse(".from=abc").unwrap();
        assert!(text.matches(&json!({"from": "abc"})));
        assert!(FieldMatch::parse("nope").is_err());
        assert!(FieldMatch::parse("a..b=1").is_err());
        assert!(
            FieldMatch::parse("peers.0.id=x")
                .unwrap()
                .matches(&json!({"peers": [{"id": "x"}]}))
        );
    }
}
