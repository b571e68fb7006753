//! `adaptctl status`.

use adapt_client::{Device, Status};
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print a JSON document instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn run(device: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let device = Device::open(device)?;
    let status = Status::query(&device)?;
    let activity = Activity::query(&device);
    let install = Install::query();
    if args.json {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            #[serde(flatten)]
            status: &'a Status,
            #[serde(flatten)]
            activity: &'a Activity,
            #[serde(flatten)]
            install: &'a Install,
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&Doc {
                status: &status,
                activity: &activity,
                install: &install,
            })?
        );
    } else {
        print!("{}", render(&status));
        print!("{}", activity.render());
        print!("{}", install.render());
    }
    Ok(ExitCode::SUCCESS)
}

/// What the module is doing: loaded variants, quarantined ones, live
/// injections. Absent figures (an older module) are left out.
#[derive(Debug, Default, serde::Serialize)]
struct Activity {
    loaded_variants: Option<usize>,
    quarantined_variants: Option<Vec<String>>,
    live_injections: Option<usize>,
}

impl Activity {
    fn query(device: &Device) -> Self {
        let library = adapt_client::library::list(device).ok();
        Self {
            loaded_variants: library.as_ref().map(Vec::len),
            quarantined_variants: library.map(|l| {
                l.into_iter()
                    .filter(|v| v.quarantined)
                    .map(|v| format!("{}/{}", v.segment, v.variant))
                    .collect()
            }),
            live_injections: adapt_client::inject::list(device, None)
                .ok()
                .map(|l| l.len()),
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(n) = self.loaded_variants {
            out.push_str(&format!("library    {n} variant(s) loaded\n"));
        }
        if let Some(q) = &self.quarantined_variants {
            if !q.is_empty() {
                out.push_str(&format!(
                    "quarantine {} (a target faulted inside; never injected automatically)\n",
                    q.join(", ")
                ));
            }
        }
        if let Some(n) = self.live_injections {
            out.push_str(&format!("injections {n} live\n"));
        }
        out
    }
}

fn render(s: &Status) -> String {
    let abi = if s.abi_match { "match" } else { "MISMATCH" };
    format!(
        "module     adapt {} ({})\n\
         ABI        v{} (adaptctl {} speaks v{}: {abi})\n\
         sampling   {}\n",
        s.module_version,
        s.device.display(),
        s.module_abi_version,
        s.adaptctl_version,
        s.adaptctl_abi_version,
        s.sampling.describe(),
    )
}

/// The systemd unit of the adaptive loop (the Debian package's).
const SERVICE: &str = "adapt-auto.service";

/// What this installation uses: the segment library adaptctl finds by
/// default, and whether the service runs.
#[derive(Debug, serde::Serialize)]
struct Install {
    /// The default library directory (`None`: none found).
    library_dir: Option<std::path::PathBuf>,
    /// `systemctl is-active adapt-auto.service` (active, inactive, failed,
    /// activating, …), or `unknown` without a running systemd.
    service: String,
}

impl Install {
    fn query() -> Self {
        Self {
            library_dir: adapt_segment::default_library_dir(),
            service: service_state(),
        }
    }

    fn render(&self) -> String {
        let library = match &self.library_dir {
            Some(dir) => dir.display().to_string(),
            None => format!(
                "none found (install the package, or set ${})",
                adapt_segment::LIBRARY_ENV
            ),
        };
        format!(
            "segments   {library}\n\
             service    {SERVICE} {}\n",
            self.service
        )
    }
}

/// The unit's state from `systemctl is-active`; `unknown` when there is no
/// systemctl or no systemd answering it.
fn service_state() -> String {
    // systemd's own test that it is running (sd_booted): without it,
    // systemctl could only say so, at the cost of starting a program.
    if !Path::new("/run/systemd/system").exists() {
        return parse_is_active("");
    }
    let Ok(out) = std::process::Command::new("systemctl")
        .args(["is-active", SERVICE])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return "unknown (no systemctl)".into();
    };
    parse_is_active(&String::from_utf8_lossy(&out.stdout))
}

/// `systemctl is-active`'s answer, when it is one of its states.
fn parse_is_active(stdout: &str) -> String {
    let state = stdout.trim();
    let known = [
        "active",
        "inactive",
        "failed",
        "activating",
        "deactivating",
        "reloading",
        "maintenance",
        "refreshing",
    ];
    if known.contains(&state) {
        state.to_owned()
    } else {
        "unknown (systemd is not running)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_states() {
        assert_eq!(parse_is_active("active\n"), "active");
        assert_eq!(parse_is_active("inactive\n"), "inactive");
        assert_eq!(parse_is_active(""), "unknown (systemd is not running)");
        assert_eq!(
            parse_is_active("System has not been booted with systemd"),
            "unknown (systemd is not running)"
        );
    }
}
