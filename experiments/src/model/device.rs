//! Choosing the compute device: CUDA, then Metal, then the CPU, unless the user names one.

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The device a user asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The first that works of CUDA, Metal, CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
    Metal,
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            "metal" | "mps" => Ok(Self::Metal),
            other => Err(Error::Invalid(format!("unknown device `{other}` (use auto, cpu, cuda or metal)"))),
        }
    }
}

/// Human name of a device, as printed and recorded ("cpu", "cuda:0", "metal:0").
pub fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda:0".into(),
        Device::Metal(_) => "metal:0".into(),
    }
}

/// Checks, without starting it, that this build can use `choice` (an explicit CUDA or Metal needs a build with
/// that feature); whether the machine has the device is known only when [`select`] starts it.
pub fn check_supported(choice: DeviceChoice) -> Result<()> {
    match choice {
        DeviceChoice::Cuda if !candle_core::utils::cuda_is_available() => {
            Err(Error::Device("CUDA requested but this build has no CUDA support (build with --features cuda)".into()))
        }
        DeviceChoice::Metal if !candle_core::utils::metal_is_available() => Err(Error::Device(
            "Metal requested but this build has no Metal support (build with --features metal)".into(),
        )),
        _ => Ok(()),
    }
}

/// Resolves a [`DeviceChoice`] to a device; an explicit choice that is not available is an error.
pub fn select(choice: DeviceChoice) -> Result<Device> {
    check_supported(choice)?;
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => {
            Device::new_cuda(0).map_err(|e| Error::Device(format!("CUDA requested but unavailable: {e}")))
        }
        DeviceChoice::Metal => {
            Device::new_metal(0).map_err(|e| Error::Device(format!("Metal requested but unavailable: {e}")))
        }
        DeviceChoice::Auto => {
            if candle_core::utils::cuda_is_available() {
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok(d);
                }
            }
            if candle_core::utils::metal_is_available() {
                if let Ok(d) = Device::new_metal(0) {
                    return Ok(d);
                }
            }
            Ok(Device::Cpu)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_selects() {
        assert_eq!("CPU".parse::<DeviceChoice>().ok(), Some(DeviceChoice::Cpu));
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert!(matches!(select(DeviceChoice::Cpu), Ok(Device::Cpu)));
        let auto = select(DeviceChoice::Auto).expect("auto always resolves");
        if !candle_core::utils::cuda_is_available() && !candle_core::utils::metal_is_available() {
            assert!(auto.is_cpu());
            assert!(select(DeviceChoice::Cuda).is_err());
            assert!(check_supported(DeviceChoice::Cuda).expect_err("no CUDA").to_string().contains("CUDA"));
        }
    }
}

/// The machine a run or a benchmark ran on, as W&B and MLflow record it with their system metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Machine {
    /// The CPU model (`/proc/cpuinfo`'s `model name`), or the architecture where the OS does not say.
    pub cpu: String,
    /// Threads the CPU kernels use (candle's count: `RAYON_NUM_THREADS`, else the cores).
    pub threads: usize,
    /// The library behind matrix products on the CPU (see [`crate::model::blas`]).
    pub blas: String,
    /// The device the work ran on ("cpu", "cuda:0", ...).
    pub device: String,
    /// CLIP Lab's version.
    pub version: String,
    /// Compiled-in features that change speed: `cuda`, `metal`.
    pub features: Vec<String>,
    /// The GPU's name, where the work ran on one (CUDA). Absent from records made before it was kept.
    #[serde(default)]
    pub gpu: Option<String>,
}

impl Machine {
    /// This process's machine, running on `device`.
    pub fn current(device: &Device) -> Self {
        let mut features = Vec::new();
        if candle_core::utils::cuda_is_available() {
            features.push("cuda".to_string());
        }
        if candle_core::utils::metal_is_available() {
            features.push("metal".to_string());
        }
        Self {
            cpu: cpu_model().unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            threads: candle_core::utils::get_num_threads(),
            blas: crate::model::blas::describe(),
            device: device_name(device),
            version: env!("CARGO_PKG_VERSION").to_string(),
            features,
            gpu: gpu_info(device).map(|(name, _)| name),
        }
    }
}

/// The name of the GPU behind `device` and the memory in use on it (MiB, the whole device's, as `nvidia-smi`
/// counts it), for a CUDA device; `None` on the CPU, on Metal, or when the driver does not answer.
pub fn gpu_info(device: &Device) -> Option<(String, f64)> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => {
            let stream = d.cuda_stream();
            let ctx = stream.context();
            let (free, total) = ctx.mem_get_info().ok()?;
            Some((ctx.name().ok()?, total.saturating_sub(free) as f64 / (1024.0 * 1024.0)))
        }
        _ => None,
    }
}

/// `model name` from `/proc/cpuinfo` (Linux).
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

/// Peak resident set size of this process in MiB (Linux's `VmHWM`), if the OS reports it.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// How long idle CPU worker threads wait busily for the next piece of work before they sleep, unless the user set
/// it: `(variable, value)`.
///
/// Two thread pools share the cores: OpenBLAS's (matrix products) and candle's (element-wise ops, and the fused ops
/// of [`crate::model::clip::ops`]). They take turns, but each by default keeps spinning long after its work is done
/// (OpenBLAS `sched_yield`s for about 2^28 cycles, candle spins 25,000 times), and on a machine with few cores the
/// spinning threads take the cores the other pool needs. Measured on 2 cores (a training step, ViT-B/32): the
/// backward pass took 30–45% less time with short waits; see `docs/performance.md`. A wake-up costs a few
/// microseconds against products of hundreds.
pub const CPU_THREAD_WAITS: [(&str, &str); 2] = [
    ("OPENBLAS_THREAD_TIMEOUT", "4"),
    ("CANDLE_BARRIER_POOL_SPIN_LIMIT", "100"),
];

/// Sets the [`CPU_THREAD_WAITS`] (and, with glibc, the [`ALLOCATOR_DEFAULTS`]) the user has not set. Both libraries read them when their pool starts (on first
/// use), so this must run before any model work.
///
/// Call it first thing in `main`, before the program starts any thread: changing the environment while another
/// thread may read it is a data race in C's `getenv`.
pub fn set_cpu_thread_defaults() {
    for (name, value) in CPU_THREAD_WAITS {
        if std::env::var_os(name).is_none() {
            std::env::set_var(name, value);
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    set_allocator_defaults();
}

/// glibc's allocator settings CLIP Lab uses unless the user set them (by their environment variables):
/// `(mallopt parameter, value, variable)`.
///
/// By default glibc serves large blocks (from 128 KiB, a threshold that moves up to 32 MiB) with fresh `mmap`s and
/// gives freed memory at the heap's top back to the system, so every training step faults its activations in again
/// (page faults were 9–18% of a profile). Here blocks under 32 MiB come from the heap and up to 1 GiB of freed heap is
/// kept for the next step. Measured on 2 cores (ViT-B/32, 20 tokens, alternating): minor faults -27%, backward -15%,
/// training step -10%, the same peak memory (docs/performance.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub const ALLOCATOR_DEFAULTS: [(libc::c_int, libc::c_int, &str); 2] = [
    (libc::M_MMAP_THRESHOLD, 32 << 20, "MALLOC_MMAP_THRESHOLD_"),
    (libc::M_TRIM_THRESHOLD, 1 << 30, "MALLOC_TRIM_THRESHOLD_"),
];

/// Applies the [`ALLOCATOR_DEFAULTS`] the user has not set. Its effect is speed (`scripts/bench.sh`), not behaviour.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // One C call, `mallopt`; with model/blas/ the crate's only unsafe code.
fn set_allocator_defaults() {
    for (param, value, name) in ALLOCATOR_DEFAULTS {
        if std::env::var_os(name).is_none() {
            // SAFETY: mallopt only changes the allocator's parameters (under the allocator's own lock). It returns 0
            // for a value it refuses, which leaves glibc's default in place: nothing to report.
            let _ = unsafe { libc::mallopt(param, value) };
        }
    }
}
