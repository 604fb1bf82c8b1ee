//! Schedulers against diffusers 0.42.1 (fixtures from tools/fixtures/diffusion_pipeline.py):
//! timesteps, sigmas, init_noise_sigma, scale_model_input, and whole sampling chains on given
//! model outputs with the noise diffusers drew; DDPM add_noise and get_velocity.

mod common;

use brainrecon_diffusion::scheduler::{NoiseSchedule, Scheduler, SchedulerConfig, SchedulerKind};
use brainrecon_nn::rng::QueuedNoise;
use common::{get, max_abs, max_abs_diff, read_json, tensors};

const TOL: f32 = 1e-4;

#[test]
fn sampling_chains_match_diffusers() {
    let cases = read_json("scheduler/cases.json");
    let t = tensors("scheduler/chains.safetensors");
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let config: SchedulerConfig = serde_json::from_value(case["config"].clone()).unwrap();
        let eta = case["eta"].as_f64().unwrap();
        let kind = match case["kind"].as_str().unwrap() {
            "ddim" => SchedulerKind::Ddim { eta },
            "euler" => SchedulerKind::Euler,
            "euler-a" => SchedulerKind::EulerAncestral,
            other => panic!("{other}"),
        };
        let steps = case["steps"].as_u64().unwrap() as usize;
        let mut s = Scheduler::new(kind, &config).unwrap();
        s.set_timesteps(steps).unwrap();
        let want_t: Vec<f64> = case["timesteps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (a, b) in s.timesteps().iter().zip(&want_t) {
            assert!(
                (a - b).abs() < 1e-3,
                "{name}: timesteps {:?} vs {want_t:?}",
                s.timesteps()
            );
        }
        assert_eq!(s.timesteps().len(), want_t.len(), "{name}");
        let sigma0 = case["init_noise_sigma"].as_f64().unwrap();
        assert!(
            (s.init_noise_sigma() - sigma0).abs() < 1e-5 * sigma0.max(1.0),
            "{name}: init_noise_sigma {} vs {sigma0}",
            s.init_noise_sigma()
        );
        if !s.sigmas().is_empty() {
            let want: Vec<f32> = get(&t, &format!("{name}.sigmas")).to_vec1().unwrap();
            for (a, b) in s.sigmas().iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.max(1.0),
                    "{name}: sigmas {:?} vs {want:?}",
                    s.sigmas()
                );
            }
        }
        let mut sample = get(&t, &format!("{name}.x_T"));
        let mut worst = 0f32;
        for i in 0..steps {
            let input = s.scale_model_input(&sample, i).unwrap();
            let e = max_abs_diff(&input, &get(&t, &format!("{name}.model_input_{i}")));
            assert!(e < TOL, "{name} step {i}: model input differs by {e}");
            let mut noise = Vec::new();
            for key in [
                format!("{name}.variance_noise_{i}"),
                format!("{name}.step_noise_{i}"),
            ] {
                if t.contains(&key) {
                    noise.push(get(&t, &key));
                }
            }
            let mut queue = QueuedNoise::new(noise);
            let out = s
                .step(
                    &get(&t, &format!("{name}.model_output_{i}")),
                    i,
                    &sample,
                    &mut queue,
                )
                .unwrap();
            assert_eq!(
                queue.remaining(),
                0,
                "{name} step {i}: noise draws differ from diffusers"
            );
            let want = get(&t, &format!("{name}.prev_sample_{i}"));
            let e = max_abs_diff(&out.prev_sample, &want) / max_abs(&want).max(1.0);
            let e0 = max_abs_diff(
                &out.pred_original_sample,
                &get(&t, &format!("{name}.pred_original_{i}")),
            ) / max_abs(&want).max(1.0);
            worst = worst.max(e).max(e0);
            assert!(e < TOL && e0 < TOL, "{name} step {i}: prev {e}, x0 {e0}");
            sample = out.prev_sample;
        }
        println!("{name}: max relative abs error {worst:.2e} over {steps} steps");
    }
}

#[test]
fn ddpm_add_noise_and_velocity_match_diffusers() {
    let cases = read_json("scheduler/cases.json");
    let config: SchedulerConfig = serde_json::from_value(cases["ddpm_config"].clone()).unwrap();
    let schedule = NoiseSchedule::new(&config).unwrap();
    let t = tensors("scheduler/chains.safetensors");
    let acp: Vec<f32> = get(&t, "ddpm.alphas_cumprod").to_vec1().unwrap();
    let worst = schedule
        .alphas_cumprod
        .iter()
        .zip(&acp)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-6, "alphas_cumprod differ by {worst}");
    let timesteps: Vec<usize> = get(&t, "ddpm.timesteps")
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect();
    assert_eq!(timesteps, vec![0, 250, 999, 500]);
    let (x0, noise) = (get(&t, "ddpm.original"), get(&t, "ddpm.noise"));
    let noisy = schedule.add_noise(&x0, &noise, &timesteps).unwrap();
    let e = max_abs_diff(&noisy, &get(&t, "ddpm.noisy"));
    assert!(e < TOL, "add_noise differs by {e}");
    let v = schedule.get_velocity(&x0, &noise, &timesteps).unwrap();
    let ev = max_abs_diff(&v, &get(&t, "ddpm.velocity"));
    assert!(ev < TOL, "get_velocity differs by {ev}");
    println!("add_noise {e:.2e}, get_velocity {ev:.2e}");
    // Wrong batch/timestep counts are errors, not broadcasts.
    assert!(schedule.add_noise(&x0, &noise, &timesteps[..2]).is_err());
    assert!(schedule.add_noise(&x0, &noise, &[0, 1, 2, 1000]).is_err());
}
