"""Exports veto's reference PyTorch models to ONNX with torch.onnx.export (for `veto import-onnx`).

    /usr/bin/python3 weights_tools/export_onnx.py --arch resnet20 \
        --weights ../shared/data/models/resnet20-12fca82f.th --out /tmp/resnet20.onnx
    /usr/bin/python3 weights_tools/export_onnx.py --arch inception_v3 --seed 20240601 \
        --out /tmp/inception_v3.onnx --native-out /tmp/inception_v3.safetensors

Run with Debian's /usr/bin/python3 (python3-torch 1.13, python3-torchvision 0.14,
python3-onnx). The batch dimension is dynamic ("batch"); opset 13 by default. Batch norms stay BatchNormalization nodes unless
--fold-batch-norm (torch's constant folding then merges them into the convolutions), so by
default the imported convolutions hold exactly the native model's weights.

- resnet20/32/44/56: the akamaster CIFAR ResNet (cifar_resnet_torch.py) with the given
  upstream .th weights. The head's F.avg_pool2d(out, out.size()[3]) is traced with a
  constant kernel (8), as any user exporting this model must.
- tiny: a 30x30 CNN with seeded weights using every op the importer lowers (the fixture
  tests/data/onnx/tiny.onnx; see Tiny below).
- inception_v3: torchvision.models.inception_v3 (--transform-input, 1000 classes) with
  random weights (inception_v3_layout.random_weights, the same ones inception_golden.py
  makes for --seed); --native-out also writes convert.py's veto file of those weights, for
  comparing the import with the native builder.

--inputs-out / --logits-out write a float32 (N,3,H,W) input batch (seeded normal) and
PyTorch's logits for it, so `veto predict --input X.npy --logits L.npy` can be compared.
When the `onnx` package is importable, the file gets metadata_props veto.classes and
veto.preprocess, so `--model FILE.onnx` finds the class names and preprocessing.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cifar_resnet_torch as crt  # noqa: E402
from onnx_export_common import CIFAR10, add_output_arguments, seeded_inputs, tag  # noqa: E402


def resnet(depth, weights):
    model = crt.build(depth, weights).eval()

    def forward(self, x):  # the upstream forward, with the pool size traced as a constant
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, int(out.shape[3]))
        return self.linear(out.view(out.size(0), -1))

    model.forward = types.MethodType(forward, model)
    pre = dict(channels=3, height=32, width=32, resize="none", interpolation="bilinear", resize_shorter=0,
               divisor=255.0, mean=list(crt.MEAN), std=list(crt.STD))
    return model, 32, pre, CIFAR10


class Tiny(torch.nn.Module):
    """A small CNN that uses every op the importer lowers, for tests/data/onnx (seeded weights):
    torchvision-style input re-normalization (Gather, Mul, Add, Unsqueeze, Concat), conv with
    bias + batch norm + ReLU6 (Clip), a depthwise convolution with
    dilation (2, 1), a grouped convolution, max pool with ceil_mode, an option-A shortcut (Slice with
    steps + channel Pad, its pads computed by a constant subgraph) added to a strided conv,
    average pools with and without padding in the count, explicit Pad, concat of branches,
    global average pool, flatten (Reshape from a Shape subgraph), Linear (Gemm)."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8, eps=1e-3)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=(2, 1), dilation=(2, 1), groups=8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False, groups=2)
        self.bn2 = nn.BatchNorm2d(16)
        self.branch = nn.Conv2d(16, 8, 1)
        self.fc = nn.Linear(16 + 8 + 16, 10)
        with torch.no_grad():
            for bn in (self.bn1, self.bn2):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        x = torch.cat([torch.unsqueeze(x[:, i], 1) * (0.5 + 0.1 * i) + (0.1 - 0.05 * i) for i in range(3)], 1)
        x = F.relu6(self.bn1(self.conv1(x)))
        x = F.relu(self.depthwise(x))  # dilation (2, 1), padding (2, 1): 30x30 stays
        x = F.max_pool2d(x, 3, stride=2, ceil_mode=True)  # 30 -> 15 (14 without ceil_mode)
        shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 4, 4), "constant", 0.0)
        x = F.relu(self.bn2(self.conv2(x)) + shortcut)
        a = F.avg_pool2d(x, 3, stride=1, padding=1)  # count_include_pad=True
        b = self.branch(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        c = F.pad(x, (1, 0, 0, 1), "constant", 0.5)[:, :, 1:, :-1]
        x = torch.cat([a, b, c], 1)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(x.view(x.size(0), -1))


def tiny(seed):
    torch.manual_seed(seed)
    pre = dict(channels=3, height=30, width=30, resize="none", interpolation="bilinear", resize_shorter=0,
               divisor=255.0, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    return Tiny().eval(), 30, pre, CIFAR10


def inception(seed, native_out, transform_input):
    import torchvision
    import inception_v3_layout as layout
    import inception_v3_torch as tmodel
    weights = layout.random_weights(1, 1000, seed, "torchvision")
    torch.manual_seed(seed)
    model = torchvision.models.inception_v3(weights=None, init_weights=False, aux_logits=True,
                                            transform_input=transform_input, num_classes=1000)
    model.load_state_dict(tmodel.to_state_dict(weights), strict=False)
    model.eval()
    if native_out:
        with tempfile.TemporaryDirectory(prefix="veto_export_") as tmp:
            pth = os.path.join(tmp, "inception_v3.pth")
            torch.save(model.state_dict(), pth)
            subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), "--arch", "inception_v3_torchvision",
                            "--transform-input", "true" if transform_input else "false", pth, native_out],
                           check=True)
    pre = dict(channels=3, height=299, width=299, resize="shorter_crop", interpolation="bilinear",
               resize_shorter=342, divisor=255.0, mean=list(tmodel.TORCHVISION_MEAN), std=list(tmodel.TORCHVISION_STD))
    with open(os.path.join(HERE, "imagenet_classes.txt")) as f:
        classes = [line.rstrip("\n") for line in f if line.strip()]
    return model, 299, pre, classes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True, choices=[f"resnet{d}" for d in crt.DEPTHS] + ["inception_v3", "tiny"])
    ap.add_argument("--weights", help="upstream .th for the CIFAR ResNets")
    ap.add_argument("--seed", type=int, default=20240601, help="random weights of inception_v3")
    ap.add_argument("--fold-batch-norm", action="store_true", help="let torch fold batch norms into the convs")
    ap.add_argument("--transform-input", choices=["true", "false"], default="true",
                    help="inception_v3: torchvision's input re-normalization (pretrained weights need it)")
    ap.add_argument("--native-out", help="inception_v3: also write convert.py's veto file of the same weights")
    add_output_arguments(ap, "PyTorch")
    a = ap.parse_args(argv)

    if a.arch == "tiny":
        model, size, pre, classes = tiny(a.seed)
    elif a.arch == "inception_v3":
        model, size, pre, classes = inception(a.seed, a.native_out, a.transform_input == "true")
    else:
        if not a.weights:
            ap.error(f"--weights is required for {a.arch}")
        model, size, pre, classes = resnet(int(a.arch[len("resnet"):]), a.weights)

    x = torch.from_numpy(seeded_inputs(a.seed, a.count, size))
    torch.onnx.export(model, x[:2], a.out, input_names=["input"], output_names=["logits"], opset_version=a.opset,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=a.fold_batch_norm,
                      training=torch.onnx.TrainingMode.EVAL if a.fold_batch_norm else torch.onnx.TrainingMode.PRESERVE)
    try:
        import onnx
        m = onnx.load(a.out)  # (AttributeError: libonnx-testdata alone leaves a bare "onnx" namespace)
        tag(m, classes, pre)
        onnx.save(m, a.out)
        tagged = "with metadata_props veto.classes, veto.preprocess"
    except (ImportError, AttributeError):
        tagged = "without metadata_props (no onnx package)"
    print(f"wrote {a.out} ({a.arch}, opset {a.opset}, {tagged})")
    if a.inputs_out:
        np.save(a.inputs_out, x.numpy())
        print(f"wrote {a.inputs_out} {tuple(x.shape)} float32")
    if a.logits_out:
        with torch.no_grad():
            logits = model(x)
        np.save(a.logits_out, logits.numpy().astype(np.float32))
        print(f"wrote {a.logits_out} {tuple(logits.shape)} float32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
