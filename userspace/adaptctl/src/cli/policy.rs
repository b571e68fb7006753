//! `adaptctl policy show|set`: the injection policy held in the module.
//!
//! The policy file (TOML) of a later issue loads through the same
//! [`apply`]: read it into a [`Change`], apply it to the current policy,
//! validate, set.

use super::module_open::open_checked;
use adapt_client::inject::{self, Policy};
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
            Command::Show { json } | Command::Set { json, .. } => *json,
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
    let device = open_checked(device_path)?;
    let policy = match &args.command {
        Command::Show { .. } => inject::get_policy(&device)?,
        Command::Set { change, .. } => {
            let wanted = apply(inject::get_policy(&device)?, change);
            inject::set_policy(&device, &wanted)?;
            inject::get_policy(&device)?
        }
    };
    if args.json() {
        println!("{}", serde_json::to_string_pretty(&policy)?);
    } else {
        println!("injection:       {}", if policy.enabled { "enabled" } else { "disabled" });
        println!("max per process: {}", policy.max_per_process);
        println!("max total:       {}", policy.max_total);
    }
    Ok(ExitCode::SUCCESS)
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
        let off = Change { disable: true, ..Change::default() };
        assert_eq!(apply(NOW, &off), Policy { enabled: false, ..NOW });
        let on = Change { enable: true, max_total: Some(20), ..Change::default() };
        let off_now = Policy { enabled: false, ..NOW };
        assert_eq!(apply(off_now, &on), Policy { enabled: true, max_total: 20, ..NOW });
        let limits = Change { max_per_process: Some(2), ..Change::default() };
        assert_eq!(apply(NOW, &limits), Policy { max_per_process: 2, ..NOW });
    }
}
