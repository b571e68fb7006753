//! Rendering shared by several subcommands.

use adapt_select::Selection;

pub(crate) use adapt_ops::timings::duration_ns;

/// Prints what `adaptctl inject` measured before injecting (text mode).
pub(crate) fn measurement(selection: &Selection) {
    println!(
        "measured here before injecting (the same as `adaptctl bench {}`):",
        selection.segment
    );
    for line in selection.to_string().lines() {
        println!("  {line}");
    }
}
