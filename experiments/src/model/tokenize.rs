//! Caption tokenization with the `tokenizers` crate from a Hugging Face `tokenizer.json`.
//!
//! Each caption becomes `[start-of-text, tokens..., end-of-text]`, truncated to the model's context length with
//! the end-of-text token kept last. A batch is padded only to its longest caption: the text tower's causal mask
//! means a token never sees the padding after it, and pooling reads each caption's own end-of-text position, so
//! the result is exactly that of padding to 77, for a fraction of the work.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::Tokenizer;

use crate::model::clip::ClipTextConfig;
use crate::{Error, Result};

/// A tokenized batch of captions.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// `[n, seq]` token ids (u32), `seq` = the longest caption.
    pub ids: Tensor,
    /// Index of each caption's end-of-text token (its last real token).
    pub last: Vec<usize>,
}

/// A CLIP caption tokenizer.
#[derive(Clone)]
pub struct CaptionTokenizer {
    tokenizer: Tokenizer,
    context_length: usize,
    eos_id: u32,
    pad_id: u32,
}

impl std::fmt::Debug for CaptionTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptionTokenizer")
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .field("context_length", &self.context_length)
            .field("eos_id", &self.eos_id)
            .finish()
    }
}

const EOT: &str = "<|endoftext|>";
const SOT: &str = "<|startoftext|>";

/// The special tokens' ids must be the ones the model was trained with (`text_config`'s bos/eos/pad ids): a
/// tokenizer with the model's vocabulary size but other ids would feed the model the wrong tokens. Configs whose
/// `eos_token_id` is 2 are the legacy ones `transformers` itself does not trust for this (their bos/eos/pad ids
/// are placeholders); for them only the pad id's range is checked.
fn check_special_ids(tokenizer: &Tokenizer, eos_id: u32, config: &ClipTextConfig) -> Result<()> {
    let legacy = config.eos_token_id == 2;
    let mismatch = |token: &str, id: Option<u32>, key: &str, want: u32| {
        let has = id.map_or_else(|| "no such token".to_string(), |i| format!("id {i}"));
        Error::Tokenizer(format!(
            "`{token}` has {has} but the model's config.json says {key} = {want}: this tokenizer does not belong \
             to this model"
        ))
    };
    if !legacy {
        if eos_id != config.eos_token_id {
            return Err(mismatch(EOT, Some(eos_id), "text_config.eos_token_id", config.eos_token_id));
        }
        let sot = tokenizer.token_to_id(SOT);
        if sot != Some(config.bos_token_id) {
            return Err(mismatch(SOT, sot, "text_config.bos_token_id", config.bos_token_id));
        }
    }
    if tokenizer.id_to_token(config.pad_token_id).is_none() {
        return Err(Error::Tokenizer(format!(
            "it has no token with id {} (text_config.pad_token_id in the model's config.json)",
            config.pad_token_id
        )));
    }
    Ok(())
}

impl CaptionTokenizer {
    /// Loads `tokenizer.json` and checks that it fits the text tower of `config`.
    pub fn from_file(path: &Path, config: &ClipTextConfig) -> Result<Self> {
        Self::from_bytes(path, &crate::error::read_file(path)?, config)
    }

    /// Loads `tokenizer.json` bytes (`path`: the file they came from, named in errors) and checks that it fits the
    /// text tower of `config`.
    pub fn from_bytes(path: &Path, bytes: &[u8], config: &ClipTextConfig) -> Result<Self> {
        let tokenizer = Tokenizer::from_bytes(bytes)
            .map_err(|e| Error::bad_file(path, format!("not a tokenizer.json the tokenizers crate can load: {e}")))?;
        Self::new(tokenizer, config).map_err(|e| match e {
            Error::Tokenizer(m) => Error::bad_file(path, m),
            other => other,
        })
    }

    /// Wraps a loaded tokenizer, checking it against `config`.
    pub fn new(mut tokenizer: Tokenizer, config: &ClipTextConfig) -> Result<Self> {
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > config.vocab_size {
            return Err(Error::Tokenizer(format!(
                "its vocabulary has {vocab} tokens but the model's embedding has only {} rows (text_config.vocab_size): \
                 this tokenizer does not belong to this model",
                config.vocab_size
            )));
        }
        let eos_id = tokenizer.token_to_id(EOT).ok_or_else(|| {
            Error::Tokenizer(format!("it has no `{EOT}` token, so it is not a CLIP tokenizer"))
        })?;
        check_special_ids(&tokenizer, eos_id, config)?;
        // We truncate and pad ourselves (see the module docs).
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        // Check the post-processor adds the start/end tokens we pool on.
        let probe = tokenizer
            .encode("a", true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        if probe.get_ids().last() != Some(&eos_id) {
            return Err(Error::Tokenizer(format!(
                "encoding a caption does not end with `{EOT}`: its post-processor must add the special tokens"
            )));
        }
        Ok(Self {
            tokenizer,
            context_length: config.max_position_embeddings,
            eos_id,
            pad_id: config.pad_token_id.min(config.vocab_size.saturating_sub(1) as u32),
        })
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The ids of one caption, truncated to the context length with end-of-text last.
    pub fn encode(&self, caption: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(caption, true)
            .map_err(|e| Error::Tokenizer(format!("cannot encode {caption:?}: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        if ids.len() > self.context_length {
            ids.truncate(self.context_length);
            if let Some(last) = ids.last_mut() {
                *last = self.eos_id;
            }
        }
        Ok(ids)
    }

    /// Tokenizes `captions` into one batch padded to the longest.
    pub fn batch<S: AsRef<str>>(&self, captions: &[S], device: &Device) -> Result<TokenBatch> {
        let encoded = captions
            .iter()
            .map(|c| self.encode(c.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Self::pad(&encoded, self.pad_id, device)
    }

    /// Pads already-encoded captions into a batch.
    pub fn pad(encoded: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<TokenBatch> {
        let seq = encoded.iter().map(Vec::len).max().unwrap_or(0);
        if seq == 0 {
            return Err(Error::Invalid("no captions to tokenize".into()));
        }
        let mut flat = Vec::with_capacity(encoded.len() * seq);
        let mut last = Vec::with_capacity(encoded.len());
        for ids in encoded {
            if ids.is_empty() {
                return Err(Error::Tokenizer("a caption encoded to no tokens".into()));
            }
            flat.extend_from_slice(ids);
            flat.extend(std::iter::repeat_n(pad_id, seq - ids.len()));
            last.push(ids.len() - 1);
        }
        let ids = Tensor::from_vec(flat, (encoded.len(), seq), device)?;
        Ok(TokenBatch { ids, last })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
}
