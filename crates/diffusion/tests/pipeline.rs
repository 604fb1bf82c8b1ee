//! The whole pipeline against diffusers 0.42.1 on tiny-sd (fixtures from
//! tools/fixtures/diffusion_pipeline.py), replaying the noise diffusers drew:
//! 5-step DDIM img2img at strength 0.8 with guidance 5 and a negative prompt; a one-step
//! Euler-ancestral txt2img (trailing spacing, guidance 0, sd-turbo style) from a given x_T;
//! a 4-step DDIM txt2img with guidance 7.5 from a given x_T; and the pieces (text contexts,
//! VAE posterior, decoding).

mod common;

use brainrecon_diffusion::pipeline::{
    image_from_rgb8, Posterior, Progress, SampleOptions, StableDiffusion,
};
use brainrecon_diffusion::scheduler::{SchedulerKind, TimestepSpacing};
use brainrecon_nn::rng::{PerRowNoise, QueuedNoise, SeededNoise};
use candle_core::{DType, Device};
use common::{fixtures, get, max_abs, max_abs_diff, read_json, tensors};

const TOL: f32 = 1e-4;

fn load() -> StableDiffusion {
    StableDiffusion::load(
        fixtures().join("tiny-sd").to_str().unwrap(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap()
}

fn report(name: &str, got: &candle_core::Tensor, want: &candle_core::Tensor, tol: f32) {
    let e = max_abs_diff(got, want);
    println!(
        "{name}: max abs error {e:.2e} (values up to {:.3})",
        max_abs(want)
    );
    assert!(e < tol, "{name}: max abs error {e}");
    assert!(max_abs(want) > 1e-2, "{name}: reference is near zero");
}

#[test]
fn img2img_matches_diffusers() {
    let sd = load();
    let t = tensors("pipeline/pipeline.safetensors");
    let case = &read_json("pipeline/cases.json")["img2img"];
    assert_eq!(sd.default_scheduler(), SchedulerKind::Ddim { eta: 0.0 });
    assert_eq!(sd.vae_scale_factor(), 2);

    let png = brainrecon_formats::image::read_png(&fixtures().join("pipeline/init.png")).unwrap();
    let pixels = image_from_rgb8(png.height, png.width, &png.pixels, &Device::Cpu).unwrap();
    assert_eq!(max_abs_diff(&pixels, &get(&t, "vae.pixels")), 0.0);

    let prompt = case["prompt"].as_str().unwrap();
    let negative = case["negative_prompt"].as_str().unwrap();
    let guidance = case["guidance"].as_f64().unwrap();
    let context = sd
        .encode_prompts(&[prompt], Some(&[negative]), guidance)
        .unwrap();
    report(
        "prompt_embeds",
        &context.cond,
        &get(&t, "img2img.prompt_embeds"),
        TOL,
    );
    report(
        "negative_prompt_embeds",
        context.uncond.as_ref().unwrap(),
        &get(&t, "img2img.negative_prompt_embeds"),
        TOL,
    );

    // encode_image (posterior mean) and decode_latent.
    let mean = sd
        .encode_image(&pixels, Posterior::Mean, &mut QueuedNoise::default())
        .unwrap();
    let want_mean = (get(&t, "vae.mean") * 0.18215).unwrap();
    report("encode_image mean", &mean, &want_mean, TOL);
    let decoded = sd.decode_latent(&mean).unwrap();
    let want = ((get(&t, "vae.decoded_mean") / 2.0).unwrap() + 0.5)
        .unwrap()
        .clamp(0f32, 1f32)
        .unwrap();
    report("decode_latent", &decoded, &want, TOL);

    // img2img with the posterior sample and add_noise noise diffusers drew, in that order.
    let mut noise =
        QueuedNoise::new([get(&t, "img2img.posterior_noise"), get(&t, "img2img.noise")]);
    let init = sd
        .encode_image(&pixels, Posterior::Sample, &mut noise)
        .unwrap();
    let options = SampleOptions {
        steps: case["steps"].as_u64().unwrap() as usize,
        guidance,
        scheduler: SchedulerKind::Ddim { eta: 0.0 },
    };
    let mut seen = Vec::new();
    let latents = sd
        .img2img(
            &init,
            &context,
            case["strength"].as_f64().unwrap(),
            &options,
            &mut noise,
            &mut |p: Progress| seen.push((p.step, p.total, p.timestep)),
        )
        .unwrap();
    assert_eq!(noise.remaining(), 0);
    // 5 steps at strength 0.8: 4 steps from timestep 601 (SD1 leading spacing, offset 1).
    assert_eq!(
        seen,
        vec![(1, 4, 601.0), (2, 4, 401.0), (3, 4, 201.0), (4, 4, 1.0)]
    );
    report(
        "img2img latents",
        &latents,
        &get(&t, "img2img.latents_3"),
        TOL,
    );
    let image = sd.decode_latent(&latents).unwrap().squeeze(0).unwrap();
    report("img2img image", &image, &get(&t, "img2img.image"), TOL);
}

#[test]
fn turbo_style_euler_ancestral_one_step_matches_diffusers() {
    let mut sd = load();
    sd.scheduler_config.timestep_spacing = Some(TimestepSpacing::Trailing);
    let t = tensors("pipeline/pipeline.safetensors");
    let case = &read_json("pipeline/cases.json")["turbo"];
    let context = sd
        .encode_prompts(&[case["prompt"].as_str().unwrap()], None, 0.0)
        .unwrap();
    assert!(context.uncond.is_none());
    let options = SampleOptions {
        steps: 1,
        guidance: 0.0,
        scheduler: SchedulerKind::EulerAncestral,
    };
    let mut noise = QueuedNoise::new([get(&t, "turbo.step_noise")]);
    let latents = sd
        .generate_from_latent(
            &get(&t, "turbo.x_T"),
            &context,
            &options,
            &mut noise,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(noise.remaining(), 0);
    report("turbo latents", &latents, &get(&t, "turbo.latents"), TOL);
    let image = sd.decode_latent(&latents).unwrap().squeeze(0).unwrap();
    report("turbo image", &image, &get(&t, "turbo.image"), TOL);
}

#[test]
fn ddim_txt2img_with_guidance_from_given_x_t_matches_diffusers() {
    let sd = load();
    let t = tensors("pipeline/pipeline.safetensors");
    let case = &read_json("pipeline/cases.json")["ddim_t2i"];
    let guidance = case["guidance"].as_f64().unwrap();
    let context = sd
        .encode_prompts(&[case["prompt"].as_str().unwrap()], None, guidance)
        .unwrap();
    let options = SampleOptions {
        steps: 4,
        guidance,
        scheduler: SchedulerKind::Ddim { eta: 0.0 },
    };
    let mut noise = QueuedNoise::default();
    let latents = sd
        .generate_from_latent(
            &get(&t, "turbo.x_T"),
            &context,
            &options,
            &mut noise,
            &mut |_| {},
        )
        .unwrap();
    report(
        "ddim txt2img latents",
        &latents,
        &get(&t, "ddim_t2i.latents"),
        TOL,
    );
}

#[test]
fn seeded_txt2img_is_reproducible() {
    let sd = load();
    let context = sd.encode_prompts(&["a cat"], None, 3.0).unwrap();
    let options = SampleOptions {
        steps: 2,
        guidance: 3.0,
        scheduler: SchedulerKind::EulerAncestral,
    };
    let run = |seed| {
        sd.txt2img(
            &context,
            32,
            32,
            &options,
            &mut SeededNoise::new(seed),
            &mut |_| {},
        )
        .unwrap()
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    assert!(max_abs_diff(&a, &c) > 1e-2);
    assert_eq!(a.dims(), &[1, 4, 16, 16]);
    assert!(sd
        .txt2img(
            &context,
            30,
            32,
            &options,
            &mut SeededNoise::new(1),
            &mut |_| {}
        )
        .is_err());
}

/// Samples batched with one noise stream per row give what each sample gives alone: img2img
/// from a posterior sample (noise at encoding, at noising and in every ancestral step).
#[test]
fn a_batch_of_samples_gives_each_sample_alone() {
    let sd = load();
    let context = sd
        .encode_prompts(&["a red square"], Some(&["blur"]), 3.0)
        .unwrap();
    let png = brainrecon_formats::image::read_png(&fixtures().join("pipeline/init.png")).unwrap();
    let pixels = image_from_rgb8(png.height, png.width, &png.pixels, &Device::Cpu).unwrap();
    let options = SampleOptions {
        steps: 4,
        guidance: 3.0,
        scheduler: SchedulerKind::EulerAncestral,
    };
    let seeds = [11u64, 12, 13];
    let mut noise = PerRowNoise::new(seeds.iter().map(|&s| SeededNoise::new(s)).collect());
    let init = sd
        .encode_image_rows(&pixels, 3, Posterior::Sample, &mut noise)
        .unwrap();
    let batch = sd
        .img2img(
            &init,
            &context.repeat_rows(3).unwrap(),
            0.75,
            &options,
            &mut noise,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(batch.dims()[0], 3);
    for (row, &seed) in seeds.iter().enumerate() {
        let mut alone = SeededNoise::new(seed);
        let init = sd
            .encode_image(&pixels, Posterior::Sample, &mut alone)
            .unwrap();
        let single = sd
            .img2img(&init, &context, 0.75, &options, &mut alone, &mut |_| {})
            .unwrap();
        let e = max_abs_diff(&batch.narrow(0, row, 1).unwrap(), &single);
        println!("sample {row}: batched vs alone, max abs difference {e:.2e}");
        assert!(e < 1e-4, "sample {row}: {e}");
    }
    let rows = |r: usize| batch.narrow(0, r, 1).unwrap();
    assert!(max_abs_diff(&rows(0), &rows(1)) > 1e-2, "rows differ");
}

#[test]
fn f16_pipeline_stays_close_to_f32() {
    let sd32 = load();
    let sd16 = StableDiffusion::load(
        fixtures().join("tiny-sd").to_str().unwrap(),
        DType::F16,
        &Device::Cpu,
    )
    .unwrap();
    let t = tensors("pipeline/pipeline.safetensors");
    let options = SampleOptions {
        steps: 4,
        guidance: 7.5,
        scheduler: SchedulerKind::Ddim { eta: 0.0 },
    };
    let run = |sd: &StableDiffusion| {
        let context = sd
            .encode_prompts(&["two dogs playing in the snow"], None, 7.5)
            .unwrap();
        sd.generate_from_latent(
            &get(&t, "turbo.x_T"),
            &context,
            &options,
            &mut QueuedNoise::default(),
            &mut |_| {},
        )
        .unwrap()
    };
    let (a, b) = (run(&sd32), run(&sd16));
    // Half precision keeps about 3 significant digits through 4 guided steps.
    let e = max_abs_diff(&a, &b) / max_abs(&a);
    println!("f16 vs f32 latents: max abs difference {e:.2e} relative to the largest value");
    assert!(e < 2e-2, "{e}");
}
