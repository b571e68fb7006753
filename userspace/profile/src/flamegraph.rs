//! Flame graphs (SVG, drawn by the `inferno` crate).
//!
//! adapt's samples carry no call chains yet, so the graph is of the flat
//! profile: one frame per object file, one above it per function.

use crate::aggregate::Profile;
use std::io::Write;

/// Writes `profile` as a flame graph titled `title`.
pub fn write_svg(profile: &Profile, title: &str, out: impl Write) -> Result<(), String> {
    let lines: Vec<String> = profile
        .functions
        .iter()
        .map(|f| {
            let object = f.object.rsplit('/').next().unwrap_or(&f.object);
            format!(
                "{};{} {}",
                sanitize(object),
                sanitize(&f.function),
                f.samples
            )
        })
        .collect();
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_owned();
    options.count_name = "samples".to_owned();
    inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
        .map_err(|err| err.to_string())
}

/// Frame names may not contain the separators of the folded format.
fn sanitize(name: &str) -> String {
    name.replace([';', ' '], "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::ProfileBuilder;
    use crate::symbolizer::Location;

    #[test]
    fn draws_every_function_as_a_frame() {
        let mut b = ProfileBuilder::default();
        for (f, n) in [("hot_fn", 30), ("warm fn;x", 10)] {
            for _ in 0..n {
                b.add(
                    Location {
                        function: f.into(),
                        object: "/usr/lib/libdemo.so".into(),
                    },
                    1,
                    false,
                );
            }
        }
        let mut svg = Vec::new();
        write_svg(&b.finish(|_, _| None), "demo", &mut svg).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("hot_fn"));
        assert!(svg.contains("warm_fn_x"));
        assert!(svg.contains("libdemo.so"));
    }
}
