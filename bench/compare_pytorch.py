#!/usr/bin/python3
"""Side-by-side forward throughput and peak memory: PyTorch CPU vs veto, same inputs, one run.

    /usr/bin/python3 bench/compare_pytorch.py [--net resnet20|inception_v3] [--veto build/veto]
                                               [--batch 256] [--threads 2]

resnet20: the first B records of the bundled CIFAR-10 file, preprocessed once; PyTorch runs
the akamaster ResNet-20 with the bundled weights (read from veto's own safetensors file, so
both use identical parameters). inception_v3: torchvision's inception_v3 with random weights
(fixed seed; no pretrained weights are available here), converted with
weights_tools/convert.py, on seeded random inputs of 3x299x299. Each side runs in its own
process with the same thread count, warm-up and repeat count; the script reports the median
images/s of each, the ratio veto / PyTorch (> 1: veto is faster), and each process's peak
resident memory (from wait4). Needs torch (Debian python3-torch) and a built veto.
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


def run_measured(cmd):
    """Runs cmd; returns (stdout, peak RSS in MiB) of that process alone."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        err = proc.stderr.read().decode()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{err}")
        out.seek(0)
        return out.read().decode(), usage.ru_maxrss / 1024.0


def torch_worker(args):
    """Times the PyTorch model in this (child) process; prints JSON."""
    import torch
    torch.set_num_threads(args.threads)
    if args.net == "resnet20":
        import cifar_resnet_torch
        model = cifar_resnet_torch.build(20, args.model)
    else:
        model = torch.load(args.model)
    model.eval()
    x = torch.from_numpy(np.load(args.inputs))
    with torch.no_grad():
        for _ in range(args.warmup):
            model(x)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    print(json.dumps({"images_per_second": len(x) / statistics.median(times), "torch": torch.__version__}))


def cifar_batch(path, count):
    raw = np.fromfile(path, dtype=np.uint8, count=min(count, 1000) * 3073).reshape(-1, 3073)
    x = raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255.0)
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    x = (x - mean) / std
    while len(x) < count:
        x = np.concatenate([x, x])
    return np.ascontiguousarray(x[:count], dtype=np.float32)


def prepare_inception(tmp):
    """Random-weight torchvision InceptionV3 pickled for the worker and converted for veto."""
    import torch
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True,
                                            transform_input=False).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    pickled = os.path.join(tmp, "inception_v3.pt")
    torch.save(model, pickled)
    state = os.path.join(tmp, "inception_v3_state.pt")
    torch.save(model.state_dict(), state)
    converted = os.path.join(tmp, "inception_v3.safetensors")
    subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), "--arch", "inception_v3_torchvision",
                    "--transform-input", "false", state, converted], check=True, capture_output=True)
    return pickled, converted


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", choices=["resnet20", "inception_v3"], default="resnet20")
    ap.add_argument("--veto", default=os.path.join(REPO, "build", "veto"))
    ap.add_argument("--data", default=os.path.join(REPO, "data", "cifar10_test_0-999.bin"))
    ap.add_argument("--batch", type=int, nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeat", type=int)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return torch_worker(args)
    batches = args.batch or ([256] if args.net == "resnet20" else [8])
    repeat = args.repeat or (20 if args.net == "resnet20" else 5)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.net == "resnet20":
            torch_model = veto_model = os.path.join(REPO, "models", "resnet20.safetensors")
        else:
            torch_model, veto_model = prepare_inception(tmp)
        print(f"{args.net} forward, {args.threads} threads, warm-up {args.warmup}, median of {repeat}")
        print(f"{'batch':>6} {'pytorch img/s':>14} {'veto img/s':>11} {'ratio':>6} "
              f"{'pytorch MiB':>12} {'veto MiB':>9} {'mem ratio':>9}")
        for batch in batches:
            if args.net == "resnet20":
                x = cifar_batch(args.data, batch)
            else:
                x = np.random.default_rng(1).standard_normal((batch, 3, 299, 299), dtype=np.float32)
            npy = os.path.join(tmp, f"batch{batch}.npy")
            np.save(npy, x)
            out, torch_mib = run_measured([sys.executable, os.path.abspath(__file__), "--worker", "--net", args.net,
                                           "--model", torch_model, "--inputs", npy, "--threads", str(args.threads),
                                           "--warmup", str(args.warmup), "--repeat", str(repeat)])
            torch_ips = json.loads(out)["images_per_second"]
            out, veto_mib = run_measured([args.veto, "bench", "--model", veto_model, "--input", npy, "--batch",
                                          str(batch), "--threads", str(args.threads), "--warmup", str(args.warmup),
                                          "--repeat", str(repeat), "--format", "json"])
            veto_ips = json.loads(out)["images_per_second"]
            r = {"net": args.net, "batch": batch, "threads": args.threads,
                 "pytorch_images_per_second": torch_ips, "veto_images_per_second": veto_ips,
                 "ratio": veto_ips / torch_ips, "pytorch_peak_mib": torch_mib, "veto_peak_mib": veto_mib,
                 "memory_ratio": veto_mib / torch_mib}
            results.append(r)
            print(f"{batch:>6} {torch_ips:>14.1f} {veto_ips:>11.1f} {r['ratio']:>6.2f} "
                  f"{torch_mib:>12.0f} {veto_mib:>9.0f} {r['memory_ratio']:>9.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
