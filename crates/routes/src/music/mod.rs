//! Music from brain activity (Brain2Music: Denk, Takagi et al. 2023) on ds003720's layout:
//! music embeddings of 10-s windows of the heard clips (CLAP for MuLan, EnCodec for
//! SoundStream), decoded from the mean fMRI of the scans inside each window by one ridge model
//! per cortical ROI with the best ROIs' predictions averaged, scored by identification
//! accuracy, then used to retrieve music from a library or to choose the caption MusicGen
//! generates from.

pub mod decode;
pub mod embed;
pub mod fit;
pub mod generate;
mod inputs;
pub mod page;
pub mod retrieve;
pub mod windows;

pub use embed::{Embedder, EmbeddingKind};
pub use fit::{fit_music, MusicFitOptions, MusicFitSummary};
pub use retrieve::{retrieve, RetrievalSummary, RetrieveOptions};
pub use windows::WindowSpec;

/// `music fit`'s default ridge penalties: 10^0 … 10^6 in half decades.
pub fn default_alphas() -> Vec<f64> {
    (0..=12).map(|e| 10f64.powf(e as f64 * 0.5)).collect()
}

impl MusicFitSummary {
    /// The summary as `music fit` prints it; `out` is its folder.
    pub fn text(&self, out: &std::path::Path) -> String {
        let summary = self;
        let kept: Vec<&str> = summary
            .rois
            .iter()
            .filter(|r| r.kept)
            .map(|r| r.name.as_str())
            .collect();
        format!(
            "decoded {} ({} values) from {} ROIs, kept {}: identification {:.3} over {} test windows, {:.3} over {} test clips (chance 0.5)\n  written to {}\n",
            summary.embedding.name(),
            summary.width,
            summary.rois.len(),
            kept.join(", "),
            summary.identification_windows,
            summary.test_windows,
            summary.identification_clips,
            summary.test_clips.len(),
            out.display()
        )
    }
}

/// A share in percent with one decimal, or n/a.
fn percent(v: Option<f64>) -> String {
    v.map_or("n/a".to_string(), |v| format!("{:.1}%", 100.0 * v))
}

impl RetrievalSummary {
    /// The summary as `music retrieve` prints it.
    pub fn text(&self) -> String {
        let summary = self;
        format!(
            "retrieved from {} library files ({} embedded now, {} skipped): top-1 genre accuracy {} (chance {})\n  page: {}\n  playlist: {}\n",
            summary.library_files,
            summary.embedded_now,
            summary.skipped.len(),
            percent(summary.top1_genre_accuracy),
            percent(summary.genre_chance),
            summary.page.display(),
            summary.playlist.display()
        )
    }
}

impl generate::GenerationSummary {
    /// The summary as `music generate` prints it; `out` is its folder.
    pub fn text(&self, out: &std::path::Path) -> String {
        let summary = self;
        let decoding = if summary.top_k == 0 {
            "greedy".to_string()
        } else {
            format!("top-k {}", summary.top_k)
        };
        format!(
            "generated {} clips of {:.2} s ({} Hz, guidance {}, {decoding}) from {} captions: chosen caption's genre = heard genre {} (chance {})\n  written to {}\n",
            summary.clips.len(),
            summary.seconds,
            summary.sample_rate,
            summary.guidance,
            summary.bank_size,
            percent(summary.caption_genre_accuracy),
            percent(summary.genre_chance),
            out.join("generated").display()
        )
    }
}
