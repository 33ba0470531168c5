//! CLIP in candle: config presets, the trainable model, parameter loading / freezing / saving.

pub mod config;
mod encoder;
pub mod model;
pub mod ops;
pub mod params;

pub use config::{Activation, ClipConfig, ClipTextConfig, ClipVisionConfig};
pub use model::{l2_normalize, ClipModel};
pub use params::{build_model, FreezeSpec, Param, ParamStore, WeightSource};
