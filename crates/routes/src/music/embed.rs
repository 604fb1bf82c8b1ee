//! Music embeddings of audio windows and captions: CLAP's audio and text towers (the public
//! stand-in for MuLan; `genres-clap` is the project's own, built in) and EnCodec's frame
//! features averaged over the window (the stand-in for SoundStream-avg).

use crate::error::{Result, RouteError};
use brainrecon_audio::clap::CropChoices;
use brainrecon_audio::encodec::EncodecModel;
use brainrecon_audio::genres_clap::LoadedClap;
use brainrecon_zoo::genres_clap::load_clap;
use candle_core::{Device, Tensor};

/// Which embedding the route decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmbeddingKind {
    /// CLAP's audio embedding of each window (MuLan-music in the paper).
    ClapAudio,
    /// CLAP's text embedding of the clip's caption, the same for its windows (MuLan-text).
    ClapText,
    /// EnCodec's encoder output averaged over the window (SoundStream-avg).
    Encodec,
}

impl EmbeddingKind {
    /// Parses `--embedding`: `clap-audio`, `clap-text` or `encodec`.
    ///
    /// # Errors
    /// [`RouteError::Usage`] for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "clap-audio" => Ok(Self::ClapAudio),
            "clap-text" => Ok(Self::ClapText),
            "encodec" => Ok(Self::Encodec),
            other => Err(RouteError::Usage(format!(
                "--embedding: expected clap-audio, clap-text or encodec, found {other:?}"
            ))),
        }
    }

    /// The kind that embeds audio in the same space (library files are audio).
    pub fn audio_space(self) -> Self {
        match self {
            Self::ClapText => Self::ClapAudio,
            other => other,
        }
    }

    /// The name [`EmbeddingKind::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClapAudio => "clap-audio",
            Self::ClapText => "clap-text",
            Self::Encodec => "encodec",
        }
    }
}

/// A loaded embedding model.
pub enum Embedder {
    /// A CLAP model: audio and text towers with their processors.
    Clap(Box<LoadedClap>),
    /// An EnCodec model (its encoder is used).
    Encodec(Box<EncodecModel>),
}

/// Windows embedded per model call.
pub const BATCH: usize = 16;

impl Embedder {
    /// `clap`: `genres-clap`, a folder or a hub id; `encodec`: a folder or hub id.
    pub fn load(kind: EmbeddingKind, model: &str, device: &Device) -> Result<Self> {
        Ok(match kind {
            EmbeddingKind::ClapAudio | EmbeddingKind::ClapText => {
                Embedder::Clap(Box::new(load_clap(model, device)?))
            }
            EmbeddingKind::Encodec => {
                Embedder::Encodec(Box::new(EncodecModel::load(model, device)?))
            }
        })
    }

    /// Sample rate the audio must have.
    pub fn rate(&self) -> u32 {
        match self {
            Embedder::Clap(c) => c.feature_extractor.config.sampling_rate,
            Embedder::Encodec(e) => e.config.sampling_rate as u32,
        }
    }

    /// Width of an embedding.
    pub fn width(&self) -> usize {
        match self {
            Embedder::Clap(c) => c.model.config.projection_dim,
            Embedder::Encodec(e) => e.config.hidden_size,
        }
    }

    /// Embeddings of mono windows at [`Embedder::rate`]: (windows, width) row-major. CLAP's
    /// windows longer than its input are cropped where `choices` says (rand_trunc).
    pub fn embed_audio(
        &self,
        windows: &[Vec<f32>],
        choices: &mut dyn CropChoices,
    ) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(windows.len() * self.width());
        for chunk in windows.chunks(BATCH) {
            let rows = match self {
                Embedder::Clap(c) => {
                    let refs: Vec<&[f32]> = chunk.iter().map(Vec::as_slice).collect();
                    let device = c.model.logit_scale_a.device();
                    let features =
                        c.feature_extractor
                            .extract(&refs, self.rate(), choices, device)?;
                    c.model
                        .get_audio_features(&features.input_features, &features.is_longer)?
                }
                Embedder::Encodec(e) => encodec_means(e, chunk)?,
            };
            out.extend(rows.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// CLAP text embeddings of captions, one at a time (no padding): (captions, width).
    pub fn embed_text(&self, captions: &[String]) -> Result<Vec<f32>> {
        let Embedder::Clap(c) = self else {
            return Err(RouteError::Usage(
                "caption embeddings need a CLAP model (--embedding clap-text)".into(),
            ));
        };
        let mut out = Vec::with_capacity(captions.len() * self.width());
        for caption in captions {
            let (ids, mask) = c.tokenizer.encode_batch(
                &[caption.as_str()],
                None,
                c.model.logit_scale_a.device(),
            )?;
            let row = c.model.get_text_features(&ids, Some(&mask))?;
            out.extend(row.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

/// EnCodec's mean frame features of equal-length windows, [B, hidden] (channels: the mono
/// window repeated for stereo models).
fn encodec_means(model: &EncodecModel, windows: &[Vec<f32>]) -> Result<Tensor> {
    let channels = model.config.audio_channels;
    let len = windows.iter().map(Vec::len).max().unwrap_or(0);
    let mut data = Vec::with_capacity(windows.len() * channels * len);
    for w in windows {
        for _ in 0..channels {
            data.extend_from_slice(w);
            data.extend(std::iter::repeat_n(0.0, len - w.len()));
        }
    }
    let audio = Tensor::from_vec(data, (windows.len(), channels, len), model.device())?;
    Ok(model.mean_embedding(&audio)?)
}
