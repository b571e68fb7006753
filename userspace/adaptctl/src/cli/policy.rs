//! `adaptctl policy show|set|load`: the policy held in the module.
//!
//! `set` changes the enable switch and the limits; `load FILE` replaces the
//! whole policy from a TOML file (format in `adapt_auto::policy_file`), or
//! nothing at all if the file is wrong.

use adapt_client::policy::{self, Policy};
use adapt_client::Device;
use clap::Subcommand;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the policy in force.
    Show {
        /// Print a JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Replace the whole policy with the one in a TOML file. Nothing
    /// changes if the file has an error; the error names its line.
    ///
    /// Keys (all optional): enabled, max_injections_per_process,
    /// max_injections_total, regression_margin (0.05 = 5 %),
    /// allow_float_reassociate (default false: segments that are not
    /// bit-identical, such as dgemm-relaxed, are refused);
    /// [sampling] min_hz, max_hz; [targets] uids, commands, executables
    /// (empty: any process); [segments] allow (empty: every segment). The
    /// module enforces the switch, the limits and the targets against any
    /// caller; adaptctl enforces the segments, allow_float_reassociate,
    /// the sampling bounds and the margin.
    Load {
        /// The policy file.
        file: std::path::PathBuf,
        /// Print a JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change the policy; unnamed settings keep their value. Prints the
    /// policy in force afterwards.
    Set {
        #[command(flatten)]
        change: Change,
        /// Print a JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// What `policy set` changes.
#[derive(Debug, Default, clap::Args)]
#[command(group(clap::ArgGroup::new("setting").required(true).multiple(true).args(["enable", "disable", "max_per_process", "max_total"])))]
pub(crate) struct Change {
    /// Allow injections.
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Refuse every new injection (live ones stay).
    #[arg(long)]
    disable: bool,
    /// Most live injections in one process (1..=max-total).
    #[arg(long, value_name = "N")]
    max_per_process: Option<u32>,
    /// Most live injections in all processes (1..=4096).
    #[arg(long, value_name = "N")]
    max_total: Option<u32>,
}

impl Args {
    pub(crate) fn json(&self) -> bool {
        match &self.command {
            Command::Show { json } | Command::Set { json, .. } | Command::Load { json, .. } => {
                *json
            }
        }
    }
}

/// `current` with `change` applied.
pub(crate) fn apply(current: Policy, change: &Change) -> Policy {
    Policy {
        enabled: if change.enable {
            true
        } else if change.disable {
            false
        } else {
            current.enabled
        },
        max_per_process: change.max_per_process.unwrap_or(current.max_per_process),
        max_total: change.max_total.unwrap_or(current.max_total),
    }
}

pub(crate) fn run(device_path: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let device = Device::open_checked(device_path)?;
    let policy = match &args.command {
        Command::Show { .. } => policy::get_policy(&device)?,
        Command::Set { change, .. } => {
            let wanted = apply(policy::get_policy(&device)?, change);
            policy::set_policy(&device, &wanted)?;
            policy::get_policy(&device)?
        }
        Command::Load { file, .. } => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                anyhow::anyhow!("cannot read the policy file {}: {e}", file.display())
            })?;
            let wanted = adapt_auto::policy_file::parse(&text).map_err(|e| {
                anyhow::anyhow!(
                    "policy file {}: {e}; the policy in force is unchanged",
                    file.display()
                )
            })?;
            policy::set_policy_raw(&device, &wanted)?;
            policy::get_policy(&device)?
        }
    };
    let full = FullPolicy::from_raw(policy, &policy::get_policy_raw(&device)?);
    if args.json() {
        println!("{}", serde_json::to_string_pretty(&full)?);
    } else {
        let list = |v: &[String]| {
            if v.is_empty() {
                "any".to_owned()
            } else {
                v.join(", ")
            }
        };
        println!(
            "injection:       {}",
            if policy.enabled {
                "enabled"
            } else {
                "disabled"
            }
        );
        println!("max per process: {}", policy.max_per_process);
        println!("max total:       {}", policy.max_total);
        println!(
            "target uids:     {}",
            list(&full.uids.iter().map(u32::to_string).collect::<Vec<_>>())
        );
        println!("target commands: {}", list(&full.commands));
        println!("target programs: {}", list(&full.executables));
        println!(
            "segments:        {}",
            if full.segments.is_empty() {
                "all".to_owned()
            } else {
                full.segments.join(", ")
            }
        );
        println!(
            "sampling:        {}..={} Hz",
            full.sampling_min_hz, full.sampling_max_hz
        );
        println!("regression margin: {:.1} %", full.regression_margin * 100.0);
        println!(
            "float-reassociate: {}",
            if full.allow_float_reassociate {
                "allowed (segments that are not bit-identical may be injected)"
            } else {
                "refused (only bit-identical segments; allow_float_reassociate = false)"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The whole policy, for display.
#[derive(serde::Serialize)]
struct FullPolicy {
    #[serde(flatten)]
    basics: Policy,
    uids: Vec<u32>,
    commands: Vec<String>,
    executables: Vec<String>,
    segments: Vec<String>,
    sampling_min_hz: u32,
    sampling_max_hz: u32,
    regression_margin: f64,
    /// Segments of `float-reassociate` numerics (not bit-identical) may be
    /// injected.
    allow_float_reassociate: bool,
}

impl FullPolicy {
    fn from_raw(basics: Policy, p: &adapt_abi::AdaptPolicy) -> Self {
        let names = |fields: &[&[u8]]| -> Vec<String> {
            fields
                .iter()
                .map(|f| adapt_abi::name_str(f).unwrap_or("?").to_owned())
                .collect()
        };
        let comms: Vec<&[u8]> = p
            .comms
            .iter()
            .take(p.ncomms as usize)
            .map(|c| &c[..])
            .collect();
        let exes: Vec<&[u8]> = p
            .exes
            .iter()
            .take(p.nexes as usize)
            .map(|c| &c[..])
            .collect();
        let segs: Vec<&[u8]> = p
            .segments
            .iter()
            .take(p.nsegments as usize)
            .map(|c| &c[..])
            .collect();
        Self {
            basics,
            uids: p.uids.iter().take(p.nuids as usize).copied().collect(),
            commands: names(&comms),
            executables: names(&exes),
            segments: names(&segs),
            sampling_min_hz: p.freq_min_hz,
            sampling_max_hz: p.freq_max_hz,
            regression_margin: f64::from(p.regression_margin_permille) / 1000.0,
            allow_float_reassociate: adapt_auto::policy_file::allows_float_reassociate(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Policy = Policy {
        enabled: true,
        max_per_process: 16,
        max_total: 256,
    };

    #[test]
    fn unnamed_settings_keep_their_value() {
        let off = Change {
            disable: true,
            ..Change::default()
        };
        assert_eq!(
            apply(NOW, &off),
            Policy {
                enabled: false,
                ..NOW
            }
        );
        let on = Change {
            enable: true,
            max_total: Some(20),
            ..Change::default()
        };
        let off_now = Policy {
            enabled: false,
            ..NOW
        };
        assert_eq!(
            apply(off_now, &on),
            Policy {
                enabled: true,
                max_total: 20,
                ..NOW
            }
        );
        let limits = Change {
            max_per_process: Some(2),
            ..Change::default()
        };
        assert_eq!(
            apply(NOW, &limits),
            Policy {
                max_per_process: 2,
                ..NOW
            }
        );
    }
}
