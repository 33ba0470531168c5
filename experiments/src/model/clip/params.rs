//! Where the model's tensors come from (a checkpoint or a seeded random init), which of them are trained
//! (freezing), and how they are saved back.
//!
//! The model is built through a `VarBuilder` over [`ParamBackend`]: a trainable tensor becomes a candle `Var`
//! (so backprop reaches it and the optimizer updates it in place), a frozen one a plain constant tensor (so
//! backprop computes nothing for it, nor for anything that only depends on frozen tensors).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::config::ClipConfig;
use super::model::ClipModel;
use crate::{Error, Result};

/// What to keep fixed during fine-tuning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct FreezeSpec {
    /// Freeze the whole vision tower and `visual_projection`.
    pub vision: bool,
    /// Freeze the whole text tower and `text_projection`.
    pub text: bool,
    /// Keep `logit_scale` (the temperature) fixed.
    pub logit_scale: bool,
    /// In each tower that is not frozen, train only its last N encoder layers (and what follows them: the final
    /// layer norm and the projection); embeddings and earlier layers stay fixed.
    pub train_last_layers: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tower {
    Vision,
    Text,
    Shared,
}

fn tower_of(name: &str) -> Tower {
    if name.starts_with("vision_model.") || name.starts_with("visual_projection") {
        Tower::Vision
    } else if name.starts_with("text_model.") || name.starts_with("text_projection") {
        Tower::Text
    } else {
        Tower::Shared
    }
}

impl FreezeSpec {
    /// Whether the tensor called `name` is trained, for a model with the given layer counts.
    pub fn is_trainable(&self, name: &str, config: &ClipConfig) -> bool {
        let (frozen, layers) = match tower_of(name) {
            Tower::Vision => (self.vision, config.vision_config.num_hidden_layers),
            Tower::Text => (self.text, config.text_config.num_hidden_layers),
            Tower::Shared => return !self.logit_scale,
        };
        if frozen {
            return false;
        }
        let Some(n) = self.train_last_layers else {
            return true;
        };
        if name.contains(".embeddings.") || name.contains(".pre_layrnorm.") {
            return false;
        }
        match layer_index(name) {
            Some(i) => i + n >= layers,
            None => true, // final layer norm, post layer norm, projections
        }
    }

    /// A short human description, e.g. "vision tower frozen; last 2 layers trained".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.vision {
            parts.push("vision tower frozen".to_string());
        }
        if self.text {
            parts.push("text tower frozen".to_string());
        }
        if self.logit_scale {
            parts.push("temperature frozen".to_string());
        }
        if let Some(n) = self.train_last_layers {
            parts.push(format!("last {n} layers trained"));
        }
        if parts.is_empty() {
            "everything trained".to_string()
        } else {
            parts.join("; ")
        }
    }
}

fn layer_index(name: &str) -> Option<usize> {
    let rest = name.split(".encoder.layers.").nth(1)?;
    rest.split('.').next()?.parse().ok()
}

/// Where the weights come from.
#[derive(Debug, Clone)]
pub enum WeightSource {
    /// A `model.safetensors` (or `pytorch_model.bin`) file with Hugging Face key names.
    File(PathBuf),
    /// Several safetensors files whose tensors together make the model (a sharded folder's shards, as listed by
    /// its `model.safetensors.index.json`); a tensor in two of them is an error.
    Files(Vec<PathBuf>),
    /// Fresh random weights from a seed (tiny test models, benchmarks).
    Random { seed: u64 },
}

/// One parameter of a built model.
#[derive(Debug, Clone)]
pub enum Param {
    Frozen(Tensor),
    Trainable(Var),
}

impl Param {
    pub fn tensor(&self) -> &Tensor {
        match self {
            Param::Frozen(t) => t,
            Param::Trainable(v) => v.as_tensor(),
        }
    }
}

/// Every parameter of a built model, by checkpoint name, in the order the model asked for them.
#[derive(Debug, Clone, Default)]
pub struct ParamStore {
    entries: Vec<(String, Param)>,
}

impl ParamStore {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Param)> {
        self.entries.iter().map(|(n, p)| (n.as_str(), p))
    }

    /// The trainable parameters, for the optimizer.
    pub fn vars(&self) -> Vec<Var> {
        self.entries
            .iter()
            .filter_map(|(_, p)| match p {
                Param::Trainable(v) => Some(v.clone()),
                Param::Frozen(_) => None,
            })
            .collect()
    }

    /// `(name, var)` of every trainable parameter.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        self.entries
            .iter()
            .filter_map(|(n, p)| match p {
                Param::Trainable(v) => Some((n.clone(), v.clone())),
                Param::Frozen(_) => None,
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Param> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// Number of scalar parameters: (all, trainable).
    pub fn counts(&self) -> (usize, usize) {
        let mut all = 0;
        let mut trainable = 0;
        for (_, p) in &self.entries {
            let n = p.tensor().elem_count();
            all += n;
            if matches!(p, Param::Trainable(_)) {
                trainable += n;
            }
        }
        (all, trainable)
    }

    /// The current value of every tensor, by checkpoint name (f32, on the CPU).
    pub fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        let mut map = HashMap::with_capacity(self.entries.len());
        for (n, p) in &self.entries {
            let t = p.tensor().to_dtype(DType::F32)?.to_device(&Device::Cpu)?.contiguous()?;
            // A copy, so later in-place optimizer steps do not change the snapshot.
            map.insert(n.clone(), t.copy()?);
        }
        Ok(map)
    }

    /// Writes every tensor to `path` as safetensors (Hugging Face names), atomically (temp file + rename).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let map = self.snapshot()?;
        save_tensors_atomically(&map, path)
    }
}

/// Writes tensors to `path` through a temporary file in the same folder (flushed, then renamed), so a crash never
/// leaves half a file; the file gets the user's normal mode (see [`crate::fsio`]).
pub fn save_tensors_atomically(map: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    crate::fsio::write_file_at(path, |tmp| {
        candle_core::safetensors::save(map, tmp).map_err(|e| Error::bad_file(path, format!("cannot write: {e}")))
    })
}

/// The name and shape of every tensor a model of `config` is built from, in the order the model asks for them,
/// computed without allocating any weights (each is a broadcast view of one zero).
pub fn expected_shapes(config: &ClipConfig) -> Result<Shapes> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let backend = ShapeBackend { seen: seen.clone() };
    let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu);
    ClipModel::new(vb, config)?;
    let out = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(out)
}

/// Tensor names with their shapes, in the order the model asked for them.
pub type Shapes = Vec<(String, Vec<usize>)>;

/// A `VarBuilder` backend that records what is asked for and hands out zero-cost views.
struct ShapeBackend {
    seen: Arc<Mutex<Shapes>>,
}

impl candle_nn::var_builder::SimpleBackend for ShapeBackend {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if !seen.iter().any(|(n, _)| n == name) {
            seen.push((name.to_string(), s.dims().to_vec()));
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: unchecked access is not supported")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// The largest safetensors header we read (the format's own limit is 100 MB; CLIP's is a few tens of KB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Checks a safetensors file against `config` from its header alone, without reading the weights: the header
/// parses, the file is as long as the header says (not truncated), and every tensor the model needs is there with
/// the shape `config` gives it and a float type.
pub fn check_safetensors(path: &Path, config: &ClipConfig) -> Result<()> {
    check_safetensors_files(&[path.to_path_buf()], config)
}

/// [`check_safetensors`] over several files whose tensors together make the model (a sharded folder): each file
/// is checked on its own (header, length), then the tensors of all of them against `config`.
pub fn check_safetensors_files(paths: &[PathBuf], config: &ClipConfig) -> Result<()> {
    let mut tensors: HashMap<String, (PathBuf, safetensors::tensor::TensorInfo)> = HashMap::new();
    for path in paths {
        for (name, info) in safetensors_header(path)? {
            if let Some((other, _)) = tensors.get(&name) {
                return Err(Error::BadTensor {
                    path: path.clone(),
                    name,
                    message: format!("also in {} (a tensor must be in one file only)", other.display()),
                });
            }
            tensors.insert(name, (path.clone(), info));
        }
    }
    let Some(first) = paths.first() else {
        return Err(Error::Invalid("no weights file to check".into()));
    };
    for (name, shape) in expected_shapes(config)? {
        let Some((path, info)) = tensors.get(&name) else {
            return Err(Error::BadTensor {
                path: first.clone(),
                name,
                message: format!("missing (expected shape {shape:?}); is this a CLIP checkpoint of this config?"),
            });
        };
        if info.shape != shape {
            return Err(Error::BadTensor {
                path: path.clone(),
                name,
                message: format!("shape {:?} does not match config.json (expected {shape:?})", info.shape),
            });
        }
        use safetensors::Dtype;
        if !matches!(info.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64) {
            return Err(Error::BadTensor {
                path: path.clone(),
                name,
                message: format!("type {:?} is not a float type", info.dtype),
            });
        }
    }
    Ok(())
}

/// The tensors a safetensors file's header lists, checked: the header parses and the file is as long as the
/// header says (not truncated). Reads only the header.
fn safetensors_header(path: &Path) -> Result<HashMap<String, safetensors::tensor::TensorInfo>> {
    use std::io::Read;
    let bad = |m: String| Error::bad_file(path, m);
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile { path: path.to_path_buf(), hint: String::new() },
        _ => Error::io(path, e),
    })?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n).map_err(|_| bad(format!("not a safetensors file: only {len} bytes")))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_BYTES || n > len - 8 {
        return Err(bad(format!("not a valid safetensors file: its header claims {n} bytes of a {len}-byte file")));
    }
    let mut header = Vec::new();
    file.take(n).read_to_end(&mut header).map_err(|e| Error::io(path, e))?;
    let meta: safetensors::tensor::Metadata = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("not a valid safetensors file: its header does not parse: {e}")))?;
    let tensors = meta.tensors();
    let data_end = tensors.values().map(|t| t.data_offsets.1 as u64).max().unwrap_or(0);
    if 8 + n + data_end != len {
        return Err(bad(format!(
            "not a valid safetensors file: its header describes {} bytes but the file has {len} (truncated?)",
            8 + n + data_end
        )));
    }
    Ok(tensors.into_iter().map(|(n, t)| (n, t.clone())).collect())
}

enum Source {
    Checkpoint { path: PathBuf, tensors: HashMap<String, Tensor> },
    /// Boxed: the generator is large next to the other variant.
    Random { rng: Box<ChaCha8Rng> },
}

struct BackendState {
    source: Source,
    entries: Vec<(String, Param)>,
    first_error: Option<Error>,
}

/// The `VarBuilder` backend that hands the model its tensors and records them.
struct ParamBackend {
    state: Arc<Mutex<BackendState>>,
    freeze: FreezeSpec,
    config: ClipConfig,
}

fn random_tensor(rng: &mut ChaCha8Rng, shape: &Shape, name: &str, init: Init) -> candle_core::Result<Vec<f32>> {
    let n = shape.elem_count();
    let dims = shape.dims();
    // Hugging Face initialises biases at zero; honour that whatever the hint says.
    let init = if name.ends_with(".bias") && !name.contains("layer_norm") && !name.contains("layrnorm") {
        Init::Const(0.0)
    } else {
        init
    };
    let normal = |rng: &mut ChaCha8Rng, mean: f64, std: f64| -> candle_core::Result<Vec<f32>> {
        let d = Normal::new(mean, std).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok((0..n).map(|_| d.sample(rng) as f32).collect())
    };
    let uniform = |rng: &mut ChaCha8Rng, lo: f64, up: f64| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(lo..up) as f32).collect()
    };
    match init {
        Init::Const(v) => Ok(vec![v as f32; n]),
        Init::Randn { mean, stdev } => normal(rng, mean, stdev),
        Init::Uniform { lo, up } => Ok(uniform(rng, lo, up)),
        Init::Kaiming { dist, fan, non_linearity } => {
            let fan = fan.for_shape(shape);
            let std = non_linearity.gain() / (fan.max(1) as f64).sqrt();
            match dist {
                candle_nn::init::NormalOrUniform::Normal => normal(rng, 0.0, std),
                candle_nn::init::NormalOrUniform::Uniform => {
                    let b = 3f64.sqrt() * std;
                    Ok(uniform(rng, -b, b))
                }
            }
        }
    }
    .inspect(|v| debug_assert_eq!(v.len(), dims.iter().product::<usize>()))
}

impl ParamBackend {
    fn fetch(&self, shape: &Shape, name: &str, init: Init, dev: &Device) -> Result<Tensor> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, p)) = st.entries.iter().find(|(n, _)| n == name) {
            return Ok(p.tensor().clone());
        }
        let t = match &mut st.source {
            Source::Checkpoint { path, tensors } => {
                let t = tensors.get(name).ok_or_else(|| Error::BadTensor {
                    path: path.clone(),
                    name: name.to_string(),
                    message: format!("missing (expected shape {:?}); is this a CLIP checkpoint of this config?", shape.dims()),
                })?;
                if t.shape() != shape {
                    return Err(Error::BadTensor {
                        path: path.clone(),
                        name: name.to_string(),
                        message: format!(
                            "shape {:?} does not match config.json (expected {:?})",
                            t.dims(),
                            shape.dims()
                        ),
                    });
                }
                t.to_dtype(DType::F32)?.to_device(dev)?
            }
            Source::Random { rng } => {
                let v = random_tensor(rng, shape, name, init)?;
                Tensor::from_vec(v, shape.clone(), dev)?
            }
        };
        let p = if self.freeze.is_trainable(name, &self.config) {
            Param::Trainable(Var::from_tensor(&t)?)
        } else {
            Param::Frozen(t)
        };
        let out = p.tensor().clone();
        st.entries.push((name.to_string(), p));
        Ok(out)
    }
}

impl candle_nn::var_builder::SimpleBackend for ParamBackend {
    fn get(&self, s: Shape, name: &str, h: Init, _dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.fetch(&s, name, h, dev).map_err(|e| {
            let msg = e.to_string();
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if st.first_error.is_none() {
                st.first_error = Some(e);
            }
            candle_core::Error::Msg(msg)
        })
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: unchecked access is not supported")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &st.source {
            Source::Checkpoint { tensors, .. } => tensors.contains_key(name),
            Source::Random { .. } => true,
        }
    }
}

/// Whether `path` is a PyTorch checkpoint (`pytorch_model.bin`, read with candle's pickle reader) rather than
/// safetensors.
fn is_pytorch(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "bin" || e == "pt" || e == "pth")
}

/// Reads a PyTorch checkpoint (`torch.save`'s zip format, as `pytorch_model.bin` is) into CPU tensors.
pub fn read_pytorch(path: &Path) -> Result<HashMap<String, Tensor>> {
    let tensors = candle_core::pickle::read_all(path)
        .map_err(|e| Error::bad_file(path, format!("not a PyTorch checkpoint candle can read: {e}")))?;
    Ok(tensors.into_iter().collect())
}

/// Checks a weights file against `config`: a safetensors file from its header ([`check_safetensors`]), a PyTorch
/// checkpoint by reading it (its format has no header to check alone).
pub fn check_weights(path: &Path, config: &ClipConfig) -> Result<()> {
    if !is_pytorch(path) {
        return check_safetensors(path, config);
    }
    let tensors = read_pytorch(path)?;
    for (name, shape) in expected_shapes(config)? {
        let Some(t) = tensors.get(&name) else {
            return Err(Error::BadTensor {
                path: path.to_path_buf(),
                name,
                message: format!("missing (expected shape {shape:?}); is this a CLIP checkpoint of this config?"),
            });
        };
        if t.dims() != shape.as_slice() {
            return Err(Error::BadTensor {
                path: path.to_path_buf(),
                name,
                message: format!("shape {:?} does not match config.json (expected {shape:?})", t.dims()),
            });
        }
    }
    Ok(())
}

/// Reads a weights file into CPU tensors, naming the file in every error: safetensors, or a PyTorch checkpoint
/// (`.bin`).
pub fn read_weights(path: &Path) -> Result<HashMap<String, Tensor>> {
    if is_pytorch(path) {
        read_pytorch(path)
    } else {
        read_safetensors(path)
    }
}

/// Reads a safetensors file into CPU tensors, naming the file in every error.
pub fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bytes = crate::error::read_file(path)?;
    candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| Error::bad_file(path, format!("not a valid safetensors file: {e}")))
}

/// Builds a [`ClipModel`] from `source` on `device`, with the parameters `freeze` leaves trainable as `Var`s.
pub fn build_model(
    config: &ClipConfig,
    source: WeightSource,
    freeze: &FreezeSpec,
    device: &Device,
) -> Result<(ClipModel, ParamStore)> {
    let source = match source {
        WeightSource::File(path) => {
            let tensors = read_weights(&path)?;
            Source::Checkpoint { path, tensors }
        }
        WeightSource::Files(paths) => {
            let mut tensors = HashMap::new();
            for path in &paths {
                for (name, t) in read_safetensors(path)? {
                    if tensors.insert(name.clone(), t).is_some() {
                        return Err(Error::BadTensor {
                            path: path.clone(),
                            name,
                            message: "also in another shard (a tensor must be in one file only)".into(),
                        });
                    }
                }
            }
            let path = paths.first().cloned().ok_or_else(|| Error::Invalid("no weights file to load".into()))?;
            Source::Checkpoint { path, tensors }
        }
        WeightSource::Random { seed } => Source::Random { rng: Box::new(ChaCha8Rng::seed_from_u64(seed)) },
    };
    let state = Arc::new(Mutex::new(BackendState { source, entries: Vec::new(), first_error: None }));
    let backend = ParamBackend { state: state.clone(), freeze: freeze.clone(), config: config.clone() };
    let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
    let built = ClipModel::new(vb, config);
    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    let model = match built {
        Ok(m) => m,
        Err(e) => return Err(st.first_error.take().unwrap_or(Error::Candle(e))),
    };
    let entries = std::mem::take(&mut st.entries);
    Ok((model, ParamStore { entries }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freezing_rules() {
        let c = ClipConfig::tiny(50, 32, 3, 32, 8);
        let all = FreezeSpec::default();
        assert!(all.is_trainable("vision_model.embeddings.class_embedding", &c));
        assert!(all.is_trainable("logit_scale", &c));
        let v = FreezeSpec { vision: true, ..Default::default() };
        assert!(!v.is_trainable("vision_model.encoder.layers.2.mlp.fc1.weight", &c));
        assert!(!v.is_trainable("visual_projection.weight", &c));
        assert!(v.is_trainable("text_model.encoder.layers.0.mlp.fc1.weight", &c));
        let last = FreezeSpec { train_last_layers: Some(1), ..Default::default() };
        assert!(!last.is_trainable("text_model.encoder.layers.1.mlp.fc1.weight", &c));
        assert!(last.is_trainable("text_model.encoder.layers.2.mlp.fc1.weight", &c));
        assert!(!last.is_trainable("text_model.embeddings.token_embedding.weight", &c));
        assert!(last.is_trainable("text_model.final_layer_norm.weight", &c));
        assert!(!last.is_trainable("vision_model.pre_layrnorm.weight", &c));
        assert!(last.is_trainable("vision_model.post_layernorm.bias", &c));
    }

    #[test]
    fn random_init_is_seeded() -> Result<()> {
        let c = ClipConfig::tiny(50, 32, 1, 16, 8);
        let f = FreezeSpec::default();
        let (_, a) = build_model(&c, WeightSource::Random { seed: 1 }, &f, &Device::Cpu)?;
        let (_, b) = build_model(&c, WeightSource::Random { seed: 1 }, &f, &Device::Cpu)?;
        let (_, d) = build_model(&c, WeightSource::Random { seed: 2 }, &f, &Device::Cpu)?;
        let name = "text_model.encoder.layers.0.self_attn.q_proj.weight";
        let get = |s: &ParamStore| s.get(name).map(|p| p.tensor().flatten_all().and_then(|t| t.to_vec1::<f32>()));
        assert_eq!(get(&a).transpose()?, get(&b).transpose()?);
        assert_ne!(get(&a).transpose()?, get(&d).transpose()?);
        assert!(a.get("logit_scale").is_some() && a.get("vision_model.embeddings.class_embedding").is_some());
        Ok(())
    }
}
