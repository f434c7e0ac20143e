"""torchvision 0.14's InceptionV3 with a width divisor, plus torchvision's preprocessing.

    /usr/bin/python3 weights_tools/inception_v3_torch.py        # self-test (from the repo root)

A parametrized copy of torchvision/models/inception.py (0.14): the same modules, the same
registration order, the same forward (BasicConv2d = conv(no bias) -> BN(eps 1e-3) -> ReLU;
branch_pool = F.avg_pool2d(3, stride 1, padding 1) with the default count_include_pad=True;
max pools 3x3/2 without padding; torch.cat in the order branch1x1 / 5x5 (7x7, 3x3) /
3x3dbl (7x7dbl, 7x7x3) / pool; adaptive average pool, dropout, fc), without the auxiliary
classifier. `width_divisor` d divides every conv's output channel count. At d = 1 its
state_dict has exactly torchvision's keys (minus AuxLogits) and the self-test shows the
logits are bit-identical to torchvision.models.inception_v3 with the same weights.

`forward(x, taps=...)` can also return block outputs (Mixed_5b ... Mixed_7c).
Run with Debian's /usr/bin/python3 (torch 1.13, torchvision 0.14).
"""

import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import inception_v3_layout as layout  # noqa: E402

TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)


class BasicConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        x = self.conv(x)
        x = self.bn(x)
        return F.relu(x, inplace=True)


class InceptionA(nn.Module):
    def __init__(self, in_channels, pool_features, w):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, w(64), kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, w(48), kernel_size=1)
        self.branch5x5_2 = BasicConv2d(w(48), w(64), kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, w(64), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(w(64), w(96), kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(w(96), w(96), kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, w(pool_features), kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels, w):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, w(384), kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, w(64), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(w(64), w(96), kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(w(96), w(96), kernel_size=3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels, channels_7x7, w):
        super().__init__()
        c7 = w(channels_7x7)
        self.branch1x1 = BasicConv2d(in_channels, w(192), kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, w(192), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, w(192), kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, w(192), kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b = self.branch7x7dbl_1(x)
        b = self.branch7x7dbl_2(b)
        b = self.branch7x7dbl_3(b)
        b = self.branch7x7dbl_4(b)
        branch7x7dbl = self.branch7x7dbl_5(b)
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels, w):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, w(192), kernel_size=1)
        self.branch3x3_2 = BasicConv2d(w(192), w(320), kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, w(192), kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(w(192), w(192), kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(w(192), w(192), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(w(192), w(192), kernel_size=3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_1(x)
        b = self.branch7x7x3_2(b)
        b = self.branch7x7x3_3(b)
        branch7x7x3 = self.branch7x7x3_4(b)
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch7x7x3, branch_pool], 1)


class InceptionE(nn.Module):
    def __init__(self, in_channels, w):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, w(320), kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, w(384), kernel_size=1)
        self.branch3x3_2a = BasicConv2d(w(384), w(384), kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(w(384), w(384), kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, w(448), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(w(448), w(384), kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(w(384), w(384), kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(w(384), w(384), kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, w(192), kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


BLOCK_NAMES = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
               "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]


class InceptionV3(nn.Module):
    """torchvision.models.Inception3 (aux_logits=False) with every width divided by d."""

    def __init__(self, num_classes=1000, transform_input=False, width_divisor=1, dropout=0.5):
        super().__init__()
        layout.check_divisor(width_divisor)
        d = width_divisor

        def w(n):
            return n // d

        self.width_divisor = d
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, w(32), kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(w(32), w(32), kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(w(32), w(64), kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(w(64), w(80), kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(w(80), w(192), kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(w(192), pool_features=32, w=w)
        self.Mixed_5c = InceptionA(w(256), pool_features=64, w=w)
        self.Mixed_5d = InceptionA(w(288), pool_features=64, w=w)
        self.Mixed_6a = InceptionB(w(288), w=w)
        self.Mixed_6b = InceptionC(w(768), channels_7x7=128, w=w)
        self.Mixed_6c = InceptionC(w(768), channels_7x7=160, w=w)
        self.Mixed_6d = InceptionC(w(768), channels_7x7=160, w=w)
        self.Mixed_6e = InceptionC(w(768), channels_7x7=192, w=w)
        self.Mixed_7a = InceptionD(w(768), w=w)
        self.Mixed_7b = InceptionE(w(1280), w=w)
        self.Mixed_7c = InceptionE(w(2048), w=w)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(w(2048), num_classes)

    def _transform_input(self, x):
        if self.transform_input:
            x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
            x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
            x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
            x = torch.cat((x_ch0, x_ch1, x_ch2), 1)
        return x

    def forward(self, x, taps=()):
        """Logits (N, K); with `taps` (block names) returns (logits, {name: output})."""
        got = {}
        x = self._transform_input(x)
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = self.maxpool1(x)
        x = self.Conv2d_3b_1x1(x)
        x = self.Conv2d_4a_3x3(x)
        x = self.maxpool2(x)
        for name in BLOCK_NAMES:
            x = getattr(self, name)(x)
            if name in taps:
                got[name] = x.clone()
        x = self.avgpool(x)
        x = self.dropout(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return (x, got) if taps else x


def to_state_dict(arrays):
    return OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v))) for k, v in arrays.items())


def build(weights, num_classes, transform_input, width_divisor):
    """An eval-mode InceptionV3 with `weights` (veto/torchvision names -> arrays)."""
    model = InceptionV3(num_classes=num_classes, transform_input=transform_input, width_divisor=width_divisor)
    missing, unexpected = model.load_state_dict(to_state_dict(weights), strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise KeyError(f"state_dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()


# ---------------------------------------------------------------------------
# torchvision preprocessing
# ---------------------------------------------------------------------------

def preprocess(paths, size=299, resize_shorter=342):
    """torchvision's pipeline: PIL open + RGB, Resize(resize_shorter) (PIL bilinear),
    CenterCrop(size), ToTensor(), Normalize(ImageNet mean/std). Returns float32 (N,3,size,size)."""
    from PIL import Image
    from torchvision import transforms
    t = transforms.Compose([transforms.Resize(resize_shorter), transforms.CenterCrop(size),
                            transforms.ToTensor(), transforms.Normalize(TORCHVISION_MEAN, TORCHVISION_STD)])
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(t(im.convert("RGB")))
    return torch.stack(out).numpy().astype(np.float32)


# ---------------------------------------------------------------------------
# self-test
# ---------------------------------------------------------------------------

def self_test(seed=1, batch=2):
    import torchvision
    torch.manual_seed(0)
    ok = True
    for d in (1, 8):
        ref = layout.expected_shapes(d, 10)
        sd = InceptionV3(num_classes=10, width_divisor=d).state_dict()
        got = OrderedDict((k, tuple(v.shape)) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
        same = list(got.items()) == list(ref.items())
        ok &= same
        print(f"d={d}: state_dict names/shapes/order == inception_v3_layout.expected_shapes: {same}")

    weights = layout.random_weights(1, 1000, seed, "torchvision")
    x = torch.from_numpy(np.random.default_rng(seed).normal(0, 1, (batch, 3, 299, 299)).astype(np.float32))
    for transform_input in (True, False):
        tv = torchvision.models.inception_v3(weights=None, init_weights=False, aux_logits=False,
                                             transform_input=transform_input, num_classes=1000)
        tv.load_state_dict(to_state_dict(weights), strict=False)
        tv_sd = {k for k in tv.state_dict() if not k.endswith("num_batches_tracked")}
        if tv_sd != set(weights):
            raise SystemExit("torchvision state_dict keys differ from the layout")
        ours = build(weights, 1000, transform_input, 1)
        with torch.no_grad():
            a = tv.eval()(x)
            b, taps = ours(x, taps=("Mixed_5b", "Mixed_7c"))
        same = torch.equal(a, b)
        ok &= same
        print(f"d=1 transform_input={transform_input}: logits bit-identical to torchvision.models.inception_v3: "
              f"{same} (max |diff| {float((a - b).abs().max()):.3g}; logits std {float(a.std()):.3f}; "
              f"Mixed_5b {tuple(taps['Mixed_5b'].shape)}, Mixed_7c {tuple(taps['Mixed_7c'].shape)})")
    return ok


if __name__ == "__main__":
    sys.exit(0 if self_test() else 1)
