"""Self-tests for convert.py, safetensors_io.py and the InceptionV3 tools (no TensorFlow needed).

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


# ---------------------------------------------------------------------------
# InceptionV3
# ---------------------------------------------------------------------------

import inception_v3_keras2_h5 as k2h5  # noqa: E402
import inception_v3_layout as inception  # noqa: E402
import numpy_reference  # noqa: E402

TESTS_DATA = os.path.normpath(os.path.join(HERE, "..", "tests", "data"))


class InceptionLayout(unittest.TestCase):
    def test_counts_match_method(self):
        convs = inception.convs(1)
        self.assertEqual(len(convs), 94)
        self.assertEqual(sum(c.out for c in convs), 17216)  # METHOD.md §2
        widths = list(inception.block_out_channels(1).values())
        self.assertEqual(widths, [256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048])
        self.assertEqual(sum(widths), 10048)  # METHOD.md §1 target-layer features
        self.assertEqual(list(inception.block_out_channels(8).values()), [w // 8 for w in widths])
        self.assertEqual(inception.spatial_sizes(299), (35, 17, 8))
        self.assertEqual(inception.spatial_sizes(139), (15, 7, 3))
        self.assertEqual(inception.keras2_names(1)[-1], ("Mixed_7c.branch_pool", "conv2d_94", "batch_normalization_94"))

    def test_bad_divisor(self):
        with self.assertRaises(ValueError):
            inception.expected_shapes(32)


def _keras3_style(config):
    """The same graph in Keras 3's config format (nodes {"args": [...], "kwargs": {}})."""
    config = json.loads(json.dumps(config))
    for layer in config["config"]["layers"]:
        nodes = layer["inbound_nodes"]
        if not nodes:
            continue
        tensors = [{"class_name": "__keras_tensor__", "config": {"shape": [None], "dtype": "float32",
                                                                 "keras_history": [e[0], 0, 0]}} for e in nodes[0]]
        args = [tensors] if layer["class_name"] == "Concatenate" else tensors
        layer["inbound_nodes"] = [{"args": args, "kwargs": {}}]
    config["config"]["input_layers"] = config["config"]["input_layers"][0]
    config["config"]["output_layers"] = config["config"]["output_layers"][0]
    config["class_name"] = "Functional"
    return config


class InceptionSources(Tmp):
    D, K = 8, 10

    def setUp(self):
        super().setUp()
        self.classes = self.path("classes.txt")
        with open(self.classes, "w") as f:
            f.write("".join(f"n0{i:07d} class_{i}\n" for i in range(self.K)))

    def opts(self, **kw):
        return dict(dict(width_divisor=self.D, classes=self.classes), **kw)

    # torchvision -------------------------------------------------------------------

    def tv_state_dict(self, seed=0):
        sd = inception.random_weights(self.D, self.K, seed, "torchvision")
        full = {}
        for k, v in sd.items():
            full["module." + k] = v
            if k.endswith("bn.running_var"):
                full["module." + k.replace("running_var", "num_batches_tracked")] = np.array(7, np.int64)
        full["module.AuxLogits.fc.weight"] = np.zeros((self.K, 768 // self.D), np.float32)
        full["module.AuxLogits.conv0.conv.weight"] = np.zeros((16, 96, 1, 1), np.float32)
        return sd, full

    def test_torchvision_state_dict(self):
        sd, full = self.tv_state_dict()
        tensors, meta = convert.convert("inception_v3_torchvision", self.save_torch_zip(full),
                                        self.path("o.safetensors"), options=self.opts(input_size=139))
        self.assertEqual(list(tensors), list(inception.expected_shapes(self.D, self.K)))
        for k in sd:
            np.testing.assert_array_equal(tensors[k], sd[k])
        self.assertEqual((meta["arch"], meta["variant"], meta["width_divisor"], meta["transform_input"]),
                         ("inception_v3", "torchvision", "8", "true"))
        self.assertEqual(list(meta)[:5], ["format", "arch", "variant", "width_divisor", "transform_input"])
        pre = json.loads(meta["preprocess"])
        self.assertEqual((pre["height"], pre["width"], pre["resize"], pre["resize_shorter"], pre["interpolation"]),
                         (139, 139, "shorter_crop", 159, "bilinear"))
        self.assertEqual(json.loads(meta["classes"]), [f"class_{i}" for i in range(self.K)])

    def test_torchvision_defaults_full_size(self):
        sd = inception.random_weights(1, 1000, 0, "torchvision")
        _, meta = convert.convert("inception_v3_torchvision", self.save_torch_zip(sd), self.path("o.safetensors"))
        pre = json.loads(meta["preprocess"])
        self.assertEqual((pre["height"], pre["resize_shorter"], pre["divisor"], pre["mean"], pre["std"]),
                         (299, 342, 255.0, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
        classes = json.loads(meta["classes"])
        self.assertEqual((len(classes), classes[0], classes[999]), (1000, "tench", "toilet_tissue"))
        self.assertEqual(meta["width_divisor"], "1")

    def test_torchvision_transform_input_false(self):
        _, full = self.tv_state_dict()
        _, meta = convert.convert("inception_v3_torchvision", self.save_torch_zip(full), self.path("o.safetensors"),
                                  options=self.opts(transform_input=False))
        self.assertEqual(meta["transform_input"], "false")

    def test_torchvision_errors(self):
        _, full = self.tv_state_dict()
        p = self.save_torch_zip(full)
        self.expect_error("inception_v3_torchvision", p, "width-divisor 1", "expects 32")  # default d = 1
        with self.assertRaises(convert.ConvertError) as cm:
            convert.convert("inception_v3_torchvision", p, self.path("o.safetensors"), options={"width_divisor": 8})
        self.assertIn("--classes", str(cm.exception))
        del full["module.Mixed_6c.branch7x7dbl_4.bn.running_mean"]
        with self.assertRaises(convert.ConvertError) as cm:
            convert.convert("inception_v3_torchvision", self.save_torch_zip(full, "m.pt"),
                            self.path("o.safetensors"), options=self.opts())
        self.assertIn("Mixed_6c.branch7x7dbl_4.bn.running_mean", str(cm.exception))

    def test_torchvision_extra_tensor_refused(self):
        _, full = self.tv_state_dict()
        full["module.Mixed_5b.extra.weight"] = np.zeros(3, np.float32)
        with self.assertRaises(convert.ConvertError) as cm:
            convert.convert("inception_v3_torchvision", self.save_torch_zip(full), self.path("o.safetensors"),
                            options=self.opts())
        self.assertIn("Mixed_5b.extra.weight", str(cm.exception))

    def test_pickled_model_needs_trust(self):
        import torch
        import inception_v3_torch
        sd = inception.random_weights(self.D, self.K, 1, "torchvision")
        model = inception_v3_torch.build(sd, self.K, True, self.D)
        p = self.path("model.pt")
        torch.save(model, p)
        with self.assertRaises(convert.ConvertError) as cm:
            convert.convert("inception_v3_torchvision", p, self.path("o.safetensors"), options=self.opts())
        self.assertIn("--trust-pickle", str(cm.exception))
        tensors, _ = convert.convert("inception_v3_torchvision", p, self.path("o.safetensors"),
                                     options=self.opts(trust_pickle=True))
        for k in sd:
            np.testing.assert_array_equal(tensors[k], sd[k])

    def test_options_checked_per_arch(self):
        _, full = self.tv_state_dict()
        with self.assertRaises(convert.ConvertError) as cm:
            convert.convert("resnet20", self.save_torch_zip(full), self.path("o.safetensors"),
                            options={"classes": self.classes})
        self.assertIn("--classes", str(cm.exception))

    # Keras -------------------------------------------------------------------------

    def keras_files(self, head="predictions", input_size=139, seed=0, mutate=None):
        w = inception.random_weights(self.D, self.K, seed, "keras")
        cfg, spec, units, dense = k2h5.keras2_model(self.D, input_size, self.K, head)
        if mutate:
            mutate(cfg)
        arrays = k2h5.keras2_arrays(w, units, dense)
        full, wo = self.path(f"full_{head}.h5"), self.path(f"wo_{head}.h5")
        k2h5.write_full(full, cfg, spec, arrays)
        k2h5.write_weights_only(wo, cfg, spec, arrays)
        return w, full, wo, (cfg, spec, arrays)

    def keras_convert(self, path, **kw):
        return convert.convert("inception_v3_keras", path, self.path("o.safetensors"), options=self.opts(**kw))

    def layer(self, cfg, name):
        return next(layer for layer in cfg["config"]["layers"] if layer["name"] == name)

    def test_keras_full_and_weights_only(self):
        w, full, wo, _ = self.keras_files()
        for p in (full, wo):  # a weights-only file has no input shape: --input-size
            tensors, meta = self.keras_convert(p, input_size=139)
            self.assertEqual(list(tensors), list(inception.expected_shapes(self.D, self.K)))
            for k in w:
                np.testing.assert_array_equal(tensors[k], w[k])
            self.assertNotIn("transform_input", meta)
            self.assertEqual(meta["variant"], "keras")
            pre = json.loads(meta["preprocess"])
            self.assertEqual((pre["height"], pre["resize"], pre["interpolation"], pre["divisor"], pre["mean"]),
                             (139, "stretch", "nearest", 127.5, [1.0, 1.0, 1.0]))
        self.assertTrue(all(np.all(tensors[f"{c.name}.bn.weight"] == 1) for c in inception.convs(self.D)))

    def test_keras_project_head_any_size(self):
        w, full, wo, _ = self.keras_files(head="gap_dense", input_size=None)
        tensors, meta = self.keras_convert(full)
        np.testing.assert_array_equal(tensors["fc.weight"], w["fc.weight"])
        self.assertEqual(json.loads(meta["preprocess"])["height"], 299)  # unknown in the model: the default
        _, meta = self.keras_convert(full, input_size=139)
        self.assertEqual(json.loads(meta["preprocess"])["height"], 139)
        tensors, _ = self.keras_convert(wo)  # weights-only: the single Dense is the classifier
        np.testing.assert_array_equal(tensors["fc.bias"], w["fc.bias"])

    def test_keras_input_size_conflict(self):
        _, full, _, _ = self.keras_files()
        with self.assertRaises(convert.ConvertError) as cm:
            self.keras_convert(full, input_size=299)
        self.assertIn("139x139", str(cm.exception))

    def test_keras_maps_by_topology_not_numbering(self):
        w, full, _, (cfg, spec, arrays) = self.keras_files()
        base, _ = self.keras_convert(full)
        mapping = {}
        for i in range(1, 95):
            mapping[f"conv2d_{i}"] = f"conv2d_{95 - i}"
            mapping[f"batch_normalization_{i}"] = f"batch_normalization_{(i * 37) % 94 + 1}"
        c, s, a = renumbered(cfg, spec, arrays, mapping)
        p = self.path("renumbered.h5")
        k2h5.write_full(p, c, s, a)
        other, _ = self.keras_convert(p)
        for k in base:
            np.testing.assert_array_equal(base[k], other[k])

    def test_keras3_config_format(self):
        w, _, _, (cfg, spec, arrays) = self.keras_files()
        p = self.path("k3.h5")
        k2h5.write_full(p, _keras3_style(cfg), spec, arrays)
        tensors, _ = self.keras_convert(p)
        for k in w:
            np.testing.assert_array_equal(tensors[k], w[k])

    def expect_keras_error(self, mutate, *fragments):
        _, full, _, _ = self.keras_files(mutate=mutate)
        with self.assertRaises(convert.ConvertError) as cm:
            self.keras_convert(full)
        for f in fragments:
            self.assertIn(f, str(cm.exception))

    def test_keras_branch_order_checked(self):
        def swap(cfg):  # mixed0 = [branch_pool, 5x5, 3x3dbl, 1x1]
            node = self.layer(cfg, "mixed0")["inbound_nodes"][0]
            node[0], node[3] = node[3], node[0]
        self.expect_keras_error(swap, "mixed0", "Mixed_5b", "branch order")

    def test_keras_fork_order_checked(self):
        def swap(cfg):  # mixed9_0 = [3x1, 1x3]
            node = self.layer(cfg, "mixed9_0")["inbound_nodes"][0]
            node[0], node[1] = node[1], node[0]
        self.expect_keras_error(swap, "Mixed_7b.branch3x3_2a", "kernel_size")

    def test_keras_pool_padding_checked(self):
        def valid(cfg):
            self.layer(cfg, "average_pooling2d_3")["config"]["padding"] = "valid"
        self.expect_keras_error(valid, "average_pooling2d_3", "same")

    def test_keras_conv_padding_checked(self):
        def same(cfg):  # Conv2d_2a_3x3 is 3x3 'valid'
            self.layer(cfg, "conv2d_2")["config"]["padding"] = "same"
        self.expect_keras_error(same, "conv2d_2", "Conv2d_2a_3x3", "padding")

    def test_keras_bn_epsilon_checked(self):
        def eps(cfg):
            self.layer(cfg, "batch_normalization_40")["config"]["epsilon"] = 1e-5
        self.expect_keras_error(eps, "batch_normalization_40", "epsilon")

    def test_keras_extra_head_layer_refused(self):
        def extra(cfg):
            layers = cfg["config"]["layers"]
            layers.insert(-1, {"name": "dense_x", "class_name": "Dense", "inbound_nodes": [[["avg_pool", 0, 0, {}]]],
                               "config": {"name": "dense_x", "units": 64, "activation": "relu", "use_bias": True}})
            self.layer(cfg, "predictions")["inbound_nodes"] = [[["dense_x", 0, 0, {}]]]
        self.expect_keras_error(extra, "GlobalAveragePooling2D")

    def test_keras_options_checked(self):
        _, full, _, _ = self.keras_files()
        with self.assertRaises(convert.ConvertError) as cm:
            self.keras_convert(full, transform_input=True)
        self.assertIn("--transform-input", str(cm.exception))

    def test_class_names(self):
        p = self.path("c.txt")
        with open(p, "w") as f:
            f.write("n01440764 tench\nred fox\n  n02  odd\n\n")
        self.assertEqual(convert.read_class_names(p, 3), ["tench", "red fox", "n02  odd"])
        with self.assertRaises(convert.ConvertError):
            convert.read_class_names(p, 4)
        self.assertEqual(convert.read_class_names(convert.IMAGENET_CLASSES_FILE, 1000)[134], "crane")


@unittest.skipUnless(os.path.exists(os.path.join(TESTS_DATA, "inception_v3_keras_w8.safetensors")),
                     "fixtures not made yet")
class InceptionFixtures(unittest.TestCase):
    """The committed reduced fixtures: names, metadata, and numpy_reference == the goldens."""

    def check(self, variant, pool_rule_tolerance):
        stem = f"inception_v3_{variant}_w8"
        tensors, meta = safetensors_io.read(os.path.join(TESTS_DATA, stem + ".safetensors"))
        self.assertEqual({k: v.shape for k, v in tensors.items()}, dict(inception.expected_shapes(8, 10)))
        self.assertEqual((meta["arch"], meta["variant"], meta["width_divisor"]), ("inception_v3", variant, "8"))
        self.assertEqual(json.loads(meta["classes"])[:2], ["tench", "goldfish"])
        pre = json.loads(meta["preprocess"])
        self.assertEqual((pre["height"], pre["width"]), (139, 139))
        g = os.path.join(TESTS_DATA, "golden", stem)
        x = np.load(g + "_inputs.npy")
        logits = np.load(g + "_logits.npy")
        self.assertEqual((x.shape, x.dtype, logits.shape), ((2, 3, 139, 139), np.float32, (2, 10)))
        got, taps = numpy_reference.forward_inception_v3(tensors, meta, x, taps=("mixed0", "mixed10"))
        rel = np.linalg.norm(got - logits, axis=1) / np.linalg.norm(logits, axis=1)
        self.assertLess(rel.max(), 1e-4)
        for k, shape in (("mixed0", (1, 32, 15, 15)), ("mixed10", (1, 256, 3, 3))):
            want = np.load(f"{g}_{k}.npy")
            self.assertEqual(want.shape, shape)
            self.assertLess(np.linalg.norm(taps[k][:1] - want) / np.linalg.norm(want), 1e-4)
        wrong = numpy_reference.forward_inception_v3(tensors, meta, x, count_include_pad=variant != "torchvision")
        self.assertGreater((np.linalg.norm(wrong - logits, axis=1) / np.linalg.norm(logits, axis=1)).max(),
                           pool_rule_tolerance)

    def test_torchvision_fixture(self):
        self.check("torchvision", 0.1)

    def test_keras_fixture(self):
        self.check("keras", 0.1)
