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

#[derive(Clone, Debug, Serialize)]
pub struct DecisionRecord {
    /// Seconds since the Unix epoch.
    pub time: f64,
    pub kind: DecisionKind,
    pub pid: u32,
    pub command: String,
    pub function: String,
    pub segment: String,
    pub variant: String,
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

    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        kind: DecisionKind,
        pid: u32,
        command: &str,
        function: &str,
        segment: &str,
        variant: &str,
        reason: impl Into<String>,
        details: serde_json::Value,
    ) {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let d = DecisionRecord {
            time,
            kind,
            pid,
            command: command.to_owned(),
            function: function.to_owned(),
            segment: segment.to_owned(),
            variant: variant.to_owned(),
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
                d.pid,
                d.command,
                d.function,
                if d.segment.is_empty() {
                    String::new()
                } else {
                    format!("{}/{}", d.segment, d.variant)
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
        log.record(
            DecisionKind::Reverted,
            42,
            "python3",
            "crc32_z",
            "crc32",
            "portable",
            "regression: share grew",
            serde_json::json!({"share_before": 0.5}),
        );
        let text = String::from_utf8(log.out.clone()).unwrap();
        let doc: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(doc["kind"], "reverted");
        assert_eq!(doc["reason"], "regression: share grew");
        assert_eq!(doc["details"]["share_before"], 0.5);

        let mut log = DecisionLog::new(Vec::new(), false);
        log.record(
            DecisionKind::Kept,
            1,
            "x",
            "f",
            "s",
            "v",
            "helped",
            serde_json::Value::Null,
        );
        let text = String::from_utf8(log.out).unwrap();
        assert!(text.starts_with("kept"), "{text}");
        assert!(text.contains("s/v") && text.contains("helped"), "{text}");
    }
}
