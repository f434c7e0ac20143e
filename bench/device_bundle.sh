#!/usr/bin/env bash
# Gathers here what bench/device_check.sh needs on the GPU machine beyond its CUDA, CMake,
# compiler and PyTorch (it has no package registry): Debian's oneDNN, nlohmann-json, stb,
# GoogleTest and Google Benchmark packages as .debs (unpacked there into a private prefix,
# never into /), and Captum as a wheel for the side-by-side conductance timing. ~10 MB, in
# the git-ignored .device/; the device call names it in `carry`:
#
#   bench/device_bundle.sh
#   run(command="bench/device_check.sh $OUT", carry=[".device"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .device && mkdir -p .device/debs .device/wheels
(cd .device/debs && apt-get download libdnnl-dev libdnnl2 ocl-icd-libopencl1 nlohmann-json3-dev libstb-dev \
  libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .device/wheels captum==0.7.0
du -sh .device
