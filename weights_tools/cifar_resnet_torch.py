"""The akamaster CIFAR-10 ResNet (He et al. 2016, option-A shortcuts) in PyTorch.

Written from the architecture description in shared/data/README.md §2 (same
module names as akamaster/pytorch_resnet_cifar10's resnet.py, so its
state_dicts load directly):
  conv3x3(3->16)-BN-ReLU, three stages of n BasicBlocks (16/32/64 channels,
  n = (depth-2)/6), first block of stages 2 and 3 with stride 2 and the
  parameter-free option-A shortcut x[:, :, ::2, ::2] zero-padded by planes//4
  channels on each side; global average pool; Linear(64 -> 10). BN eps 1e-5.
  Output: logits (no softmax).

Used by golden_cifar.py (run with /usr/bin/python3, which has torch 1.13).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

DEPTHS = (20, 32, 44, 56)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class OptionAShortcut(nn.Module):
    """Subsample by 2 and zero-pad channels: the parameter-free shortcut."""

    def __init__(self, pad_channels):
        super().__init__()
        self.pad_channels = pad_channels

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad_channels, self.pad_channels), "constant", 0.0)


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut = OptionAShortcut(planes // 4)
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    def __init__(self, depth, num_classes=10):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth {depth} is not 6n+2")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.in_planes = 16
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, planes, n, stride):
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


def load_state_dict_file(path):
    """A state_dict from an akamaster .th (torch.load; only use trusted files)
    or from a veto .safetensors file. 'module.' prefixes are stripped."""
    if path.endswith(".safetensors"):
        import safetensors_io
        tensors, _ = safetensors_io.read(path)
        return {k: torch.from_numpy(v) for k, v in tensors.items()}
    obj = torch.load(path, map_location="cpu")
    sd = obj["state_dict"] if isinstance(obj, dict) and "state_dict" in obj else obj
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


def build(depth, weights_path):
    model = CifarResNet(depth)
    model.load_state_dict(load_state_dict_file(weights_path), strict=True)
    return model.eval()


def preprocess(images_u8):
    """uint8 (N,3,32,32) -> float32 exactly as ToTensor() + Normalize(MEAN, STD):
    x / 255 (float32 division), then (x - mean) / std per channel in float32."""
    x = torch.from_numpy(images_u8).to(torch.float32).div(255)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub(mean).div(std)
