//! The guest's `/init` reports the command's exit status as one line
//! `@@adapt-vm-exit=N@@` on the command's serial port. This module finds it
//! in the stream and separates it from the command's own output.

/// The marker's text before the number.
pub const PREFIX: &str = "@@adapt-vm-exit=";
/// The marker's text after the number.
pub const SUFFIX: &str = "@@";

/// The marker line for a status (what init prints).
pub fn format(status: i32) -> String {
    format!("{PREFIX}{status}{SUFFIX}")
}

/// Splits one line of serial output (without its `\n`) into the command's
/// output before the marker and the reported status. A command whose last
/// output did not end in a newline leaves text in front of the marker.
pub fn parse(line: &str) -> Option<(&str, i32)> {
    let start = line.rfind(PREFIX)?;
    let rest = &line[start + PREFIX.len()..];
    let end = rest.find(SUFFIX)?;
    let status = rest[..end].parse().ok()?;
    rest[end + SUFFIX.len()..]
        .trim()
        .is_empty()
        .then_some((&line[..start], status))
}

/// Turns raw serial bytes, one line at a time, into output text and the
/// exit status.
#[derive(Debug, Default)]
pub struct Demux {
    /// The command's output, `\r` removed.
    pub output: String,
    /// The reported exit status, once seen.
    pub status: Option<i32>,
}

impl Demux {
    /// Feeds one raw line (including its `\n` when it had one). Returns the
    /// text to show, if any.
    pub fn feed(&mut self, raw: &[u8]) -> Option<String> {
        let text = String::from_utf8_lossy(raw).replace('\r', "");
        let (body, newline) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (text.as_str(), ""),
        };
        let shown = match parse(body) {
            Some((before, status)) if self.status.is_none() => {
                self.status = Some(status);
                before.to_string()
            }
            _ => format!("{body}{newline}"),
        };
        self.output.push_str(&shown);
        (!shown.is_empty()).then_some(shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip() {
        assert_eq!(parse(&format(7)), Some(("", 7)));
        assert_eq!(parse(&format(-1)), Some(("", -1)));
        assert_eq!(parse("tail@@adapt-vm-exit=0@@"), Some(("tail", 0)));
        assert_eq!(parse("@@adapt-vm-exit=0@@  "), Some(("", 0)));
    }

    #[test]
    fn non_markers() {
        assert_eq!(parse("hello"), None);
        assert_eq!(parse("@@adapt-vm-exit=x@@"), None);
        assert_eq!(parse("@@adapt-vm-exit=3"), None);
        assert_eq!(parse("@@adapt-vm-exit=3@@ and more"), None);
    }

    #[test]
    fn demux_separates_output_and_status() {
        let mut d = Demux::default();
        assert_eq!(d.feed(b"hello\r\n").as_deref(), Some("hello\n"));
        assert_eq!(
            d.feed(b"no newline@@adapt-vm-exit=7@@\n").as_deref(),
            Some("no newline")
        );
        assert_eq!(d.output, "hello\nno newline");
        assert_eq!(d.status, Some(7));
    }

    #[test]
    fn only_the_first_marker_counts() {
        let mut d = Demux::default();
        d.feed(b"@@adapt-vm-exit=1@@\n");
        d.feed(b"@@adapt-vm-exit=2@@\n");
        assert_eq!(d.status, Some(1));
        assert_eq!(d.output, "@@adapt-vm-exit=2@@\n");
    }
}
