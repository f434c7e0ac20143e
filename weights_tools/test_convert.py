"""Self-tests for convert.py and safetensors_io.py (no TensorFlow needed).

    /usr/bin/python3 -m unittest discover -s weights_tools -p 'test_*.py' -v
"""

import json
import os
import struct
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert  # noqa: E402
import make_keras_fixture as mkf  # noqa: E402
import safetensors_io  # noqa: E402

SHARED_MODELS = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "models"))
RESNET20_TH = os.path.join(SHARED_MODELS, "resnet20-12fca82f.th")
KERAS_H5 = os.path.join(SHARED_MODELS, "keras_cifar10_ResNet20v1_model.h5")


def random_state_dict(depth=20, seed=0, prefix="module."):
    rng = np.random.default_rng(seed)
    return {prefix + n: rng.normal(size=s).astype(np.float32)
            for n, s in convert.cifar_resnet_expected(depth).items()}


class Tmp(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def save_torch_zip(self, sd, name="x.pt"):
        import torch
        p = self.path(name)
        torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, p)
        return p

    def expect_error(self, arch, src, *fragments):
        with self.assertRaises(convert.ConvertError) as cm:
            convert.convert(arch, src, self.path("out.safetensors"))
        for f in fragments:
            self.assertIn(f, str(cm.exception))
        self.assertFalse(os.path.exists(self.path("out.safetensors")))


class SafetensorsIO(Tmp):
    def test_round_trip_layout(self):
        t = {"b": np.arange(3, dtype=np.float32), "a": np.ones((2, 2), np.float32)}
        p = self.path("t.safetensors")
        safetensors_io.write(p, t, {"k": "v"})
        with open(p, "rb") as f:
            blob = f.read()
        (n,) = struct.unpack("<Q", blob[:8])
        self.assertEqual((8 + n) % 8, 0)
        header = json.loads(blob[8:8 + n])
        self.assertEqual(header["__metadata__"], {"k": "v"})
        self.assertEqual(header["a"]["data_offsets"], [0, 16])   # sorted-name order
        self.assertEqual(header["b"]["data_offsets"], [16, 28])
        back, meta = safetensors_io.read(p)
        self.assertEqual(meta, {"k": "v"})
        for k in t:
            np.testing.assert_array_equal(back[k], t[k])
        self.assertEqual(os.listdir(self.tmp), ["t.safetensors"])  # no temp left behind


class TorchSources(Tmp):
    def test_zip_state_dict_with_prefix_and_counters(self):
        import torch  # noqa: F401
        sd = random_state_dict()
        sd["module.bn1.num_batches_tracked"] = np.array(5, dtype=np.int64)
        tensors, meta = convert.convert("resnet20", self.save_torch_zip(sd), self.path("o.safetensors"))
        self.assertEqual(len(tensors), 97)
        np.testing.assert_array_equal(tensors["conv1.weight"], sd["module.conv1.weight"])
        self.assertIn("unknown upstream", meta["provenance"])
        self.assertEqual(json.loads(meta["preprocess"])["std"], [0.229, 0.224, 0.225])

    def test_missing_tensor(self):
        sd = random_state_dict()
        del sd["module.layer2.1.bn1.running_var"]
        self.expect_error("resnet20", self.save_torch_zip(sd), "layer2.1.bn1.running_var", "missing")

    def test_wrong_shape(self):
        sd = random_state_dict()
        sd["module.linear.weight"] = np.zeros((10, 65), np.float32)
        self.expect_error("resnet20", self.save_torch_zip(sd), "linear.weight", "(10, 65)")

    def test_nan(self):
        sd = random_state_dict()
        sd["module.layer3.2.conv2.weight"][0, 0, 0, 0] = np.nan
        self.expect_error("resnet20", self.save_torch_zip(sd), "layer3.2.conv2.weight", "NaN")

    def test_leftover(self):
        sd = random_state_dict()
        sd["module.fc.weight"] = np.zeros((10, 64), np.float32)
        self.expect_error("resnet20", self.save_torch_zip(sd), "fc.weight", "not used")

    def test_wrong_depth(self):
        self.expect_error("resnet32", self.save_torch_zip(random_state_dict(20)), "missing")

    @unittest.skipUnless(os.path.exists(RESNET20_TH), "shared data not present")
    def test_real_resnet20_matches_torch_load(self):
        import torch
        tensors, meta = convert.convert("resnet20", RESNET20_TH, self.path("r20.safetensors"))
        sd = torch.load(RESNET20_TH, map_location="cpu")["state_dict"]
        self.assertEqual(len(sd), len(tensors))
        for k, v in sd.items():
            np.testing.assert_array_equal(tensors[k[len("module."):]], v.numpy())
        self.assertEqual(meta["license"], "BSD-2-Clause, (c) 2018 Yerlan Idelbayev")
        self.assertIn("d5489e8995e81e91ce6b1d69dcc98ad579b0b153", meta["provenance"])


def renumbered(config, spec, weights, mapping):
    """The same model with layers renamed by `mapping` (old -> new)."""
    text = json.dumps(config)
    for old, new in mapping.items():
        text = text.replace(f'"{old}"', f'"@{new}"')
    config = json.loads(text.replace('"@', '"'))
    return config, {mapping.get(k, k): v for k, v in spec.items()}, {mapping.get(k, k): v for k, v in weights.items()}


class KerasSources(Tmp):
    def setUp(self):
        super().setUp()
        self.config, self.spec = mkf.keras224_resnet_v1_config(20)
        self.weights = mkf.random_weights(self.spec, 7)

    def h5(self, config=None, spec=None, weights=None, name="k.h5"):
        p = self.path(name)
        mkf.write_keras224_h5(p, config or self.config, spec or self.spec, weights or self.weights)
        return p

    def test_maps_by_topology_not_numbering(self):
        base, _ = convert.convert("keras_resnet20v1", self.h5(), self.path("a.safetensors"))
        self.assertEqual(len(base), 120)
        np.testing.assert_array_equal(base["layer2.0.shortcut.weight"],
                                      self.weights["conv2d_10"]["kernel:0"].transpose(3, 2, 0, 1))
        np.testing.assert_array_equal(base["linear.weight"], self.weights["dense_1"]["kernel:0"].T)
        # reverse the conv numbering: conv2d_i -> conv2d_(22-i); same network
        mapping = {f"conv2d_{i}": f"conv2d_{22 - i}" for i in range(1, 22)}
        c, s, w = renumbered(self.config, self.spec, self.weights, mapping)
        other, _ = convert.convert("keras_resnet20v1", self.h5(c, s, w, "r.h5"), self.path("b.safetensors"))
        self.assertEqual(sorted(base), sorted(other))
        for k in base:
            np.testing.assert_array_equal(base[k], other[k])

    def test_shortcut_must_feed_add(self):
        layers = self.config["config"]["layers"]
        add = next(layer for layer in layers if layer["name"] == "add_4")
        add["inbound_nodes"] = [[["activation_7", 0, 0, {}], ["batch_normalization_9", 0, 0, {}]]]
        self.expect_error("keras_resnet20v1", self.h5(), "conv2d_10")

    def test_bn_epsilon_checked(self):
        next(layer for layer in self.config["config"]["layers"]
             if layer["name"] == "batch_normalization_5")["config"]["epsilon"] = 1e-5
        self.expect_error("keras_resnet20v1", self.h5(), "batch_normalization_5", "epsilon")

    def test_wrong_kernel_shape(self):
        self.weights["conv2d_12"]["kernel:0"] = np.zeros((3, 3, 32, 16), np.float32)
        self.spec["conv2d_12"][0] = ("kernel:0", (3, 3, 32, 16))
        self.expect_error("keras_resnet20v1", self.h5(), "layer2.1.conv2.weight")

    def test_torch_file_rejected(self):
        p = self.path("x.pt")
        with open(p, "wb") as f:
            f.write(b"PK\x03\x04 not really")
        self.expect_error("keras_resnet20v1", p, "HDF5")

    @unittest.skipUnless(os.path.exists(KERAS_H5), "shared data not present")
    def test_real_file_mapping(self):
        src = convert.read_keras_h5(KERAS_H5)
        _, info = convert.map_keras_resnet_v1(src, None, 20)
        shortcuts = {name: b["shortcut"] for name, b in info["blocks"] if b["shortcut"]}
        self.assertEqual(shortcuts, {"layer2.0": "conv2d_10", "layer3.0": "conv2d_17"})
        blocks = dict(info["blocks"])
        self.assertEqual((blocks["layer2.0"]["conv2"], blocks["layer2.0"]["bn2"]),
                         ("conv2d_9", "batch_normalization_9"))
        self.assertEqual((blocks["layer2.1"]["conv1"], blocks["layer2.1"]["bn1"]),
                         ("conv2d_11", "batch_normalization_10"))


if __name__ == "__main__":
    unittest.main()
