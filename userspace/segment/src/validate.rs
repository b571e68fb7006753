// SPDX-License-Identifier: GPL-2.0
//! Structural validation: every length against its limit, every offset
//! against the vector it points into. No decoding of instructions here (that
//! is [`crate::verify`]); this is what a C reader (the kernel) repeats.

use crate::contract::{CType, Contract, Indirection, Scalar};
use crate::error::FormatError;
use crate::format::{limits, Import, Numerics, Segment, SegmentFile, Variant, FALLBACK};

fn limit(what: impl Into<String>, len: usize, max: usize) -> Result<(), FormatError> {
    if len > max {
        return Err(FormatError::Limit {
            what: what.into(),
            len: len as u64,
            limit: max as u64,
        });
    }
    Ok(())
}

fn invalid(what: impl Into<String>, why: impl Into<String>) -> FormatError {
    FormatError::Invalid {
        what: what.into(),
        why: why.into(),
    }
}

/// A segment or variant name: 1 to [`limits::MAX_NAME`] bytes of `[a-z0-9._-]`,
/// starting with a letter or digit.
pub fn check_name(what: &str, s: &str) -> Result<(), FormatError> {
    limit(what, s.len(), limits::MAX_NAME)?;
    let ok = s.bytes().enumerate().all(|(i, b)| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && matches!(b, b'.' | b'_' | b'-'))
    });
    if s.is_empty() || !ok {
        return Err(invalid(
            what,
            format!("{s:?} is not a name (lowercase ASCII letters, digits, '.', '_', '-')"),
        ));
    }
    Ok(())
}

/// A C identifier of 1 to [`limits::MAX_NAME`] bytes.
pub fn check_identifier(what: &str, s: &str) -> Result<(), FormatError> {
    limit(what, s.len(), limits::MAX_NAME)?;
    let ok = s
        .bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_alphabetic() || b == b'_' || (i > 0 && b.is_ascii_digit()));
    if s.is_empty() || !ok {
        return Err(invalid(what, format!("{s:?} is not a C identifier")));
    }
    Ok(())
}

fn check_text(what: &str, s: &str, max: usize) -> Result<(), FormatError> {
    limit(what, s.len(), max)?;
    if s.chars().any(|c| c.is_control()) {
        return Err(invalid(what, "contains control characters"));
    }
    Ok(())
}

fn check_type(what: &str, t: &CType, is_return: bool) -> Result<(), FormatError> {
    check_text(&format!("{what} spelling"), &t.spelling, limits::MAX_NAME)?;
    if t.spelling.is_empty() {
        return Err(invalid(format!("{what} spelling"), "is empty"));
    }
    if t.scalar == Scalar::Void && t.indirection == Indirection::Value && !is_return {
        return Err(invalid(what, "a parameter cannot be void"));
    }
    Ok(())
}

fn check_contract(what: &str, c: &Contract) -> Result<(), FormatError> {
    check_type(&format!("{what} return type"), &c.returns, true)?;
    limit(
        format!("{what} parameters"),
        c.params.len(),
        limits::MAX_PARAMS,
    )?;
    for (i, p) in c.params.iter().enumerate() {
        let pw = format!("{what} parameter {i}");
        check_identifier(&format!("{pw} name"), &p.name)?;
        check_type(&pw, &p.ty, false)?;
    }
    Ok(())
}

impl Segment {
    /// Checks every length, count, name and offset of the segment. A segment
    /// that passes can be placed and relocated without any further bounds
    /// check; whether its code is acceptable is [`crate::verify`]'s business.
    pub fn validate(&self) -> Result<(), FormatError> {
        check_name("segment name", &self.name)?;
        check_text("segment description", &self.description, limits::MAX_TEXT)?;
        check_text("segment build information", &self.build, limits::MAX_TEXT)?;
        let seg = format!("segment {}", self.name);

        if self.functions.is_empty() {
            return Err(invalid(
                format!("{seg}: functions"),
                "none: a segment replaces at least one function",
            ));
        }
        limit(
            format!("{seg}: functions"),
            self.functions.len(),
            limits::MAX_FUNCTIONS,
        )?;
        for (i, f) in self.functions.iter().enumerate() {
            let what = format!("{seg}: function {i}");
            check_identifier(&format!("{what} symbol"), &f.symbol)?;
            if self.functions[..i].iter().any(|g| g.symbol == f.symbol) {
                return Err(invalid(
                    format!("{what} symbol"),
                    format!("{} appears twice", f.symbol),
                ));
            }
            check_text(&format!("{what} library"), &f.library, limits::MAX_NAME)?;
            check_text(&format!("{what} reference"), &f.reference, limits::MAX_TEXT)?;
            check_contract(&format!("{seg}: function {}", f.symbol), &f.contract)?;
        }
        check_numerics(&seg, self)?;

        if self.variants.is_empty() {
            return Err(invalid(
                format!("{seg}: variants"),
                "none: a segment has at least one variant",
            ));
        }
        limit(
            format!("{seg}: variants"),
            self.variants.len(),
            limits::MAX_VARIANTS,
        )?;
        for (j, v) in self.variants.iter().enumerate() {
            check_name(&format!("{seg}: variant {j} name"), &v.name)?;
            if self.variants[..j].iter().any(|w| w.name == v.name) {
                return Err(invalid(
                    format!("{seg}: variant {j} name"),
                    format!("{} appears twice", v.name),
                ));
            }
            v.validate(&format!("{seg}: variant {}", v.name), self.functions.len())?;
        }
        Ok(())
    }
}

/// Whether `t` is or points to a floating-point value.
fn is_float(t: &CType) -> bool {
    matches!(t.scalar, Scalar::F32 | Scalar::F64)
}

/// A segment marked [`Numerics::FloatReassociate`] must replace at least one
/// function that takes or returns floating-point values (or pointers to
/// them): on anything else the marking means nothing, and is a mistake.
fn check_numerics(seg: &str, segment: &Segment) -> Result<(), FormatError> {
    if segment.numerics == Numerics::FloatReassociate
        && !segment.functions.iter().any(|f| {
            is_float(&f.contract.returns) || f.contract.params.iter().any(|p| is_float(&p.ty))
        })
    {
        return Err(invalid(
            format!("{seg}: numerics"),
            format!(
                "{} on functions without floating-point values",
                Numerics::FloatReassociate
            ),
        ));
    }
    Ok(())
}

impl SegmentFile {
    /// [`Segment::validate`], then the imports: at most
    /// [`limits::MAX_IMPORTS`], each named [`FALLBACK`] or a C identifier,
    /// no name twice, a valid contract; `fallback` has no library and the
    /// contract of every function the segment replaces (it stands for the
    /// original of whichever is injected).
    pub fn validate(&self) -> Result<(), FormatError> {
        self.segment.validate()?;
        validate_imports(&self.segment, &self.imports)
    }
}

/// The import checks of [`SegmentFile::validate`] (the segment itself is
/// assumed valid).
pub fn validate_imports(segment: &Segment, imports: &[Import]) -> Result<(), FormatError> {
    let seg = format!("segment {}", segment.name);
    limit(
        format!("{seg}: imports"),
        imports.len(),
        limits::MAX_IMPORTS,
    )?;
    for (m, import) in imports.iter().enumerate() {
        let what = format!("{seg}: import {m}");
        if !import.is_fallback() {
            check_identifier(&format!("{what} name"), &import.name)?;
        }
        if imports[..m].iter().any(|other| other.name == import.name) {
            return Err(invalid(
                format!("{what} name"),
                format!("{} appears twice", import.name),
            ));
        }
        check_text(
            &format!("{what} library"),
            &import.library,
            limits::MAX_NAME,
        )?;
        check_contract(&format!("{seg}: import {}", import.name), &import.contract)?;
        if import.is_fallback() {
            if !import.library.is_empty() {
                return Err(invalid(
                    format!("{what} library"),
                    format!("{FALLBACK} is the trampoline to the original: it has no library"),
                ));
            }
            if let Some(f) = segment
                .functions
                .iter()
                .find(|f| f.contract != import.contract)
            {
                return Err(invalid(
                    format!("{what} contract"),
                    format!(
                        "{FALLBACK} is declared as `{}` but the segment replaces `{}`: the \
                         fallback has the contract of every function it replaces",
                        import.contract.declaration(FALLBACK),
                        f.contract.declaration(&f.symbol)
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl Variant {
    /// Structural checks of one variant of a segment with `functions`
    /// functions; `what` prefixes error messages.
    pub fn validate(&self, what: &str, functions: usize) -> Result<(), FormatError> {
        if !self.features.is_closed() {
            return Err(invalid(
                format!("{what}: features"),
                format!(
                    "{} does not list what it implies ({})",
                    self.features,
                    self.features.closure()
                ),
            ));
        }
        if self.code.is_empty() {
            return Err(invalid(format!("{what}: code"), "is empty"));
        }
        limit(
            format!("{what}: code size"),
            self.code.len(),
            limits::MAX_CODE,
        )?;
        limit(
            format!("{what}: rodata size"),
            self.rodata.len(),
            limits::MAX_RODATA,
        )?;
        if !self.rodata_align.is_power_of_two() || self.rodata_align > limits::MAX_RODATA_ALIGN {
            return Err(invalid(
                format!("{what}: rodata_align"),
                format!(
                    "{} is not a power of two of at most {}",
                    self.rodata_align,
                    limits::MAX_RODATA_ALIGN
                ),
            ));
        }

        limit(
            format!("{what}: relocations"),
            self.relocations.len(),
            limits::MAX_RELOCATIONS,
        )?;
        let mut next_free = 0u64;
        for (k, r) in self.relocations.iter().enumerate() {
            let rw = format!("{what}: relocation {k}");
            let start = u64::from(r.offset);
            if start < next_free {
                return Err(invalid(
                    &rw,
                    format!(
                        "offset {:#x} is not after the previous relocation's field",
                        r.offset
                    ),
                ));
            }
            if start + 4 > self.code.len() as u64 {
                return Err(invalid(
                    &rw,
                    format!(
                        "field {:#x}..{:#x} is outside the code ({:#x} bytes)",
                        start,
                        start + 4,
                        self.code.len()
                    ),
                ));
            }
            next_free = start + 4;
            if u64::from(r.rodata_offset) > self.rodata.len() as u64 {
                return Err(invalid(
                    &rw,
                    format!(
                        "rodata offset {:#x} is outside the rodata ({:#x} bytes)",
                        r.rodata_offset,
                        self.rodata.len()
                    ),
                ));
            }
            if r.addend.unsigned_abs() > limits::MAX_ADDEND.unsigned_abs() {
                return Err(invalid(
                    &rw,
                    format!("addend {} is larger than ±{}", r.addend, limits::MAX_ADDEND),
                ));
            }
        }

        if self.entry_offsets.len() != functions {
            return Err(invalid(
                format!("{what}: entry_offsets"),
                format!(
                    "{} entries for {functions} functions",
                    self.entry_offsets.len()
                ),
            ));
        }
        for (i, &e) in self.entry_offsets.iter().enumerate() {
            if e as usize >= self.code.len() {
                return Err(invalid(
                    format!("{what}: entry {i}"),
                    format!(
                        "offset {e:#x} is outside the code ({:#x} bytes)",
                        self.code.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}
