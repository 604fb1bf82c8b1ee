//! The video route: continuous fMRI (CC2017's layout, `video prepare`) → short clips.
//! `fit` decodes each fMRI window to the clip caption's text context (ridge, or the caption
//! word by word: `caption_words`), the clip's velocity (`motion`) and the first frame's latent
//! (ridge); `reconstruct` generates a clip per test
//! window with motion modules in the diffusion model's U-Net, guided against the mean window's
//! context, from initial noise moving at the decoded velocity; `evaluate` scores the
//! clips by MinD-Video's protocol (`breakdown`: per segment and position in it); `report` shows them side by side; `train_motion` trains
//! motion modules on synthetic clips for a frozen image model (shapes-ldm's ship with the
//! binary); `train_encoder` is MinD-Video's decoder in place of ridge (an fMRI window encoder
//! trained contrastively, then with the motion U-Net).

pub mod breakdown;
pub mod caption_words;
pub mod classifiers;
pub mod evaluate;
pub mod fit;
pub mod motion;
pub mod reconstruct;
pub mod report;
pub mod stimuli;
pub mod train_encoder;
pub mod train_motion;
