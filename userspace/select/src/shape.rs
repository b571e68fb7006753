// SPDX-License-Identifier: GPL-2.0
//! Contract shapes: which C signatures the selection knows how to call.
//!
//! A shape is recognised from a segment function's [`Contract`] by the
//! scalars and indirections of its return value and parameters (the type
//! spellings, `uLong` or `uint64_t`, do not matter). Each shape has one
//! benchmark driver in [`crate::driver`].

use std::fmt;

use adapt_segment::{Contract, Indirection, Scalar};
use serde::{Deserialize, Serialize};

/// A C signature the selection can call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// `u64 f(u64 init, const u8 *buf, u32 len)`: zlib's `crc32` and
    /// `adler32` (crc-like and adler-like checksums share the signature
    /// and the driver; the initial value does not change the work done).
    Checksum32Len,
    /// `u64 f(u64 init, const u8 *buf, u64 len)`: `crc32_z`, `adler32_z`.
    Checksum64Len,
    /// `u32 f(u32 crc, const u8 *buf, u64 len)`: `crc32c`.
    Crc32c,
    /// `f32 f(const f32 *a, const f32 *b, u64 n)`: `dot_f32`.
    Dot,
    /// `void f(f32 a, const f32 *x, f32 *y, u64 n)`: `axpy_f32`.
    Axpy,
    /// `void f(u32 state[8], const u8 *blocks, u64 nblocks)`: the SHA-256
    /// block transform (64-byte blocks).
    Sha256Transform,
    /// Fortran `DGEMM` (gfortran ABI: `void(const char *transa, const char
    /// *transb, const int *m, *n, *k, const f64 *alpha, *a, const int *lda,
    /// const f64 *b, const int *ldb, const f64 *beta, f64 *c, const int
    /// *ldc, size_t transa_len, size_t transb_len)`). Its "size" is the
    /// matrix dimension `n` (square `m = n = k`), not bytes.
    Dgemm,
    /// Fortran `SGEMM`: as [`Shape::Dgemm`] in `f32`.
    Sgemm,
    /// Fortran `DGEMV(trans, m, n, alpha, a, lda, x, incx, beta, y, incy,
    /// trans_len)`; size: `n` (square `m = n`).
    Dgemv,
    /// Fortran `DSYRK(uplo, trans, n, k, alpha, a, lda, beta, c, ldc,
    /// uplo_len, trans_len)`; size: `n` (`k = n`).
    Dsyrk,
}

/// A contract with no driver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no benchmark driver for the C signature {signature}: the selection can call \
     u64(u64,const u8*,u32), u64(u64,const u8*,u64), u32(u32,const u8*,u64), \
     f32(const f32*,const f32*,u64), void(f32,const f32*,f32*,u64), void(u32*,const u8*,u64) \
     and the Fortran BLAS dgemm_, sgemm_, dgemv_ and dsyrk_"
)]
pub struct UnknownShape {
    /// The signature, in the short form above.
    pub signature: String,
}

type Sig = (Indirection, Scalar);

const fn v(s: Scalar) -> Sig {
    (Indirection::Value, s)
}
const fn cp(s: Scalar) -> Sig {
    (Indirection::ConstPtr, s)
}
const fn mp(s: Scalar) -> Sig {
    (Indirection::MutPtr, s)
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 10] = [
        Shape::Checksum32Len,
        Shape::Checksum64Len,
        Shape::Crc32c,
        Shape::Dot,
        Shape::Axpy,
        Shape::Sha256Transform,
        Shape::Dgemm,
        Shape::Sgemm,
        Shape::Dgemv,
        Shape::Dsyrk,
    ];

    /// Whether this is a Fortran BLAS routine: sizes are matrix
    /// dimensions, throughput is floating-point operations per second,
    /// results are compared element by element (ulps).
    pub fn is_blas(self) -> bool {
        matches!(
            self,
            Shape::Dgemm | Shape::Sgemm | Shape::Dgemv | Shape::Dsyrk
        )
    }

    fn signature(self) -> (Sig, Vec<Sig>) {
        use Scalar::*;
        match self {
            Shape::Checksum32Len => (v(U64), vec![v(U64), cp(U8), v(U32)]),
            Shape::Checksum64Len => (v(U64), vec![v(U64), cp(U8), v(U64)]),
            Shape::Crc32c => (v(U32), vec![v(U32), cp(U8), v(U64)]),
            Shape::Dot => (v(F32), vec![cp(F32), cp(F32), v(U64)]),
            Shape::Axpy => (v(Void), vec![v(F32), cp(F32), mp(F32), v(U64)]),
            Shape::Sha256Transform => (v(Void), vec![mp(U32), cp(U8), v(U64)]),
            Shape::Dgemm | Shape::Sgemm => {
                let f = if self == Shape::Dgemm { F64 } else { F32 };
                let (c, i) = (cp(U8), cp(I32));
                (
                    v(Void),
                    vec![
                        c,
                        c,
                        i,
                        i,
                        i,
                        cp(f),
                        cp(f),
                        i,
                        cp(f),
                        i,
                        cp(f),
                        mp(f),
                        i,
                        v(U64),
                        v(U64),
                    ],
                )
            }
            Shape::Dgemv => {
                let (d, i) = (cp(F64), cp(I32));
                (
                    v(Void),
                    vec![cp(U8), i, i, d, d, i, d, i, d, mp(F64), i, v(U64)],
                )
            }
            Shape::Dsyrk => {
                let (c, d, i) = (cp(U8), cp(F64), cp(I32));
                (
                    v(Void),
                    vec![c, c, i, i, d, d, i, d, mp(F64), i, v(U64), v(U64)],
                )
            }
        }
    }

    /// The shape of `contract`.
    pub fn of(contract: &Contract) -> Result<Shape, UnknownShape> {
        let ret = (contract.returns.indirection, contract.returns.scalar);
        let params: Vec<Sig> = contract
            .params
            .iter()
            .map(|p| (p.ty.indirection, p.ty.scalar))
            .collect();
        Shape::ALL
            .into_iter()
            .find(|s| {
                let (r, p) = s.signature();
                r == ret && p == params
            })
            .ok_or_else(|| UnknownShape {
                signature: short_signature(ret, &params),
            })
    }

    /// The integer-argument register (0-based: rdi, rsi, rdx, …) that
    /// holds a call's length, in units of [`Shape::granule`] bytes: the
    /// third for every shape here (`len`, `n` or `nblocks` in rdx; a
    /// float argument such as axpy's `a` travels in xmm0). What a call
    /// counter histograms to learn the sizes a program calls with.
    pub fn length_register(self) -> u8 {
        2
    }

    /// Smallest size (bytes) one call can work on, and the granule sizes
    /// are rounded down to.
    pub fn granule(self) -> usize {
        match self {
            Shape::Sha256Transform => 64,
            Shape::Dot | Shape::Axpy => 4,
            // A matrix dimension.
            _ => 1,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, p) = self.signature();
        f.write_str(&short_signature(r, &p))
    }
}

fn short_signature(ret: Sig, params: &[Sig]) -> String {
    let one = |(i, s): Sig| {
        let name = match s {
            Scalar::Void => "void",
            Scalar::U8 => "u8",
            Scalar::U16 => "u16",
            Scalar::U32 => "u32",
            Scalar::U64 => "u64",
            Scalar::I32 => "i32",
            Scalar::I64 => "i64",
            Scalar::F32 => "f32",
            Scalar::F64 => "f64",
        };
        match i {
            Indirection::Value => name.to_owned(),
            Indirection::ConstPtr => format!("const {name}*"),
            Indirection::MutPtr => format!("{name}*"),
        }
    };
    let ps: Vec<String> = params.iter().map(|&p| one(p)).collect();
    format!("{}({})", one(ret), ps.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapt_segment::{CType, Param};

    fn contract(ret: CType, params: Vec<CType>) -> Contract {
        Contract {
            returns: ret,
            params: params
                .into_iter()
                .enumerate()
                .map(|(i, ty)| Param {
                    name: format!("p{i}"),
                    ty,
                })
                .collect(),
        }
    }

    #[test]
    fn shapes_are_recognised_by_scalars_not_spellings() {
        let zlib = contract(
            CType::value(Scalar::U64, "uLong"),
            vec![
                CType::value(Scalar::U64, "uLong"),
                CType::const_ptr(Scalar::U8, "const Bytef *"),
                CType::value(Scalar::U32, "uInt"),
            ],
        );
        assert_eq!(Shape::of(&zlib), Ok(Shape::Checksum32Len));
        let other = contract(
            CType::value(Scalar::U64, "uint64_t"),
            vec![
                CType::value(Scalar::U64, "uint64_t"),
                CType::const_ptr(Scalar::U8, "const uint8_t *"),
                CType::value(Scalar::U32, "uint32_t"),
            ],
        );
        assert_eq!(Shape::of(&other), Ok(Shape::Checksum32Len));
        let unknown = contract(CType::value(Scalar::I32, "int"), vec![]);
        let err = Shape::of(&unknown).unwrap_err();
        assert_eq!(err.signature, "i32()");
        assert_eq!(Shape::Axpy.to_string(), "void(f32,const f32*,f32*,u64)");
    }

    /// The Fortran BLAS contracts as the segment catalog declares them
    /// (every argument by reference, then gfortran's hidden lengths).
    fn fortran(kinds: &str, float: Scalar) -> Contract {
        let params = kinds
            .chars()
            .map(|k| match k {
                'c' => CType::const_ptr(Scalar::U8, "const char *"),
                'i' => CType::const_ptr(Scalar::I32, "const int *"),
                'f' => CType::const_ptr(float, "const double *"),
                'o' => CType::mut_ptr(float, "double *"),
                'l' => CType::value(Scalar::U64, "size_t"),
                _ => unreachable!(),
            })
            .collect();
        contract(CType::value(Scalar::Void, "void"), params)
    }

    #[test]
    fn fortran_blas_shapes_are_recognised() {
        let gemm = "cciiiffififoill";
        assert_eq!(Shape::of(&fortran(gemm, Scalar::F64)), Ok(Shape::Dgemm));
        assert_eq!(Shape::of(&fortran(gemm, Scalar::F32)), Ok(Shape::Sgemm));
        assert_eq!(
            Shape::of(&fortran("ciiffififoil", Scalar::F64)),
            Ok(Shape::Dgemv)
        );
        assert_eq!(
            Shape::of(&fortran(
                "cciiffifoil", /* one hidden length short */
                Scalar::F64
            ))
            .unwrap_err()
            .signature,
            "void(const u8*,const u8*,const i32*,const i32*,const f64*,const f64*,const i32*,\
             const f64*,f64*,const i32*,u64)"
        );
        assert_eq!(
            Shape::of(&fortran("cciiffifoill", Scalar::F64)),
            Ok(Shape::Dsyrk)
        );
        // dsyrk in f32 (ssyrk) has no driver.
        assert!(Shape::of(&fortran("cciiffifoill", Scalar::F32)).is_err());
        assert!(Shape::ALL.iter().filter(|s| s.is_blas()).count() == 4);
        assert!(!Shape::Dot.is_blas());
    }
}
