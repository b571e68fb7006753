//! Kconfig fragments and the check that the final `.config` honours them.
//!
//! `olddefconfig` silently drops an option whose dependencies are not met;
//! [`verify`] turns that into an error naming the option.

use std::collections::HashMap;

/// What a fragment line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// `CONFIG_X=value` (`y`, `m`, a number or a quoted string).
    Value(String),
    /// `CONFIG_X=n` or `# CONFIG_X is not set`.
    Unset,
}

/// One requested option, with where it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub want: Want,
    pub origin: String,
}

/// Parses a fragment (or a `.config`): assignments and "is not set" lines;
/// other comments and blank lines are skipped.
pub fn parse_fragment(text: &str, origin_file: &str) -> Vec<Request> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let origin = format!("{origin_file}:{}", index + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                if name.starts_with("CONFIG_") {
                    out.push(Request {
                        name: name.to_string(),
                        want: Want::Unset,
                        origin,
                    });
                }
            }
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if !name.starts_with("CONFIG_") {
            continue;
        }
        let want = if value == "n" {
            Want::Unset
        } else {
            Want::Value(value.to_string())
        };
        out.push(Request {
            name: name.to_string(),
            want,
            origin,
        });
    }
    out
}

/// The options set in a final `.config` (unset ones are absent).
pub fn parse_config(text: &str) -> HashMap<String, String> {
    parse_fragment(text, ".config")
        .into_iter()
        .filter_map(|r| match r.want {
            Want::Value(v) => Some((r.name, v)),
            Want::Unset => None,
        })
        .collect()
}

/// One request the final configuration does not honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub request: Request,
    /// The final value, `None` when unset.
    pub actual: Option<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wanted = match &self.request.want {
            Want::Value(v) => format!("{}={v}", self.request.name),
            Want::Unset => format!("{}=n", self.request.name),
        };
        let actual = match &self.actual {
            Some(v) => format!("{}={v}", self.request.name),
            None => "unset".to_string(),
        };
        write!(
            f,
            "{wanted} (from {}) but the final .config has {actual}",
            self.request.origin
        )
    }
}

/// Every request that the final configuration does not honour. The last
/// request for an option wins, as in `merge_config.sh`.
pub fn verify(requests: &[Request], config: &HashMap<String, String>) -> Vec<Mismatch> {
    let mut last: Vec<&Request> = Vec::new();
    for r in requests {
        match last.iter_mut().find(|l| l.name == r.name) {
            Some(slot) => *slot = r,
            None => last.push(r),
        }
    }
    last.into_iter()
        .filter_map(|r| {
            let actual = config.get(&r.name).cloned();
            let holds = match (&r.want, &actual) {
                (Want::Unset, None) => true,
                (Want::Value(want), Some(have)) => want == have,
                _ => false,
            };
            (!holds).then(|| Mismatch {
                request: r.clone(),
                actual,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAGMENT: &str = "\
# comment
CONFIG_RUST=y
CONFIG_SLUB_TINY=n
# CONFIG_KASAN is not set
CONFIG_LOG_BUF_SHIFT=17

CONFIG_CMDLINE=\"a b\"
";

    #[test]
    fn fragment_parsing() {
        let r = parse_fragment(FRAGMENT, "f");
        assert_eq!(r.len(), 5);
        assert_eq!(
            r[0],
            Request {
                name: "CONFIG_RUST".into(),
                want: Want::Value("y".into()),
                origin: "f:2".into()
            }
        );
        assert_eq!(r[1].want, Want::Unset);
        assert_eq!(r[2].want, Want::Unset);
        assert_eq!(r[4].want, Want::Value("\"a b\"".into()));
    }

    #[test]
    fn verify_finds_dropped_and_forced_options() {
        let requests = parse_fragment(FRAGMENT, "f");
        let good = parse_config(
            "CONFIG_RUST=y\n# CONFIG_SLUB_TINY is not set\nCONFIG_LOG_BUF_SHIFT=17\nCONFIG_CMDLINE=\"a b\"\n",
        );
        assert!(verify(&requests, &good).is_empty());

        let bad =
            parse_config("CONFIG_SLUB_TINY=y\nCONFIG_LOG_BUF_SHIFT=17\nCONFIG_CMDLINE=\"a b\"\n");
        let mismatches = verify(&requests, &bad);
        let names: Vec<&str> = mismatches.iter().map(|m| m.request.name.as_str()).collect();
        assert_eq!(names, ["CONFIG_RUST", "CONFIG_SLUB_TINY"]);
        assert!(mismatches[0]
            .to_string()
            .contains("CONFIG_RUST=y (from f:2) but the final .config has unset"));
    }

    #[test]
    fn later_fragment_wins() {
        let mut requests = parse_fragment("CONFIG_A=y\n", "base");
        requests.extend(parse_fragment("CONFIG_A=n\n", "debug"));
        assert!(verify(&requests, &HashMap::new()).is_empty());
    }
}
