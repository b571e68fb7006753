// SPDX-License-Identifier: GPL-2.0
//! The C ABI contract of a replaced function: argument and return types under
//! the System V x86-64 calling convention (LP64: `long` is 64 bits).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The scalar a C type is made of (or points to).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scalar {
    /// `void` (only as a return type or behind a pointer).
    Void,
    /// 8-bit unsigned integer.
    U8,
    /// 16-bit unsigned integer.
    U16,
    /// 32-bit unsigned integer.
    U32,
    /// 64-bit unsigned integer (also `unsigned long` and `size_t` on LP64).
    U64,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// IEEE-754 binary32.
    F32,
    /// IEEE-754 binary64.
    F64,
}

/// Whether a value is passed as is or through a pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Indirection {
    /// The scalar itself.
    Value,
    /// `const T *`: the callee only reads through it.
    ConstPtr,
    /// `T *`: the callee may write through it.
    MutPtr,
}

/// A C type: a scalar, maybe behind one pointer, plus its C spelling (the
/// typedef the replaced library uses, e.g. `uLong` or `const Bytef *`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CType {
    /// What the value is made of.
    pub scalar: Scalar,
    /// Value or pointer.
    pub indirection: Indirection,
    /// How the replaced library's header spells the type.
    pub spelling: String,
}

impl CType {
    /// A scalar passed by value.
    pub fn value(scalar: Scalar, spelling: &str) -> CType {
        CType {
            scalar,
            indirection: Indirection::Value,
            spelling: spelling.to_owned(),
        }
    }

    /// A pointer to constant data.
    pub fn const_ptr(scalar: Scalar, spelling: &str) -> CType {
        CType {
            scalar,
            indirection: Indirection::ConstPtr,
            spelling: spelling.to_owned(),
        }
    }

    /// A pointer to writable data.
    pub fn mut_ptr(scalar: Scalar, spelling: &str) -> CType {
        CType {
            scalar,
            indirection: Indirection::MutPtr,
            spelling: spelling.to_owned(),
        }
    }
}

/// One named parameter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// The parameter's name in the replaced library's header.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: CType,
}

/// The C ABI contract of one function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    /// Return type.
    pub returns: CType,
    /// Parameters, in order.
    pub params: Vec<Param>,
}

impl Contract {
    /// The C declaration of `symbol` under this contract, e.g.
    /// `uLong crc32(uLong crc, const Bytef *buf, uInt len)`.
    pub fn declaration(&self, symbol: &str) -> String {
        let params = if self.params.is_empty() {
            "void".to_owned()
        } else {
            self.params
                .iter()
                .map(|p| join_type_name(&p.ty.spelling, &p.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{}({params})",
            join_type_name(&self.returns.spelling, symbol)
        )
    }
}

fn join_type_name(ty: &str, name: &str) -> String {
    if ty.ends_with('*') {
        format!("{ty}{name}")
    } else {
        format!("{ty} {name}")
    }
}

impl fmt::Display for CType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spelling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declaration_reads_like_c() {
        let c = Contract {
            returns: CType::value(Scalar::U64, "uLong"),
            params: vec![
                Param {
                    name: "crc".into(),
                    ty: CType::value(Scalar::U64, "uLong"),
                },
                Param {
                    name: "buf".into(),
                    ty: CType::const_ptr(Scalar::U8, "const Bytef *"),
                },
                Param {
                    name: "len".into(),
                    ty: CType::value(Scalar::U32, "uInt"),
                },
            ],
        };
        assert_eq!(
            c.declaration("crc32"),
            "uLong crc32(uLong crc, const Bytef *buf, uInt len)"
        );
        let v = Contract {
            returns: CType::value(Scalar::Void, "void"),
            params: vec![],
        };
        assert_eq!(v.declaration("f"), "void f(void)");
    }
}
