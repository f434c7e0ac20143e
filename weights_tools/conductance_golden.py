"""Reference layer conductance from Captum (LayerConductance) -> small committed fixtures.

    .venv/bin/python weights_tools/conductance_golden.py            # from the repo root, ~1 min

(.venv = Debian's torch 1.13 + captum 0.7.0, see weights_tools/README.md "Conductance
goldens".) Options: --out-dir DIR (default tests/data/golden), --models a,b,... (default
all three), --check-only (compute and print, write nothing), --sensitivity (also measure how
well-posed the goldens are, ~10 min on 2 cores).

Models (all evaluated in float64: model.double(), inputs .double(); saved as float32):
  resnet20                      models/resnet20.safetensors, the first 4 rows of
                                tests/data/golden/resnet20_inputs_0-7.npy; layers: the 9
                                residual block outputs layer1.0 ... layer3.2 (after add+ReLU)
  inception_v3_torchvision_w8   tests/data/inception_v3_torchvision_w8.safetensors (d = 8,
                                139x139, K = 10, transform_input from its metadata), inputs
                                tests/data/golden/inception_v3_torchvision_w8_inputs.npy (2)
  inception_v3_keras_w8         tests/data/inception_v3_keras_w8.safetensors run by the same
                                PyTorch module code with the Keras rules (branch_pool
                                avg_pool count_include_pad=False, no transform_input); only
                                written if its float32 logits reproduce the committed TF
                                golden inception_v3_keras_w8_logits.npy
  InceptionV3 layers: Mixed_5b ... Mixed_7c (= veto's mixed0 ... mixed10).

Target: the predicted class (argmax of the float64 logits). n_steps = 10, baseline zeros.
Rules:
  riemann_trapezoid, gausslegendre:
      LayerConductance(model, layer).attribute(x, baselines=0*x, target=t, n_steps=10,
                                               method=m, return_convergence_delta=True)
      delta = Captum's convergence delta (sum over the layer's neurons - (F(x) - F(0))).
  paper: -LayerConductance(model, layer).attribute(inputs=0*x, baselines=x, target=t,
                                                   n_steps=10, method="riemann_trapezoid")
      (the reversed path: Captum's left-point gradient along x -> 0 is the paper's
      right-point gradient along 0 -> x, METHOD.md section 1);
      delta = sum over all neurons of that (negated) attribution - (F(x) - F(0)).
Writes, per model M and rule R, into --out-dir:
  conductance_M_R.npy        (N, sum C) float32: per image the layers concatenated in the
                             order above, each layer's attribution averaged over H and W
  conductance_M_R_delta.npy  (N, L) float32: the delta per image and layer
  conductance_M_targets.npy  (N,) float32: the target classes
Self-checks (printed, asserted): Captum's toy model (METHOD.md section 1); the model's
float32 logits against the committed framework goldens; an independent re-implementation
of the three rules from forward hooks (one backward per path point serving all layers) on
Captum's own path points, against Captum (agree to ~1e-16). With --sensitivity (reported
only): the same with exact nodes k/n, a 1e-7 relative input perturbation, and float32.
"""

import argparse
import contextlib
import functools
import os
import sys
import time
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import cifar_resnet_torch  # noqa: E402
import inception_v3_torch as tmodel  # noqa: E402
import safetensors_io  # noqa: E402

RULES = ("paper", "riemann_trapezoid", "gausslegendre")
N_STEPS = 10
RESNET_LAYERS = tuple(f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3))
INCEPTION_LAYERS = tuple(tmodel.BLOCK_NAMES)            # Mixed_5b ... Mixed_7c
VETO_INCEPTION_NAMES = tuple(f"mixed{i}" for i in range(11))
GOLDEN = os.path.join(REPO, "tests", "data", "golden")
MODELS = ("resnet20", "inception_v3_torchvision_w8", "inception_v3_keras_w8")


def save_npy(path, arr):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npy"
    np.save(tmp, arr)
    os.replace(tmp, path)


def rel_l2_rows(a, b):
    """Per-row ||a - b|| / ||b|| (rows = first axis), float64."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    return np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(b, axis=1), 1e-300)


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def keras_avg_pool():
    """inception_v3_torch's blocks call F.avg_pool2d(x, 3, stride 1, padding 1) with torch's
    default count_include_pad=True (torchvision). Keras' AveragePooling2D(padding='same')
    divides by the in-image cells only: swap the module's F for one with
    count_include_pad=False while the model runs (autograd records the op as called, so the
    backward needs no patch)."""
    shim = types.ModuleType("torch_nn_functional_keras_pool")
    shim.__dict__.update(vars(F))
    shim.avg_pool2d = functools.partial(F.avg_pool2d, count_include_pad=False)
    saved = tmodel.F
    tmodel.F = shim
    try:
        yield
    finally:
        tmodel.F = saved


class KerasPoolInception(nn.Module):
    """inception_v3_torch.InceptionV3 run with the Keras average-pool rule."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        with keras_avg_pool():
            return self.net(x)


def load_resnet20():
    model = cifar_resnet_torch.build(20, os.path.join(REPO, "models", "resnet20.safetensors"))
    x = np.load(os.path.join(GOLDEN, "resnet20_inputs_0-7.npy"))[:4]
    ref = np.load(os.path.join(GOLDEN, "resnet20_logits_0-999.npy"))[:4]
    layers = [(n, model.get_submodule(n)) for n in RESNET_LAYERS]
    return model, layers, x, ref, "PyTorch golden_cifar.py"


def load_inception(variant):
    path = os.path.join(REPO, "tests", "data", f"inception_v3_{variant}_w8.safetensors")
    tensors, meta = safetensors_io.read(path)
    if meta.get("variant") != variant:
        raise SystemExit(f"{path}: variant {meta.get('variant')!r}, expected {variant!r}")
    d = int(meta["width_divisor"])
    transform_input = meta.get("transform_input", "false") == "true"
    k = tensors["fc.weight"].shape[0]
    net = tmodel.build(tensors, k, transform_input, d)
    model = net if variant == "torchvision" else KerasPoolInception(net).eval()
    x = np.load(os.path.join(GOLDEN, f"inception_v3_{variant}_w8_inputs.npy"))[:2]
    ref = np.load(os.path.join(GOLDEN, f"inception_v3_{variant}_w8_logits.npy"))[:2]
    layers = [(n, getattr(net, n)) for n in INCEPTION_LAYERS]
    src = "torchvision" if variant == "torchvision" else "TensorFlow/Keras"
    print(f"  {os.path.relpath(path, REPO)}: variant {variant}, width_divisor {d}, "
          f"transform_input {transform_input}, K {k}, avg-pool count_include_pad {variant == 'torchvision'}")
    return model, layers, x, ref, src


# ---------------------------------------------------------------------------
# conductance
# ---------------------------------------------------------------------------

def target_logit(model, x, target):
    with torch.no_grad():
        return model(x).gather(1, target.view(-1, 1)).squeeze(1)


def captum_conductance(model, layer, x, target, rule, n_steps=N_STEPS):
    """(attribution (N,C,H,W), delta (N,)) for one layer and rule, as the module docstring says."""
    from captum.attr import LayerConductance
    lc = LayerConductance(model, layer)
    zeros = torch.zeros_like(x)
    if rule == "paper":
        attr = -lc.attribute(inputs=zeros, baselines=x, target=target, n_steps=n_steps,
                             method="riemann_trapezoid")
        fx, f0 = target_logit(model, x, target), target_logit(model, zeros, target)
        delta = attr.reshape(len(x), -1).sum(1) - (fx - f0)
    else:
        attr, delta = lc.attribute(x, baselines=zeros, target=target, n_steps=n_steps, method=rule,
                                   return_convergence_delta=True)
    return attr.detach(), delta.detach()


def features(model, layers, x, target, rule, n_steps=N_STEPS, full=False):
    """(N, sum C) per-channel means over H,W, (N, L) deltas; with full=True also the maps."""
    feats, deltas, maps = [], [], []
    for _, layer in layers:
        attr, delta = captum_conductance(model, layer, x, target, rule, n_steps)
        feats.append(attr.mean(dim=(2, 3)) if attr.dim() == 4 else attr)
        deltas.append(delta)
        if full:
            maps.append(attr)
    out = torch.cat(feats, 1).numpy(), torch.stack(deltas, 1).numpy()
    return out + (maps,) if full else out


def path_points(x, rule, nodes="exact", n_steps=N_STEPS):
    """(path points ordered from the baseline 0 to x, gradient point) of the
    re-implementation. nodes="exact": x_k = (k/n) x and the Gauss-Legendre nodes
    0.5 (1 + leggauss(n+1)), as METHOD.md section 1 states them. nodes="captum": the
    points exactly as Captum 0.7 forms them, baseline + alpha (input - baseline) with its
    alphas: torch.linspace(0, 1, n+1).tolist() for riemann_trapezoid (float32 values, so
    0.1 is 0.10000000149), the same leggauss nodes for gausslegendre; for the paper rule
    (Captum's reversed path) x + alpha (0 - x)."""
    n = n_steps
    if rule == "gausslegendre":
        return [float(a) * x for a in 0.5 * (1.0 + np.polynomial.legendre.leggauss(n + 1)[0])], "left"
    if nodes == "exact":
        pts = [(k / n) * x for k in range(n + 1)]
    elif rule == "paper":
        pts = [x + a * (torch.zeros_like(x) - x) for a in reversed(torch.linspace(0, 1, n + 1).tolist())]
    else:
        pts = [a * x for a in torch.linspace(0, 1, n + 1).tolist()]
    if rule == "paper":
        return pts, "right"
    if rule == "riemann_trapezoid":
        return pts, "left"
    raise ValueError(rule)


def direct_conductance(model, modules, x, target, rule, nodes="exact", n_steps=N_STEPS):
    """Independent of Captum: for each path point, one forward with hooks on every target
    layer and one backward of the target logit to all of them at once; then
    sum_j dF/dA(x_j) (A(x_{j+1}) - A(x_j)) (left point) or
    sum_k dF/dA(x_k) (A(x_k) - A(x_{k-1})) (right point, the paper rule).
    Returns one (N,C,H,W) tensor per module."""
    points, where = path_points(x, rule, nodes, n_steps)
    acts, grads = [], []
    for p in points:
        outs = [None] * len(modules)
        hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: outs.__setitem__(i, out))
                 for i, m in enumerate(modules)]
        try:
            logits = model(p.detach().requires_grad_(True))
        finally:
            for h in hooks:
                h.remove()
        g = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), outs)
        acts.append([o.detach() for o in outs])
        grads.append([t.detach() for t in g])
    res = []
    for i in range(len(modules)):
        if where == "left":
            s = sum(grads[j][i] * (acts[j + 1][i] - acts[j][i]) for j in range(n_steps))
        else:
            s = sum(grads[k][i] * (acts[k][i] - acts[k - 1][i]) for k in range(1, n_steps + 1))
        res.append(s)
    return res


# ---------------------------------------------------------------------------
# Captum's toy check (test_layer_conductance.py)
# ---------------------------------------------------------------------------

class BasicModelMultiLayer(nn.Module):
    """Captum's tests/helpers BasicModel_MultiLayer (the parts its layer-conductance test uses)."""

    def __init__(self):
        super().__init__()
        self.linear0 = nn.Linear(3, 3)
        self.linear1 = nn.Linear(3, 4)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(4, 2)
        with torch.no_grad():
            self.linear0.weight.copy_(torch.eye(3))
            self.linear0.bias.zero_()
            self.linear1.weight.fill_(1.0)
            self.linear1.bias.copy_(torch.tensor([-10.0, 1.0, 1.0, 1.0]))
            self.linear2.weight.fill_(1.0)
            self.linear2.bias.copy_(torch.tensor([-1.0, 1.0]))  # class 1's bias is unused (target 0)

    def forward(self, x):
        return self.linear2(self.relu(self.linear1(self.linear0(x))))


TOY_EXPECTED = {"paper": [90.0, 100.0, 100.0, 100.0], "riemann_trapezoid": [80.0, 100.0, 100.0, 100.0],
                "gausslegendre": [85.419, 97.823, 97.823, 97.823]}


def toy_check():
    """Asserted in float32 (Captum's own test); float64 printed, see the note below."""
    print("Captum toy check (BasicModel_MultiLayer, x = [0,100,0], target 0, layer linear1, n = 10):")
    ok = True
    for dtype in (torch.float32, torch.float64):
        model = BasicModelMultiLayer().to(dtype).eval()
        x = torch.tensor([[0.0, 100.0, 0.0]], dtype=dtype)
        t = torch.tensor([0])
        for rule in RULES:
            attr, delta = captum_conductance(model, model.linear1, x, t, rule)
            direct = direct_conductance(model, [model.linear1], x, t, rule, "exact")[0]
            got, dg = attr[0].tolist(), direct[0].tolist()
            tag = "float32" if dtype == torch.float32 else "float64"
            close = np.allclose(got, TOY_EXPECTED[rule], atol=1e-3)
            close_direct = np.allclose(dg, TOY_EXPECTED[rule], atol=1e-3)
            kink = dtype == torch.float64 and rule != "gausslegendre"
            verdict = "ok" if close else ("Captum differs: the kink, see below" if kink else "DIFFERS")
            print(f"  {tag} {rule:<18} Captum [{', '.join(f'{v:.4f}' for v in got)}] delta {float(delta[0]):+.4g}"
                  f"   re-implementation (exact nodes) [{', '.join(f'{v:.4f}' for v in dg)}]"
                  f"   expected {TOY_EXPECTED[rule]}: {verdict}"
                  f"{'' if close_direct else '; re-implementation DIFFERS'}")
            if dtype == torch.float32 or rule == "gausslegendre":
                ok &= close and close_direct
            else:
                ok &= close_direct
    print("  (float64: the ReLU of neuron 0 has its kink exactly at node 1/10 of the path; Captum's "
          "riemann nodes are torch.linspace(0, 1, 11) in float32, so 0.1 becomes 0.10000000149 and "
          "the node lands past the kink: trapezoid 89.99999985 instead of 80, reversed 100 instead of 90)")
    if not ok:
        raise SystemExit("toy check failed")


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------

def run_model(name, out_dir, write, sensitivity):
    t0 = time.time()
    print(f"\n{name}:")
    if name == "resnet20":
        model, layers, x32, ref, src = load_resnet20()
    else:
        model, layers, x32, ref, src = load_inception(name.split("_")[2])
    for p in model.parameters():
        p.requires_grad_(False)   # only data gradients are needed

    x = torch.from_numpy(np.ascontiguousarray(x32))
    with torch.no_grad():
        logits32 = model(x).numpy()
    err = rel_l2_rows(logits32, ref)
    print(f"  inputs {tuple(x.shape)}; float32 logits vs {src} golden: worst-row relative L2 {err.max():.2e}, "
          f"argmax {logits32.argmax(1).tolist()} (golden {ref.argmax(1).tolist()})")
    if err.max() > 2e-4 or not np.array_equal(logits32.argmax(1), ref.argmax(1)):
        if name == "inception_v3_keras_w8":
            print("  SKIPPED: the PyTorch Keras-variant logits do not reproduce the TF golden")
            return None
        raise SystemExit(f"{name}: the model does not reproduce its golden logits")

    model64 = model.double()
    x64 = x.double()
    with torch.no_grad():
        logits64 = model64(x64)
    target = logits64.argmax(1)
    top2 = torch.topk(logits64, 2, dim=1).values
    print(f"  float64 logits vs float32: max |d| {np.abs(logits64.numpy() - logits32).max():.2e}; "
          f"target (float64 argmax) {target.tolist()}, top-1/top-2 margins "
          f"{[round(float(m), 4) for m in (top2[:, 0] - top2[:, 1])]}")
    if not np.array_equal(target.numpy(), logits32.argmax(1)):
        raise SystemExit(f"{name}: float32 and float64 predictions differ")
    f_gap = (target_logit(model64, x64, target) - target_logit(model64, torch.zeros_like(x64), target)).numpy()
    print(f"  F(x) - F(0) per image: {[round(float(v), 4) for v in f_gap]}")

    names = [n for n, _ in layers]
    modules = [m for _, m in layers]
    results = {}
    for rule in RULES:
        feats, delta, maps = features(model64, layers, x64, target, rule, full=True)
        worst = max(float(rel_l2_rows(m, d).max()) for m, d in
                    zip(maps, direct_conductance(model64, modules, x64, target, rule, "captum")))
        exact = (max(float(rel_l2_rows(m, d).max()) for m, d in
                     zip(maps, direct_conductance(model64, modules, x64, target, rule, "exact")))
                 if sensitivity else None)
        sums = torch.stack([m.reshape(len(x64), -1).sum(1) for m in maps], 1).numpy()
        results[rule] = (feats, delta)
        chans = [m.shape[1] for m in maps]
        print(f"  {rule:<18} features {feats.shape}, max |value| {np.abs(feats).max():.4g}; "
              f"|delta| max {np.abs(delta).max():.3g} (relative to |F(x)-F(0)| "
              f"{(np.abs(delta) / np.abs(f_gap)[:, None]).max():.3g}), last layer {np.abs(delta[:, -1]).max():.2g}")
        print(f"      Captum vs re-implementation (full maps, worst relative L2): same nodes {worst:.1e}"
              + (f", exact nodes k/n {exact:.1e}" if sensitivity else ""))
        print(f"      per layer: channels {chans}; sum over neurons / (F(x)-F(0)), image 0: "
              f"[{', '.join(f'{v:.3f}' for v in sums[0] / f_gap[0])}]")
        if worst > 1e-9:
            raise SystemExit(f"{name} {rule}: Captum and the re-implementation differ ({worst:.2e})")

    if write:
        for rule, (feats, delta) in results.items():
            for suffix, arr in (("", feats), ("_delta", delta)):
                p = os.path.join(out_dir, f"conductance_{name}_{rule}{suffix}.npy")
                save_npy(p, np.ascontiguousarray(arr, dtype=np.float32))
        p = os.path.join(out_dir, f"conductance_{name}_targets.npy")
        save_npy(p, target.numpy().astype(np.float32))
        print(f"  wrote conductance_{name}_{{{','.join(RULES)}}}{{,_delta}}.npy and conductance_{name}_targets.npy "
              f"to {os.path.relpath(out_dir, REPO) if out_dir.startswith(REPO) else out_dir}")

    # How well-posed the goldens are: a relative input perturbation of 1e-7 in float64 and
    # Captum in float32. n = 10 Riemann sums over a ReLU net are discontinuous in x (a ReLU
    # whose pre-activation at a path point crosses 0 switches a whole gradient path), so a
    # float32 engine can legitimately differ from these float64 goldens on some layers.
    offs = np.cumsum([0] + chans)
    spans = list(zip(offs[:-1], offs[1:]))
    if not sensitivity:
        print(f"  layers {names}; {time.time() - t0:.1f} s")
        return results
    gen = torch.Generator().manual_seed(0)
    xp = x64 * (1 + 1e-7 * torch.randn(x64.shape, generator=gen, dtype=torch.float64))
    for rule in RULES:
        fp, _ = features(model64, layers, xp, target, rule)
        f64 = results[rule][0]
        per_layer = [float(rel_l2_rows(fp[:, a:b], f64[:, a:b]).max()) for a, b in spans]
        print(f"  float64, input x (1 + 1e-7 N(0,1)) vs golden, {rule:<18}: worst relative L2 per layer "
              f"[{', '.join(f'{v:.1e}' for v in per_layer)}]")
    model.float()
    for rule in RULES:
        f32, _ = features(model, layers, x, target, rule)
        f64 = results[rule][0]
        per_layer = [float(rel_l2_rows(f32[:, a:b], f64[:, a:b]).max()) for a, b in spans]
        print(f"  float32 Captum vs float64 golden,             {rule:<18}: worst relative L2 per layer "
              f"[{', '.join(f'{v:.1e}' for v in per_layer)}]")

    print(f"  layers {names}; {time.time() - t0:.1f} s")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=GOLDEN)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--check-only", action="store_true", help="compute and print, write nothing")
    ap.add_argument("--sensitivity", action="store_true",
                    help="also: re-implementation with exact nodes k/n, float64 with the input perturbed by "
                         "1e-7 (relative), and Captum in float32, each against the golden, per layer")
    a = ap.parse_args(argv)
    import captum
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    print(f"torch {torch.__version__}, captum {captum.__version__}, numpy {np.__version__}; "
          f"n_steps {N_STEPS}, baseline zeros, target = predicted class")
    toy_check()
    for name in filter(None, a.models.split(",")):
        if name not in MODELS:
            raise SystemExit(f"unknown model {name!r} (choose from {', '.join(MODELS)})")
        run_model(name, os.path.abspath(a.out_dir), not a.check_only, a.sensitivity)
    return 0


if __name__ == "__main__":
    sys.exit(main())
