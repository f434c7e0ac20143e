#!/usr/bin/python3
"""Side-by-side forward throughput: PyTorch CPU vs veto on the same batch, in one run.

    /usr/bin/python3 bench/compare_pytorch.py [--veto build/veto] [--batch 256] [--threads 2]

The batch is the first B records of the bundled CIFAR-10 file, preprocessed once and saved
as .npy; PyTorch runs the akamaster ResNet-20 with the bundled weights (loaded from veto's
own safetensors file, so both use identical parameters), veto runs `veto bench` on that
.npy. Both use the same thread count, warm-up and repeat count; the ratio is
veto images/s / PyTorch images/s (> 1 means veto is faster). Needs torch (Debian
python3-torch) and a built veto.
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
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "weights_tools"))
import cifar_resnet_torch  # noqa: E402
import safetensors_io  # noqa: E402


def cifar_batch(path, count):
    raw = np.fromfile(path, dtype=np.uint8, count=count * 3073).reshape(count, 3073)
    x = raw[:, 1:].reshape(count, 3, 32, 32).astype(np.float32) / 255.0
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def time_torch(model, x, warmup, repeat):
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--veto", default=os.path.join(REPO, "build", "veto"))
    ap.add_argument("--model", default=os.path.join(REPO, "models", "resnet20.safetensors"))
    ap.add_argument("--data", default=os.path.join(REPO, "data", "cifar10_test_0-999.bin"))
    ap.add_argument("--batch", type=int, nargs="+", default=[256])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    _, meta = safetensors_io.read(args.model)
    depth = int(meta["arch"].replace("resnet", ""))
    model = cifar_resnet_torch.build(depth, args.model)

    print(f"ResNet-{depth} forward, {args.threads} threads, torch {torch.__version__}")
    print(f"{'batch':>6} {'pytorch img/s':>14} {'veto img/s':>11} {'ratio':>6}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batch:
            x = cifar_batch(args.data, min(batch, 1000))
            if batch > len(x):
                x = np.concatenate([x] * (batch // len(x) + 1))[:batch]
            npy = os.path.join(tmp, f"batch{batch}.npy")
            np.save(npy, x)
            torch_s = time_torch(model, torch.from_numpy(x), args.warmup, args.repeat)
            out = subprocess.run(
                [args.veto, "bench", "--model", args.model, "--input", npy, "--batch", str(batch),
                 "--threads", str(args.threads), "--warmup", str(args.warmup), "--repeat", str(args.repeat),
                 "--format", "json"], check=True, capture_output=True, text=True)
            veto = json.loads(out.stdout)
            torch_ips = batch / torch_s
            ratio = veto["images_per_second"] / torch_ips
            results.append({"batch": batch, "pytorch_images_per_second": torch_ips,
                            "veto_images_per_second": veto["images_per_second"], "ratio": ratio})
            print(f"{batch:>6} {torch_ips:>14.1f} {veto['images_per_second']:>11.1f} {ratio:>6.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
