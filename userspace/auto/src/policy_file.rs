//! The policy as a TOML file (`adaptctl policy load FILE`).
//!
//! ```toml
//! enabled = true
//! max_injections_per_process = 16
//! max_injections_total = 256
//! regression_margin = 0.05          # an injection must save ≥ 5 %
//! allow_float_reassociate = false   # segments that are not bit-identical
//!
//! [sampling]
//! min_hz = 10
//! max_hz = 10000
//!
//! [targets]                         # empty or absent: any process
//! uids = [1000]
//! commands = ["python3"]            # /proc/PID/comm
//! executables = ["/usr/bin/python3.11"]
//!
//! [segments]
//! allow = ["crc32", "adler32"]      # empty or absent: every segment
//! ```
//!
//! Every key is optional (defaults as above, any target, every segment);
//! unknown keys are errors. Errors name the line and the reason.
//!
//! # `allow_float_reassociate`
//!
//! A segment whose numerics are `float-reassociate` (e.g. `dgemm-relaxed`:
//! fused multiply-adds, results within a stated bound of the original's but
//! not bit for bit) ships in the library and is refused by `adaptctl
//! inject` and `adaptctl auto` unless this is `true`; exact segments are
//! unaffected. It is one switch for every target the policy allows, not a
//! per-target list, because the policy lives in the module's fixed
//! `AdaptPolicy` (one flags word, checked fields, reserved words that must
//! be zero): a flag bit (`ADAPT_POLICY_F_FLOAT_REASSOCIATE`) fits it with
//! no change to the module's code or the ABI's layout, where a list of
//! commands would need both. To allow it for some programs only, restrict
//! the policy's `[targets]` to them (the whole policy applies to those
//! targets alone), or leave it off and override one injection with
//! `adaptctl inject --allow-float-reassociate`.

use adapt_abi as abi;
use serde::Deserialize;
use toml::Spanned;

/// Why a policy file was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct PolicyFileError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for PolicyFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

impl std::error::Error for PolicyFileError {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    enabled: Option<bool>,
    max_injections_per_process: Option<Spanned<u32>>,
    max_injections_total: Option<Spanned<u32>>,
    regression_margin: Option<Spanned<f64>>,
    allow_float_reassociate: Option<bool>,
    #[serde(default)]
    sampling: Sampling,
    #[serde(default)]
    targets: Targets,
    #[serde(default)]
    segments: Segments,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Sampling {
    min_hz: Option<Spanned<u32>>,
    max_hz: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Targets {
    uids: Option<Spanned<Vec<u32>>>,
    commands: Option<Spanned<Vec<Spanned<String>>>>,
    executables: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Segments {
    allow: Option<Spanned<Vec<Spanned<String>>>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses and checks a policy file, giving the policy to set.
pub fn parse(text: &str) -> Result<abi::AdaptPolicy, PolicyFileError> {
    let file: File = toml::from_str(text).map_err(|e| PolicyFileError {
        line: e.span().map(|s| line_of(text, s.start)),
        reason: e.message().to_owned(),
    })?;
    let err = |span: std::ops::Range<usize>, reason: String| PolicyFileError {
        line: Some(line_of(text, span.start)),
        reason,
    };

    let mut p = abi::AdaptPolicy {
        flags: if file.enabled.unwrap_or(true) {
            abi::ADAPT_POLICY_F_ENABLED
        } else {
            0
        } | if file.allow_float_reassociate.unwrap_or(false) {
            abi::ADAPT_POLICY_F_FLOAT_REASSOCIATE
        } else {
            0
        },
        max_per_process: abi::ADAPT_POLICY_DEFAULT_PER_PROCESS,
        max_total: abi::ADAPT_POLICY_DEFAULT_TOTAL,
        freq_min_hz: abi::ADAPT_PROFILE_FREQ_MIN,
        freq_max_hz: abi::ADAPT_PROFILE_FREQ_MAX,
        regression_margin_permille: abi::ADAPT_POLICY_DEFAULT_MARGIN_PERMILLE,
        ..Default::default()
    };
    if let Some(v) = &file.max_injections_total {
        if !(1..=abi::ADAPT_POLICY_MAX_TOTAL).contains(v.get_ref()) {
            return Err(err(
                v.span(),
                format!(
                    "max_injections_total must be 1..={}",
                    abi::ADAPT_POLICY_MAX_TOTAL
                ),
            ));
        }
        p.max_total = *v.get_ref();
    }
    if let Some(v) = &file.max_injections_per_process {
        if !(1..=p.max_total).contains(v.get_ref()) {
            return Err(err(
                v.span(),
                format!(
                    "max_injections_per_process must be 1..={} (max_injections_total)",
                    p.max_total
                ),
            ));
        }
        p.max_per_process = *v.get_ref();
    } else {
        p.max_per_process = p.max_per_process.min(p.max_total);
    }
    if let Some(v) = &file.regression_margin {
        let m = *v.get_ref();
        if !(0.0..=1.0).contains(&m) {
            return Err(err(
                v.span(),
                "regression_margin must be between 0 and 1 (0.05 = 5 %)".into(),
            ));
        }
        // The module keeps the margin in thousandths: a finer value would
        // be changed silently on its way there, so it is refused instead.
        let permille = (m * 1000.0).round();
        if (m * 1000.0 - permille).abs() > 1e-6 {
            return Err(err(
                v.span(),
                format!(
                    "regression_margin {m} is finer than the module keeps (thousandths): use {}",
                    permille / 1000.0
                ),
            ));
        }
        p.regression_margin_permille = permille as u32;
    }
    let (fmin, fmax) = (abi::ADAPT_PROFILE_FREQ_MIN, abi::ADAPT_PROFILE_FREQ_MAX);
    if let Some(v) = &file.sampling.min_hz {
        if !(fmin..=fmax).contains(v.get_ref()) {
            return Err(err(
                v.span(),
                format!("sampling.min_hz must be {fmin}..={fmax}"),
            ));
        }
        p.freq_min_hz = *v.get_ref();
    }
    if let Some(v) = &file.sampling.max_hz {
        if !(p.freq_min_hz..=fmax).contains(v.get_ref()) {
            return Err(err(
                v.span(),
                format!(
                    "sampling.max_hz must be {}..={fmax} (≥ min_hz)",
                    p.freq_min_hz
                ),
            ));
        }
        p.freq_max_hz = *v.get_ref();
    }

    let empty_u32 = Spanned::new(0..0, Vec::new());
    let empty_str = Spanned::new(0..0, Vec::new());
    let uids = file.targets.uids.as_ref().unwrap_or(&empty_u32);
    if uids.get_ref().len() > abi::ADAPT_POLICY_MAX_UIDS {
        return Err(err(
            uids.span(),
            format!("at most {} uids", abi::ADAPT_POLICY_MAX_UIDS),
        ));
    }
    for (slot, uid) in p.uids.iter_mut().zip(uids.get_ref()) {
        *slot = *uid;
    }
    p.nuids = uids.get_ref().len() as u32;

    let comms = file.targets.commands.as_ref().unwrap_or(&empty_str);
    if comms.get_ref().len() > abi::ADAPT_POLICY_MAX_COMMS {
        return Err(err(
            comms.span(),
            format!("at most {} commands", abi::ADAPT_POLICY_MAX_COMMS),
        ));
    }
    for (slot, c) in p.comms.iter_mut().zip(comms.get_ref()) {
        *slot = abi::name_field_bytes(c.get_ref()).ok_or_else(|| {
            err(
                c.span(),
                format!(
                    "command {:?} must be 1..{} bytes",
                    c.get_ref(),
                    abi::ADAPT_COMM_LEN
                ),
            )
        })?;
    }
    p.ncomms = comms.get_ref().len() as u32;

    let exes = file.targets.executables.as_ref().unwrap_or(&empty_str);
    if exes.get_ref().len() > abi::ADAPT_POLICY_MAX_EXES {
        return Err(err(
            exes.span(),
            format!("at most {} executables", abi::ADAPT_POLICY_MAX_EXES),
        ));
    }
    for (slot, e) in p.exes.iter_mut().zip(exes.get_ref()) {
        if !e.get_ref().starts_with('/') {
            return Err(err(
                e.span(),
                format!("executable {:?} must be an absolute path", e.get_ref()),
            ));
        }
        *slot = abi::name_field_bytes(e.get_ref()).ok_or_else(|| {
            err(
                e.span(),
                format!(
                    "executable path must be shorter than {} bytes",
                    abi::ADAPT_PATH_LEN
                ),
            )
        })?;
    }
    p.nexes = exes.get_ref().len() as u32;

    let segs = file.segments.allow.as_ref().unwrap_or(&empty_str);
    if segs.get_ref().len() > abi::ADAPT_POLICY_MAX_SEGMENTS {
        return Err(err(
            segs.span(),
            format!("at most {} segments", abi::ADAPT_POLICY_MAX_SEGMENTS),
        ));
    }
    for (slot, s) in p.segments.iter_mut().zip(segs.get_ref()) {
        let ok = !s.get_ref().is_empty()
            && s.get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
        *slot = abi::name_field(s.get_ref()).filter(|_| ok).ok_or_else(|| {
            err(
                s.span(),
                format!("segment {:?} is not a segment name", s.get_ref()),
            )
        })?;
    }
    p.nsegments = segs.get_ref().len() as u32;
    Ok(p)
}

/// Whether `policy` allows segments of `float-reassociate` numerics
/// (`allow_float_reassociate`, see the module documentation).
pub fn allows_float_reassociate(policy: &abi::AdaptPolicy) -> bool {
    policy.flags & abi::ADAPT_POLICY_F_FLOAT_REASSOCIATE != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_default_policy() {
        let p = parse("").unwrap();
        assert_eq!(p.flags, abi::ADAPT_POLICY_F_ENABLED);
        assert!(!allows_float_reassociate(&p));
        assert_eq!(p.max_per_process, abi::ADAPT_POLICY_DEFAULT_PER_PROCESS);
        assert_eq!((p.nuids, p.ncomms, p.nexes, p.nsegments), (0, 0, 0, 0));
    }

    #[test]
    fn a_full_file_fills_every_field() {
        let p = parse(
            r#"
enabled = false
max_injections_per_process = 2
max_injections_total = 5
regression_margin = 0.1
allow_float_reassociate = true
[sampling]
min_hz = 100
max_hz = 2000
[targets]
uids = [0, 1000]
commands = ["python3"]
executables = ["/usr/bin/python3.11"]
[segments]
allow = ["crc32"]
"#,
        )
        .unwrap();
        assert_eq!(p.flags, abi::ADAPT_POLICY_F_FLOAT_REASSOCIATE);
        assert!(allows_float_reassociate(&p));
        assert_eq!((p.max_per_process, p.max_total), (2, 5));
        assert_eq!(p.regression_margin_permille, 100);
        assert_eq!((p.freq_min_hz, p.freq_max_hz), (100, 2000));
        assert_eq!(&p.uids[..2], &[0, 1000]);
        assert_eq!(abi::name_str(&p.comms[0]), Some("python3"));
        assert_eq!(abi::name_str(&p.exes[0]), Some("/usr/bin/python3.11"));
        assert_eq!(abi::name_str(&p.segments[0]), Some("crc32"));
        assert_eq!((p.nuids, p.ncomms, p.nexes, p.nsegments), (2, 1, 1, 1));
    }

    #[test]
    fn errors_name_the_line_and_the_reason() {
        let e = parse("enabled = true\nmax_injections_total = 0\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.reason.contains("max_injections_total"), "{e}");

        let e = parse("enabled = true\n\n[targets]\nexecutables = [\"python3\"]\n").unwrap_err();
        assert_eq!(e.line, Some(4));
        assert!(e.reason.contains("absolute"), "{e}");

        let e = parse("enabled = true\nbogus = 1\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.reason.contains("unknown field"), "{e}");

        let e = parse("enabled = \"yes\"\n").unwrap_err();
        assert_eq!(e.line, Some(1));

        let e = parse("regression_margin = 0.0504\n").unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(e.reason.contains("use 0.05"), "{e}");
        assert_eq!(
            parse("regression_margin = 0.055\n")
                .unwrap()
                .regression_margin_permille,
            55
        );

        let e = parse("[targets]\ncommands = [\"a-command-name-far-too-long\"]\n").unwrap_err();
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn float_reassociate_is_off_unless_set_to_true() {
        assert!(!allows_float_reassociate(
            &parse("enabled = true\n").unwrap()
        ));
        let off = parse("allow_float_reassociate = false\n").unwrap();
        assert!(!allows_float_reassociate(&off));
        assert_eq!(off.flags, abi::ADAPT_POLICY_F_ENABLED);
        let on = parse("allow_float_reassociate = true\n").unwrap();
        assert!(allows_float_reassociate(&on));
        assert_eq!(
            on.flags,
            abi::ADAPT_POLICY_F_ENABLED | abi::ADAPT_POLICY_F_FLOAT_REASSOCIATE
        );
        // Disabled injection keeps the switch (it takes effect when enabled).
        let both = parse("enabled = false\nallow_float_reassociate = true\n").unwrap();
        assert_eq!(both.flags, abi::ADAPT_POLICY_F_FLOAT_REASSOCIATE);
        // A boolean only; a list of targets is not (yet) a policy shape.
        let e = parse("allow_float_reassociate = [\"python3\"]\n").unwrap_err();
        assert_eq!(e.line, Some(1));
        let e = parse("[targets]\nallow_float_reassociate = true\n").unwrap_err();
        assert!(e.reason.contains("unknown field"), "{e}");
    }
}
