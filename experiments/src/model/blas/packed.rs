//! Products with a weight packed once, for scoring: OpenBLAS's own packing routine and micro-kernel, called
//! directly.
//!
//! Every `sgemm` call copies both operands into its kernel's layout before it multiplies. When a linear layer is
//! scored on few rows (one image is 50 patch rows, five 20-token captions 100 rows), packing the weight is 40-55 %
//! of the call on one thread (`docs/performance.md`), and it is the same work at every call, since the weights do
//! not change while a model scores. [`PackedWeight::pack`] copies a weight into the kernel's layout once, with the
//! library's own copy routine for the CPU it dispatched to, and [`PackedWeight::product_into`] runs that CPU's
//! micro-kernel on it, packing only the rows of `x` (small) at each call.
//!
//! The layout is whatever the library's copy routine writes for its own kernel, so nothing here depends on the
//! kernel's register blocking: each block only gets room for its rows rounded up to [`ROOM`], a multiple of every
//! x86 kernel's unroll. These routines are exported by OpenBLAS's `DYNAMIC_ARCH` builds (Debian's) but are not its
//! documented API, so a self-test against `cblas_sgemm` decides, once per process, whether this path is used at
//! all; where it fails or a routine is missing, callers fall back to [`super::sgemm`].
//!
//! `CLIPLAB_PACKED=off` turns the path off (benchmarks compare the two).

use std::ffi::{c_int, c_long};
use std::sync::OnceLock;

/// Rows of the weight (outputs) per packed block: the unit of work handed to a thread.
const CHUNK_ROWS: usize = 128;
/// Columns of the weight (inputs) per packed block: a `CHUNK_ROWS x K_BLOCK` block (192 KiB) stays in the core's
/// L2 cache while the kernel runs over every packed row of `x` (measured in `docs/performance.md`).
const K_BLOCK: usize = 384;
/// Rows of `x` packed at a time (a `K_BLOCK x M_BLOCK` block of `x` is 768 KiB).
const M_BLOCK: usize = 512;
/// Every block's row count is rounded up to this when its room is reserved.
const ROOM: usize = 64;

/// `sgemm_kernel_<CORE>(m, n, k, alpha, packed_a, packed_b, c, ldc)`: `c += alpha · a · b`, column-major `c`.
type KernelFn = unsafe extern "C" fn(c_long, c_long, c_long, f32, *const f32, *const f32, *mut f32, c_long) -> c_int;
/// `sgemm_{in,on}copy_<CORE>(rows, cols, src, ld, dst)`: copies a block into the kernel's layout.
type CopyFn = unsafe extern "C" fn(c_long, c_long, *const f32, c_long, *mut f32) -> c_int;

/// OpenBLAS's single-precision micro-kernel and the two copy routines that feed it, for one core type.
#[derive(Clone, Copy)]
pub(super) struct Kernels {
    kernel: KernelFn,
    /// Packs the weight (the kernel's `a`, read transposed: rows of `w` are its columns).
    pack_a: CopyFn,
    /// Packs rows of `x` (the kernel's `b`).
    pack_b: CopyFn,
}

impl Kernels {
    /// The routines of the core OpenBLAS dispatched to (`core` as `openblas_get_corename` says it, e.g.
    /// `SkylakeX`, whose routines are `sgemm_kernel_SKYLAKEX`, ...), `None` if the library does not export them.
    pub(super) fn load(lib: &libloading::Library, core: &str) -> Option<Self> {
        let core = core.trim().to_ascii_uppercase();
        if core.is_empty() || !core.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let name = |what: &str| format!("sgemm_{what}_{core}\0").into_bytes();
        // SAFETY: these are OpenBLAS's level-3 routines with the signatures declared above (its `common_level3.h`:
        // BLASLONG is `long`, the scalar a `float`); whether they behave as assumed is checked by `self_test`
        // before any caller uses them.
        unsafe {
            Some(Self {
                kernel: *lib.get::<KernelFn>(&name("kernel")).ok()?,
                pack_a: *lib.get::<CopyFn>(&name("incopy")).ok()?,
                pack_b: *lib.get::<CopyFn>(&name("oncopy")).ok()?,
            })
        }
    }
}

/// The kernels, once they passed the self-test; `None` without OpenBLAS, without the routines, when the test
/// failed, or with `CLIPLAB_PACKED=off`.
fn kernels() -> Option<Kernels> {
    static KERNELS: OnceLock<Option<Kernels>> = OnceLock::new();
    *KERNELS.get_or_init(|| {
        if std::env::var("CLIPLAB_PACKED").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
            return None;
        }
        let k = super::openblas()?.packed?;
        if self_test(k) {
            tracing::debug!("linear weights packed once for scoring (OpenBLAS's kernel)");
            Some(k)
        } else {
            tracing::warn!("OpenBLAS's packed kernel failed its self-test; scoring packs weights at every product");
            None
        }
    })
}

/// Whether products with packed weights can run in this process.
pub fn available() -> bool {
    kernels().is_some()
}

/// A buffer of f32 that starts on a 64-byte boundary (a cache line, as OpenBLAS aligns its own buffers).
#[derive(Default)]
struct Aligned(Vec<Line>);

thread_local! {
    /// Where [`PackedWeight::product_into`] packs the rows of `x`: kept from call to call (on the thread that runs
    /// the op), so that no call allocates, zeroes and frees a buffer of its own (4 % of a scoring pass).
    static X_PACKED: std::cell::RefCell<Aligned> = std::cell::RefCell::new(Aligned::default());
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

impl Aligned {
    fn zeroed(len: usize) -> Self {
        Self(vec![Line([0.0; 16]); len.div_ceil(16)])
    }

    fn ptr(&self) -> *const f32 {
        self.0.as_ptr().cast()
    }

    fn ptr_mut(&mut self) -> *mut f32 {
        self.0.as_mut_ptr().cast()
    }
}

/// A raw pointer that threads of the pool may share: each writes its own, disjoint, part of what it points to.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: used only to hand disjoint regions of one live buffer to the pool's threads (see each use).
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer `i` elements on (a method, so that closures capture the whole `Shared`, not its raw field).
    ///
    /// # Safety
    /// As `pointer::add`: `i` elements on must stay inside the buffer.
    unsafe fn add(self, i: usize) -> *mut f32 {
        // SAFETY: the caller's.
        unsafe { self.0.add(i) }
    }
}

/// A linear layer's weight `w` `[n, k]` (`nn.Linear`'s `[out, in]`), copied into OpenBLAS's kernel layout once.
/// It is a snapshot: later changes of the weight it was packed from are not seen.
pub struct PackedWeight {
    n: usize,
    k: usize,
    kernels: Kernels,
    data: Aligned,
    /// Where each `(chunk, k-block)` block starts in `data`, at `chunk * k_blocks + k_block`.
    starts: Vec<usize>,
}

impl std::fmt::Debug for PackedWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedWeight [{}, {}]", self.n, self.k)
    }
}

/// The `(first, len)` of block `i` of `total` items cut in blocks of `size`.
fn block(i: usize, size: usize, total: usize) -> (usize, usize) {
    let first = i * size;
    (first, size.min(total - first))
}

impl PackedWeight {
    /// Packs `w` `[n, k]` (row-major), or `None` when products with packed weights are not available here.
    ///
    /// # Panics
    /// When `w` holds fewer than `n · k` elements (a programming error in the caller).
    pub fn pack(w: &[f32], n: usize, k: usize) -> Option<Self> {
        Self::pack_with(kernels()?, w, n, k)
    }

    fn pack_with(kernels: Kernels, w: &[f32], n: usize, k: usize) -> Option<Self> {
        assert!(w.len() >= n * k, "PackedWeight: {} elements for [{n}, {k}]", w.len());
        if n == 0 || k == 0 || n.max(k) > c_int::MAX as usize {
            return None;
        }
        let (chunks, k_blocks) = (n.div_ceil(CHUNK_ROWS), k.div_ceil(K_BLOCK));
        let mut starts = Vec::with_capacity(chunks * k_blocks);
        let mut len = 0;
        for c in 0..chunks {
            let rows = block(c, CHUNK_ROWS, n).1;
            for kb in 0..k_blocks {
                starts.push(len);
                len += rows.next_multiple_of(ROOM) * block(kb, K_BLOCK, k).1;
            }
        }
        let mut data = Aligned::zeroed(len);
        let dst = Shared(data.ptr_mut());
        let pack = |i: usize| {
            let (c, kb) = (i / k_blocks, i % k_blocks);
            let ((r0, rows), (l0, cols)) = (block(c, CHUNK_ROWS, n), block(kb, K_BLOCK, k));
            // SAFETY: the source block lies in `w` (rows `r0..r0 + rows` of `k` elements, columns `l0..l0 + cols`,
            // asserted above); the destination is block `i`'s own room in `data`, which holds `rows` rounded up
            // to ROOM times `cols` elements, more than the copy writes, and no other job writes there.
            unsafe {
                (kernels.pack_a)(cols as c_long, rows as c_long, w.as_ptr().add(r0 * k + l0), k as c_long, dst.add(starts[i]));
            }
        };
        run_jobs(chunks * k_blocks, n * k, pack);
        Some(Self { n, k, kernels, data, starts })
    }

    /// Whether a product on `m` rows of `x` is faster with the packed weight than through `sgemm`. Only for up to
    /// a few hundred rows: there packing the weight is a large share of each call (40-55 % of it at 50-100 rows on
    /// one thread), while with more rows `sgemm`'s own blocking and threading do better (scoring in batches of 8
    /// images at 20 tokens, 800 caption rows, was 5-7 % slower through the packed weights; 385 and 400 rows were
    /// 2-4 % faster packed; `docs/performance.md`).
    pub fn pays_for(m: usize) -> bool {
        m <= 512
    }

    /// Outputs (`n`, the weight's rows).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Inputs (`k`, the weight's columns).
    pub fn cols(&self) -> usize {
        self.k
    }

    /// `c += x · wᵀ` for `x` `[m, k]` and `c` `[m, n]`, both row-major (`c` holding zeros, or a bias to add).
    ///
    /// # Panics
    /// When `x` or `c` is shorter than its dims say (a programming error in the caller).
    pub fn product_into(&self, x: &[f32], m: usize, c: &mut [f32]) {
        self.product_into_mapped(x, m, c, |_| {});
    }

    /// `c += f(x) · wᵀ` for an element-wise `f` (an activation), which `map` applies in place to each block of `x`
    /// once it is packed: the activation costs no buffer and no pass of its own, and it runs on the pool's threads
    /// while the block is still in cache. `map` sees the block's elements in the kernel's order, so it must treat
    /// every element alike.
    ///
    /// # Panics
    /// As [`Self::product_into`].
    pub fn product_into_mapped(&self, x: &[f32], m: usize, c: &mut [f32], map: impl Fn(&mut [f32]) + Sync) {
        let (n, k) = (self.n, self.k);
        assert!(x.len() >= m * k && c.len() >= m * n, "PackedWeight::product_into: operand shorter than [{m}, {k}] / [{m}, {n}]");
        let (chunks, k_blocks) = (n.div_ceil(CHUNK_ROWS), k.div_ceil(K_BLOCK));
        let room = M_BLOCK.min(m).next_multiple_of(ROOM);
        let mut xb = X_PACKED.with(|b| std::mem::take(&mut *b.borrow_mut()));
        if xb.0.len() * 16 < room * k {
            xb = Aligned::zeroed(room * k);
        }
        let mut x_starts = Vec::with_capacity(k_blocks);
        for m0 in (0..m).step_by(M_BLOCK) {
            let rows = M_BLOCK.min(m - m0);
            x_starts.clear();
            x_starts.extend((0..k_blocks).map(|kb| rows.next_multiple_of(ROOM) * kb * K_BLOCK));
            let dst = Shared(xb.ptr_mut());
            let starts = &x_starts;
            run_jobs(k_blocks, rows * k, |kb| {
                let (l0, cols) = block(kb, K_BLOCK, k);
                // SAFETY: rows `m0..m0 + rows` of `x`, columns `l0..l0 + cols`, lie in `x` (asserted above); the
                // destination is this k-block's own room in `xb` (`rows` rounded up to ROOM, times `cols`).
                // The copy writes the block's `rows · cols` elements from its start, then `map` runs over them.
                unsafe {
                    (self.kernels.pack_b)(cols as c_long, rows as c_long, x.as_ptr().add(m0 * k + l0), k as c_long, dst.add(starts[kb]));
                    map(std::slice::from_raw_parts_mut(dst.add(starts[kb]), rows * cols));
                }
            });
            let out = Shared(c[m0 * n..].as_mut_ptr());
            let xb = &xb;
            let x_starts = &x_starts;
            let chunk = |ch: usize| {
                let (r0, out_rows) = block(ch, CHUNK_ROWS, n);
                for (kb, &x_at) in x_starts.iter().enumerate() {
                    let cols = block(kb, K_BLOCK, k).1;
                    // SAFETY: the packed blocks were written by the library's own copy routines for this kernel
                    // (sizes as above); the kernel writes `c`'s rows `m0..m0 + rows`, columns `r0..r0 + out_rows`
                    // (column-major with ldc = n, it is `cᵀ`), which lie in `c` (asserted above) and which no
                    // other job writes.
                    unsafe {
                        (self.kernels.kernel)(
                            out_rows as c_long,
                            rows as c_long,
                            cols as c_long,
                            1.0,
                            self.data.ptr().add(self.starts[ch * k_blocks + kb]),
                            xb.ptr().add(x_at),
                            out.add(r0),
                            n as c_long,
                        );
                    }
                }
            };
            run_jobs(chunks, rows * n * k, chunk);
        }
        X_PACKED.with(|b| *b.borrow_mut() = xb);
    }
}

/// Runs `job(0..jobs)` on candle's pool when there is enough `work` (multiply-adds or elements) to share, else
/// on the calling thread.
fn run_jobs(jobs: usize, work: usize, job: impl Fn(usize) + Sync) {
    if jobs <= 1 || work < 1 << 18 {
        (0..jobs).for_each(&job);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(jobs, |range| range.for_each(&job));
    }
}

/// Whether packed products equal `cblas_sgemm`'s on shapes that cut every block (several chunks and k-blocks,
/// rows and columns not multiples of any unroll, more than one block of `x`'s rows).
fn self_test(kernels: Kernels) -> bool {
    let (m, n, k) = (M_BLOCK + 37, CHUNK_ROWS + 70, K_BLOCK + 45);
    let w: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 23) as f32 - 11.0) / 13.0).collect();
    let x: Vec<f32> = (0..m * k).map(|i| ((i * 5 % 19) as f32 - 9.0) / 11.0).collect();
    let Some(p) = PackedWeight::pack_with(kernels, &w, n, k) else {
        return false;
    };
    let bias: Vec<f32> = (0..m * n).map(|i| (i % 3) as f32).collect();
    let mut got = bias.clone();
    p.product_into(&x, m, &mut got);
    let mut want = bias;
    super::sgemm(m, n, k, super::Mat::n(&x), super::Mat::t(&w), 1.0, &mut want);
    got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 1e-3 * (1.0 + w.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the library offers the kernels, packed products equal plain `sgemm` at the model's shapes and at
    /// awkward ones, accumulating onto what `c` holds. Without OpenBLAS there is nothing to check, but then
    /// scoring must not claim the path.
    #[test]
    fn packed_products_equal_sgemm() {
        let Some(kernels) = kernels() else {
            assert!(!available());
            assert!(PackedWeight::pack(&[1.0; 6], 2, 3).is_none());
            return;
        };
        for (m, n, k) in [(50, 768, 768), (100, 2048, 512), (3, 5, 7), (1, 1, 1), (1030, 130, 800)] {
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 13 % 31) as f32 - 15.0) / 17.0).collect();
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 3 % 29) as f32 - 14.0) / 9.0).collect();
            let p = PackedWeight::pack_with(kernels, &w, n, k).expect("packs");
            assert_eq!((p.rows(), p.cols()), (n, k));
            let mut got = vec![0.5f32; m * n];
            p.product_into(&x, m, &mut got);
            let mut want = vec![0.5f32; m * n];
            super::super::sgemm(m, n, k, super::super::Mat::n(&x), super::super::Mat::t(&w), 1.0, &mut want);
            let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs() / (1.0 + w.abs())).fold(0f32, f32::max);
            assert!(worst < 1e-4, "[{m}, {k}] x [{n}, {k}]ᵀ: off by {worst}");
        }
    }
}
