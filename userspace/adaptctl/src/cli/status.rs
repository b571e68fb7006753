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
    if args.json {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            #[serde(flatten)]
            status: &'a Status,
            #[serde(flatten)]
            activity: &'a Activity,
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&Doc {
                status: &status,
                activity: &activity
            })?
        );
    } else {
        print!("{}", render(&status));
        print!("{}", activity.render());
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
