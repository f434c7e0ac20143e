#!/usr/bin/python3
"""Side-by-side conductance throughput and peak memory: PyTorch + Captum vs veto, same inputs, one run.

    .venv/bin/python bench/compare_captum.py [--net inception_v3|resnet20] [--batch B] [--threads 2]
                                             [--veto build/veto] [--rule paper] [--no-veto]

The job: layer conductance of every target layer (InceptionV3: the 11 blocks Mixed_5b..Mixed_7c
= mixed0..mixed10; ResNet-20: the 9 residual block outputs layer1.0..layer3.2), n_steps = 10,
baseline zeros, target = the predicted class, for a batch of B images (default 4 for
InceptionV3, 64 for ResNet-20), on identical preprocessed inputs written to one .npy first.
  Captum, the way a user would write it: a forward for the predictions, then one
      LayerConductance(model, layer).attribute(x, baselines=zeros, target=predicted,
                                               n_steps=10, method="riemann_trapezoid")
      call per layer (each call re-runs the 11-point path through the network), model.eval(),
      torch.set_num_threads(T). One warm-up job, then the whole job (prediction + all layers)
      is timed once (--repeat R: median of R); images/s = B / seconds.
  veto: build/veto attribute --model M --input INPUTS.npy --layers all --steps 10 --rule paper
      --threads T --format json --out /tmp/...safetensors, whose JSON on stdout gives
      "images_per_second" (over the attribution work, after plan building) and "seconds";
      run once (--repeat R: median of R runs, each its own process).
Each side runs in its own process; peak RSS is that process's ru_maxrss (from wait4).
Agreement (proves both did the same job): Captum's left-point trapezoid is not veto's paper
rule, so veto is run once more with --rule riemann_trapezoid (same cost, Captum's nodes) and
its conductance.<layer> (N,C) is compared with the timed Captum result averaged over H,W: the
worst relative L2 over images and layers (with --rule riemann_trapezoid the timed run serves).
A float32 engine and float32 Captum can legitimately differ by ~1e-3..1e-2 per layer here (see
weights_tools/README.md, "Conductance goldens": n = 10 Riemann sums over a ReLU net are
discontinuous), so the agreement is printed, not asserted.

Models: resnet20 = the bundled models/resnet20.safetensors (both sides read that file) on the
first B records of data/cifar10_test_0-999.bin; inception_v3 = full size (299x299, K = 1000,
transform_input false) with seeded random weights from inception_v3_layout.random_weights
(randomized BN statistics, filters scaled so activations stay O(1); the init_weights model of
compare_pytorch.py grows to logits of ~1e13, useless for an agreement check), converted by
weights_tools/convert.py; PyTorch builds inception_v3_torch.InceptionV3 (bit-identical to
torchvision's Inception3) from that converted file; inputs seeded N(0,1) of 3x299x299.
Needs torch + captum (.venv, see weights_tools/README.md) and a built veto.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TOOLS = os.path.join(REPO, "weights_tools")
sys.path.insert(0, TOOLS)
sys.path.insert(0, HERE)
from compare_pytorch import cifar_batch, run_measured  # noqa: E402

RESNET_LAYERS = [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
INCEPTION_LAYERS = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                    "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
VETO_INCEPTION = [f"mixed{i}" for i in range(11)]
SEED = 20240601


def captum_worker(args):
    """Times the Captum job in this (child) process; prints JSON, saves the result."""
    import torch
    import captum
    from captum.attr import LayerConductance
    torch.set_num_threads(args.threads)
    if args.net == "resnet20":
        import cifar_resnet_torch
        model = cifar_resnet_torch.build(20, args.model)
        names = RESNET_LAYERS
    else:
        import inception_v3_torch
        import safetensors_io
        tensors, meta = safetensors_io.read(args.model)
        model = inception_v3_torch.build(tensors, tensors["fc.weight"].shape[0],
                                         meta.get("transform_input") == "true", int(meta["width_divisor"]))
        del tensors
        names = INCEPTION_LAYERS
    model.eval()
    layers = [model.get_submodule(n) for n in names]
    x = torch.from_numpy(np.load(args.inputs))

    def job():
        with torch.no_grad():
            target = model(x).argmax(1)
        zeros = torch.zeros_like(x)
        feats = []
        for layer in layers:
            a = LayerConductance(model, layer).attribute(x, baselines=zeros, target=target, n_steps=10,
                                                         method="riemann_trapezoid")
            feats.append(a.detach().mean(dim=(2, 3)))
        return target, feats

    for _ in range(args.warmup):
        job()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        target, feats = job()
        times.append(time.perf_counter() - t0)
    np.savez(args.result, target=target.numpy(), **{n: f.numpy() for n, f in zip(names, feats)})
    sec = statistics.median(times)
    print(json.dumps({"images_per_second": len(x) / sec, "seconds": sec, "times": times,
                      "torch": torch.__version__, "captum": captum.__version__}))


def prepare_inception(tmp):
    """Seeded random full-size InceptionV3 (torchvision names) converted for both sides."""
    import torch
    import inception_v3_layout
    weights = inception_v3_layout.random_weights(1, 1000, SEED, "torchvision")
    state = os.path.join(tmp, "inception_v3_state.pt")
    torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, state)
    converted = os.path.join(tmp, "inception_v3.safetensors")
    subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), "--arch", "inception_v3_torchvision",
                    "--transform-input", "false", "--upstream", f"random weights, inception_v3_layout seed {SEED}",
                    "--license", "benchmark model (random weights)", state, converted],
                   check=True, capture_output=True)
    return converted


def veto_features(path, names):
    import safetensors_io
    tensors, _ = safetensors_io.read(path)
    missing = [n for n in names if f"conductance.{n}" not in tensors]
    if missing:
        keys = sorted(k for k in tensors if k.startswith("conductance."))
        return None, f"veto output lacks conductance.{missing[0]} (has {keys[:4]}...)"
    return [tensors[f"conductance.{n}"] for n in names], None


def rel_l2_worst(a, b):
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    return float(np.max(np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)))


def run_veto(args, model, npy, rule, out):
    cmd = [args.veto, "attribute", "--model", model, "--input", npy, "--layers", "all", "--steps", "10",
           "--rule", rule, "--threads", str(args.threads), "--format", "json", "--out", out]
    text, mib = run_measured(cmd)
    return json.loads(text), mib


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", choices=["resnet20", "inception_v3"], default="inception_v3")
    ap.add_argument("--veto", default=os.path.join(REPO, "build", "veto"))
    ap.add_argument("--no-veto", action="store_true", help="run the Captum side only")
    ap.add_argument("--rule", default="paper", help="veto's rule for the timed run (default paper)")
    ap.add_argument("--data", default=os.path.join(REPO, "data", "cifar10_test_0-999.bin"))
    ap.add_argument("--batch", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1, help="Captum warm-up jobs (default 1)")
    ap.add_argument("--repeat", type=int, default=1, help="timed jobs per side (median; default 1)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return captum_worker(args)
    batch = args.batch or (64 if args.net == "resnet20" else 4)
    if not args.no_veto and not os.access(args.veto, os.X_OK):
        sys.exit(f"{args.veto}: no veto binary (build it, pass --veto PATH, or --no-veto for the Captum side only)")
    names = RESNET_LAYERS if args.net == "resnet20" else INCEPTION_LAYERS
    veto_names = RESNET_LAYERS if args.net == "resnet20" else VETO_INCEPTION

    with tempfile.TemporaryDirectory(prefix="veto_compare_captum_") as tmp:
        if args.net == "resnet20":
            model = os.path.join(REPO, "models", "resnet20.safetensors")
            x = cifar_batch(args.data, batch)
        else:
            model = prepare_inception(tmp)
            x = np.random.default_rng(1).standard_normal((batch, 3, 299, 299), dtype=np.float32)
        npy = os.path.join(tmp, f"inputs_{batch}.npy")
        np.save(npy, x)
        result = os.path.join(tmp, "captum.npz")
        print(f"{args.net} conductance, {len(names)} layers, n_steps 10, batch {batch}, {args.threads} threads; "
              f"Captum: warm-up {args.warmup} job, median of {args.repeat}; veto --rule {args.rule}, "
              f"median of {args.repeat} run(s)")
        text, captum_mib = run_measured([sys.executable, os.path.abspath(__file__), "--worker", "--net", args.net,
                                         "--model", model, "--inputs", npy, "--result", result,
                                         "--threads", str(args.threads), "--warmup", str(args.warmup),
                                         "--repeat", str(args.repeat)])
        cap = json.loads(text)
        got = np.load(result)
        captum_feats = [got[n] for n in names]
        print(f"Captum {cap['captum']} / torch {cap['torch']}: {cap['seconds']:.2f} s for the job "
              f"({cap['images_per_second']:.3f} img/s), peak RSS {captum_mib:.0f} MiB; "
              f"predictions {got['target'].tolist()[:8]}{'...' if batch > 8 else ''}")

        r = {"net": args.net, "batch": batch, "threads": args.threads, "layers": len(names), "n_steps": 10,
             "captum_images_per_second": cap["images_per_second"], "captum_seconds": cap["seconds"],
             "captum_peak_mib": captum_mib, "captum": cap["captum"], "torch": cap["torch"]}
        if not args.no_veto:
            runs = []
            for i in range(args.repeat):
                runs.append(run_veto(args, model, npy, args.rule, os.path.join(tmp, f"veto_{args.rule}.safetensors")))
            runs.sort(key=lambda t: t[0]["images_per_second"])
            veto_json, veto_mib = runs[len(runs) // 2]
            r.update(veto_rule=args.rule, veto_images_per_second=veto_json["images_per_second"],
                     veto_seconds=veto_json["seconds"], veto_peak_mib=veto_mib,
                     ratio=veto_json["images_per_second"] / cap["images_per_second"])
            if args.rule == "riemann_trapezoid":
                check = os.path.join(tmp, f"veto_{args.rule}.safetensors")
            else:
                check = os.path.join(tmp, "veto_riemann_trapezoid.safetensors")
                tj, _ = run_veto(args, model, npy, "riemann_trapezoid", check)
                r["veto_trapezoid_images_per_second"] = tj["images_per_second"]
            feats, err = veto_features(check, veto_names)
            if feats is None:
                print(f"agreement not checked: {err}")
            else:
                per = [rel_l2_worst(v, c) for v, c in zip(feats, captum_feats)]
                r["agreement_worst_rel_l2"] = max(per)
                r["agreement_per_layer"] = per
                print(f"agreement, veto --rule riemann_trapezoid vs the timed Captum result (mean over H,W): "
                      f"worst relative L2 {max(per):.2e}; per layer [{', '.join(f'{v:.1e}' for v in per)}]")

        print()
        print("| network | batch | Captum img/s | veto img/s | veto/Captum | peak MiB Captum / veto |")
        print("|---|---|---|---|---|---|")
        if args.no_veto:
            print(f"| {args.net} | {batch} | {cap['images_per_second']:.3g} | – | – | {captum_mib:.0f} / – |")
        else:
            print(f"| {args.net} | {batch} | {cap['images_per_second']:.3g} | {r['veto_images_per_second']:.3g} | "
                  f"{r['ratio']:.1f} | {captum_mib:.0f} / {r['veto_peak_mib']:.0f} |")
        print(json.dumps(r))


if __name__ == "__main__":
    main()
