#!/usr/bin/python3
"""Writes the small image fixtures of tests/data/images/ (image formats veto must handle or
refuse clearly). Run from the repository root: /usr/bin/python3 weights_tools/make_image_fixtures.py"""
import os

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "images")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    # 16-bit grayscale PNG: value v*257 so the 8-bit reading is exactly v.
    gray8 = rgb[:, :, 0]
    Image.fromarray((gray8.astype(np.uint16) * 257), mode="I;16").save(os.path.join(OUT, "gray16.png"))
    Image.fromarray(rgb).save(os.path.join(OUT, "progressive.jpg"), quality=95, progressive=True)
    Image.fromarray(rgb).convert("CMYK").save(os.path.join(OUT, "cmyk.jpg"), quality=95)
    # What Pillow (libjpeg-turbo) decodes, as float32 HWC, for tolerance checks of stb_image.
    np.save(os.path.join(OUT, "gray8.npy"), gray8.astype(np.float32))
    for name in ("progressive", "cmyk"):
        pil = np.asarray(Image.open(os.path.join(OUT, name + ".jpg")).convert("RGB"), dtype=np.float32)
        np.save(os.path.join(OUT, name + "_pillow_rgb.npy"), pil)


if __name__ == "__main__":
    main()
