"""GLMsingle's single-trial GLM with GLMsingle's Python API (``GLM_single(opt).fit``), computed by
brainrecon-glm: TYPEA (on/off), TYPEB (library HRF per voxel), TYPEC (GLMdenoise) and TYPED
(fractional ridge), checked against GLMsingle itself (cvnlab/GLMsingle 1ab54a6).

    from brainrecon.glm import GLM_single
    results = GLM_single({"wantmemoryoutputs": [0, 0, 0, 1]}).fit(design, data, stimdur, tr)
    betas = results["typed"]["betasmd"]          # X x Y x Z x trials, percent signal change

As GLMsingle, the models ``wantfileoutputs`` asks for are written into ``outputdir``, by
default ./GLMestimatesingletrialoutputs, here through the CLI's output-folder protocol (staged
in ``<outputdir>.partial``, locked, moved into place whole). Differences from GLMsingle: no
figures and no run-wise FIR diagnostic (RUNWISEFIR.npy); the run-wise outputs (``R2run``,
``HRFindexrun``, ``FitHRFR2``, ``FitHRFR2run``) are not computed; the noise pool's R²
threshold starts its mixture from fixed quantiles instead of an unseeded random start. Options
GLMsingle has and brainrecon does not implement are refused with a ValueError when set to
anything but GLMsingle's default.
"""

import contextlib
import os
import sys
import time
import warnings

import numpy as np

from . import _native

_MODELS = ("typea", "typeb", "typec", "typed")
_FILES = ("TYPEA_ONOFF.npy", "TYPEB_FITHRF.npy", "TYPEC_FITHRF_GLMDENOISE.npy",
          "TYPED_FITHRF_GLMDENOISE_RR.npy")
# GLMsingle's Python fit's own voxel chunk is 50000; results do not depend on it, and this
# one keeps a chunk's time series (all volumes x chunk, float64) small.
_LARGEST_CHUNK = 1024
# GLMsingle's folder for file outputs when no outputdir is given (in the working directory).
_DEFAULT_OUTPUTDIR = "GLMestimatesingletrialoutputs"

# GLMsingle's defaults (glmsingle/defaults.py at 1ab54a6), for the options brainrecon supports.
_DEFAULTS = {
    "wantlibrary": 1,
    "wantglmdenoise": 1,
    "wantfracridge": 1,
    "chunklen": 50000,
    "wantfileoutputs": [1, 1, 1, 1],
    "wantmemoryoutputs": [1, 1, 1, 1],
    "extra_regressors": False,
    "n_pcs": 10,
    "brainthresh": [99.0, 0.1],
    "brainR2": [],
    "pcR2cutoff": [],
    "pcR2cutoffmask": 1,
    "pcstop": 1.05,
    "fracs": np.linspace(1, 0.05, 20),
    "wantautoscale": 1,
    "suppressoutput": 0,
}
# Computed from the data when not given, as GLMsingle does.
_DERIVED = ("maxpolydeg", "hrftoassume", "hrflibrary", "sessionindicator", "xvalscheme")
# GLMsingle takes these but its GLM_single.fit never reads them (they belong to its
# glm_estimatemodel's HRF optimisation, which GLM_single does not run): any value is accepted,
# as GLMsingle accepts it.
_UNUSED_BY_GLMSINGLE = ("numforhrf", "hrfthresh", "hrffitmask", "R2thresh", "hrfmodel",
                        "n_jobs", "n_boots", "seed", "lambda", "wantparametric")
# GLMsingle features brainrecon does not implement: refused unless left at the default.
_UNSUPPORTED = {
    "wantlss": 0,
    "wanthdf5": 0,
    "wantpercentbold": 1,
    "brainexclude": False,
    "firdelay": 30,
    "firpct": 99,
}


def _is_default(value, default):
    try:
        return bool(np.all(np.asarray(value) == np.asarray(default))) and \
            np.asarray(value).shape == np.asarray(default).shape
    except (TypeError, ValueError):
        return False


def _flag(params, key):
    value = params[key]
    if value not in (0, 1, True, False):
        raise ValueError(f"{key}: expected 0 or 1, found {value!r}")
    return bool(value)


def _four_flags(params, key):
    value = np.asarray(params[key]).ravel()
    if value.shape != (4,) or not np.all(np.isin(value, (0, 1))):
        raise ValueError(f"{key}: expected four 0/1 flags [A, B, C, D], found {params[key]!r}")
    return [bool(v) for v in value]


def _optional_number(params, key):
    value = params[key]
    if value is None or (np.ndim(value) == 1 and len(value) == 0):
        return None
    if np.size(value) != 1:
        raise ValueError(f"{key}: expected a number or [], found {value!r}")
    return float(np.asarray(value).ravel()[0])


def _peak_normalised(hrf, key):
    hrf = np.asarray(hrf, dtype=np.float64)
    peak = hrf.max(axis=0)
    if np.any(~np.isfinite(hrf)) or np.any(peak <= 0):
        raise ValueError(f"{key}: expected finite HRFs with a positive peak")
    return hrf / peak


def _alt_round(x):
    """Halves away from zero, as GLMsingle's alt_round."""
    return int(np.sign(x) * np.floor(abs(x) + 0.5))


class GLM_single:
    """GLMsingle's ``GLM_single``: ``GLM_single(params).fit(design, data, stimdur, tr)``.

    ``params`` takes GLMsingle's option names (a dict; missing ones take GLMsingle's
    defaults): wantlibrary, wantglmdenoise, wantfracridge, wantfileoutputs,
    wantmemoryoutputs, extra_regressors, maxpolydeg, hrftoassume, hrflibrary, n_pcs,
    brainthresh, brainR2, pcR2cutoff, pcR2cutoffmask, pcstop, fracs, wantautoscale,
    sessionindicator, xvalscheme (leave-one-run-out only), chunklen (speed only),
    suppressoutput. An unknown option, or one of GLMsingle's that brainrecon does not
    implement (wantlss, wanthdf5, wantpercentbold=0, brainexclude, firdelay, firpct) set to
    anything but its default, raises ValueError naming it.
    """

    def __init__(self, params=None):
        params = dict(params) if params else {}
        allowed = set(_DEFAULTS) | set(_DERIVED) | set(_UNUSED_BY_GLMSINGLE) | set(_UNSUPPORTED)
        for key in params:
            if key not in allowed:
                raise ValueError(f"Input parameter not recognized: '{key}'. Possible input "
                                 f"parameters are: {sorted(allowed)}")
        for key, default in _UNSUPPORTED.items():
            if key in params and not _is_default(params[key], default):
                raise ValueError(f"{key}={params[key]!r} is not supported by brainrecon's "
                                 f"GLM_single (only GLMsingle's default {default!r})")
        for key, default in _DEFAULTS.items():
            params.setdefault(key, default)
        self.params = params

    def fit(self, design, data, stimdur, tr, outputdir=None, figuredir=None):
        """Fits GLMsingle's models and returns its dict: ``typea`` ... ``typed`` as
        ``wantmemoryoutputs`` asks, each with GLMsingle's keys, shapes and dtypes (X x Y x Z x
        ... for volume input, voxels x 1 x 1 x ... for 2-D input, as GLMsingle returns).

        design: a time x conditions array, or a list of them (one per run), 1 at each trial's
        onset. data: an X x Y x Z x time or voxels x time array, or a list of them.
        stimdur, tr: seconds. outputdir: where GLMsingle's files (DESIGNINFO.npy and the
        models ``wantfileoutputs`` asks for, each a pickled dict) are written, replacing the
        folder whole once all are written; by default ./GLMestimatesingletrialoutputs, as
        GLMsingle. Nothing is written when ``wantfileoutputs`` asks for no model. Another
        process writing the same folder raises ValueError. The fit runs without the GIL."""
        if figuredir is not None:
            raise ValueError("figuredir: brainrecon's GLM_single draws no figures; pass None")
        # GLMsingle completes its own params with what it derives (maxpolydeg, hrflibrary,
        # brainR2, ...): so does this
        params = self.params
        designs, runs, xyz = _check_inputs(design, data)
        stimdur, tr = float(stimdur), float(tr)
        if not (np.isfinite(stimdur) and stimdur > 0 and np.isfinite(tr) and tr > 0):
            raise ValueError(f"stimdur and tr: expected positive seconds, found {stimdur}, {tr}")
        n_runs = len(designs)
        n_voxels = runs[0].shape[0]
        n_times = [r.shape[1] for r in runs]
        progress = not params["suppressoutput"]
        args = _native_arguments(params, designs, n_voxels, n_times, stimdur, tr)
        memory = _four_flags(params, "wantmemoryoutputs")
        files = _four_flags(params, "wantfileoutputs")
        if args["want_glmdenoise"] and not (memory[2] or memory[3] or files[2] or files[3]):
            raise ValueError("<wantglmdenoise> is 1, but you didnt request type C nor D")
        if args["want_fracridge"] and not (memory[3] or files[3]):
            raise ValueError("<wantfracridge> is 1, but you did not request type D")
        design_info = _design_info(designs, stimdur, tr, params)
        if progress:
            print(f"brainrecon GLM_single: {n_runs} runs, {n_voxels} voxels, "
                  f"{designs[0].shape[1]} conditions, {len(design_info['stimorder'])} trials, "
                  f"stimulus {stimdur:.2f} s, TR {tr:.2f} s", file=sys.stderr)
        # the folder is taken before the fit, as GLMsingle makes it first: one that another
        # process is writing, or that cannot be made, is refused before the work
        with _output_folder(outputdir, files) as folder:
            extras = args.pop("extras")
            # the native fit takes each run as time x voxels, C order (one copy, as
            # GLMsingle's float32 conversion makes one)
            series = [np.ascontiguousarray(r.T, dtype=np.float32) for r in runs]
            raw = _native.glm_single_fit(series, [np.ascontiguousarray(d, dtype=np.float64)
                                                  for d in designs],
                                         extras, stimdur, tr, progress=progress, **args)
            del series
            for note in raw["notes"]:
                warnings.warn(note)
            threshold = float(raw["r2_threshold"])
            for key in ("brainR2", "pcR2cutoff"):
                if _optional_number(params, key) is None and np.isfinite(threshold):
                    params[key] = threshold
            results = _results(raw, xyz, n_voxels)
            if folder is not None:
                _write_outputs(folder, results, files, design_info, progress)
        return {k: v for k, v in zip(_MODELS, (results.get(m) for m in _MODELS))
                if v is not None and memory[_MODELS.index(k)]}


def _check_inputs(design, data):
    """Lists of runs: designs (time x conditions, float64) and data as (voxels x time), with
    the volume shape (None for 2-D data)."""
    designs = list(design) if isinstance(design, (list, tuple)) else [design]
    data = list(data) if isinstance(data, (list, tuple)) else [data]
    if len(designs) != len(data) or not designs:
        raise ValueError(f"design and data: expected the same number of runs, found "
                         f"{len(designs)} and {len(data)}")
    designs = [np.asarray(d, dtype=np.float64) for d in designs]
    arrays = [np.asarray(d) for d in data]
    ndim = arrays[0].ndim
    if ndim not in (2, 4) or any(a.ndim != ndim for a in arrays):
        raise ValueError("data: expected X x Y x Z x time or voxels x time arrays, the same "
                         f"for every run, found shapes {[a.shape for a in arrays]}")
    xyz = arrays[0].shape[:3] if ndim == 4 else None
    if any(a.shape[:-1] != arrays[0].shape[:-1] for a in arrays):
        raise ValueError(f"data: every run needs the same voxels, found shapes "
                         f"{[a.shape for a in arrays]}")
    runs = [a.reshape(-1, a.shape[-1]) for a in arrays]
    conditions = designs[0].shape[1] if designs[0].ndim == 2 else None
    for i, (d, r) in enumerate(zip(designs, runs)):
        if d.ndim != 2 or d.shape[1] != conditions:
            raise ValueError(f"design[{i}]: expected time x {conditions} conditions, found "
                             f"shape {d.shape}")
        if d.shape[0] != r.shape[1]:
            raise ValueError(f"design[{i}] has {d.shape[0]} time points, data[{i}] "
                             f"{r.shape[1]}")
        if not np.all(np.isfinite(d)):
            raise ValueError(f"design[{i}]: expected finite values")
        if np.any(np.count_nonzero(d, axis=1) > 1):
            raise ValueError(f"design[{i}]: two conditions have exactly the same trial onset! "
                             "this is not allowed!")
        if not np.all(np.isfinite(r)):
            raise ValueError(f"data[{i}]: expected no NaN or infinite values")
    if runs[0].shape[0] == 0:
        raise ValueError("data: expected at least one voxel")
    return designs, runs, xyz


def _native_arguments(params, designs, n_voxels, n_times, stimdur, tr):
    """GLMsingle's options (defaults filled in) as the native fit's arguments; fills in the
    derived ones as GLMsingle does."""
    n_runs = len(designs)
    degrees = params.get("maxpolydeg")
    if degrees is None:
        degrees = [_alt_round(n * tr / 60 / 2) for n in n_times]
    degrees = np.atleast_1d(np.asarray(degrees)).astype(int).tolist()
    if len(degrees) == 1:
        degrees = degrees * n_runs
    if len(degrees) != n_runs or min(degrees) < 0:
        raise ValueError(f"maxpolydeg: expected a non-negative degree or one per run "
                         f"({n_runs}), found {params['maxpolydeg']!r}")
    params["maxpolydeg"] = degrees
    if "hrftoassume" in params:
        hrf = _peak_normalised(np.asarray(params["hrftoassume"]).ravel(), "hrftoassume")
    else:
        hrf = _peak_normalised(_native.glm_canonical_hrf(stimdur, tr), "hrftoassume")
    params["hrftoassume"] = hrf
    if "hrflibrary" in params:
        library = np.asarray(params["hrflibrary"], dtype=np.float64)
        if library.ndim != 2:
            raise ValueError(f"hrflibrary: expected time x H, found shape {library.shape}")
        library = _peak_normalised(library, "hrflibrary")
    else:
        library = _peak_normalised(np.asarray(_native.glm_hrf_library(stimdur, tr)).T,
                                   "hrflibrary")
    if not _flag(params, "wantlibrary"):
        library = hrf.reshape(-1, 1)
    params["hrflibrary"] = library
    sessions = params.get("sessionindicator")
    sessions = [1] * n_runs if sessions is None else np.asarray(sessions).ravel().astype(int).tolist()
    if len(sessions) != n_runs or min(sessions) < 1:
        raise ValueError(f"sessionindicator: expected a positive integer per run ({n_runs}), "
                         f"found {params['sessionindicator']!r}")
    params["sessionindicator"] = np.asarray(sessions).reshape(1, -1)
    if "xvalscheme" in params:
        scheme = params["xvalscheme"]
        flat = [np.atleast_1d(np.asarray(f)).tolist() for f in scheme]
        if flat != [[r] for r in range(n_runs)]:
            raise ValueError("xvalscheme: only leave-one-run-out ([[0], [1], ...] or "
                             f"np.arange(numruns)) is supported, found {scheme!r}")
    else:
        params["xvalscheme"] = np.arange(n_runs)
    fracs = np.unique(np.asarray(params["fracs"], dtype=np.float64).ravel())[::-1]
    if fracs.size == 0 or not np.all((fracs > 0) & (fracs <= 1)):
        raise ValueError(f"fracs: expected fractions in (0, 1], found {params['fracs']!r}")
    params["fracs"] = fracs
    extras = params["extra_regressors"]
    if extras is False or extras is None or (isinstance(extras, list) and not extras):
        extras = [None] * n_runs
    elif not isinstance(extras, (list, tuple)):
        extras = [extras]
    if len(extras) != n_runs:
        raise ValueError("<extra_regressors> should match the number of runs")
    extra_arrays = []
    for i, (e, n) in enumerate(zip(extras, n_times)):
        e = np.zeros((n, 0)) if e is None or e is False or np.size(e) == 0 else np.asarray(e, dtype=np.float64)
        if e.ndim == 1:
            e = e.reshape(-1, 1)
        if e.ndim != 2 or e.shape[0] != n or not np.all(np.isfinite(e)):
            raise ValueError(f"extra_regressors[{i}]: expected {n} x regressors of finite "
                             f"values, found shape {e.shape}")
        extra_arrays.append(np.ascontiguousarray(e))
    brainthresh = np.asarray(params["brainthresh"], dtype=np.float64).ravel()
    if brainthresh.shape != (2,):
        raise ValueError(f"brainthresh: expected [percentile, fraction], found "
                         f"{params['brainthresh']!r}")
    mask = params["pcR2cutoffmask"]
    if _is_default(mask, 1):
        mask = None
    else:
        mask = np.asarray(mask).ravel() != 0
        if mask.size != n_voxels:
            raise ValueError(f"pcR2cutoffmask: expected 1 or one value per voxel ({n_voxels}), "
                             f"found {np.asarray(params['pcR2cutoffmask']).shape}")
        mask = mask.tolist()
    n_pcs = int(params["n_pcs"])
    pcstop = float(params["pcstop"])
    if n_pcs < 0 or (pcstop <= 0 and -pcstop > n_pcs):
        raise ValueError(f"n_pcs and pcstop: expected n_pcs >= 0 and -pcstop <= n_pcs, found "
                         f"{n_pcs} and {pcstop}")
    chunk = int(params["chunklen"])
    if chunk < 1:
        raise ValueError(f"chunklen: expected a positive number of voxels, found {chunk}")
    return {
        "extras": extra_arrays,
        "degrees": degrees,
        "assumed_hrf": hrf.tolist(),
        "library": [library[:, h].tolist() for h in range(library.shape[1])],
        "want_glmdenoise": _flag(params, "wantglmdenoise"),
        "want_fracridge": _flag(params, "wantfracridge"),
        "n_pcs": n_pcs,
        "pcstop": pcstop,
        "fracs": fracs.tolist(),
        "brain_thresh": (float(brainthresh[0]), float(brainthresh[1])),
        "brain_r2": _optional_number(params, "brainR2"),
        "pc_r2_cutoff": _optional_number(params, "pcR2cutoff"),
        "pc_r2_cutoff_mask": mask,
        "session_of_run": sessions,
        "want_autoscale": _flag(params, "wantautoscale"),
        "chunk": min(chunk, _LARGEST_CHUNK),
    }


def _design_info(designs, stimdur, tr, params):
    """GLMsingle's DESIGNINFO: the single-trial designs and counts of the experiment."""
    numtrialrun = [int(np.count_nonzero(d)) for d in designs]
    total = sum(numtrialrun)
    single, stimorder, stimix = [], [], []
    count = 0
    for d in designs:
        s = np.zeros((d.shape[0], total))
        first = count
        for t in np.flatnonzero(np.any(d != 0, axis=1)):
            s[t, count] = 1
            stimorder.append(int(np.flatnonzero(d[t])[0]))
            count += 1
        single.append(s)
        stimix.append(np.asarray(stimorder[first:count]))
    conditions = designs[0].shape[1]
    endbuffers = []
    for d in designs:
        onsets = np.flatnonzero(d.sum(axis=1))
        endbuffers.append((d.shape[0] - onsets[-1] - 1) * tr if onsets.size else d.shape[0] * tr)
    return {
        "design": designs,
        "stimdur": stimdur,
        "tr": tr,
        "params": params,
        "designSINGLE": single,
        "stimorder": stimorder,
        "numtrialrun": numtrialrun,
        "condcounts": [int(np.sum(np.asarray(stimorder) == c)) for c in range(conditions)],
        "condinruns": [int(sum(c in run for run in stimix)) for c in range(conditions)],
        "endbuffers": endbuffers,
    }


def _results(raw, xyz, n_voxels):
    """The native fit's flat arrays in GLMsingle's shapes and dtypes."""
    grid = tuple(xyz) if xyz is not None else (n_voxels, 1, 1)

    def per_voxel(values, dtype=np.float32):
        return np.asarray(values).astype(dtype).reshape(grid)

    def per_voxel_k(values, dtype=np.float32):
        return np.asarray(values).astype(dtype).reshape(grid + (-1,))

    a, b = raw["typea"], raw["typeb"]
    meanvol = per_voxel(a["meanvol"])
    out = {
        "typea": {"onoffR2": per_voxel(a["onoffR2"], np.float64), "meanvol": meanvol,
                  "betasmd": per_voxel_k(a["betasmd"])},
        "typeb": {"HRFindex": per_voxel(b["HRFindex"], np.int64), "R2": per_voxel(b["R2"]),
                  "betasmd": per_voxel_k(b["betasmd"]), "meanvol": meanvol},
    }
    denoise = {}
    if "denoise" in raw:
        g = raw["denoise"]
        denoise = {"pcvoxels": per_voxel(g["pcvoxels"], bool), "pcnum": int(g["pcnum"]),
                   "noisepool": per_voxel(g["noisepool"], bool)}
        if len(g["glmbadness"]):
            denoise["glmbadness"] = per_voxel_k(g["glmbadness"])
            denoise["xvaltrend"] = np.asarray(g["xvaltrend"], dtype=np.float32)
        denoise["pcregressors"] = [np.asarray(r, dtype=np.float32) for r in g["pcregressors"]]
    for name in ("typec", "typed"):
        if name not in raw:
            continue
        m = raw[name]
        model = {"HRFindex": per_voxel(m["HRFindex"], np.int64), **denoise,
                 "betasmd": per_voxel_k(m["betasmd"]), "R2": per_voxel(m["R2"])}
        if name == "typed":
            if len(m["rrbadness"]):
                model["rrbadness"] = per_voxel_k(m["rrbadness"])
            model["FRACvalue"] = per_voxel(m["FRACvalue"])
            if len(m["scaleoffset"]):
                model["scaleoffset"] = per_voxel_k(m["scaleoffset"])
        model["meanvol"] = meanvol
        out[name] = model
    return out


def _output_folder(outputdir, files):
    """The folder of the files ``wantfileoutputs`` asks for (``outputdir``, by default
    GLMsingle's ./GLMestimatesingletrialoutputs) as core's output folder, brainrecon._native's
    OutputFolder: staged in ``<outputdir>.partial`` under the folder's lock, moved into place
    whole when the block ends, removed (an earlier ``outputdir`` kept) when it raises. A
    context giving None when no file is asked for."""
    if not any(files):
        return contextlib.nullcontext()
    if outputdir is None:
        outputdir = os.path.join(os.getcwd(), _DEFAULT_OUTPUTDIR)
    return _native.OutputFolder(os.path.abspath(os.fspath(outputdir)))


def _write_outputs(folder, results, files, design_info, progress):
    """GLMsingle's files into the output folder's staging folder, each flushed to disk."""
    staging = os.fspath(folder.path)
    _save(os.path.join(staging, "DESIGNINFO.npy"), design_info)
    for name, file, wanted in zip(_MODELS, _FILES, files):
        if wanted and name in results:
            _save(os.path.join(staging, file), results[name])
            if progress:
                print(f"saved {os.path.join(os.fspath(folder.out), file)}", file=sys.stderr)


def _save(path, value):
    """``np.save`` of a pickled dict, as GLMsingle writes it, flushed to disk."""
    with open(path, "wb") as f:
        np.save(f, value, allow_pickle=True)
        f.flush()
        os.fsync(f.fileno())


__all__ = ["GLM_single"]
