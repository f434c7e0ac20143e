"""Full-size InceptionV3 conductance check: random weights, Captum goldens, optional veto run.

    .venv/bin/python weights_tools/check_conductance_full.py OUT_DIR [--veto build/veto]
        [--photos 2] [--rules paper,riemann_trapezoid,gausslegendre]
        [--captum-dtype float32|float64|none] [--no-float64-reference] [--reuse]

(from the repo root; .venv = Debian torch 1.13 + captum 0.7.0, see weights_tools/README.md.)

1. Model: inception_golden.py's torchvision pipeline at full size (d = 1, 299x299, K = 1000,
   seed 20240601, BN statistics randomized, fc calibrated on the 50 sample photos; the same
   weights as check_inception_full.py), converted by convert.py, on the first --photos of
   its photos (tench, American Staffordshire terrier, ...) preprocessed by torchvision:
     OUT/model.safetensors      the converted model (the file veto reads)
     OUT/inputs.npy             (N,3,299,299) float32
     OUT/framework_logits.npy   (N,1000) float32, torchvision's own model
2. References, n_steps = 10, baseline zeros, target = predicted class, all 11 mixed layers
   (Mixed_5b..Mixed_7c = mixed0..mixed10, 10,048 channels), per rule R; the layout of
   conductance_golden.py ((N, 10048) per-channel means over H,W, layers concatenated;
   (N, 11) deltas = sum over the layer's neurons - (F(x) - F(0))):
     OUT/captum_<dtype>_R.npy, OUT/captum_<dtype>_R_delta.npy
         Captum LayerConductance exactly as conductance_golden.py calls it, with the model
         in --captum-dtype (default float32: ~30 s a rule for 2 photos on 2 idle cores;
         float64 takes roughly 45-60 min for 3 rules: torch has no fast float64 CPU convolution)
     OUT/reimpl_float64_R.npy, OUT/reimpl_float64_R_delta.npy   (unless --no-float64-reference)
         the float64 re-implementation of conductance_golden.direct_conductance on Captum's
         own path points (one forward + one backward per point for all 11 layers at once;
         it equals Captum in float64 to ~1e-16 on the committed w8 fixtures); ~75 s a rule
     OUT/targets.npy (N,) float32, OUT/logits.npy (N,1000) float32 (the float64 model's)
   --reuse skips steps 1-2 for files already there.
3. With --veto PATH (the binary, or a folder holding `veto`), per rule:
     PATH attribute --model OUT/model.safetensors --input OUT/inputs.npy --layers all \\
         --steps 10 --rule R --out OUT/veto_R.safetensors
   and compares its F32 tensors conductance.mixed0..mixed10 (N,C), delta (N,11), logits
   (N,1000) and I64 prediction, target (N) with the references: per layer the worst relative
   L2 over images (||veto - ref|| / ||ref|| per image), pass at <= 1e-4 against the float64
   reference (Captum float64 if computed, else the re-implementation; else Captum float32;
   --tolerance changes 1e-4). The "float32 floor" column is Captum float32 against that
   float64 reference ("<= 3x floor": veto is within 3 times that, or the tolerance): n = 10
   Riemann sums over a ReLU net are discontinuous (a ReLU pre-activation that crosses 0 at a
   path point switches a gradient path), so a float32 engine can be off by about that much
   on a layer without being wrong. Exit status 1 if anything fails.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import conductance_golden as cg  # noqa: E402
import inception_golden  # noqa: E402
import inception_v3_torch as tmodel  # noqa: E402
import safetensors_io  # noqa: E402

SEED = 20240601
LAYERS = cg.INCEPTION_LAYERS
VETO_NAMES = cg.VETO_INCEPTION_NAMES
TOLERANCE = 1e-4


def make_model(out, photos):
    """inception_golden's torchvision pipeline at full size -> OUT/model.safetensors, inputs.npy."""
    inception_golden.main(["--variant", "torchvision", "--width-divisor", "1", "--input-size", "299",
                           "--classes", "1000", "--photos", str(photos), "--seed", str(SEED),
                           "--out-dir", out, "--flat-names"])
    for src, dst in (("torchvision.safetensors", "model.safetensors"), ("torchvision_inputs.npy", "inputs.npy"),
                     ("torchvision_logits.npy", "framework_logits.npy"),
                     ("torchvision_mixed0.npy", "framework_mixed0.npy"),
                     ("torchvision_mixed10.npy", "framework_mixed10.npy")):
        os.replace(os.path.join(out, src), os.path.join(out, dst))


def load_model(out):
    tensors, meta = safetensors_io.read(os.path.join(out, "model.safetensors"))
    k = tensors["fc.weight"].shape[0]
    model = tmodel.build(tensors, k, meta.get("transform_input", "false") == "true", int(meta["width_divisor"]))
    for p in model.parameters():
        p.requires_grad_(False)
    layers = [(n, getattr(model, n)) for n in LAYERS]
    return model, layers


def reference(model, layers, x, target, rule, kind):
    """(features (N, sum C), deltas (N, L)) float64 numpy from Captum or the re-implementation."""
    if kind == "captum":
        return cg.features(model, layers, x, target, rule)
    maps = cg.direct_conductance(model, [m for _, m in layers], x, target, rule, "captum")
    fx = cg.target_logit(model, x, target)
    f0 = cg.target_logit(model, torch.zeros_like(x), target)
    feats = torch.cat([m.mean(dim=(2, 3)) for m in maps], 1).numpy()
    delta = torch.stack([m.reshape(len(x), -1).sum(1) - (fx - f0) for m in maps], 1).numpy()
    return feats, delta


def compute_references(out, rules, captum_dtype, float64_ref, reuse):
    model, layers = load_model(out)
    x32 = torch.from_numpy(np.load(os.path.join(out, "inputs.npy")))
    model64 = model.double()
    x64 = x32.double()
    with torch.no_grad():
        logits64 = model64(x64)
    target = logits64.argmax(1)
    fw = np.load(os.path.join(out, "framework_logits.npy"))
    print(f"model.safetensors in PyTorch (float64) vs torchvision's float32 logits: worst-row relative L2 "
          f"{cg.rel_l2_rows(logits64.numpy(), fw).max():.2e}; targets {target.tolist()} "
          f"(torchvision argmax {fw.argmax(1).tolist()})")
    cg.save_npy(os.path.join(out, "targets.npy"), target.numpy().astype(np.float32))
    cg.save_npy(os.path.join(out, "logits.npy"), logits64.numpy().astype(np.float32))
    jobs = []
    if captum_dtype != "none":
        jobs.append(("captum", captum_dtype))
    if float64_ref:
        jobs.append(("reimpl", "float64"))
    for kind, dtype in jobs:
        m = model.to(torch.float64 if dtype == "float64" else torch.float32)
        x = x64 if dtype == "float64" else x32
        for rule in rules:
            stem = os.path.join(out, f"{kind}_{dtype}_{rule}")
            if reuse and os.path.exists(stem + ".npy") and os.path.exists(stem + "_delta.npy"):
                print(f"  {kind} {dtype} {rule}: reusing {stem}.npy")
                continue
            t0 = time.time()
            feats, delta = reference(m, layers, x, target, rule, kind)
            cg.save_npy(stem + ".npy", np.ascontiguousarray(feats, dtype=np.float32))
            cg.save_npy(stem + "_delta.npy", np.ascontiguousarray(delta, dtype=np.float32))
            print(f"  {kind} {dtype} {rule}: features {feats.shape}, max |value| {np.abs(feats).max():.4g}, "
                  f"|delta| max {np.abs(delta).max():.3g} (last layer {np.abs(delta[:, -1]).max():.2g}); "
                  f"{time.time() - t0:.0f} s")


def available_refs(out, rule):
    """{label: (features, deltas)} of the references on disk, best first."""
    refs = {}
    for kind, dtype in (("captum", "float64"), ("reimpl", "float64"), ("captum", "float32")):
        stem = os.path.join(out, f"{kind}_{dtype}_{rule}")
        if os.path.exists(stem + ".npy"):
            refs[f"{kind}_{dtype}"] = (np.load(stem + ".npy"), np.load(stem + "_delta.npy"))
    return refs


def channel_spans():
    import inception_v3_layout as layout
    chans = list(layout.block_out_channels(1).values())
    offs = np.cumsum([0] + chans)
    return chans, list(zip(offs[:-1], offs[1:]))


def print_reference_agreement(out, rules):
    chans, spans = channel_spans()
    for rule in rules:
        refs = available_refs(out, rule)
        if "captum_float32" in refs and len(refs) > 1:
            best = next(iter(refs))
            a, b = refs["captum_float32"][0], refs[best][0]
            per = [float(cg.rel_l2_rows(a[:, s:e], b[:, s:e]).max()) for s, e in spans]
            print(f"  {rule}: Captum float32 vs {best}, worst relative L2 per layer "
                  f"[{', '.join(f'{v:.1e}' for v in per)}]")


def run_veto(veto, out, rule):
    exe = os.path.join(veto, "veto") if os.path.isdir(veto) else veto
    dst = os.path.join(out, f"veto_{rule}.safetensors")
    cmd = [exe, "attribute", "--model", os.path.join(out, "model.safetensors"),
           "--input", os.path.join(out, "inputs.npy"), "--layers", "all", "--steps", "10",
           "--rule", rule, "--out", dst]
    print("$ " + " ".join(cmd))
    t0 = time.time()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        print(f"  cannot run veto: {e}")
        return None
    if r.returncode != 0:
        print(f"  veto failed (exit {r.returncode}):\n{r.stderr.strip()}")
        return None
    print(f"  {time.time() - t0:.1f} s")
    return safetensors_io.read(dst)[0]


def compare(out, rule, got, report, tolerance=TOLERANCE):
    """Prints the per-layer table for one rule; returns True if everything passes."""
    chans, spans = channel_spans()
    refs = available_refs(out, rule)
    if not refs:
        print(f"  no reference for {rule}")
        return False
    best = next(iter(refs))
    targets = np.load(os.path.join(out, "targets.npy")).astype(np.int64)
    logits_ref = np.load(os.path.join(out, "logits.npy"))
    n = len(targets)
    ok = True
    problems = []
    need = [f"conductance.{v}" for v in VETO_NAMES] + ["delta", "logits", "prediction", "target"]
    missing = [k for k in need if k not in got]
    if missing:
        print(f"  veto output lacks {missing}")
        return False
    for k, shape, dt in [(f"conductance.{v}", (n, c), np.float32) for v, c in zip(VETO_NAMES, chans)] + [
            ("delta", (n, len(VETO_NAMES)), np.float32), ("logits", logits_ref.shape, np.float32),
            ("prediction", (n,), np.int64), ("target", (n,), np.int64)]:
        if got[k].shape != shape or got[k].dtype != dt:
            problems.append(f"{k}: {got[k].dtype} {got[k].shape}, expected {np.dtype(dt)} {shape}")
    if problems:
        print("  " + "; ".join(problems))
        return False

    floor = refs.get("captum_float32") if best != "captum_float32" else None
    cols = [r for r in refs]
    print(f"  {'layer':<8} {'C':>5}  " + "  ".join(f"{'vs ' + r:>18}" for r in cols)
          + (f"  {'float32 floor':>13}  {'<= 3x floor':>11}" if floor else "")
          + f"  pass (<= {tolerance:g} vs {best})")
    rows = []
    for v, (s, e) in zip(VETO_NAMES, spans):
        g = got[f"conductance.{v}"]
        errs = {r: float(cg.rel_l2_rows(g, refs[r][0][:, s:e]).max()) for r in cols}
        fl = float(cg.rel_l2_rows(floor[0][:, s:e], refs[best][0][:, s:e]).max()) if floor else None
        passed = errs[best] <= tolerance
        near_floor = bool(floor) and errs[best] <= max(tolerance, 3 * fl)
        ok &= passed
        rows.append({"layer": v, "rel_l2": errs, "float32_floor": fl, "within_3x_floor": near_floor,
                     "pass": passed})
        print(f"  {v:<8} {e - s:>5}  " + "  ".join(f"{errs[r]:>18.2e}" for r in cols)
              + (f"  {fl:>13.2e}  {'yes' if near_floor else 'no':>11}" if floor else "")
              + f"  {'pass' if passed else 'FAIL'}")
    dref = refs[best][1]
    dd = np.abs(got["delta"].astype(np.float64) - dref)
    lg = float(cg.rel_l2_rows(got["logits"], logits_ref).max())
    same_pred = np.array_equal(got["prediction"], targets)
    same_target = np.array_equal(got["target"], targets)
    print(f"  delta: max |veto - {best}| {dd.max():.3g} (the reference's |delta| max {np.abs(dref).max():.3g}; "
          f"last layer {dd[:, -1].max():.3g}); logits worst-row relative L2 {lg:.2e}; "
          f"prediction == reference targets {same_pred}, target == {same_target}")
    ok &= same_pred and same_target and lg <= 3e-4
    report[rule] = {"reference": best, "layers": rows, "delta_max_abs_diff": float(dd.max()),
                    "logits_rel_l2": lg, "prediction_ok": bool(same_pred), "target_ok": bool(same_target),
                    "pass": bool(ok)}
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--veto", help="the veto binary (or its folder); without it only the references are made")
    ap.add_argument("--photos", type=int, default=2)
    ap.add_argument("--rules", default=",".join(cg.RULES))
    ap.add_argument("--captum-dtype", choices=("float32", "float64", "none"), default="float32")
    ap.add_argument("--no-float64-reference", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="keep model, inputs and references already in OUT_DIR")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--tolerance", type=float, default=TOLERANCE,
                    help="pass if the worst relative L2 per layer against the float64 reference is <= this")
    a = ap.parse_args(argv)
    rules = [r for r in a.rules.split(",") if r]
    for r in rules:
        if r not in cg.RULES:
            raise SystemExit(f"unknown rule {r!r}")
    out = os.path.abspath(a.out_dir)
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(a.threads)
    import captum
    print(f"torch {torch.__version__}, captum {captum.__version__}; out {out}")
    t0 = time.time()
    have = all(os.path.exists(os.path.join(out, f)) for f in ("model.safetensors", "inputs.npy", "framework_logits.npy"))
    if not (a.reuse and have):
        make_model(out, a.photos)
    compute_references(out, rules, a.captum_dtype, not a.no_float64_reference, a.reuse)
    print_reference_agreement(out, rules)
    print(f"references ready in {time.time() - t0:.0f} s")
    if not a.veto:
        return 0
    report, ok = {}, True
    for rule in rules:
        print(f"\nrule {rule}:")
        got = run_veto(a.veto, out, rule)
        ok &= got is not None and compare(out, rule, got, report, a.tolerance)
    with open(os.path.join(out, "veto_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"\n{'PASS' if ok else 'FAIL'} (report: {os.path.join(out, 'veto_report.json')})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
