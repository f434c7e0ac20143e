#!/usr/bin/python3
"""PyTorch golden logits for the akamaster CIFAR-10 ResNets.

    /usr/bin/python3 weights_tools/golden_cifar.py --arch resnet20 \
        --weights ../shared/data/models/resnet20-12fca82f.th \
        --data data/cifar10_test_0-999.bin --limit 1000 \
        --out tests/data/golden/resnet20_logits_0-999.npy \
        --inputs-out tests/data/golden/resnet20_inputs_0-7.npy --inputs-count 8

Eval-mode logits (float32, shape (N,10)) of records [0, N) preprocessed as
torchvision ToTensor() + Normalize(mean, std), i.e. (p/255 - mean)/std in
float32, NCHW. --weights takes the upstream .th (torch.load) or a converted
veto .safetensors (to check the converter). Prints top-1 accuracy.
Outputs are plain .npy (numpy's own magic + version header), float32.
"""

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cifar_io  # noqa: E402
import cifar_resnet_torch as crt  # noqa: E402


def check_preprocess_matches_torchvision(images_u8, x):
    """The batch preprocessing must be bit-identical to the torchvision transforms."""
    from PIL import Image
    import torchvision.transforms as T
    tf = T.Compose([T.ToTensor(), T.Normalize(crt.MEAN, crt.STD)])
    for i in range(min(4, len(images_u8))):
        ref = tf(Image.fromarray(images_u8[i].transpose(1, 2, 0)))
        if not torch.equal(ref, x[i]):
            raise SystemExit(f"preprocessing differs from torchvision on record {i}")


def save_npy(path, array):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch golden logits for akamaster CIFAR ResNets")
    ap.add_argument("--arch", required=True, choices=[f"resnet{d}" for d in crt.DEPTHS])
    ap.add_argument("--weights", required=True, help=".th (upstream) or .safetensors (converted)")
    ap.add_argument("--data", required=True, help="CIFAR-10 binary file")
    ap.add_argument("--limit", type=int, default=None, help="first N records (default: all)")
    ap.add_argument("--out", help="logits .npy (float32, (N,10))")
    ap.add_argument("--inputs-out", help="preprocessed inputs .npy (float32, (K,3,32,32))")
    ap.add_argument("--inputs-count", type=int, default=8)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args(argv)

    images, labels = cifar_io.read_cifar_bin(args.data, 0, args.limit)
    model = crt.build(int(args.arch[len("resnet"):]), args.weights)
    x = crt.preprocess(images)
    check_preprocess_matches_torchvision(images, x)

    outs = []
    with torch.no_grad():
        for b in range(0, len(x), args.batch):
            outs.append(model(x[b:b + args.batch]))
    logits = torch.cat(outs).numpy().astype(np.float32)
    if not np.all(np.isfinite(logits)):
        raise SystemExit("non-finite logits")
    acc = float(np.mean(logits.argmax(1) == labels))
    print(f"{args.arch} {os.path.basename(args.weights)} on {len(labels)} records of "
          f"{os.path.basename(args.data)}: top-1 accuracy {acc:.4f} "
          f"({int(round(acc * len(labels)))}/{len(labels)})")
    if args.out:
        save_npy(args.out, logits)
        print(f"wrote {args.out} {logits.shape} float32")
    if args.inputs_out:
        k = min(args.inputs_count, len(x))
        save_npy(args.inputs_out, x[:k].numpy().astype(np.float32))
        print(f"wrote {args.inputs_out} ({k}, 3, 32, 32) float32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
