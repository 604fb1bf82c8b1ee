//! genres-clap compiled into the binary, so that `--model genres-clap` works on any machine,
//! offline (written to the cache on first use, see [`brainrecon_nn::embedded`]).

use brainrecon_nn::embedded::EmbeddedModel;

use super::GENRES_CLAP;

macro_rules! model_file {
    ($path:literal) => {
        (
            $path,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../models/genres-clap/",
                $path
            )) as &[u8],
        )
    };
}

const FILES: [(&str, &[u8]); 5] = [
    model_file!("config.json"),
    model_file!("model.safetensors"),
    model_file!("preprocessor_config.json"),
    model_file!("tokenizer.json"),
    model_file!("tokenizer_config.json"),
];

/// genres-clap as an embedded model folder.
pub const GENRES_CLAP_MODEL: EmbeddedModel = EmbeddedModel {
    name: GENRES_CLAP,
    files: &FILES,
    marker: "config.json",
};

/// Files of the repository's folder that are not the model's: its training record and loss
/// chart (written by the zoo's training) and the model card.
pub const NOT_EMBEDDED: [&str; 3] = ["training.json", "loss.svg", "README.md"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_model_folder_is_embedded() {
        let repo =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/genres-clap");
        GENRES_CLAP_MODEL.assert_matches_folder(&repo, &NOT_EMBEDDED);
    }
}
