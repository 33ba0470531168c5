//! The smallest real experiment, runnable in seconds: a home whose store holds the imported dataset `shapes`
//! (30 generated images, 2 rows each, 32 px) and a random tiny CLIP folder `model/`, with a spec over both.

use std::path::Path;

use experiments::data::{self, synth, ColumnMap, ImportOptions, OnError};
use experiments::events::{CancelToken, NullObserver};
use experiments::model::clip::ClipConfig;
use experiments::model::engine::ClipBundle;
use experiments::model::preprocess::ImageProcessorConfig;
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::Store;

/// Imports `shapes` into the store under `home`, writes the model and returns the store with the experiment
/// `name` over both; `sample` and `train` are the lines of the spec's `[sample]` and `[train]` tables.
pub fn shapes_home(home: &Path, name: &str, sample: &str, train: &str) -> (Store, ExperimentSpec) {
    let data = home.join("data");
    let metadata = synth::write_dataset(&data, &synth::caption_contest(30, 5, 2, 32, 4)).expect("dataset");
    let opts = ImportOptions {
        name: "shapes".into(),
        metadata,
        images_dir: Some(data.join(synth::IMAGES_DIR)),
        columns: ColumnMap::default(),
        on_error: OnError::Reject,
        extract_dir: None,
    };
    let imported = data::import(&opts, &mut NullObserver, CancelToken::new()).expect("import");
    let mut store = Store::open(home).expect("store");
    store.insert_dataset(&imported).expect("insert");
    let model = home.join("model");
    let cfg = ClipConfig::tiny(synth::vocabulary().len() + 3, 32, 1, 32, 8);
    let tok = serde_json::to_vec(&synth::tiny_tokenizer_json()).expect("tok");
    ClipBundle::write_random(&model, &cfg, tok, ImageProcessorConfig::with_size(32), 1).expect("model");
    let text = format!(
        "name = {name:?}\ndataset = \"shapes\"\nmodel = {model:?}\ndevice = \"cpu\"\n[sample]\n{sample}\n[train]\n{train}\n"
    );
    (store, ExperimentSpec::from_toml(&text, None).expect("spec"))
}
