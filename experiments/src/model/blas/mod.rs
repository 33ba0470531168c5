//! Single-precision matrix products on the CPU: OpenBLAS when this machine has it, else the `gemm` crate.
//!
//! OpenBLAS is loaded at run time (`libopenblas.so.0`, Debian's `libopenblas0`), through `libloading`: the build
//! needs nothing installed, and the same binary runs on a machine without it, falling back to `gemm` (pure Rust,
//! AVX-512 kernels, but about 3x slower than OpenBLAS at the model's shapes on our 2-core machine; see
//! `docs/performance.md`). Both take transposed operands as flags or strides, so a backward pass never copies a
//! matrix to transpose it.
//!
//! `CLIPLAB_BLAS=gemm` forces the fallback (benchmarks compare the two; tests check they agree);
//! `CLIPLAB_BLAS=openblas` makes a missing OpenBLAS an error instead of a silent fallback.

// The crate's one module with unsafe code (besides one `mallopt` call in model::device): OpenBLAS's C functions and
// gemm's raw-pointer API. Each block says why it is sound; the safe `sgemm` checks every length it relies on.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::sync::OnceLock;

mod packed;

pub use packed::{available as packed_available, PackedWeight};

/// Which library does the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// OpenBLAS, loaded from the system.
    OpenBlas,
    /// The `gemm` crate (always available).
    Gemm,
}

type Sgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);
type SetThreads = unsafe extern "C" fn(c_int);
type GetConfig = unsafe extern "C" fn() -> *const std::ffi::c_char;

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

struct OpenBlas {
    sgemm: Sgemm,
    /// `openblas_set_num_threads`, and the pool size set at load.
    set_threads: Option<(SetThreads, c_int)>,
    config: String,
    /// The kernel and copy routines behind `sgemm` for this CPU, for [`PackedWeight`] (not yet self-tested).
    packed: Option<packed::Kernels>,
    /// Keeps the library mapped for as long as the function pointers live (the whole process).
    _lib: libloading::Library,
}

/// The library names tried, in order (Debian's alternatives link, then the plain names).
const OPENBLAS_NAMES: [&str; 3] = ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"];

fn load_openblas() -> Result<OpenBlas, String> {
    let mut last = String::new();
    for name in OPENBLAS_NAMES {
        // SAFETY: loading OpenBLAS runs its initialisers, which only set up its thread pool and CPU dispatch.
        match unsafe { libloading::Library::new(name) } {
            Ok(lib) => {
                // SAFETY: the symbols are OpenBLAS's C ABI with the signatures declared above (32-bit integers:
                // Debian's `libopenblas0`, not the `64` ILP64 build, which exports `cblas_sgemm64_`).
                let (sgemm, threads, config, core) = unsafe {
                    let sgemm = *lib.get::<Sgemm>(b"cblas_sgemm\0").map_err(|e| format!("{name}: {e}"))?;
                    let threads = lib.get::<SetThreads>(b"openblas_set_num_threads\0").ok().map(|f| *f);
                    let config = lib.get::<GetConfig>(b"openblas_get_config\0").ok().map(|f| *f);
                    let core = lib.get::<GetConfig>(b"openblas_get_corename\0").ok().map(|f| *f);
                    (sgemm, threads, config, core)
                };
                let (config, core) = (static_string(config), static_string(core));
                let packed = packed::Kernels::load(&lib, &core);
                // One OpenBLAS thread per thread candle uses: the two pools take turns, never oversubscribe.
                let n = candle_core::utils::get_num_threads().max(1) as c_int;
                if let Some(set) = threads {
                    // SAFETY: a plain setter of OpenBLAS's pool size.
                    unsafe { set(n) };
                }
                let set_threads = threads.map(|set| (set, n));
                return Ok(OpenBlas { sgemm, set_threads, config: config.trim().to_string(), packed, _lib: lib });
            }
            Err(e) => last = format!("{name}: {e}"),
        }
    }
    Err(last)
}

/// The string an OpenBLAS getter returns (empty when the library lacks the getter).
fn static_string(getter: Option<GetConfig>) -> String {
    match getter {
        // SAFETY: OpenBLAS's getters return a static NUL-terminated string.
        Some(f) => unsafe {
            let p = f();
            if p.is_null() { String::new() } else { std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned() }
        },
        None => String::new(),
    }
}

fn openblas() -> Option<&'static OpenBlas> {
    static LIB: OnceLock<Option<OpenBlas>> = OnceLock::new();
    LIB.get_or_init(|| {
        let wanted = std::env::var("CLIPLAB_BLAS").unwrap_or_default();
        if wanted.eq_ignore_ascii_case("gemm") {
            return None;
        }
        match load_openblas() {
            Ok(lib) => {
                tracing::debug!(config = %lib.config, "matrix products through OpenBLAS");
                Some(lib)
            }
            Err(e) => {
                if wanted.eq_ignore_ascii_case("openblas") {
                    tracing::error!("CLIPLAB_BLAS=openblas but OpenBLAS could not be loaded ({e}); using gemm");
                } else {
                    tracing::debug!("OpenBLAS not found ({e}); matrix products through the gemm crate");
                }
                None
            }
        }
    })
    .as_ref()
}

/// Runs `f` with OpenBLAS's products on the calling thread, for a caller that splits many small products over
/// candle's pool itself (attention's (caption, head) pairs). OpenBLAS would otherwise hand each product of a
/// 77-token head (77 x 77 x 64) to its own two threads, waking the other one every time: 57 µs a product in
/// the model, against 19 µs on one thread (`docs/performance.md`). The pool size is process-wide, so a product
/// that another thread runs meanwhile also runs on one thread (slower, never wrong); nested and concurrent calls
/// restore it when the last one ends.
pub fn on_calling_threads<R>(f: impl FnOnce() -> R) -> R {
    static INSIDE: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
    struct Restore((SetThreads, c_int));
    impl Drop for Restore {
        fn drop(&mut self) {
            let mut inside = INSIDE.lock().unwrap_or_else(|e| e.into_inner());
            *inside = inside.saturating_sub(1);
            if *inside == 0 {
                let (set, n) = self.0;
                // SAFETY: a plain setter of OpenBLAS's pool size.
                unsafe { set(n) };
            }
        }
    }
    let Some(set_threads) = openblas().and_then(|lib| lib.set_threads) else {
        return f();
    };
    {
        let mut inside = INSIDE.lock().unwrap_or_else(|e| e.into_inner());
        if *inside == 0 {
            // SAFETY: a plain setter of OpenBLAS's pool size.
            unsafe { (set_threads.0)(1) };
        }
        *inside += 1;
    }
    let _restore = Restore(set_threads);
    f()
}

/// The backend products use in this process (decided once, on first use).
pub fn backend() -> Backend {
    if openblas().is_some() { Backend::OpenBlas } else { Backend::Gemm }
}

/// A one-line description for run records and `cliplab bench`: `"OpenBLAS 0.3.21 (...)"` or `"gemm"`.
pub fn describe() -> String {
    match openblas() {
        Some(lib) if !lib.config.is_empty() => lib.config.clone(),
        Some(_) => "OpenBLAS".to_string(),
        None => "gemm (pure Rust)".to_string(),
    }
}

/// One operand of a product: row-major elements, read as stored (`[rows, cols]`) or transposed.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    /// Read as its transpose.
    pub t: bool,
}

impl<'a> Mat<'a> {
    pub fn n(data: &'a [f32]) -> Self {
        Self { data, t: false }
    }
    pub fn t(data: &'a [f32]) -> Self {
        Self { data, t: true }
    }
}

/// `c = op(a) · op(b) + beta · c`, all row-major, where `op(a)` is `[m, k]` and `op(b)` is `[k, n]` (so `a` is
/// stored `[m, k]`, or `[k, m]` when transposed; `b` `[k, n]`, or `[n, k]`). `beta = 0` ignores what `c` held.
///
/// # Panics
/// When a slice is shorter than its dims say (a programming error in the caller, never user input).
pub fn sgemm(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, beta: f32, c: &mut [f32]) {
    let (lda, ldb) = (if a.t { m } else { k }, if b.t { k } else { n });
    sgemm_ld(m, n, k, (a, lda), (b, ldb), beta, (c, n))
}

/// Whether `len` elements hold a stored `[rows, cols]` matrix whose rows start `ld` apart.
fn holds(len: usize, rows: usize, cols: usize, ld: usize) -> bool {
    ld >= cols && (rows == 0 || cols == 0 || len >= (rows - 1) * ld + cols)
}

/// [`sgemm`] on sub-matrices of larger row-major arrays: each operand comes with its leading dimension, the
/// distance between the starts of its stored rows (at least its stored columns). One attention head's `[s, hd]`
/// block of a `[s, heads · hd]` array is `(&x[head * hd..], heads * hd)`: no copy to take it out.
///
/// # Panics
/// When a slice is shorter than its dims and leading dimension say (a programming error in the caller).
pub fn sgemm_ld(
    m: usize,
    n: usize,
    k: usize,
    (a, lda): (Mat<'_>, usize),
    (b, ldb): (Mat<'_>, usize),
    beta: f32,
    (c, ldc): (&mut [f32], usize),
) {
    let (ar, ac) = if a.t { (k, m) } else { (m, k) };
    let (br, bc) = if b.t { (n, k) } else { (k, n) };
    assert!(
        holds(a.data.len(), ar, ac, lda) && holds(b.data.len(), br, bc, ldb) && holds(c.len(), m, n, ldc),
        "sgemm: operand shorter than its dims"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.chunks_mut(ldc).take(m).for_each(|r| r[..n].iter_mut().for_each(|v| *v *= beta));
        return;
    }
    match openblas() {
        // OpenBLAS takes int dims: products past 2^31 elements per side go to gemm.
        Some(lib) if m.max(n).max(k).max(lda).max(ldb).max(ldc) < c_int::MAX as usize => {
            // SAFETY: the slices hold at least the elements the dims and leading dimensions address (asserted
            // above), and `c` does not alias `a` or `b` (it is `&mut`).
            unsafe {
                (lib.sgemm)(
                    ROW_MAJOR,
                    if a.t { TRANS } else { NO_TRANS },
                    if b.t { TRANS } else { NO_TRANS },
                    m as c_int,
                    n as c_int,
                    k as c_int,
                    1.0,
                    a.data.as_ptr(),
                    lda as c_int,
                    b.data.as_ptr(),
                    ldb as c_int,
                    beta,
                    c.as_mut_ptr(),
                    ldc as c_int,
                )
            }
        }
        _ => gemm_ld((m, n, k), (a, lda), (b, ldb), beta, (c, ldc)),
    }
}

/// [`sgemm`] on the `gemm` crate whatever the backend (the fallback; benchmarks compare it with OpenBLAS).
pub fn gemm_only(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, beta: f32, c: &mut [f32]) {
    let (ar, ac) = if a.t { (k, m) } else { (m, k) };
    let (br, bc) = if b.t { (n, k) } else { (k, n) };
    assert!(
        holds(a.data.len(), ar, ac, ac) && holds(b.data.len(), br, bc, bc) && holds(c.len(), m, n, n),
        "sgemm: operand shorter than its dims"
    );
    gemm_ld((m, n, k), (a, ac), (b, bc), beta, (c, n))
}

/// The `gemm` crate's product on operands already checked by the caller (dims `(m, n, k)` and leading dimensions,
/// as [`sgemm_ld`] takes them).
fn gemm_ld((m, n, k): (usize, usize, usize), (a, lda): (Mat<'_>, usize), (b, ldb): (Mat<'_>, usize), beta: f32, (c, ldc): (&mut [f32], usize)) {
    if m == 0 || n == 0 || k == 0 {
        c.chunks_mut(ldc).take(m).for_each(|r| r[..n].iter_mut().for_each(|v| *v *= beta));
        return;
    }
    // (column stride, row stride) of each operand as gemm wants them.
    let (a_cs, a_rs) = if a.t { (lda as isize, 1) } else { (1, lda as isize) };
    let (b_cs, b_rs) = if b.t { (ldb as isize, 1) } else { (1, ldb as isize) };
    let threads = candle_core::utils::get_num_threads();
    let par = if threads > 1 && m * n * k > 1 << 18 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the callers checked that the strides address only elements inside the slices; `c` is exclusive.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            beta != 0.0,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            beta,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
        let at = |i: usize, p: usize| if a.t { a.data[p * m + i] } else { a.data[i * k + p] };
        let bt = |p: usize, j: usize| if b.t { b.data[j * k + p] } else { b.data[p * n + j] };
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
            }
        }
        c
    }

    #[test]
    fn every_transpose_matches_the_naive_product_on_both_backends() {
        let (m, n, k) = (37, 29, 53);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0).collect();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (ma, mb) = (Mat { data: &a, t: ta }, Mat { data: &b, t: tb });
            let want = naive(m, n, k, ma, mb);
            let mut got = vec![1f32; m * n];
            sgemm(m, n, k, ma, mb, 0.0, &mut got);
            let mut fallback = vec![1f32; m * n];
            gemm_only(m, n, k, ma, mb, 0.0, &mut fallback);
            for (w, (g, f)) in want.iter().zip(got.iter().zip(&fallback)) {
                assert!((w - g).abs() < 1e-4 && (w - f).abs() < 1e-4, "ta={ta} tb={tb}: {w} vs {g} / {f}");
            }
            // beta = 1 accumulates into c.
            sgemm(m, n, k, ma, mb, 1.0, &mut got);
            gemm_only(m, n, k, ma, mb, 1.0, &mut fallback);
            for (w, (g, f)) in want.iter().zip(got.iter().zip(&fallback)) {
                assert!((2.0 * w - g).abs() < 1e-4 && (2.0 * w - f).abs() < 1e-4, "beta=1, ta={ta} tb={tb}");
            }
        }
    }

    /// Sub-matrices read through leading dimensions (one head's columns of a wider array) on both backends, every
    /// transpose, written into a block of a wider output whose other columns stay untouched.
    #[test]
    fn leading_dimensions_read_and_write_sub_matrices() {
        let (m, n, k, pad) = (9, 7, 5, 3);
        let big: Vec<f32> = (0..(m.max(k) + 1) * (m.max(n).max(k) + pad)).map(|i| ((i * 7 % 17) as f32 - 8.0) / 9.0).collect();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (ar, ac) = if ta { (k, m) } else { (m, k) };
            let (br, bc) = if tb { (n, k) } else { (k, n) };
            let (lda, ldb, ldc) = (ac + pad, bc + pad, n + pad);
            // The dense copies of the blocks, for the naive product.
            let a: Vec<f32> = (0..ar).flat_map(|r| big[1 + r * lda..1 + r * lda + ac].to_vec()).collect();
            let b: Vec<f32> = (0..br).flat_map(|r| big[2 + r * ldb..2 + r * ldb + bc].to_vec()).collect();
            let want = naive(m, n, k, Mat { data: &a, t: ta }, Mat { data: &b, t: tb });
            let (sa, sb) = (Mat { data: &big[1..], t: ta }, Mat { data: &big[2..], t: tb });
            let mut got = vec![5f32; m * ldc];
            sgemm_ld(m, n, k, (sa, lda), (sb, ldb), 0.0, (&mut got[..], ldc));
            let mut fallback = vec![5f32; m * ldc];
            gemm_ld((m, n, k), (sa, lda), (sb, ldb), 0.0, (&mut fallback[..], ldc));
            for i in 0..m {
                for j in 0..ldc {
                    let (g, f) = (got[i * ldc + j], fallback[i * ldc + j]);
                    let w = if j < n { want[i * n + j] } else { 5.0 };
                    assert!((w - g).abs() < 1e-4 && (w - f).abs() < 1e-4, "ta={ta} tb={tb} ({i}, {j}): {w} vs {g} / {f}");
                }
            }
        }
    }
}
