#!/usr/bin/python3
"""Side-by-side Label Change Rate throughput and peak memory: veto fast path, veto --naive and PyTorch, one run.

    /usr/bin/python3 bench/compare_lcr.py [--net resnet20|inception_v3] [--veto build/veto]
                                           [--mutants FILE] [--count M] [--images B] [--batch N]
                                           [--threads 2]

The job: LCR(x) = #{mutants m : argmax F_m(x) != argmax F(x)} / M for B images over M NAI
mutants (every drawn conv filter negated), on identical preprocessed inputs written to one
.npy first, in batches of N images, with T threads.
  veto fast:  build/veto lcr --model MODEL --mutants FILE --input INPUTS.npy --batch N
              --threads T --format json (per batch the original forward once, then each mutant
              applied in place as a sparse delta and only the graph downstream of its changed
              filters recomputed);
  veto naive: the same with --naive (a copy of the model per mutant, all weights re-read, a
              full forward). Both report "seconds" (input loading + original and mutant
              forwards, plan building included; model and mutant file loading excluded).
  PyTorch, the way a user would write it: model.eval(), torch.set_num_threads(T),
      torch.no_grad(); original predictions batch by batch; then for every mutant
      m = copy.deepcopy(model), its filters set (m.get_parameter(layer + ".weight")[filter]
      = values), and a forward over all B images in batches of N, argmax compared with the
      original. One warm-up forward of one batch, then the whole job (original forwards,
      deepcopies, edits, mutant forwards) is timed once.
images/s = B / seconds; mutant forwards/s = B x M / seconds. Each side runs in its own
process; peak RSS is that process's ru_maxrss (from wait4). The script prints a table and the
ratios fast / naive and fast / PyTorch (> 1: the fast path is faster), with a warning when the
1-minute load average before or after exceeds the CPU count (another job shared the cores; the
timings then mean little, the agreement still holds).
Agreement: the three must give the same LCR per image; the number of images whose label
change count differs between any two of them is printed (float differences between engines
may flip a near-tied argmax in rare cases), and the script fails only when it exceeds 1% of
the images.

resnet20 (default; --images 256 --batch 64 --count 100): the bundled models/resnet20.safetensors
on the first B records of data/cifar10_test_0-999.bin (both sides read that file; PyTorch is
weights_tools/cifar_resnet_torch.py). The mutant set, unless --mutants FILE is given, comes
from veto itself:
    build/veto mutants build --model resnet20 --data data/cifar10_test_0-999.bin --limit 500
                             --gamma 0.01 --count M --seed 0 --out TMP/resnet20_nai.safetensors
(NAI, acceptance: accuracy > 0.9 x the model's on those 500 records); PyTorch reads the
edits from that file (weights_tools/safetensors_io.py).
inception_v3 (--images 4 --batch 2 --count 8): full size (299x299, K = 1000, transform_input
false) with the seeded random weights of compare_captum.py (inception_v3_layout.random_weights,
activations O(1); compare_pytorch.py's init_weights model reaches logits of ~1e13, where
argmax agreement means little), converted by weights_tools/convert.py; PyTorch builds
inception_v3_torch.InceptionV3 (bit-identical to torchvision's) from that file; inputs seeded
N(0,1). There are no labelled ImageNet inputs for acceptance, so the script writes the mutant
file itself, in veto-mutants/1 format: M NAI mutants, each negating round(0.002 x all conv
filters) filters drawn uniformly without replacement (numpy default_rng(0)), no acceptance
(accept_ratio 0, acceptance_count 0, correct -1), model_fingerprint from
`veto info --format json`.
Needs torch (Debian python3-torch; torchvision only through convert.py's deps) and a built veto.
"""
import argparse
import copy
import json
import os
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

INCEPTION_GAMMA = 0.002
RESNET_GAMMA = 0.01


def read_mutants(path):
    """A veto-mutants/1 file -> [[(layer, filter, values (flat float32)), ...] per mutant]."""
    import safetensors_io
    t, meta = safetensors_io.read(path)
    if meta.get("format") != "veto-mutants/1":
        sys.exit(f"{path}: not a veto mutant file (format {meta.get('format')!r})")
    layers = json.loads(meta["layers"])
    offsets, edit_layer, edit_filter = t["edit_offsets"], t["edit_layer"], t["edit_filter"]
    sizes, values = t["layer_filter_size"], t["values"]
    mutants, at = [], 0
    for m in range(len(offsets) - 1):
        edits = []
        for e in range(int(offsets[m]), int(offsets[m + 1])):
            size = int(sizes[edit_layer[e]])
            edits.append((layers[edit_layer[e]], int(edit_filter[e]), values[at:at + size]))
            at += size
        mutants.append(edits)
    if at != len(values):
        sys.exit(f"{path}: the edits use {at} of {len(values)} values")
    return mutants


def write_nai_mutants(model_path, out, count, gamma, seed, fingerprint, conv_layers):
    """M NAI mutants of the model file (no acceptance) in the format of veto's save_mutant_set."""
    import safetensors_io
    weights, _ = safetensors_io.read(model_path)
    filters = [(name, f) for name in conv_layers for f in range(weights[name + ".weight"].shape[0])]
    per_mutant = max(1, int(round(gamma * len(filters))))
    rng = np.random.default_rng(seed)
    layers, index, sizes = [], {}, []
    offsets, edit_layer, edit_filter, values = [0], [], [], []
    order = {name: i for i, name in enumerate(conv_layers)}  # edits in graph order, then filter
    for _ in range(count):
        chosen = sorted((filters[i] for i in rng.choice(len(filters), per_mutant, replace=False)),
                        key=lambda lf: (order[lf[0]], lf[1]))
        for name, f in chosen:
            if name not in index:
                index[name] = len(layers)
                layers.append(name)
                sizes.append(weights[name + ".weight"][0].size)
            edit_layer.append(index[name])
            edit_filter.append(f)
            values.append(-weights[name + ".weight"][f].reshape(-1))
        offsets.append(len(edit_layer))
    i64 = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    tensors = {"draw": i64(range(count)), "correct": i64([-1] * count), "edit_offsets": i64(offsets),
               "edit_layer": i64(edit_layer), "edit_filter": i64(edit_filter), "layer_filter_size": i64(sizes),
               "values": np.concatenate(values).astype(np.float32)}
    meta = {"format": "veto-mutants/1", "model": model_path, "arch": "inception_v3",
            "model_fingerprint": fingerprint, "operator": "nai", "gamma": repr(float(gamma)), "seed": str(seed),
            "scope": "[]", "filters_per_mutant": str(per_mutant), "accept_ratio": "0",
            "acceptance_data": "none (bench/compare_lcr.py: numpy default_rng draws, no acceptance)",
            "acceptance_count": "0", "original_accuracy": "0", "draws": str(count), "rejected": "0",
            "count": str(count), "layers": json.dumps(layers)}
    safetensors_io.write(out, tensors, meta)
    return per_mutant, len(filters)


def torch_worker(args):
    """Times the PyTorch LCR job in this (child) process; prints JSON."""
    import torch
    torch.set_num_threads(args.threads)
    if args.net == "resnet20":
        import cifar_resnet_torch
        model = cifar_resnet_torch.build(20, args.model)
    else:
        import inception_v3_torch
        import safetensors_io
        tensors, meta = safetensors_io.read(args.model)
        model = inception_v3_torch.build(tensors, tensors["fc.weight"].shape[0],
                                         meta.get("transform_input") == "true", int(meta["width_divisor"]))
        del tensors
    model.eval()
    mutants = read_mutants(args.mutants)
    x = torch.from_numpy(np.load(args.inputs))
    batches = [x[i:i + args.batch] for i in range(0, len(x), args.batch)]

    def predict(m):
        return torch.cat([m(b).argmax(1) for b in batches])

    with torch.no_grad():
        model(batches[0])  # warm-up
        t0 = time.perf_counter()
        original = predict(model)
        changes = torch.zeros(len(x), dtype=torch.int64)
        for edits in mutants:
            m = copy.deepcopy(model)
            for layer, f, values in edits:
                w = m.get_parameter(layer + ".weight")
                w[f].copy_(torch.from_numpy(values).view_as(w[f]))
            changes += (predict(m) != original).long()
            del m
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "predicted": original.tolist(), "changes": changes.tolist(),
                      "torch": torch.__version__}))


def veto_json(cmd):
    text, mib = run_measured(cmd)
    return json.loads(text), mib


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", choices=["resnet20", "inception_v3"], default="resnet20")
    ap.add_argument("--veto", default=os.path.join(REPO, "build", "veto"))
    ap.add_argument("--data", default=os.path.join(REPO, "data", "cifar10_test_0-999.bin"))
    ap.add_argument("--mutants", help="an existing veto mutant file for this model (default: build one)")
    ap.add_argument("--count", type=int, help="mutants to build (default 100 resnet20, 8 inception_v3)")
    ap.add_argument("--images", type=int, help="inputs B (default 256 resnet20, 4 inception_v3)")
    ap.add_argument("--batch", type=int, help="images per forward (default 64 resnet20, 2 inception_v3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return torch_worker(args)
    resnet = args.net == "resnet20"
    count = args.count or (100 if resnet else 8)
    images = args.images or (256 if resnet else 4)
    batch = args.batch or (64 if resnet else 2)
    if not os.access(args.veto, os.X_OK):
        sys.exit(f"{args.veto}: no veto binary (build it or pass --veto PATH)")

    with tempfile.TemporaryDirectory(prefix="veto_compare_lcr_") as tmp:
        if resnet:
            model = os.path.join(REPO, "models", "resnet20.safetensors")
            x = cifar_batch(args.data, images)
        else:
            from compare_captum import prepare_inception
            model = prepare_inception(tmp)
            x = np.random.default_rng(1).standard_normal((images, 3, 299, 299), dtype=np.float32)
        npy = os.path.join(tmp, f"inputs_{images}.npy")
        np.save(npy, x)

        mutants = args.mutants
        if mutants:
            how = f"from {mutants}"
        elif resnet:
            mutants = os.path.join(tmp, "resnet20_nai.safetensors")
            cmd = [args.veto, "mutants", "build", "--model", "resnet20", "--data", args.data, "--limit", "500",
                   "--gamma", str(RESNET_GAMMA), "--count", str(count), "--seed", "0", "--threads",
                   str(args.threads), "--out", mutants, "--format", "json"]
            t0 = time.perf_counter()
            built, _ = veto_json(cmd)
            how = (f"veto mutants build: {built['count']} accepted of {built['draws']} draws, "
                   f"{built['filters_per_mutant']} filters each, {time.perf_counter() - t0:.1f} s")
        else:
            info, _ = veto_json([args.veto, "info", "--model", model, "--format", "json"])
            if "fingerprint" not in info:
                sys.exit("veto info --format json prints no fingerprint: cannot write a mutant file veto accepts")
            convs = [l["name"] for l in info["layers"] if l["op"] == "conv2d"]
            mutants = os.path.join(tmp, "inception_v3_nai.safetensors")
            per, total = write_nai_mutants(model, mutants, count, INCEPTION_GAMMA, 0, info["fingerprint"], convs)
            how = f"written here: {count} NAI mutants, {per} of {total} filters each, no acceptance"
        count = len(read_mutants(mutants))
        print(f"{args.net} LCR, {images} images, {count} mutants ({how}), batch {batch}, {args.threads} threads")
        load_before = os.getloadavg()[0]

        common = ["lcr", "--model", model, "--mutants", mutants, "--input", npy, "--batch", str(batch),
                  "--threads", str(args.threads), "--format", "json"]
        fast, fast_mib = veto_json([args.veto] + common)
        naive, naive_mib = veto_json([args.veto] + common + ["--naive"])
        text, torch_mib = run_measured([sys.executable, os.path.abspath(__file__), "--worker", "--net", args.net,
                                        "--model", model, "--mutants", mutants, "--inputs", npy,
                                        "--batch", str(batch), "--threads", str(args.threads)])
        pt = json.loads(text)
        load_after = os.getloadavg()[0]

    forwards = images * count
    sides = {"veto fast": (fast["seconds"], fast_mib), "veto naive": (naive["seconds"], naive_mib),
             f"PyTorch {pt['torch']}": (pt["seconds"], torch_mib)}
    changes = {"fast": [r["changes"] for r in fast["images"]], "naive": [r["changes"] for r in naive["images"]],
               "pytorch": pt["changes"]}
    predicted = {"fast": [r["predicted"] for r in fast["images"]], "naive": [r["predicted"] for r in naive["images"]],
                 "pytorch": pt["predicted"]}
    differ = {}
    for a, b in (("fast", "naive"), ("fast", "pytorch"), ("naive", "pytorch")):
        differ[f"{a}/{b}"] = int(sum(u != v for u, v in zip(changes[a], changes[b])))
        differ[f"{a}/{b} predictions"] = int(sum(u != v for u, v in zip(predicted[a], predicted[b])))

    print(f"{'side':<16} {'seconds':>9} {'images/s':>10} {'mutant fwd/s':>13} {'peak MiB':>9}")
    for name, (sec, mib) in sides.items():
        print(f"{name:<16} {sec:>9.2f} {images / sec:>10.2f} {forwards / sec:>13.1f} {mib:>9.0f}")
    r = {"net": args.net, "images": images, "mutants": count, "batch": batch, "threads": args.threads,
         "fast_seconds": fast["seconds"], "naive_seconds": naive["seconds"], "pytorch_seconds": pt["seconds"],
         "fast_images_per_second": images / fast["seconds"], "naive_images_per_second": images / naive["seconds"],
         "pytorch_images_per_second": images / pt["seconds"],
         "fast_mutant_forwards_per_second": forwards / fast["seconds"],
         "naive_mutant_forwards_per_second": forwards / naive["seconds"],
         "pytorch_mutant_forwards_per_second": forwards / pt["seconds"],
         "fast_over_naive": naive["seconds"] / fast["seconds"], "fast_over_pytorch": pt["seconds"] / fast["seconds"],
         "fast_peak_mib": fast_mib, "naive_peak_mib": naive_mib, "pytorch_peak_mib": torch_mib,
         "mean_lcr_fast": float(np.mean(changes["fast"])) / count, "differ": differ, "torch": pt["torch"],
         "load_average": [load_before, load_after]}
    print(f"ratios: fast / naive {r['fast_over_naive']:.2f}x, fast / PyTorch {r['fast_over_pytorch']:.2f}x; "
          f"mean LCR {r['mean_lcr_fast']:.4f}")
    print("images whose label-change count differs: " +
          ", ".join(f"{k} {v}" for k, v in differ.items() if not k.endswith("predictions")) +
          "; original predictions differing: " +
          ", ".join(f"{k.split()[0]} {v}" for k, v in differ.items() if k.endswith("predictions")))
    if max(load_before, load_after) > os.cpu_count() + 0.5:
        print(f"warning: the machine was busy (load average {load_before:.1f} before, {load_after:.1f} after, "
              f"{os.cpu_count()} CPUs): the timings are not reliable, only the agreement is")
    print(json.dumps(r))
    worst = max(v for k, v in differ.items() if not k.endswith("predictions"))
    if worst > 0.01 * images:
        sys.exit(f"LCR disagreement on {worst} of {images} images (> 1%)")


if __name__ == "__main__":
    main()
