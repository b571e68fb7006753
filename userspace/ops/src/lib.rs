//! The operations of adapt's control path, as a library: what `adaptctl`'s
//! subcommands (and any other front end, such as a service) do, without
//! their argument parsing or rendering.
//!
//! | operation | module |
//! |---|---|
//! | which segment/function/variant replaces a target, verified, with its contract | [`plan`], [`contract`] |
//! | which functions the on-disk library covers | [`library_index`] |
//! | measure the variants against the target's original before injecting | [`measure`] |
//! | upload the variant and inject | [`inject`] |
//! | find and revert injections | [`revert`] |
//! | count a function's calls (and one argument's histogram) | [`calls`] |
//! | the verifier's verdict on a library segment file | [`segment_check`] |
//! | collect a profile window from the module | [`collect`] |
//! | the adaptive loop (profile, inject, judge, revert) | [`auto`] |
//! | where one command's wall time went | [`timings`] |
//! | the control path's scheduling priority beside busy targets | [`priority`] |
//!
//! Every operation returns [`Error`]; the exit codes of `adaptctl` are
//! decided from it in the CLI, nowhere else.

pub mod auto;
pub mod calls;
pub mod collect;
pub mod contract;
pub mod error;
pub mod inject;
pub mod library_index;
pub mod measure;
pub mod plan;
pub mod priority;
pub mod revert;
pub mod segment_check;
pub mod timings;

pub use error::{Error, Result};
