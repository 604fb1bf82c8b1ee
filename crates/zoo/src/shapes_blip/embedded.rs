//! shapes-blip, the project's own small captioner, compiled into the binary so that
//! `--blip shapes-blip` works on any machine, offline (written to the cache on first use).

use brainrecon_nn::embedded::EmbeddedModel;

/// The name `--blip` accepts for the embedded captioner.
pub const SHAPES_BLIP: &str = "shapes-blip";

macro_rules! model_file {
    ($path:literal) => {
        (
            $path,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../models/shapes-blip/",
                $path
            )) as &[u8],
        )
    };
}

const FILES: [(&str, &[u8]); 4] = [
    model_file!("config.json"),
    model_file!("model.safetensors"),
    model_file!("vocab.txt"),
    model_file!("tokenizer_config.json"),
];

/// shapes-blip as an embedded model folder.
pub const SHAPES_BLIP_MODEL: EmbeddedModel = EmbeddedModel {
    name: SHAPES_BLIP,
    files: &FILES,
    marker: "config.json",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_model_folder_is_embedded() {
        let repo =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/shapes-blip");
        SHAPES_BLIP_MODEL.assert_matches_folder(&repo, &["training.json"]);
    }
}
