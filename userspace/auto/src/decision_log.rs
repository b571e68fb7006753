//! Every decision auto makes, for people (one line each) and programs
//! (JSON lines).

use serde::Serialize;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionKind {
    /// A hot function the library covers.
    Opportunity,
    /// The sizes its calls have, counted before measuring the variants.
    Observed,
    /// Would inject (dry run).
    WouldInject,
    Injected,
    /// Not injected (policy, limit, refused by the module, measured slower…).
    Skipped,
    Kept,
    Reverted,
    /// The process went away.
    Gone,
}

/// What a decision is about: a process and, for most decisions, one of
/// its functions with the segment and variant that replace it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Subject {
    pub pid: u32,
    pub command: String,
    pub function: String,
    pub segment: String,
    pub variant: String,
}

impl Subject {
    /// A process, no function.
    pub fn process(pid: u32, command: &str) -> Self {
        Self {
            pid,
            command: command.to_owned(),
            ..Self::default()
        }
    }

    /// `function` of this process, replaced by `segment`/`variant` (either
    /// may be empty while undecided).
    pub fn about(&self, function: &str, segment: &str, variant: &str) -> Self {
        Self {
            pid: self.pid,
            command: self.command.clone(),
            function: function.to_owned(),
            segment: segment.to_owned(),
            variant: variant.to_owned(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DecisionRecord {
    /// Seconds since the Unix epoch.
    pub time: f64,
    pub kind: DecisionKind,
    #[serde(flatten)]
    pub subject: Subject,
    /// Why, in words, with the figures.
    pub reason: String,
    /// Machine-readable details (shares, speedups, ids).
    pub details: serde_json::Value,
}

/// Writes decisions as they are made and keeps them for the summary.
pub struct DecisionLog<W: Write> {
    out: W,
    json: bool,
    pub decisions: Vec<DecisionRecord>,
}

impl<W: Write> DecisionLog<W> {
    pub fn new(out: W, json: bool) -> Self {
        Self {
            out,
            json,
            decisions: Vec::new(),
        }
    }

    /// Writes and keeps one decision about `subject`.
    pub fn record(
        &mut self,
        kind: DecisionKind,
        subject: &Subject,
        reason: impl Into<String>,
        details: serde_json::Value,
    ) {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let d = DecisionRecord {
            time,
            kind,
            subject: subject.clone(),
            reason: reason.into(),
            details,
        };
        let line = if self.json {
            serde_json::to_string(&d).unwrap_or_default()
        } else {
            format!(
                "{:<13} pid {:<6} {:<15} {:<24} {:<22} {}",
                serde_json::to_value(d.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                d.subject.pid,
                d.subject.command,
                d.subject.function,
                if d.subject.segment.is_empty() {
                    String::new()
                } else {
                    format!("{}/{}", d.subject.segment, d.subject.variant)
                },
                d.reason
            )
        };
        // A closed stdout must not stop the loop.
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
        self.decisions.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_and_text_lines_carry_the_reason() {
        let mut log = DecisionLog::new(Vec::new(), true);
        let python = Subject::process(42, "python3");
        log.record(
            DecisionKind::Reverted,
            &python.about("crc32_z", "crc32", "portable"),
            "regression: share grew",
            serde_json::json!({"share_before": 0.5}),
        );
        let text = String::from_utf8(log.out.clone()).unwrap();
        let doc: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(doc["kind"], "reverted");
        assert_eq!(
            (&doc["pid"], &doc["function"]),
            (&42.into(), &"crc32_z".into())
        );
        assert_eq!(doc["reason"], "regression: share grew");
        assert_eq!(doc["details"]["share_before"], 0.5);

        let mut log = DecisionLog::new(Vec::new(), false);
        log.record(
            DecisionKind::Kept,
            &Subject::process(1, "x").about("f", "s", "v"),
            "helped",
            serde_json::Value::Null,
        );
        let text = String::from_utf8(log.out).unwrap();
        assert!(text.starts_with("kept"), "{text}");
        assert!(text.contains("s/v") && text.contains("helped"), "{text}");
    }
}
