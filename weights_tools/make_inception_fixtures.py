"""Reduced InceptionV3 CI fixtures (random weights) + framework goldens, both variants.

    /usr/bin/python3 weights_tools/make_inception_fixtures.py        # from the repo root

Width divisor 8, input 139x139, K = 10 (the first 10 ImageNet classes), photos
n01440764_tench.JPEG and n02093428_American_Staffordshire_terrier.JPEG, seed 20240601.
Makes (committed):
  tests/data/inception_v3_{torchvision,keras}_w8.safetensors          convert.py output
  tests/data/golden/inception_v3_{torchvision,keras}_w8_inputs.npy   (2,3,139,139) framework-preprocessed
  tests/data/golden/inception_v3_{torchvision,keras}_w8_logits.npy   (2,10) framework logits
  tests/data/golden/inception_v3_{torchvision,keras}_w8_mixed0.npy   (1,32,15,15) Mixed_5b / mixed0, photo 0
  tests/data/golden/inception_v3_{torchvision,keras}_w8_mixed10.npy  (1,256,3,3) Mixed_7c / mixed10, photo 0
The torchvision part runs under /usr/bin/python3, the Keras part under .venv/bin/python
(see inception_golden.py for the steps and checks). The generated .pth / .h5 sources stay
in temporary folders. Deterministic: the same command rewrites the same bytes.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import inception_golden  # noqa: E402

if __name__ == "__main__":
    sys.exit(inception_golden.main([
        "--variant", "both", "--width-divisor", "8", "--input-size", "139", "--classes", "10",
        "--photos", "2", "--seed", "20240601",
        "--out-dir", os.path.join(REPO, "tests", "data"),
        "--golden-dir", os.path.join(REPO, "tests", "data", "golden"),
        "--name-suffix", "_w8"] + sys.argv[1:]))
