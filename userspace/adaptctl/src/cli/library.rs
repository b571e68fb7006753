//! `adaptctl library …`: the optimization library on disk (segment files)
//! and in the module (uploaded variants). One file per subcommand under
//! `library/`; `adapt_client::upload` turns a segment variant into an upload.

mod disk;
mod list;
mod load;
mod module;
mod show;
mod unload;
mod verify;

use clap::Subcommand;
use std::path::Path;
use std::process::ExitCode;

/// Segments on disk, variants in the module.
///
/// The optimization library is a directory of segment files (NAME.seg), each
/// replacing one or more C functions with several variants of verified
/// machine code, one per set of CPU features. `library load` verifies
/// segments again and uploads the variants this CPU can run into the adapt
/// module, which keeps them ready for injection; `library unload` frees them.
///
/// The library directory is, unless --dir says otherwise: $ADAPT_LIBRARY,
/// else $CARGO_TARGET_DIR/adapt-library, else the first adapt-library/ or
/// target/adapt-library/ above adaptctl's executable, else the installed
/// library /usr/lib/adapt/library, else the same search above the current
/// directory. In adapt's source tree, `cargo run -p adapt-library-build --bin
/// build-library` builds one.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  adaptctl library list                what is on disk, what the module holds
  adaptctl library show crc32          contracts, variants, hashes, best variant here
  adaptctl library verify              run the verifier over every segment
  adaptctl library load --all          upload every variant this CPU can run (root)
  adaptctl library unload crc32        free every loaded variant of crc32 (root)
  adaptctl library unload --all        free everything that is not in use (root)";

#[derive(Debug, Subcommand)]
enum Command {
    /// List the segments on disk and the variants loaded in the module.
    ///
    /// For each segment: the functions it replaces and its variants, marked
    /// with whether this CPU can run them, which one is best here, and the
    /// library id of each variant already loaded in the module. Then the
    /// module's own list: id, users (live injections) and state. Without the
    /// module, the disk library is still listed.
    List(list::Args),

    /// Describe one segment: its functions with their C contracts, its
    /// variants with CPU features, sizes and hashes.
    ///
    /// Also shows which variants this CPU supports and which one adapt would
    /// pick (the first supported one: variants are stored best first), and
    /// for each function the contract signature and hash an injection must
    /// match.
    Show(show::Args),

    /// Run the verifier over segments (all when no NAME is given).
    ///
    /// The verifier decodes every instruction of every variant and refuses
    /// anything that is not leaf, position-independent, unprivileged code
    /// touching only its arguments and its own read-only data, or that needs
    /// a CPU feature the variant does not declare. Each refusal names the
    /// variant, the offset, the instruction and the rule. Exits 10 if any
    /// segment is refused.
    Verify(verify::Args),

    /// Verify segments, then upload their variants into the module.
    ///
    /// Uploads every variant this CPU supports (--all-variants: every
    /// variant; --variant V: only V). A variant already loaded (same hash)
    /// is reported as such with its existing id. Nothing is uploaded unless
    /// every selected segment passes the verifier. Needs root.
    Load(load::Args),

    /// Free variants loaded in the module, by library id or segment name.
    ///
    /// A segment name frees every loaded variant of it, `SEGMENT/VARIANT`
    /// one variant. A variant used by live injections is refused (exit 11,
    /// naming how many) unless --force, which reverts those injections
    /// first. Needs root.
    Unload(unload::Args),
}

impl Args {
    pub(crate) fn json(&self) -> bool {
        match &self.command {
            Command::List(a) => a.json,
            Command::Show(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Load(a) => a.json,
            Command::Unload(a) => a.json,
        }
    }
}

pub(crate) fn run(device: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        Command::List(a) => list::run(device, a),
        Command::Show(a) => show::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Load(a) => load::run(device, a),
        Command::Unload(a) => unload::run(device, a),
    }
}

/// Errors of the library commands that are not the client's or the segment
/// crate's.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    #[error(
        "the verifier refused {} segment(s) ({}): nothing was uploaded; see `adaptctl library \
         verify` for every refusal and rebuild the library (`cargo run -p adapt-library-build --bin build-library` in the source tree)",
        .0.len(), .0.join("; ")
    )]
    Refused(Vec<String>),

    #[error("segment {segment} has no variant {variant} (it has: {available})")]
    NoSuchVariantName {
        segment: String,
        variant: String,
        available: String,
    },

    #[error(
        "variant {segment}/{variant} needs {missing}, which this CPU lacks: pass --all-variants \
         to upload it anyway"
    )]
    Unsupported {
        segment: String,
        variant: String,
        missing: String,
    },

    #[error(
        "no loaded variant matches {target:?}: give a library id or a segment name from \
         `adaptctl library list`"
    )]
    NotLoaded { target: String },
}

impl CommandError {
    /// The `--json` kind (its exit code is in `exit.rs`).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            CommandError::Refused(_) => "refused",
            CommandError::NoSuchVariantName { .. } | CommandError::NotLoaded { .. } => {
                "no-such-variant"
            }
            CommandError::Unsupported { .. } => "unsupported-variant",
        }
    }
}
