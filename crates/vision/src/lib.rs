//! The image networks of the reconstruction metrics, as torchvision defines them and reads
//! their weights (parameter names included), for inference: AlexNet (`features.4`,
//! `features.11`), InceptionV3 (`avgpool`, with `transform_input`), EfficientNet-B1 (`avgpool`)
//! and ResNet-50 (`avgpool`, the SwAV network). Built on `brainrecon-nn`; checked against
//! torchvision by `tests/golden.rs` on the deterministic weights of [`deterministic`].
//!
//! The classifiers of MinD-Video's video evaluation, as transformers defines them (checkpoint
//! names, `config.json`, the Pillow image processors): [`vit::ViTForImageClassification`]
//! (frames) and [`videomae::VideoMAEForVideoClassification`] (clips), checked against
//! transformers by `tests/vit_videomae_golden.rs`.

#![warn(missing_docs)]

pub mod alexnet;
pub mod deterministic;
pub mod efficientnet;
pub mod inception;
pub mod ops;
pub mod preprocess;
pub mod resnet;
pub mod videomae;
pub mod vit;

pub use alexnet::{AlexNet, AlexNetFeatures};
pub use efficientnet::EfficientNetB1;
pub use inception::InceptionV3;
pub use resnet::ResNet50;
pub use videomae::{VideoMAEConfig, VideoMAEForVideoClassification};
pub use vit::{ViTConfig, ViTForImageClassification};
