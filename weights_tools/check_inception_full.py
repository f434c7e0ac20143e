"""Full-size InceptionV3 (random weights) in both variants, for checking veto by hand.

    /usr/bin/python3 weights_tools/check_inception_full.py [--out-dir /tmp/veto_inception]

Width divisor 1, input 299, 1000 ImageNet classes, seed 20240601; 4 photos of
../shared/data/imagenet_samples (landscape, portrait, small, large):
n01440764_tench, n02093428_American_Staffordshire_terrier, n02493509_titi,
n02977058_cash_machine. Writes (not committed; nothing here is small):
  torchvision.safetensors, keras.safetensors   convert.py output (torchvision from a
        torchvision.models.inception_v3 state_dict with AuxLogits and num_batches_tracked,
        transform_input true; Keras from a Keras-2-layout full .h5, cross-checked with the
        weights-only layout of keras' own file)
  {variant}_inputs.npy      (4,3,299,299) float32, the framework-preprocessed photos
                            (torchvision Resize(342)+CenterCrop(299)+ToTensor+Normalize;
                            Keras load_img(target_size=(299,299)) + x/127.5-1)
  {variant}_logits.npy      (4,1000) float32 framework logits (torchvision's own
                            inception_v3; keras.applications.InceptionV3 loading the
                            weights-only .h5 with Keras's loader)
  {variant}_mixed0.npy, {variant}_mixed10.npy   block outputs of photo 0, NCHW
  {variant}_resized_u8.npy  (4,299,299,3) uint8: the framework's image after resize/crop,
                            before the float conversion
  {variant}_photos.txt      the photo paths, in input order
  decoded_u8_{i}.npy        photo i decoded by PIL, (H,W,3) uint8
  report.{variant}.json     the numbers printed
Then, per variant:
  veto predict --model /tmp/veto_inception/keras.safetensors \\
      --input /tmp/veto_inception/keras_inputs.npy --logits /tmp/veto_out.npy
and compare /tmp/veto_out.npy with keras_logits.npy.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import inception_golden  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    out = "/tmp/veto_inception"
    if "--out-dir" in args:
        i = args.index("--out-dir")
        out = args[i + 1]
        del args[i:i + 2]
    sys.exit(inception_golden.main([
        "--variant", "both", "--width-divisor", "1", "--input-size", "299", "--classes", "1000",
        "--photos", "4", "--seed", "20240601", "--out-dir", out, "--flat-names", "--extras",
        "--report", os.path.join(out, "report")] + args))
