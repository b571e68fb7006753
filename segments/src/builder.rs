// SPDX-License-Identifier: GPL-2.0
//! Building the whole library: compile every variant, extract it, pack the
//! segment, verify it, write `NAME.seg`.

use std::path::{Path, PathBuf};

use adapt_segment::{
    verify_with_imports, CpuFeatures, Segment, SegmentFile, Variant, VariantReport,
    SEGMENT_EXTENSION,
};
use anyhow::{bail, Context, Result};

use crate::catalog::{catalog, SegmentSpec};
use crate::compile::{Compiler, FLAGS};
use crate::extract::extract_with_imports;

/// What to build and where.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Directory receiving `NAME.seg` files (created if missing).
    pub out_dir: PathBuf,
    /// Directory of the segment sources.
    pub sources_dir: PathBuf,
    /// Directory for intermediate object files (created if missing).
    pub work_dir: PathBuf,
    /// Build only these segments (all when empty).
    pub only: Vec<String>,
}

/// The sources shipped with this crate.
pub fn default_sources_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sources")
}

/// The cargo target directory this executable lives in (`target/` for
/// `target/debug/build-library`), if it can be told.
pub fn target_dir_of_current_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?;
    // Test binaries live one level deeper, in target/<profile>/deps.
    let profile_dir = if profile_dir.file_name().is_some_and(|n| n == "deps") {
        profile_dir.parent()?
    } else {
        profile_dir
    };
    Some(profile_dir.parent()?.to_path_buf())
}

/// `target/adapt-library` next to this executable.
pub fn default_out_dir() -> PathBuf {
    target_dir_of_current_exe()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join(adapt_segment::LIBRARY_DIR_NAME)
}

/// The whole library built for the tests of one test binary, into
/// `target/adapt-library-tests/<who>` (the target directory of the running
/// test binary), once per process: every suite that needs the real library
/// calls this. Panics (these are tests) when the build fails.
pub fn library_for_tests(who: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    // A poisoned lock only means another test panicked while building:
    // build again.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, dir)) = built.iter().find(|(w, _)| w == who) {
        return dir.clone();
    }
    let dir = target_dir_of_current_exe()
        .expect("the test binary lives in a cargo target directory")
        .join("adapt-library-tests")
        .join(who);
    build_library(&BuildOptions {
        out_dir: dir.clone(),
        sources_dir: default_sources_dir(),
        work_dir: dir.join(".objects"),
        only: Vec::new(),
    })
    .unwrap_or_else(|e| panic!("the library builds into {}: {e:#}", dir.display()));
    built.push((who.to_owned(), dir.clone()));
    dir
}

/// One segment built.
#[derive(Clone, Debug)]
pub struct Built {
    /// The segment.
    pub segment: Segment,
    /// Where it was written.
    pub path: PathBuf,
    /// The verifier's reports, one per variant.
    pub reports: Vec<VariantReport>,
}

/// Builds one segment from its spec (without writing it).
pub fn build_segment(
    spec: &SegmentSpec,
    compiler: &Compiler,
    sources_dir: &Path,
    work_dir: &Path,
) -> Result<(Segment, Vec<VariantReport>)> {
    let symbols: Vec<&str> = spec.functions.iter().map(|f| f.symbol.as_str()).collect();
    let imports: Vec<&str> = spec.imports.iter().map(|i| i.name.as_str()).collect();
    let mut variants = Vec::new();
    for v in &spec.variants {
        let features: CpuFeatures = v.features.iter().collect::<CpuFeatures>().closure();
        let source = sources_dir.join(spec.name).join(format!("{}.rs", v.name));
        let crate_name = format!(
            "seg_{}_{}",
            spec.name.replace(['-', '.'], "_"),
            v.name.replace(['-', '.'], "_")
        );
        let obj = work_dir.join(format!("{crate_name}.o"));
        compiler
            .compile(&source, sources_dir, &crate_name, &features, &obj)
            .with_context(|| format!("segment {} variant {}", spec.name, v.name))?;
        let bytes = std::fs::read(&obj).with_context(|| format!("reading {}", obj.display()))?;
        let x = extract_with_imports(&bytes, &symbols, &imports).with_context(|| {
            format!(
                "segment {} variant {}: extracting {}",
                spec.name,
                v.name,
                obj.display()
            )
        })?;
        variants.push(Variant {
            name: v.name.to_owned(),
            features,
            code: x.code,
            rodata: x.rodata,
            rodata_align: x.rodata_align,
            relocations: x.relocations,
            entry_offsets: x.entry_offsets,
        });
    }
    let segment = Segment {
        name: spec.name.to_owned(),
        version: spec.version,
        description: spec.description.to_owned(),
        build: format!("{}; {}", compiler.version(), FLAGS.join(" ")),
        numerics: spec.numerics,
        functions: spec.functions.clone(),
        variants,
    };
    segment
        .validate()
        .with_context(|| format!("segment {}", spec.name))?;
    let reports = match verify_with_imports(&segment, &spec.imports) {
        Ok(r) => r,
        Err(e) => {
            let mut msg = format!("segment {} refused by the verifier: {e}", spec.name);
            for r in e.refusals() {
                msg.push_str(&format!("\n  {r}"));
            }
            bail!(msg);
        }
    };
    Ok((segment, reports))
}

/// Builds the library: every segment of the catalog (or those in
/// `opts.only`), verified, written to `opts.out_dir/NAME.seg`.
pub fn build_library(opts: &BuildOptions) -> Result<Vec<Built>> {
    build_specs(opts, catalog())
}

/// Builds the testing library (`catalog::testing_catalog`): segments that
/// exist only for tests, such as a deliberately slow one.
pub fn build_testing_library(opts: &BuildOptions) -> Result<Vec<Built>> {
    build_specs(opts, crate::catalog::testing_catalog())
}

fn build_specs(opts: &BuildOptions, catalog: Vec<SegmentSpec>) -> Result<Vec<Built>> {
    let compiler = Compiler::detect()?;
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("creating {}", opts.out_dir.display()))?;
    std::fs::create_dir_all(&opts.work_dir)
        .with_context(|| format!("creating {}", opts.work_dir.display()))?;
    let sources = opts
        .sources_dir
        .canonicalize()
        .with_context(|| format!("sources {}", opts.sources_dir.display()))?;
    let specs: Vec<SegmentSpec> = catalog
        .into_iter()
        .filter(|s| opts.only.is_empty() || opts.only.iter().any(|o| o == s.name))
        .collect();
    if specs.is_empty() {
        bail!("no segment matches {:?}", opts.only);
    }
    let mut built = Vec::new();
    for spec in &specs {
        let (segment, reports) = build_segment(spec, &compiler, &sources, &opts.work_dir)?;
        let path = opts
            .out_dir
            .join(format!("{}.{SEGMENT_EXTENSION}", spec.name));
        SegmentFile::new(segment.clone(), spec.imports.clone())
            .write_file(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        built.push(Built {
            segment,
            path,
            reports,
        });
    }
    Ok(built)
}
