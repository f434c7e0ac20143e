#!/usr/bin/env python3
"""What a user would run instead of veto, timed on the same job: PyTorch InceptionV3 forward
throughput per batch and precision, and Captum's LayerConductance over the 11 mixed layers.

    python3 bench/torch_baseline.py --device cuda --out torch.json \
        [--batches 1,32,128,256] [--precisions fp32,tf32,bf16] [--conductance-images 32] \
        [--steps 10] [--threads T] [--save-state-dict inception.pth]

torchvision's inception_v3 (random weights, seed 0, transform_input off, eval mode);
--save-state-dict writes its weights so weights_tools/convert.py gives veto the identical
model (bench/device_check.sh does this). Precisions: fp32 (TF32 off for convolutions and
matmuls), tf32 (on), bf16 (torch.autocast). Forward: median of --repeat timed batches after
--warmup, synchronized; images/s = batch / median. Conductance: captum.attr.LayerConductance
(riemann_trapezoid, n_steps --steps, fp32) for each mixed layer in turn, as Captum computes
one layer per call; images/s = images / total time. Without captum only the forward runs.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torchvision

MIXED = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
         "Mixed_7a", "Mixed_7b", "Mixed_7c"]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def set_precision(precision):
    tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32


def time_forward(model, x, device, precision, warmup, repeat):
    set_precision(precision)
    times = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        for i in range(warmup + repeat):
            sync(device)
            start = time.perf_counter()
            model(x)
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def write(path, report):
    with open(path + ".tmp", "w") as f:
        json.dump(report, f, indent=2)
    os.replace(path + ".tmp", path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batches", default="1,32,128,256")
    ap.add_argument("--precisions", default="fp32,tf32,bf16")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--conductance-images", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--size", type=int, default=299)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default, which may be 1)")
    ap.add_argument("--save-state-dict")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    device = torch.device(a.device)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True,
                                            transform_input=False).eval().to(device)
    if a.save_state_dict:
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, a.save_state_dict)
    report = {"torch": torch.__version__, "torchvision": torchvision.__version__, "device": str(device),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "forward": []}
    for batch in [int(b) for b in a.batches.split(",")]:
        x = torch.randn(batch, 3, a.size, a.size, device=device)
        for precision in a.precisions.split(","):
            median = time_forward(model, x, device, precision, a.warmup, a.repeat)
            row = {"batch": batch, "precision": precision, "median_ms": median * 1e3,
                   "images_per_second": batch / median}
            report["forward"].append(row)
            print(json.dumps(row), flush=True)
            write(a.out, report)  # what finished survives a time limit
    try:
        from captum.attr import LayerConductance
    except ImportError:
        report["conductance"] = None
        print("captum is not installed: conductance skipped", file=sys.stderr)
    else:
        set_precision("fp32")
        n = a.conductance_images
        x = torch.randn(n, 3, a.size, a.size, device=device)
        with torch.no_grad():
            target = model(x).argmax(1)
        sync(device)
        start = time.perf_counter()
        for name in MIXED:
            LayerConductance(model, getattr(model, name)).attribute(
                x, baselines=torch.zeros_like(x), target=target, n_steps=a.steps, method="riemann_trapezoid",
                internal_batch_size=n * a.steps)
        sync(device)
        seconds = time.perf_counter() - start
        report["conductance"] = {"images": n, "steps": a.steps, "layers": len(MIXED), "seconds": seconds,
                                 "images_per_second": n / seconds}
        print(json.dumps(report["conductance"]), flush=True)
    write(a.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
