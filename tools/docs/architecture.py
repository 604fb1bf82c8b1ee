"""docs/architecture.md and docs/architecture.svg from the Cargo.toml files (cargo metadata)."""
# Run from anywhere: python3 tools/docs/architecture.py (needs cargo; reads no network).
import os
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DESCRIPTIONS = {
'core': "the ground crate: `DataError` (the user-data error, exit 2), atomic writes and `OutputDir` (the one protocol for output folders: create, resume when the settings match, stage in `<out>.partial`, commit), geometry (3×3 and affine inverses under one singularity rule), statistics (median, quantiles, Pearson, z-scores), signal (GLMsingle's polynomial drift terms; per-voxel detrending and z-scoring of a run, signal/detrend.rs), limits on sizes read from files, progress bars, whether the CPU build hands a `--device cuda` command to the GPU build (launch.rs); no numerical or model crate",
'glm': "single-trial GLMs as GLMsingle fits them: its canonical HRF and library of 20 HRFs, pchip (scipy's PchipInterpolator), designs from event onsets, the shared least squares (engine.rs: sparse trial regressors, nuisance projection), TYPEA/TYPEB (fit.rs), the tail threshold (tail.rs), GLMdenoise (denoise.rs), cross-validation (xval.rs), fracridge (fracridge.rs), all four in order (glmsingle.rs), the stages a fit resumes from (stages.rs); no candle, no data crate",
'cortex': "maps on the cortex: the embedded fsaverage5 and a subject's FreeSurfer folder (template.rs), a volume's voxels on the surfaces (place.rs: nilearn's depth sampling, a simulation's stretch, CIFTI grayordinates, sphere.reg to fsaverage5), PNG pictures with the project's own rasteriser and font (render.rs, font.rs, colour.rs), the self-contained viewer page (page.rs), .func.gii/.dscalar.nii (write.rs), and the folder a report writes (report.rs); no candle, no data crate",
'align': "functional alignment across subjects (faer): scaled orthogonal Procrustes and ridge alignment as fmralign computes them (procrustes.rs, ridge_align.rs), BrainIAK's SRM and DetSRM with its seeded start (srm.rs, mt19937.rs), the shared space by multi-subject reduced-rank ridge (shared_space.rs), a new subject's map from per-voxel encoding models (encoding_map.rs); no candle, no data crate",
'metrics': "image, vector, identification, caption and video metrics (MinD-Video's n-way)",
'nn': "shared neural-network blocks on candle: kernels/ (the CPU's vectorised math, softmax, norm, attention, activations, linear), layers/ (linear, convolution, norm, attention, activations), optim/ (AdamW, gradient clipping, schedules), seeded init (init.rs), named parameters and their safetensors (params.rs), checkpoints and resumable runs (checkpoint.rs), losses (loss.rs), safetensors/HF-cache loading (weights.rs, embedded.rs), fused CUDA kernels (cuda/)",
'testkit': "dev-only: the helpers the tests share: fixture copies, JSON, closeness of arrays, and of candle tensors behind its `candle` feature (the model crates' golden tests)",
'formats': "the file formats, each refusing bad input with an error naming the file and the field: .npy (memory-mapped; pickled dicts through pickle.rs, a reader that accepts NumPy's reconstructors only and executes nothing), BrainVision EEG (brainvision.rs: .vhdr/.vmrk/.eeg, volts as MNE reads them), PNG/JPEG/PPM and resampling (image.rs), BIDS-style TSV tables (events.rs), a clip's global motion (motion.rs); behind features so a model crate that wants an RgbImage compiles no codec: `nifti` (NIfTI-1/2, 4D runs, CIFTI-2 read and write, FreeSurfer's label names), `dicom` (mosaics, enhanced multi-frame files and single-frame series read and written, the CSA header, the length check before parsing), `hdf5` (MATLAB v5/v7.3, ITK's HDF5 transforms), `audio` (WAV/FLAC/MP3/OGG through symphonia, resampling, acoustic features), `video` (MP4 demuxing, H.264 via OpenH264's bundled source, frame folders, GIF/PNG/MP4 out)",
'datasets': "the field's dataset layouts as they ship, one module per layout: nsd/ (NSD's HDF5, MATLAB, NIfTI, TSV/CSV, COCO JSON and its preparation), bids.rs, fmriprep/ (derivatives and confounds), ds005531.rs, ds003720.rs (the music dataset's stimulus events), cc2017/ (the video dataset, MinD-Video's arrays), things_eeg2.rs (THINGS-EEG2's pickled EEG dicts, raw recordings and image set), experiment/ (an own experiment: the GLM folder, `glm prepare`, ROIs from a segmentation); and the project's formats: prepared.rs (the prepared subject) and runs/ (the run set planned from any run layout; trials.rs: events → GLM trials)",'ridge': "ridge regression and its statistics (faer); banded ridge, variance splits, delays and TR alignment; gpu/: the CUDA fit (cuBLAS, cuSOLVER, NVRTC kernels; `cuda` feature)",
'brain': "networks that read brain activity: the B2C encoder, the video route's fMRI window encoder (window.rs, after MinD-Video), NICE's EEG encoder (nice.rs)",
'language': "BLIP's captioner, GPT-2, BERT, RoBERTa, Llama (every hidden state), the T5 encoder and tokenizer, tokenizers, text generation, word2vec",
'realtime': "online fMRI preprocessing: a session followed as the scanner writes it (follow.rs: each file read once complete, preprocessed, its motion logged), volumes out of the export files (read.rs: mosaics, enhanced multi-frame, single-frame series, NIfTI), the export folder watcher, single-frame slices stacked into volumes (assemble.rs), rigid-body realignment and reslicing, running z-scores; no candle",
'stream': "signal-to-image stream: recordings and live sources (raw, npy, CSV, EDF/BDF, NWB, stdin, TCP, synthetic), windows → latents, the frame loop, the live page (axum), PNG sequence and GIF",
'vision': "the metric networks (AlexNet, InceptionV3, EfficientNet-B1, ResNet-50), the video classifiers (ViT, VideoMAE) and transformers' image processors",
'simulate': "the synthetic subjects with known truth, written in the real datasets' layouts through the formats and datasets crates: NSD-like images (lib.rs, brain.rs, scene.rs, bold.rs, h5stream.rs), the events experiment and its next session (events.rs), a simulated scanner's export of that session (scanner_export.rs), movie, music (synth.rs: oscillators, envelopes, drum voices), video and EEG subjects (eeg.rs, THINGS-EEG2's layout); the attribute classifiers (classify*.rs)",
'audio': "audio networks: CLAP (mel front end, HTSAT, RoBERTa text tower), EnCodec, MusicGen; genres_clap/: the project's own CLAP as built into the binary (trained in zoo)",
'zoo': "the project's own models, trained beside their architectures: one module per shipped checkpoint with its named config, its training data from the simulators, its training run and its quality checks: shapes_ldm/ (the latent diffusion model), genres_clap/ (the music route's CLAP), word2vec_movie/ (the naturalistic route's vectors), shapes_blip/ (the caption route's captioner), shapes_motion/ (the video route's motion U-Net); chart.rs: the loss curves of training runs (B2C's too); `resolve(name)`; `brainrecon train <model>` (`train shapes-blip`, `train shapes-motion --tune unet`, ...)",
'diffusion': "Stable Diffusion modules, schedulers, weights loading and the pipeline (candle); AnimateDiff motion modules and the motion U-Net (motion.rs, unet_motion.rs); cuda/: fused inference kernels for NVIDIA GPUs (`cuda` feature)",
'python': "the Python package (PyO3): ridge estimators, prepared subjects, metrics, GLMsingle's four models (`brainrecon.glm.GLM_single`), the routes and real time (`brainrecon.routes`, `brainrecon.realtime`: one library call each, the CLI's options), alignment and groups (`brainrecon.align` on numpy arrays, `brainrecon.group`)",
'routes': "reconstruction routes on a spine (the rule and the floors at the top of lib.rs, held by tests/house_rule.rs): the spine is decode/ (features, decoders, their stream, arrays, shared options, CLIP text, BLIP features), linear/ (Takagi & Nishimoto's linear route, the sampler every image route conditions, its shards and the caption generator) and score/ (evaluation with the `EvalExtras` a route implements, the metric suite, folder evaluation, the HTML report); the routes are b2c/, caption/, eeg/ (NICE/ATM retrieval, decoders, reconstruction, the live loop), encoding/, naturalistic/, glm/ (the model folder `brainrecon glm` writes), group/ (shared spaces and a new subject), music/, realtime/, stream.rs (the stream's diffusion frame generator) and video/; reconstruct.rs on top dispatches an image reconstruction to its route",
'showcase': "the demos and benchmarks, above the routes (as candle keeps its examples apart from its models): `brainrecon demo` and its EEG, new-subject and real-time routes, the music and video demos, and the measuring half of `brainrecon bench` (bench/: ridge, banded, caption, CLAP, group, training step)",
'slurm': "a sharded `ridge fit` or `reconstruct` as a Slurm job array and the dependent merge: the batch scripts (script.rs), what a sharded command is and how a finished shard is told (work.rs), sbatch/squeue/scontrol (scheduler.rs); submit, status, resume",
'cli': "the `brainrecon` binary: flags (args.rs, one folder of commands/ per command group), each command's `run` turns its flags into options, makes the library call and prints; in the CPU build, the hand-over of `--device cuda` commands to `brainrecon-cuda` (launch.rs)",
'models/': "models/   the project's own models, built into the binary: shapes-ldm (diffusers folder),\n          shapes-blip (transformers BLIP folder), word2vec-movie (word2vec binary),\n          genres-clap (transformers CLAP folder), shapes-motion (diffusers UNetMotionModel);\n          data shipped beside them: tinysegmenter, glmsingle-hrfs (GLMsingle's HRF tables)",
'docs/': "docs/     this guide (an mdBook: book.toml at the root, docs/SUMMARY.md), its figures",
'tools/': "tools/    demo.sh, test.sh (+ python-test.sh), build-cuda.sh (+ cuda-toolkit.sh, cuda-env.sh),\n          fixture scripts with pinned versions, benchmark and figure scripts, slurm/one-node.sh\n          (a one-node Slurm cluster for the tests)",
}

TAIL = 'Only the crates marked (candle) build on candle; {NOCANDLE} build and test without it. The ridge crate\'s GPU fit uses cudarc (the CUDA bindings candle uses) directly, not candle.\n\n## What moved this round\n\n(Issue 78: "The house: `routes` gets a spine, demos and benchmarks move to a showcase crate, and the binary is back under 6k lines.")\n\n![crates/routes: the spine under the routes](architecture-routes.svg)\n\n- **`routes` has a spine.** `decode/` (features, decoders, their stream, arrays, options, CLIP text, BLIP features), `linear/` (the linear route\'s sampler with its shards and the caption generator) and `score/` (evaluation, the suite, folder evaluation, the report) stand on `error` and `progress`; the eleven routes stand on the spine; `reconstruct.rs` dispatches on top. The rule is written at the top of `routes/src/lib.rs`: a route uses the spine only, the spine uses no route, routes never import each other, and each spine floor uses only its own and those below. `crates/routes/tests/house_rule.rs` reads every `crate::` path and fails when one breaks it.\n- **Upward ties cut.** The evaluation asks the routes for their part through `score::evaluate::EvalExtras` (as nilearn\'s estimators supply their report section): B2C adds its latent and context rows, the caption route its scores, table and grid labels; `reconstruct::eval_extras` knows both. Sideways helpers moved down: identification and row-major arrays to `decode/arrays.rs`, relative links and the comparison grid to `score/report.rs`, `Tune` to `decode/options.rs`, BLIP\'s loader and features to `decode/blip.rs`, the FDR level to `score`; the shared atlas name to `datasets::prepared`; annotation text features to `naturalistic`.\n- **`crates/showcase` is new**, above routes: the demos and the benchmarks, as candle keeps its examples apart from its models.\n- **Typed where the flags end.** One `core::Device` (cpu, cuda, cuda:N) and candle\'s `DType` in every option struct in place of strings; the EEG verbs\' channels, MVNN and method and `group adapt`\'s `Via`/`MapFit` are library enums the CLI parses once.\n- **Loops are pulled.** `stream::live::LiveSession` and `routes::eeg::live::LiveEegSession` give `next_event()`, as `realtime`\'s follower does; `run_live` is a short driver over each.\n- **One writer beside its reader**: `datasets::prepared::Writer` writes the prepared subject for NSD, an own experiment and a group. Python\'s `GLM_single` writes through core\'s output folder (lock, staging, fsync).\n- **The binary is a shell**: flags → options → one library call → print. The training checks are each config\'s `check()` in the zoo (same messages); what a command prints is its report\'s `text()` in the library (`decode_test`, `info_text`, `CortexFigures`, `LayerResult::line`, …); which errors are bad input is `routes::error::is_user_error`; whether `--device cuda` goes to the GPU build is `core::launch`. In the CLI, `report()` prints JSON or text and `subcommands!` declares a command group with its dispatch.\n- **Docs held by the compiler**: `#![warn(missing_docs)]` on every library crate, `broken_intra_doc_links = "deny"`, and `cargo doc` in `tools/test.sh`. `surface_sampling` moved from core to cortex; diffusion no longer re-exports nn.\n'
import json, subprocess, sys, html
m = json.loads(subprocess.run(['cargo', 'metadata', '--no-deps', '--format-version', '1', '--offline'],
                              cwd=ROOT, capture_output=True, text=True, check=True).stdout)
pk = {p['name']: p for p in m['packages']}
short = lambda n: n.replace('brainrecon-', '')
deps = {}; candle = set(); lines = {}
import os
for n, p in pk.items():
    s = short(n)
    deps[s] = sorted({short(d['name']) for d in p['dependencies'] if d['name'] in pk and d['kind'] is None})
    if any(d['name'] == 'candle-core' and d['kind'] is None for d in p['dependencies']):
        candle.add(s)
    d = os.path.dirname(p['manifest_path'])
    lines[s] = sum(sum(1 for _ in open(os.path.join(r, f))) for r, _, fs in os.walk(os.path.join(d, 'src')) for f in fs if f.endswith('.rs'))
floor = {}
def fl(c):
    if c not in floor:
        floor[c] = 0 if not deps[c] else 1 + max(fl(d) for d in deps[c])
    return floor[c]
for c in deps: fl(c)
top = max(floor.values())
# transitive reduction for the picture: an edge a→b is drawn unless b is reached through another dep
reach = {}
def R(c):
    if c not in reach:
        reach[c] = set(deps[c]).union(*[R(d) for d in deps[c]]) if deps[c] else set()
    return reach[c]
drawn = {c: [d for d in deps[c] if not any(d in R(e) for e in deps[c] if e != d)] for c in deps}

DESC = DESCRIPTIONS
missing = [c for c in deps if c not in DESC]
if missing: print('no description for', missing, file=sys.stderr)
extra = [c for c in DESC if c not in deps and not c.endswith('/')]
if extra: print('described but not a crate:', extra, file=sys.stderr)

# ---- SVG ----
W, BH, BW, GAP, VG = 900, 34, 104, 36, 62
rows = {f: sorted([c for c in deps if floor[c] == f], key=lambda c: (c not in candle, c)) for f in range(top + 1)}
# order each floor by the mean place of its neighbours (fewer crossings), a few sweeps
order = {c: i for f in rows for i, c in enumerate(rows[f])}
users = {c: [u for u in deps if c in drawn[u]] for c in deps}
for _ in range(8):
    for f in list(range(top - 1, -1, -1)) + list(range(1, top + 1)):
        def key(c):
            nb = users[c] + drawn[c]
            return (sum(order[n] for n in nb) / len(nb)) if nb else order[c]
        rows[f] = sorted(rows[f], key=key)
        xs = {c: (i - (len(rows[f]) - 1) / 2) for i, c in enumerate(rows[f])}
        order.update(xs)
pos = {}
for f, cs in rows.items():
    y = 30 + (top - f) * (BH + VG)
    total = len(cs) * BW + (len(cs) - 1) * GAP
    x0 = 80 + (W - 80 - total) / 2
    for i, c in enumerate(cs):
        pos[c] = (x0 + i * (BW + GAP), y)
H = 30 + (top + 1) * (BH + VG) - VG + 70
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="13">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       '<defs><marker id="a" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#888"/></marker></defs>']
for f in range(top + 1):
    y = 30 + (top - f) * (BH + VG)
    svg.append(f'<text x="12" y="{y + 22}" fill="#555">floor {f}</text>')
PAL = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#ff7f0e']
srcs = sorted([c for c in deps if drawn[c]], key=lambda c: (-floor[c], c))
colour = {c: PAL[i % len(PAL)] for i, c in enumerate(srcs)}
for c in deps:
    x, y = pos[c]
    for d in drawn[c]:
        dx, dy = pos[d]
        x1, y1, x2, y2 = x + BW / 2, y + BH, dx + BW / 2, dy
        my = (y1 + y2) / 2
        svg.append(f'<path d="M{x1:.1f},{y1} C{x1:.1f},{my + (y2 - y1) / 4:.1f} {x2:.1f},{my - (y2 - y1) / 4:.1f} {x2:.1f},{y2}" fill="none" stroke="{colour[c]}" stroke-opacity="0.8" stroke-width="1.4" marker-end="url(#a)"/>')
for c in deps:
    x, y = pos[c]
    fill = '#fde7c8' if c in candle else '#d9ecf7'
    svg.append(f'<rect x="{x:.1f}" y="{y}" width="{BW}" height="{BH}" rx="6" fill="{fill}" stroke="#456"/>')
    svg.append(f'<text x="{x + BW/2:.1f}" y="{y + 22}" text-anchor="middle" font-weight="bold">{html.escape(c)}</text>')
ly = H - 40
svg.append(f'<rect x="80" y="{ly - 12}" width="14" height="14" fill="#fde7c8" stroke="#456"/><text x="100" y="{ly}">on candle</text>')
svg.append(f'<rect x="190" y="{ly - 12}" width="14" height="14" fill="#d9ecf7" stroke="#456"/><text x="210" y="{ly}">without candle</text>')
svg.append(f'<text x="330" y="{ly}" fill="#555">an arrow: "depends on", coloured by the crate it leaves;</text>')
svg.append(f'<text x="330" y="{ly + 18}" fill="#555">an arrow implied by a longer path is left out (the table lists every one)</text>')
svg.append('</svg>')
open(os.path.join(ROOT, 'docs', 'architecture.svg'), 'w').write('\n'.join(svg) + '\n')

# ---- text ----
import textwrap
t = ['# Layout of the code', '',
     'A Cargo workspace of %d crates. Each crate stands on a floor: it uses only crates on lower floors, '
     'so the graph has no cycle and a crate builds and tests with what is below it. Floor 0 needs no other '
     'workspace crate; the `brainrecon` binary (cli) is the top floor. The floors and arrows come from '
     'the `[dependencies]` of the Cargo.toml files (`cargo metadata --no-deps`); dev-dependencies '
     'are left out.' % len(deps), '',]
t = t[:2] + textwrap.wrap(t[2], 96, break_on_hyphens=False) + ['',
     '![the workspace crates by floor, arrows for dependencies](architecture.svg)', '',
     '```']
for f in range(top, -1, -1):
    t.append(f'floor {f}  ' + '   '.join(rows[f]))
t += ['```', '', '| floor | crate | depends on (workspace crates) | what it holds |', '|---:|---|---|---|']
for f in range(top, -1, -1):
    for c in sorted(rows[f]):
        t.append(f'| {f} | `crates/{c}`{" (candle)" if c in candle else ""} | {", ".join(deps[c]) or "—"} | {DESC.get(c, "")} |')
t += ['', 'Outside the crates:', '', '```']
for k in ['models/', 'docs/', 'tools/']:
    t.append(DESC[k])
t += ['```', '']
nc = [c for c in sorted(deps, key=lambda c: (floor[c], c)) if c not in candle]
tail = TAIL.replace('{NOCANDLE}', ', '.join(nc[:-1]) + ' and ' + nc[-1])
paras = tail.rstrip('\n').split('\n\n')
paras = [p if p.startswith(('#', '- ', '(')) else '\n'.join(textwrap.wrap(' '.join(p.split()), 96, break_on_hyphens=False)) for p in paras]
t += '\n\n'.join(paras).split('\n')
open(os.path.join(ROOT, 'docs', 'architecture.md'), 'w').write('\n'.join(t) + '\n')
print('floors', {f: rows[f] for f in rows}); print('candle', sorted(candle))

# ---- routes' rooms: the spine and the routes (read from the crate's `crate::` paths) ----
import re
RSRC = os.path.join(ROOT, 'crates', 'routes', 'src')
SPINE_FLOORS = {'error': 0, 'progress': 0, 'decode': 1, 'linear': 2, 'score': 3}
uses = {}
for r, _, fs in os.walk(RSRC):
    for f in fs:
        if not f.endswith('.rs'):
            continue
        rel = os.path.relpath(os.path.join(r, f), RSRC)
        room = rel.split(os.sep)[0][:-3] if rel.endswith('.rs') and os.sep not in rel else rel.split(os.sep)[0]
        text = open(os.path.join(r, f)).read()
        for m in re.finditer(r'(?<![A-Za-z0-9_])crate::([A-Za-z0-9_]+)', text):
            uses.setdefault(room, set()).add(m.group(1))
rooms = sorted(e[:-3] if e.endswith('.rs') else e for e in os.listdir(RSRC) if e != 'lib.rs')
uses = {r: sorted(u for u in uses.get(r, ()) if u in rooms and u != r) for r in rooms}
rfloor = {r: SPINE_FLOORS.get(r, 4) for r in rooms}
rfloor['reconstruct'] = 5
rrows = {f: sorted(r for r in rooms if rfloor[r] == f) for f in sorted(set(rfloor.values()))}
RW = 1060
rpos = {}
ftop = max(rrows)
for f, cs in rrows.items():
    y = 30 + (ftop - f) * (BH + VG)
    bw = 78 if len(cs) > 8 else BW
    gap = 10 if len(cs) > 8 else GAP
    total = len(cs) * bw + (len(cs) - 1) * gap
    x0 = 80 + (RW - 80 - total) / 2
    for i, c in enumerate(cs):
        rpos[c] = (x0 + i * (bw + gap), y, bw)
RH = 30 + (ftop + 1) * (BH + VG) - VG + 50
names = {0: 'ground', 1: 'decode', 2: 'sampler', 3: 'score', 4: 'routes', 5: 'entry'}
rs = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{RW}" height="{RH}" viewBox="0 0 {RW} {RH}" font-family="sans-serif" font-size="12">',
      f'<rect width="{RW}" height="{RH}" fill="white"/>',
      '<defs><marker id="a" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#888"/></marker></defs>']
for f in rrows:
    y = 30 + (ftop - f) * (BH + VG)
    rs.append(f'<text x="8" y="{y + 22}" fill="#555">{names.get(f, f)}</text>')
for c in rooms:
    x, y, bw = rpos[c]
    for d in uses[c]:
        if d in ('error', 'progress') and c not in SPINE_FLOORS:
            continue  # every room uses the ground floor; its arrows are left out
        dx, dy, dbw = rpos[d]
        x1, y1, x2, y2 = x + bw / 2, y + BH, dx + dbw / 2, dy
        if y1 > y2:  # same floor
            y1, y2 = y + BH / 2, dy + BH / 2
        rs.append(f'<path d="M{x1:.1f},{y1} L{x2:.1f},{y2}" fill="none" stroke="#789" stroke-opacity="0.6" stroke-width="1.1" marker-end="url(#a)"/>')
for c in rooms:
    x, y, bw = rpos[c]
    fill = '#e6f2da' if c in SPINE_FLOORS else ('#f3e0f0' if c == 'reconstruct' else '#d9ecf7')
    rs.append(f'<rect x="{x:.1f}" y="{y}" width="{bw}" height="{BH}" rx="6" fill="{fill}" stroke="#456"/>')
    rs.append(f'<text x="{x + bw/2:.1f}" y="{y + 21}" text-anchor="middle" font-weight="bold">{html.escape(c)}</text>')
rs.append(f'<text x="80" y="{RH - 18}" fill="#555">crates/routes: the spine (green) under the routes (blue); an arrow: "uses"; arrows to error and progress from the routes are left out</text>')
rs.append('</svg>')
open(os.path.join(ROOT, 'docs', 'architecture-routes.svg'), 'w').write('\n'.join(rs) + '\n')
print('routes rooms', {f: rrows[f] for f in rrows})
