// SPDX-License-Identifier: GPL-2.0
//! `build-library [--out DIR] [--sources DIR] [--testing] [SEGMENT...]`:
//! compiles, packs and verifies every segment of the library, the relaxed
//! (`float-reassociate`, opt-in by policy) ones included (with
//! `--testing`, the test-only segments instead, for their own directory).

use std::path::PathBuf;
use std::process::ExitCode;

use adapt_library_build::builder::{
    build_library, build_testing_library, default_out_dir, default_sources_dir, BuildOptions,
};
use anyhow::{bail, Result};

fn run() -> Result<ExitCode> {
    let mut out = None;
    let mut sources = None;
    let mut only = Vec::new();
    let mut testing = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().map(PathBuf::from),
            "--sources" => sources = args.next().map(PathBuf::from),
            "--testing" => testing = true,
            "-h" | "--help" => {
                println!(
                    "usage: build-library [--out DIR] [--sources DIR] [--testing] [SEGMENT...]"
                );
                return Ok(ExitCode::SUCCESS);
            }
            s if s.starts_with('-') => bail!("unknown option {s}"),
            s => only.push(s.to_owned()),
        }
    }
    let out_dir = out.unwrap_or_else(default_out_dir);
    let opts = BuildOptions {
        work_dir: out_dir.join(".objects"),
        out_dir,
        sources_dir: sources.unwrap_or_else(default_sources_dir),
        only,
    };
    let built = if testing {
        build_testing_library(&opts)?
    } else {
        build_library(&opts)?
    };
    for b in built {
        println!(
            "{}  {}  {}{}",
            b.segment.content_hash_hex(),
            b.path.display(),
            b.segment.description,
            if b.segment.numerics.is_exact() {
                String::new()
            } else {
                format!(" [numerics {}: opt-in only]", b.segment.numerics)
            }
        );
        for r in &b.reports {
            println!(
                "    {:<16} {:>6} bytes {:>5} instructions  uses {}",
                r.variant,
                r.code_bytes,
                r.instructions,
                if r.features_used.is_empty() {
                    "baseline".to_owned()
                } else {
                    r.features_used.join(",")
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("build-library: {e:#}");
            ExitCode::FAILURE
        }
    }
}
