// SPDX-License-Identifier: GPL-2.0
//! What the library holds: every segment, the functions it replaces with
//! their C contracts, and its variants (source file and CPU features), best
//! variant first.

use adapt_segment::{
    CType, Contract, CpuFeature, Function, Import, Numerics, Param, Scalar, FALLBACK,
};

use CpuFeature as F;

/// One variant to build.
#[derive(Clone, Debug)]
pub struct VariantSpec {
    /// Variant name (also the source file name, `sources/<segment>/<name>.rs`).
    pub name: &'static str,
    /// Features enabled for the compilation and declared in the segment
    /// (their implications are added).
    pub features: &'static [CpuFeature],
}

/// One segment to build.
#[derive(Clone, Debug)]
pub struct SegmentSpec {
    /// Segment name (also the source directory and the output file stem).
    pub name: &'static str,
    /// Implementation version.
    pub version: u32,
    /// One line for humans.
    pub description: &'static str,
    /// `Exact` (bit-identical), or `FloatReassociate` for a segment that
    /// ships but is chosen only where the policy allows that contract.
    pub numerics: Numerics,
    /// The replaced functions.
    pub functions: Vec<Function>,
    /// Variants, best first.
    pub variants: Vec<VariantSpec>,
    /// What the code may call (format version 2): the source refers to
    /// import `m` as the undefined symbol `adapt_import_NAME` in a
    /// `call`/`jmp qword ptr [rip + adapt_import_NAME]`, which the builder
    /// points at slot `m` of the variant's import table. Empty: leaf code.
    pub imports: Vec<Import>,
}

fn param(name: &str, ty: CType) -> Param {
    Param {
        name: name.to_owned(),
        ty,
    }
}

fn function(
    symbol: &str,
    library: &str,
    returns: CType,
    params: Vec<Param>,
    reference: &str,
) -> Function {
    Function {
        symbol: symbol.to_owned(),
        library: library.to_owned(),
        contract: Contract { returns, params },
        reference: reference.to_owned(),
    }
}

const ZLIB_CRC32: &str =
    "zlib's crc32 (libz.so.1): CRC-32/ISO-HDLC, reflected polynomial 0xEDB88320, \
     register inverted on entry and exit, high 32 bits of crc ignored, null buf returns 0";
const ZLIB_ADLER32: &str = "zlib's adler32 (libz.so.1): sums modulo 65521, adler = a | b << 16, \
     null buf returns 1 (for every len; zlib itself dereferences it when len is 1)";

fn zlib_pair(name: &str, z_name: &str, first: &str, reference: &str) -> Vec<Function> {
    let ulong = || CType::value(Scalar::U64, "uLong");
    let buf = || CType::const_ptr(Scalar::U8, "const Bytef *");
    vec![
        function(
            name,
            "libz.so.1",
            ulong(),
            vec![
                param(first, ulong()),
                param("buf", buf()),
                param("len", CType::value(Scalar::U32, "uInt")),
            ],
            reference,
        ),
        function(
            z_name,
            "libz.so.1",
            ulong(),
            vec![
                param(first, ulong()),
                param("buf", buf()),
                param("len", CType::value(Scalar::U64, "z_size_t")),
            ],
            reference,
        ),
    ]
}

/// Where the reference BLAS lives on Debian 12 (`libblas3`), whose
/// exports the BLAS segments replace: the reference's own path, not the
/// `libblas.so.3` alternatives link.
pub const REFERENCE_BLAS: &str = "libblas.so.3";

/// The contract of a Fortran `xGEMM` (every argument by reference, then
/// gfortran's hidden lengths of the two character arguments).
fn fortran_gemm(symbol: &str, scalar: Scalar, spelling: &str, reference: &str) -> Function {
    let chr = || CType::const_ptr(Scalar::U8, "const char *");
    let int = || CType::const_ptr(Scalar::I32, "const int *");
    let num = || CType::const_ptr(scalar, &format!("const {spelling} *"));
    let len = || CType::value(Scalar::U64, "size_t");
    function(
        symbol,
        REFERENCE_BLAS,
        CType::value(Scalar::Void, "void"),
        vec![
            param("transa", chr()),
            param("transb", chr()),
            param("m", int()),
            param("n", int()),
            param("k", int()),
            param("alpha", num()),
            param("a", num()),
            param("lda", int()),
            param("b", num()),
            param("ldb", int()),
            param("beta", num()),
            param("c", CType::mut_ptr(scalar, &format!("{spelling} *"))),
            param("ldc", int()),
            param("transa_len", len()),
            param("transb_len", len()),
        ],
        reference,
    )
}

/// The contract of Fortran `DGEMV` (and the hidden length of TRANS).
fn fortran_dgemv(reference: &str) -> Function {
    let int = || CType::const_ptr(Scalar::I32, "const int *");
    let num = || CType::const_ptr(Scalar::F64, "const double *");
    function(
        "dgemv_",
        REFERENCE_BLAS,
        CType::value(Scalar::Void, "void"),
        vec![
            param("trans", CType::const_ptr(Scalar::U8, "const char *")),
            param("m", int()),
            param("n", int()),
            param("alpha", num()),
            param("a", num()),
            param("lda", int()),
            param("x", num()),
            param("incx", int()),
            param("beta", num()),
            param("y", CType::mut_ptr(Scalar::F64, "double *")),
            param("incy", int()),
            param("trans_len", CType::value(Scalar::U64, "size_t")),
        ],
        reference,
    )
}

/// The contract of Fortran `DSYRK` (and the hidden lengths of UPLO and
/// TRANS).
fn fortran_dsyrk(reference: &str) -> Function {
    let chr = || CType::const_ptr(Scalar::U8, "const char *");
    let int = || CType::const_ptr(Scalar::I32, "const int *");
    let num = || CType::const_ptr(Scalar::F64, "const double *");
    let len = || CType::value(Scalar::U64, "size_t");
    function(
        "dsyrk_",
        REFERENCE_BLAS,
        CType::value(Scalar::Void, "void"),
        vec![
            param("uplo", chr()),
            param("trans", chr()),
            param("n", int()),
            param("k", int()),
            param("alpha", num()),
            param("a", num()),
            param("lda", int()),
            param("beta", num()),
            param("c", CType::mut_ptr(Scalar::F64, "double *")),
            param("ldc", int()),
            param("uplo_len", len()),
            param("trans_len", len()),
        ],
        reference,
    )
}

/// The `fallback` import of a segment replacing `f`: the trampoline to the
/// original, of `f`'s own contract.
fn fallback_of(f: &Function) -> Import {
    Import {
        name: FALLBACK.to_owned(),
        library: String::new(),
        contract: f.contract.clone(),
    }
}

const GEMM_REFERENCE: &str =
    "netlib reference BLAS (LAPACK 3.11, Debian 12 libblas3) xGEMM, bit for bit, in the reference's \
     per-element order and operand order (NaN payloads): transa N: beta==0 zeroes C, beta!=1 scales \
     it first, alpha==0 early path, temp=B*alpha then C=(A*temp)+C per l, no zero skipping; transa \
     T/C: temp=sum A*B from +0 in l order, C=temp*alpha (+C*beta unless beta==0); no FMA; argument \
     errors go to the original (fallback, which calls xerbla_)";

const GEMV_REFERENCE: &str =
    "netlib reference BLAS (LAPACK 3.11, Debian 12 libblas3) DGEMV, bit for bit, in the reference's \
     per-element order and operand order: beta pass (0 or y*beta), alpha==0 return, N: temp=x*alpha, \
     y=(A*temp)+y per column; T/C: temp=sum A*x from +0, y=(temp*alpha)+y; negative increments from \
     the far end; no FMA; N with incy!=1 and argument errors go to the original (fallback)";

const SYRK_REFERENCE: &str =
    "netlib reference BLAS (LAPACK 3.11, Debian 12 libblas3) DSYRK, bit for bit, on the uplo triangle \
     only, in the reference's per-element order and operand order: N: beta pass, then per l, skipped \
     when A(j,l)==0, temp=A(j,l)*alpha, C=(A(i,l)*temp)+C; T/C: temp=sum A(l,i)*A(l,j) from +0, \
     C=temp*alpha (+C*beta unless beta==0); no FMA; argument errors go to the original (fallback)";

/// Every segment of the library, exact ones and (marked
/// [`Numerics::FloatReassociate`], opt-in only) relaxed ones.
pub fn catalog() -> Vec<SegmentSpec> {
    let size_t = || CType::value(Scalar::U64, "size_t");
    let cfloat = || CType::const_ptr(Scalar::F32, "const float *");
    let dgemm = fortran_gemm("dgemm_", Scalar::F64, "double", GEMM_REFERENCE);
    let sgemm = fortran_gemm("sgemm_", Scalar::F32, "float", GEMM_REFERENCE);
    let dgemv = fortran_dgemv(GEMV_REFERENCE);
    let dsyrk = fortran_dsyrk(SYRK_REFERENCE);
    let dgemm_relaxed = fortran_gemm(
        "dgemm_",
        Scalar::F64,
        "double",
        "RELAXED, NOT bit-identical (contract float-reassociate): reference BLAS DGEMM semantics \
         (beta==0 zeroes C, alpha==0 early path, argument errors to the original) but, for every \
         transa, each term is one fused multiply-add (one rounding instead of two) and the terms of \
         a chunk of l are summed from zero before C is added: every element within \
         2*gamma(k+2)*(|alpha|*sum|A||B| + |beta*C|) of the reference's, gamma(n) = n*u/(1-n*u), \
         u = 2^-53",
    );
    vec![
        SegmentSpec {
            name: "dgemm",
            version: 1,
            numerics: Numerics::Exact,
            imports: vec![fallback_of(&dgemm)],
            description: "reference BLAS dgemm_, bit-identical: vectorised over rows, register-tiled over columns, each element's order kept",
            functions: vec![dgemm],
            variants: vec![
                VariantSpec { name: "avx512", features: &[F::Avx512f] },
                VariantSpec { name: "avx2", features: &[F::Avx2] },
                VariantSpec { name: "portable", features: &[] },
            ],
        },
        // Not bit-identical: ships in the library, but plan and auto
        // refuse it unless the policy sets allow_float_reassociate (or
        // inject --allow-float-reassociate), and an exact segment of the
        // same symbol (dgemm) is always the default choice.
        SegmentSpec {
            name: "dgemm-relaxed",
            version: 1,
            numerics: Numerics::FloatReassociate,
            imports: vec![fallback_of(&dgemm_relaxed)],
            description: "RELAXED (not bit-identical): reference BLAS dgemm_ with fused multiply-adds",
            functions: vec![dgemm_relaxed],
            variants: vec![
                VariantSpec {
                    name: "avx512-fma",
                    features: &[F::Avx512f],
                },
                VariantSpec {
                    name: "avx2-fma",
                    features: &[F::Avx2, F::Fma],
                },
            ],
        },
        SegmentSpec {
            name: "sgemm",
            version: 1,
            numerics: Numerics::Exact,
            imports: vec![fallback_of(&sgemm)],
            description: "reference BLAS sgemm_, bit-identical: vectorised over rows, register-tiled over columns, each element's order kept",
            functions: vec![sgemm],
            variants: vec![
                VariantSpec { name: "avx512", features: &[F::Avx512f] },
                VariantSpec { name: "avx2", features: &[F::Avx2] },
                VariantSpec { name: "portable", features: &[] },
            ],
        },
        SegmentSpec {
            name: "dgemv",
            version: 1,
            numerics: Numerics::Exact,
            imports: vec![fallback_of(&dgemv)],
            description: "reference BLAS dgemv_, bit-identical: columns as axpys over vector rows, or dot products in vector lanes",
            functions: vec![dgemv],
            variants: vec![
                VariantSpec { name: "avx512", features: &[F::Avx512f] },
                VariantSpec { name: "avx2", features: &[F::Avx2] },
                VariantSpec { name: "portable", features: &[] },
            ],
        },
        SegmentSpec {
            name: "dsyrk",
            version: 1,
            numerics: Numerics::Exact,
            imports: vec![fallback_of(&dsyrk)],
            description: "reference BLAS dsyrk_, bit-identical: register-tiled triangle with the reference's zero skips, or dot products in vector lanes",
            functions: vec![dsyrk],
            variants: vec![
                VariantSpec { name: "avx512", features: &[F::Avx512f] },
                VariantSpec { name: "avx2", features: &[F::Avx2] },
                VariantSpec { name: "portable", features: &[] },
            ],
        },
        SegmentSpec {
            name: "crc32",
            version: 1,
            numerics: Numerics::Exact,
            imports: Vec::new(),
            description: "zlib crc32/crc32_z by carry-less multiplication folding",
            functions: zlib_pair("crc32", "crc32_z", "crc", ZLIB_CRC32),
            variants: vec![
                VariantSpec { name: "avx512-vpclmul", features: &[F::Avx512f, F::Avx512vl, F::Vpclmulqdq] },
                VariantSpec { name: "pclmul", features: &[F::Pclmulqdq, F::Sse41] },
                VariantSpec { name: "portable", features: &[] },
            ],
        },
        SegmentSpec {
            name: "adler32",
            version: 1,
            numerics: Numerics::Exact,
            imports: Vec::new(),
            description: "zlib adler32/adler32_z with vectorised byte sums",
            functions: zlib_pair("adler32", "adler32_z", "adler", ZLIB_ADLER32),
            variants: vec![
                VariantSpec { name: "avx512", features: &[F::Avx512f, F::Avx512bw] },
                VariantSpec { name: "avx2", features: &[F::Avx2] },
                VariantSpec { name: "portable", features: &[] },
            ],
        },
        SegmentSpec {
            name: "crc32c",
            version: 1,
            numerics: Numerics::Exact,
            imports: Vec::new(),
            description: "CRC-32C (Castagnoli): VPCLMULQDQ folding, or the SSE4.2 crc32 instruction in three streams combined by PCLMULQDQ",
            functions: vec![function(
                "crc32c",
                "",
                CType::value(Scalar::U32, "uint32_t"),
                vec![
                    param("crc", CType::value(Scalar::U32, "uint32_t")),
                    param("buf", CType::const_ptr(Scalar::U8, "const uint8_t *")),
                    param("len", size_t()),
                ],
                "CRC-32C/iSCSI (reflected polynomial 0x82F63B78) continuing a finished CRC: returns \
                 ~update(~crc, buf), as the crc32c crate's crc32c_append; crc32c(0, buf, len) is the CRC of buf; \
                 a null buf returns crc unchanged",
            )],
            variants: vec![
                VariantSpec { name: "avx512-vpclmul", features: &[F::Avx512f, F::Avx512vl, F::Vpclmulqdq, F::Sse41] },
                VariantSpec { name: "sse4.2", features: &[F::Sse42, F::Pclmulqdq] },
                VariantSpec { name: "portable", features: &[] },
            ],
        },
        SegmentSpec {
            name: "dot_f32",
            version: 1,
            numerics: Numerics::Exact,
            imports: Vec::new(),
            description: "single-precision dot product",
            functions: vec![function(
                "dot_f32",
                "",
                CType::value(Scalar::F32, "float"),
                vec![param("a", cfloat()), param("b", cfloat()), param("n", size_t())],
                "sum of a[i]*b[i] for i < n in an unspecified order (blocked, fused multiply-adds where \
                 available): within gamma(n)*sum|a[i]*b[i]| of the exact value, gamma(n) = n*2^-24/(1-n*2^-24); \
                 0 when n is 0",
            )],
            variants: vec![
                VariantSpec { name: "avx512", features: &[F::Avx512f] },
                VariantSpec { name: "avx2-fma", features: &[F::Avx2, F::Fma] },
                VariantSpec { name: "portable", features: &[] },
            ],
        },
        SegmentSpec {
            name: "axpy_f32",
            version: 1,
            numerics: Numerics::Exact,
            imports: Vec::new(),
            description: "single-precision y = a*x + y",
            functions: vec![function(
                "axpy_f32",
                "",
                CType::value(Scalar::Void, "void"),
                vec![
                    param("a", CType::value(Scalar::F32, "float")),
                    param("x", cfloat()),
                    param("y", CType::mut_ptr(Scalar::F32, "float *")),
                    param("n", size_t()),
                ],
                "y[i] = a*x[i] + y[i] for i < n, x and y not partially overlapping: fused (one rounding, \
                 exactly fmaf) in the fma/avx512 variants, two roundings (exactly the plain C loop) in portable",
            )],
            variants: vec![
                VariantSpec { name: "avx512", features: &[F::Avx512f] },
                VariantSpec { name: "avx2-fma", features: &[F::Avx2, F::Fma] },
                VariantSpec { name: "portable", features: &[] },
            ],
        },
        SegmentSpec {
            name: "sha256",
            version: 1,
            numerics: Numerics::Exact,
            imports: Vec::new(),
            description: "SHA-256 block compression",
            functions: vec![function(
                "sha256_transform",
                "",
                CType::value(Scalar::Void, "void"),
                vec![
                    param("state", CType::mut_ptr(Scalar::U32, "uint32_t *")),
                    param("block", CType::const_ptr(Scalar::U8, "const uint8_t *")),
                    param("nblocks", size_t()),
                ],
                "FIPS 180-4 SHA-256 compression of nblocks 64-byte blocks into state[8] (a..h as native \
                 uint32_t), as sha2::compress256",
            )],
            variants: vec![
                VariantSpec { name: "sha-ni", features: &[F::Sha, F::Sse41] },
                VariantSpec { name: "portable", features: &[] },
            ],
        },
    ]
}

/// Segments for tests only, never in the shipped library: built by
/// `build-library --testing` into their own directory.
pub fn testing_catalog() -> Vec<SegmentSpec> {
    // The trampoline is the original of the replaced function, so a
    // segment importing `fallback` replaces functions of one contract:
    // crc32_z only.
    let crc32_z: Vec<Function> = zlib_pair("crc32", "crc32_z", "crc", ZLIB_CRC32)
        .into_iter()
        .filter(|f| f.symbol == "crc32_z")
        .collect();
    let fallback = Import {
        name: FALLBACK.to_owned(),
        library: String::new(),
        contract: crc32_z[0].contract.clone(),
    };
    let missing = Import {
        name: "adapt_no_such_function".to_owned(),
        library: String::new(),
        contract: Contract {
            returns: CType::value(Scalar::Void, "void"),
            params: Vec::new(),
        },
    };
    let blocking = function(
        "adapt_probe_blocking_read",
        "",
        CType::value(Scalar::I64, "ssize_t"),
        vec![
            param("fd", CType::value(Scalar::I32, "int")),
            param("buf", CType::mut_ptr(Scalar::U8, "void *")),
            param("len", CType::value(Scalar::U64, "size_t")),
        ],
        "read(2) of the guest probe adapt-blocking",
    );
    vec![SegmentSpec {
        name: "blocking-fallback",
        version: 1,
        numerics: Numerics::Exact,
        imports: vec![Import {
            name: FALLBACK.to_owned(),
            library: String::new(),
            contract: blocking.contract.clone(),
        }],
        description: "TEST ONLY: adapt-blocking's blocking read, straight to the original through the trampoline",
        functions: vec![blocking],
        variants: vec![VariantSpec {
            name: "tail",
            features: &[],
        }],
    }, SegmentSpec {
        name: "crc32-unresolved",
        version: 1,
        numerics: Numerics::Exact,
        imports: vec![fallback.clone(), missing],
        description: "TEST ONLY: crc32-fallback importing a function no process defines (its injection must be refused)",
        functions: crc32_z.clone(),
        variants: vec![VariantSpec {
            name: "bitwise-long",
            features: &[],
        }],
    }, SegmentSpec {
        name: "crc32-fallback",
        version: 1,
        numerics: Numerics::Exact,
        imports: vec![fallback],
        description: "TEST ONLY: zlib crc32_z bit by bit for 64 bytes and more, the original (fallback) for shorter buffers",
        functions: crc32_z,
        variants: vec![VariantSpec {
            name: "bitwise-long",
            features: &[],
        }],
    }, SegmentSpec {
        name: "crc32-slow",
        version: 1,
        numerics: Numerics::Exact,
        imports: Vec::new(),
        description: "TEST ONLY: zlib crc32/crc32_z one bit at a time (correct, deliberately slow)",
        functions: zlib_pair("crc32", "crc32_z", "crc", ZLIB_CRC32),
        variants: vec![VariantSpec {
            name: "bitwise",
            features: &[],
        }],
    }]
}
