//! The project's own models, trained beside their architectures rather than inside them (as
//! candle keeps training in its examples): one module per shipped checkpoint, each with its
//! named config, its training data from the simulators, its training run and its quality
//! checks. The architectures and loaders stay in `brainrecon_diffusion`, `brainrecon_audio`
//! and `brainrecon_language`.
//!
//! - [`shapes_ldm`]: the small latent diffusion model of the synthetic scenes;
//! - [`genres_clap`]: the small CLAP of the music route;
//! - [`shapes_blip`]: the small captioner of the synthetic scenes;
//! - [`shapes_motion`]: the motion U-Net of the video route;
//! - [`word2vec_movie`]: the skip-gram vectors of the naturalistic route.
//!
//! [`resolve`] finds a shipped model's folder by name; [`chart`] draws the loss curves of the
//! training runs (and of the B2C route's).

#![warn(missing_docs)]

pub mod chart;
pub mod genres_clap;
pub mod registry;
pub mod shapes_blip;
pub mod shapes_ldm;
pub mod shapes_motion;
pub mod word2vec_movie;

pub use registry::{resolve, resolve_kind, Kind, MODELS};

use serde::{Deserialize, Serialize};

/// The size a training command trains: the shipped checkpoint's, or the tests' tiny one, which
/// runs the whole pipeline (data, checkpoints, resume, outputs, quality scores) in seconds but
/// whose weights are of no use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The shipped checkpoint's size and settings.
    #[default]
    Shipped,
    /// The tests' tiny model: the whole pipeline in seconds, useless weights.
    Tiny,
}

impl Preset {
    /// Every preset, in the order `--help` lists them.
    pub const ALL: [Preset; 2] = [Preset::Shipped, Preset::Tiny];

    /// The name `--preset` takes (and the records write).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Shipped => "shipped",
            Preset::Tiny => "tiny",
        }
    }

    /// The preset named `name` (as [`Preset::name`] writes it).
    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this is [`Preset::Shipped`] (the records leave the preset out then).
    pub fn is_shipped(&self) -> bool {
        *self == Preset::Shipped
    }

    /// The flag that selects this size on a command line, with its leading space ("" for the
    /// shipped size, the default).
    pub fn flag(self) -> String {
        match self {
            Preset::Shipped => String::new(),
            _ => format!(" --preset {}", self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_presets_name_is_the_one_its_records_write() {
        for preset in Preset::ALL {
            assert_eq!(serde_json::to_value(preset).unwrap(), preset.name());
            assert_eq!(Preset::from_name(preset.name()), Some(preset));
        }
        assert_eq!(Preset::from_name("huge"), None);
    }

    #[test]
    fn a_config_no_run_can_train_is_refused_naming_the_flag() {
        let message = |e: brainrecon_nn::ModelError| e.to_string();
        let mut ldm = shapes_ldm::PriorConfig::tiny();
        assert!(ldm.check().is_ok());
        ldm.vae_steps = 0;
        let e = message(ldm.check().unwrap_err());
        assert_eq!(e, "--steps and --vae-steps must be at least 1");
        let mut blip = shapes_blip::CaptionerConfig::tiny(4);
        assert!(blip.check().is_ok());
        blip.token_shrinkage = 1.5;
        let e = message(blip.check().unwrap_err());
        assert_eq!(e, "--token-shrinkage must be between 0 and 1, got 1.5");
        let mut clap = genres_clap::GenresClapConfig::tiny(4);
        assert!(clap.check().is_ok());
        clap.batch = 9;
        let e = message(clap.check().unwrap_err());
        assert_eq!(
            e,
            "--batch must be between 2 and the 8 training clips, got 9"
        );
        let mut motion = shapes_motion::MotionTrainConfig::default();
        assert!(motion.check().is_ok());
        motion.timestep_shift = 0.0;
        let e = message(motion.check().unwrap_err());
        assert_eq!(e, "--timestep-shift must be positive, found 0");
    }

    #[test]
    fn a_tiny_run_records_its_preset_and_a_shipped_one_keeps_its_records() {
        let out = Path::new("m");
        let blip = shapes_blip::CaptionerConfig::preset(Preset::Tiny);
        assert!(blip.command(out, 0).contains(" --preset tiny "));
        // The tiny preset's own settings are not repeated as flags.
        assert!(!blip.command(out, 0).contains("--lr"));
        let shipped = shapes_blip::CaptionerConfig::shapes_blip();
        assert!(!shipped.command(out, 0).contains("--preset"));
        assert!(serde_json::to_value(&shipped)
            .unwrap()
            .get("preset")
            .is_none());
        assert_eq!(
            serde_json::to_value(&blip).unwrap()["preset"],
            serde_json::json!("tiny")
        );

        let clap = genres_clap::GenresClapConfig::preset(Preset::Tiny);
        assert!(genres_clap::train::command(out, &clap, 0).contains(" --preset tiny "));
        let shipped = genres_clap::GenresClapConfig::genres_clap();
        assert!(!genres_clap::train::command(out, &shipped, 0).contains("--preset"));
        // Records written before presets existed still read, as the shipped size.
        let mut old = serde_json::to_value(&shipped).unwrap();
        old.as_object_mut().unwrap().remove("preset");
        let read: genres_clap::GenresClapConfig = serde_json::from_value(old).unwrap();
        assert_eq!(read, shipped);

        assert_eq!(
            shapes_ldm::PriorConfig::preset(Preset::Tiny).preset,
            Preset::Tiny
        );
        assert!(shapes_ldm::PriorConfig::shapes_ldm().preset.is_shipped());
    }
}
