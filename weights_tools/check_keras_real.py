"""Convert the real Keras ResNet20v1 .h5 and dump TensorFlow golden logits (outside the repo).

    .venv/bin/python weights_tools/check_keras_real.py          # from the repo root

The source repository states no licence, so nothing made here is committed:
  /tmp/veto_golden/keras_resnet20v1.safetensors              convert.py output
  /tmp/veto_golden/keras_resnet20v1_logits_0-999.npy         TF logits, records 0-999, (1000,10) f32
  /tmp/veto_golden/keras_resnet20v1_logits_all.npy           TF logits, all 10,000 records
Steps:
  1. convert.py (run with /usr/bin/python3, as documented) into a temp folder, then
     copied to --out-dir;
  2. tf.keras model from keras_resnet20v1_tf.py, weights loaded from the .h5 by layer
     name, x/255 NHWC, pre-softmax logits; prints top-1 accuracy (expected 0.925 on
     records 0-999 of data/cifar10_test_0-999.bin, 0.8188 on all 10,000);
  3. cross-checks: Keras's own loader (keras.models.load_model on the .h5, compile=False)
     gives the same softmax; numpy_reference.py on the converted file gives the same
     logits (first --numpy-count records; the numpy forward is slow).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import cifar_io  # noqa: E402
import numpy_reference  # noqa: E402
import safetensors_io  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--h5", default=os.path.join(SHARED, "models", "keras_cifar10_ResNet20v1_model.h5"))
    ap.add_argument("--data", default=os.path.join(REPO, "data", "cifar10_test_0-999.bin"))
    ap.add_argument("--all-data", default=os.path.join(SHARED, "cifar10", "test_batch.bin"),
                    help="full 10,000-record test file ('' to skip)")
    ap.add_argument("--out-dir", default="/tmp/veto_golden")
    ap.add_argument("--numpy-count", type=int, default=100)
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="veto_keras_") as tmp:
        converted = os.path.join(tmp, "keras_resnet20v1.safetensors")
        subprocess.run([SYSTEM_PYTHON, os.path.join(HERE, "convert.py"), "--arch", "keras_resnet20v1",
                        args.h5, converted], check=True)
        out_model = os.path.join(args.out_dir, "keras_resnet20v1.safetensors")
        shutil.copyfile(converted, out_model)
    print(f"wrote {out_model}")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras_resnet20v1_tf as ktf
    model = ktf.build_model()
    ktf.load_weights_h5(model, args.h5)

    images, labels = cifar_io.read_cifar_bin(args.data)
    logits = ktf.logits(model, ktf.cifar_to_nhwc(images))
    acc = float(np.mean(logits.argmax(1) == labels))
    out = os.path.join(args.out_dir, f"keras_resnet20v1_logits_0-{len(labels) - 1}.npy")
    np.save(out, logits)
    print(f"TF keras_resnet20v1 on records 0-{len(labels) - 1}: top-1 accuracy {acc:.4f}; wrote {out}")

    if args.all_data and os.path.exists(args.all_data):
        all_images, all_labels = cifar_io.read_cifar_bin(args.all_data)
        all_logits = ktf.logits(model, ktf.cifar_to_nhwc(all_images))
        out_all = os.path.join(args.out_dir, "keras_resnet20v1_logits_all.npy")
        np.save(out_all, all_logits)
        if not np.array_equal(all_logits[:len(labels)].argmax(1), logits.argmax(1)):
            print("warning: argmax on records 0-999 differs between the two runs")
        print(f"TF keras_resnet20v1 on all {len(all_labels)} records: top-1 accuracy "
              f"{np.mean(all_logits.argmax(1) == all_labels):.4f}; wrote {out_all}")

    # cross-check 1: Keras's own HDF5 loader (model topology from model_config)
    try:
        from tensorflow import keras
        ref_model = keras.models.load_model(args.h5, compile=False)
        probs = ref_model.predict(ktf.cifar_to_nhwc(images), batch_size=250, verbose=0)
        mine = np.exp(logits - logits.max(1, keepdims=True))
        mine /= mine.sum(1, keepdims=True)
        print(f"keras.models.load_model(.h5) softmax vs ours: max abs diff {np.abs(probs - mine).max():.2e}")
    except Exception as e:  # Keras 3 may refuse some Keras 2 files; the check is optional
        print(f"keras.models.load_model cross-check skipped: {type(e).__name__}: {e}")

    # cross-check 2: the converted file, run by numpy_reference, against TF
    tensors, meta = safetensors_io.read(out_model)
    k = min(args.numpy_count, len(labels))
    ref = numpy_reference.forward(tensors, meta["arch"], numpy_reference.preprocess(images[:k], meta))
    rel = np.linalg.norm(ref - logits[:k], axis=1) / np.linalg.norm(logits[:k], axis=1)
    print(f"numpy_reference(converted) vs TF on {k} records: worst relative L2 {rel.max():.2e}, "
          f"max abs {np.abs(ref - logits[:k]).max():.2e}, argmax agree "
          f"{np.mean(ref.argmax(1) == logits[:k].argmax(1)):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
