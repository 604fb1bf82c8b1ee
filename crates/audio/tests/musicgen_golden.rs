//! Golden tests of MusicGen (text encoder states, decoder logits, greedy generation with and
//! without classifier-free guidance) against transformers 5.23's
//! `MusicgenForConditionalGeneration` on a tiny random checkpoint (fixtures from
//! `tools/fixtures/musicgen.py`; see the README there), and checks of what transformers' random
//! stream cannot pin down: the key/value cache, seeded sampling and top-k.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use brainrecon_audio::musicgen::{
    generation::guided_scores, EncoderOutput, GenerationSettings, MusicgenForConditionalGeneration,
};
use brainrecon_testkit::tensor::assert_close_scaled;
use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// max |got − want| ≤ TOL · max |want| for states and logits.
const TOL: f32 = 2e-5;
const K: usize = 4;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/musicgen")
}

fn expected() -> &'static HashMap<String, Tensor> {
    static E: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    E.get_or_init(|| {
        candle_core::safetensors::load(fixtures().join("expected.safetensors"), &Device::Cpu)
            .unwrap()
    })
}

fn model() -> &'static MusicgenForConditionalGeneration {
    static M: OnceLock<MusicgenForConditionalGeneration> = OnceLock::new();
    M.get_or_init(|| {
        MusicgenForConditionalGeneration::load_dir(&fixtures().join("model"), &Device::Cpu).unwrap()
    })
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Checks and returns the max abs error.
fn assert_close(what: &str, got: &Tensor, want: &Tensor) -> f32 {
    assert_close_scaled(what, got, want, TOL, 0.1)
}

fn text() -> (&'static Tensor, &'static Tensor) {
    let e = expected();
    (&e["text.input_ids"], &e["text.attention_mask"])
}

fn encoder() -> EncoderOutput {
    let (ids, mask) = text();
    model().encode_text(ids, Some(mask)).unwrap()
}

/// transformers' [B·K, L] codes as [B, K, L].
fn by_codebook(t: &Tensor) -> Tensor {
    let (bk, l) = t.dims2().unwrap();
    t.reshape((bk / K, K, l)).unwrap()
}

#[test]
fn text_states_match_transformers() {
    let states = encoder();
    assert_close(
        "projected text states",
        &states.hidden_states,
        &expected()["text.encoder_hidden_states"],
    );
}

#[test]
fn teacher_forced_logits_match_transformers() {
    let (ids, mask) = text();
    let e = expected();
    let codes = by_codebook(&e["logits.decoder_input_ids"]);
    let logits = model().forward(ids, Some(mask), &codes).unwrap();
    let want = &e["logits.logits"];
    let (bk, l, v) = want.dims3().unwrap();
    assert_close(
        "decoder logits",
        &logits,
        &want.reshape((bk / K, K, l, v)).unwrap(),
    );
}

#[test]
fn cached_decoding_gives_the_uncached_logits() {
    let e = expected();
    let codes = by_codebook(&e["logits.decoder_input_ids"]);
    let enc = encoder();
    let decoder = &model().decoder;
    let all = decoder.forward_all(&codes, &enc).unwrap();
    // one step at a time, then in uneven chunks
    for chunks in [vec![1; 12], vec![5, 1, 6]] {
        let mut cache = decoder.start(&enc).unwrap();
        let mut parts = Vec::new();
        let mut at = 0;
        for n in chunks {
            let part = codes.narrow(2, at, n).unwrap();
            parts.push(decoder.forward(&part, &mut cache).unwrap());
            at += n;
        }
        assert_eq!(cache.len(), 12);
        let cached = Tensor::cat(&parts, 2).unwrap();
        let diff = max_abs(&(&cached - &all).unwrap());
        eprintln!("cached vs uncached logits: max |diff| {diff:e}");
        assert!(diff < 1e-5 * max_abs(&all), "{diff}");
    }
}

/// The guided scores of every step along `sequences` [B][K][T] (the reference's), computed with
/// the cache: [T − 1][B·K][V].
fn scores_along(sequences: &[Vec<Vec<u32>>], guidance: f32) -> Vec<Vec<Vec<f32>>> {
    let m = model();
    let enc = encoder();
    let guided = guidance > 1.0;
    let conditioning = if guided {
        enc.with_unconditional().unwrap()
    } else {
        enc
    };
    let b = sequences.len();
    let steps = sequences[0][0].len() - 1;
    let mut cache = m.decoder.start(&conditioning).unwrap();
    let mut out = Vec::new();
    for t in 0..steps {
        let column: Vec<u32> = sequences
            .iter()
            .flat_map(|item| item.iter().map(move |row| row[t]))
            .collect();
        let x = Tensor::from_vec(column, (b, K, 1), &Device::Cpu).unwrap();
        let x = if guided {
            Tensor::cat(&[&x, &x], 0).unwrap()
        } else {
            x
        };
        let logits: Vec<Vec<Vec<f32>>> = m
            .decoder
            .forward(&x, &mut cache)
            .unwrap()
            .squeeze(2)
            .unwrap()
            .to_vec3()
            .unwrap();
        let mut step = Vec::new();
        for (i, cond) in logits[..b].iter().enumerate() {
            for (k, row) in cond.iter().enumerate() {
                step.push(if guided {
                    guided_scores(row, &logits[b + i][k], guidance)
                } else {
                    row.clone()
                });
            }
        }
        out.push(step);
    }
    out
}

fn greedy_case(guidance: u32) {
    let e = expected();
    let n = e["greedy.max_new_tokens"].to_vec1::<i64>().unwrap()[0] as usize;
    let want_codes = e[&format!("greedy.gs{guidance}.codes")]
        .to_dtype(DType::U32)
        .unwrap();
    let (ids, mask) = text();
    let settings = GenerationSettings::greedy(n, guidance as f32);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let got = model()
        .generate(ids, Some(mask), &settings, &mut rng)
        .unwrap();
    assert_eq!(got.codes.dims(), want_codes.dims());
    assert_eq!(got.codes.dims()[2], n + 1 - K);
    let got_codes: Vec<Vec<Vec<u32>>> = got.codes.to_vec3().unwrap();
    let want: Vec<Vec<Vec<u32>>> = want_codes.to_vec3().unwrap();
    assert_eq!(got_codes, want, "greedy codes, guidance {guidance}");

    // the scores of every step, against transformers' processed scores
    let scores = scores_along(&got.sequences, guidance as f32);
    let want_scores: Vec<Vec<Vec<f32>>> =
        e[&format!("greedy.gs{guidance}.scores")].to_vec3().unwrap();
    let (mut diff, mut scale, mut margin) = (0f32, 0f32, f32::INFINITY);
    for (t, (got_t, want_t)) in scores.iter().zip(&want_scores).enumerate() {
        for (row, (g, w)) in got_t.iter().zip(want_t).enumerate() {
            for (a, b) in g.iter().zip(w) {
                diff = diff.max((a - b).abs());
                scale = scale.max(b.abs());
            }
            // the margin of the argmax where the code is kept (not forced to the pad)
            if !got.pattern.forced[row % K][t + 1] {
                let mut sorted = w.clone();
                sorted.sort_by(|a, b| b.total_cmp(a));
                margin = margin.min(sorted[0] - sorted[1]);
            }
        }
    }
    eprintln!(
        "greedy guidance {guidance}: scores max |diff| {diff:e} (max |want| {scale:.2}), \
         smallest kept argmax margin {margin:.4}"
    );
    assert!(diff <= 4.0 * TOL * scale, "scores: {diff}");
}

#[test]
fn greedy_generation_without_guidance_is_token_identical() {
    greedy_case(1);
}

#[test]
fn greedy_generation_with_guidance_is_token_identical() {
    greedy_case(3);
}

#[test]
fn guidance_changes_the_codes() {
    let e = expected();
    let a: Vec<i64> = e["greedy.gs1.codes"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<i64> = e["greedy.gs3.codes"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_ne!(a, b);
}

fn sampled(seed: u64, top_k: usize) -> brainrecon_audio::musicgen::GeneratedCodes {
    let (ids, mask) = text();
    let settings = GenerationSettings::top_k(20, 3.0, top_k);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    model()
        .generate(ids, Some(mask), &settings, &mut rng)
        .unwrap()
}

#[test]
fn sampling_is_deterministic_per_seed() {
    let a: Vec<Vec<Vec<u32>>> = sampled(5, 8).codes.to_vec3().unwrap();
    let b: Vec<Vec<Vec<u32>>> = sampled(5, 8).codes.to_vec3().unwrap();
    let c: Vec<Vec<Vec<u32>>> = sampled(6, 8).codes.to_vec3().unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn top_k_never_draws_outside_the_k_best() {
    let k_best = 3;
    let out = sampled(11, k_best);
    // the guided scores recomputed without the cache, from the whole prefix at each step
    let enc = encoder().with_unconditional().unwrap();
    let b = out.sequences.len();
    let len = out.sequences[0][0].len();
    let flat: Vec<u32> = out.sequences.iter().flatten().flatten().copied().collect();
    let seqs = Tensor::from_vec(flat, (b, K, len), &Device::Cpu).unwrap();
    let mut off_argmax = 0;
    let mut kept = 0;
    for t in 1..len {
        let prefix = seqs.narrow(2, 0, t).unwrap();
        let both = Tensor::cat(&[&prefix, &prefix], 0).unwrap();
        let logits = model().decoder.forward_all(&both, &enc).unwrap();
        let last: Vec<Vec<Vec<f32>>> = logits
            .narrow(2, t - 1, 1)
            .unwrap()
            .squeeze(2)
            .unwrap()
            .to_vec3()
            .unwrap();
        for (i, cond) in last[..b].iter().enumerate() {
            for (k, row) in cond.iter().enumerate() {
                if out.pattern.forced[k][t] {
                    continue;
                }
                let s = guided_scores(row, &last[b + i][k], 3.0);
                let code = out.sequences[i][k][t] as usize;
                // rank: how many scores are strictly higher
                let higher = s.iter().filter(|&&x| x > s[code]).count();
                assert!(
                    higher < k_best,
                    "step {t}, item {i}, codebook {k}: code {code} has {higher} better scores"
                );
                kept += 1;
                if higher > 0 {
                    off_argmax += 1;
                }
            }
        }
    }
    eprintln!("top-{k_best}: {kept} codes drawn, {off_argmax} not the argmax");
    assert!(off_argmax > 0, "sampling never left the argmax");
}

#[test]
fn past_max_position_embeddings_is_a_clear_error() {
    let (ids, mask) = text();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let settings = GenerationSettings::greedy(41, 1.0);
    let err = model()
        .generate(ids, Some(mask), &settings, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_position_embeddings 40"), "{err}");
    // the decoder itself refuses steps past its table
    let enc = encoder();
    let codes = Tensor::zeros((2, K, 41), DType::U32, &Device::Cpu).unwrap();
    let err = model()
        .decoder
        .forward_all(&codes, &enc)
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_position_embeddings 40"), "{err}");
    // too few steps for the delay pattern
    let settings = GenerationSettings::greedy(5, 1.0);
    let err = model()
        .generate(ids, Some(mask), &settings, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(err.contains("delay pattern"), "{err}");
}

#[test]
fn bad_codes_are_refused() {
    let enc = encoder();
    let d = &model().decoder;
    let big = Tensor::full(65u32, (2, K, 3), &Device::Cpu).unwrap();
    let err = d.forward_all(&big, &enc).unwrap_err().to_string();
    assert!(err.contains("code 65"), "{err}");
    let wrong = Tensor::zeros((2, 3, 3), DType::U32, &Device::Cpu).unwrap();
    let err = d.forward_all(&wrong, &enc).unwrap_err().to_string();
    assert!(err.contains("expected [2, 4"), "{err}");
}

#[test]
fn a_missing_tensor_names_the_file_and_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("model");
    for f in ["config.json", "generation_config.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let mut tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    tensors.remove("decoder.model.decoder.layers.1.encoder_attn.v_proj.weight");
    brainrecon_testkit::tensor::save_safetensors(&tensors, dir.path().join("model.safetensors"));
    let err = MusicgenForConditionalGeneration::load_dir(dir.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("decoder.model.decoder.layers.1.encoder_attn.v_proj.weight"),
        "{err}"
    );
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn loads_from_the_hugging_face_cache() {
    let hub = tempfile::tempdir().unwrap();
    let repo = hub.path().join("models--tiny--musicgen");
    let snapshot = repo.join("snapshots").join("abc123");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
    for f in ["config.json", "generation_config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join("model").join(f), snapshot.join(f)).unwrap();
    }
    std::env::set_var("HF_HUB_CACHE", hub.path());
    let m = MusicgenForConditionalGeneration::load("tiny/musicgen", &Device::Cpu).unwrap();
    assert_eq!(m.generation.decoder_start_token_id, 64);
    assert_eq!(m.generation.guidance_scale, 3.0);
    assert_eq!(m.weight_files().len(), 1);
    let err = MusicgenForConditionalGeneration::load("tiny/absent", &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not download"), "{err}");
    std::env::remove_var("HF_HUB_CACHE");
}

/// `generate`'s default output: the checkpoint's EnCodec (`audio_encoder.*`) decoding the greedy
/// codes, against transformers' `audio_values`.
#[test]
fn generated_audio_matches_transformers() {
    let e = expected();
    let n = e["greedy.max_new_tokens"].to_vec1::<i64>().unwrap()[0] as usize;
    let (ids, mask) = text();
    let codec = model().load_audio_codec(&Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let audio = model()
        .generate_audio(
            &codec,
            ids,
            Some(mask),
            &GenerationSettings::greedy(n, 3.0),
            &mut rng,
        )
        .unwrap();
    let want = &e["audio.gs3.values"];
    let diff = max_abs(&(&audio - want).unwrap());
    let scale = max_abs(want);
    eprintln!("generated audio: max |diff| {diff:e} (max |want| {scale:.3})");
    assert_eq!(audio.dims(), want.dims());
    assert!(scale > 0.05 && diff <= TOL * scale, "audio: {diff}");
}
