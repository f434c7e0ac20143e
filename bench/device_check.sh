#!/usr/bin/env bash
# The one GPU-machine check (issue: CUDA backend): builds veto with CUDA, runs the whole test
# suite (the CUDA parity tests run there instead of skipping), and times veto and PyTorch
# (+ Captum) on the same jobs, writing into OUT_DIR (at most 8 files):
#   summary.json  every number below and the ratios veto / PyTorch
#   summary.txt   the same, readable, plus each step's status
#   build.log, ctest.log, torch.json, veto.json (one entry per veto job that finished)
#
#   bench/device_bundle.sh                      # here, once: .device/ (Debian .debs, captum wheel)
#   run(command="bench/device_check.sh $OUT", carry=[".device"], timeout_s=540)
#
# Jobs: InceptionV3 299x299 (torchvision's, random weights, seed 0, the same file for both
# sides) forward images/s at batch 1/32/128/256 in fp32, tf32 and bf16 on both sides;
# conductance images/s at the 11 mixed layers, n = 10 steps (veto's fused pass vs Captum's
# LayerConductance layer by layer); on ResNet-20 with the bundled records, LCR images/s with
# 100 NAI mutants (gamma 0.002) and the detection features (conductance at 9 blocks + LCR)
# images/s. A dry run on a machine without a GPU: VETO_DEVICE_BACKEND=cpu (every step on
# the CPU with small sizes), VETO_DEVICE_BUILD=DIR (build an existing build folder instead of
# configuring build-device), VETO_DEVICE_TESTS=REGEX (a subset), PYTHON=/usr/bin/python3 (one
# with torch, torchvision and numpy; default python3). The whole script keeps to
# VETO_DEVICE_SECONDS (default 500): each step gets what is left, so a hung step still leaves
# the summary of what finished.
set -uo pipefail
out="${1:?usage: bench/device_check.sh OUT_DIR}"
mkdir -p "$out" && out="$(cd "$out" && pwd)"
cd "$(dirname "$0")/.."
backend="${VETO_DEVICE_BACKEND:-cuda}"
py="${PYTHON:-python3}"
jobs="$(nproc)"
deadline=$((SECONDS + ${VETO_DEVICE_SECONDS:-500}))
summary="$out/summary.txt"
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
step() {  # step NAME SECONDS LOG COMMAND...: at most SECONDS and what is left, output to LOG (- : here)
  local name="$1" limit="$2" log="$3"; shift 3
  local left=$((deadline - SECONDS)) start=$SECONDS rc
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 5 ]; then
    say "step $name: skipped, out of time"
    return 124
  fi
  if [ "$log" = - ]; then timeout "$limit" "$@"; else timeout "$limit" "$@" >"$log" 2>&1; fi
  rc=$?
  say "step $name: rc $rc, $((SECONDS - start)) s"
  return $rc
}
if [ "$backend" = cuda ]; then
  batches=1,32,128,256 precisions=fp32,tf32,bf16 cond_images=32 steps=10 mutant_limit=1000 lcr_limit=1000
  features_limit=1000 memory=32768
else
  batches=1,4 precisions=fp32 cond_images=1 steps=2 mutant_limit=200 lcr_limit=64 features_limit=32 memory=2048
fi
say "device_check: backend $backend, $(date -u +%FT%TZ), $(nproc) cores"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$summary"

# Dependencies the GPU machine lacks: unpacked into a private prefix, never into /.
deps=/tmp/veto-deps
if [ -d .device/debs ]; then
  mkdir -p "$deps"
  for f in .device/debs/*.deb; do dpkg -x "$f" "$deps"; done
  export CMAKE_PREFIX_PATH="$deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if ls .device/wheels/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/veto-site .device/wheels/*.whl &&
    export PYTHONPATH="/tmp/veto-site${PYTHONPATH:+:$PYTHONPATH}"
fi
cuda_flag=-DVETO_CUDA=OFF
if [ "$backend" = cuda ]; then
  cuda_flag="-DVETO_CUDA=ON -DVETO_CUDA_ARCHITECTURES=90"  # the H200 only: half the nvcc time
  # cuDNN: the system's, else the one in PyTorch's install (nvidia/cudnn), which has only
  # versioned libraries: CMake's find_library needs a libcudnn.so beside them.
  if [ -z "${CUDNN_ROOT:-}" ] && [ ! -e /usr/include/cudnn.h ] && [ ! -e /usr/local/cuda/include/cudnn.h ]; then
    wheel="$("$py" -c 'import nvidia.cudnn as c; print(list(c.__path__)[0])' 2>/dev/null)"
    if [ -n "$wheel" ]; then
      mkdir -p /tmp/veto-cudnn/lib
      ln -sfn "$wheel/include" /tmp/veto-cudnn/include
      for so in "$wheel"/lib/libcudnn*.so.*; do ln -sf "$so" /tmp/veto-cudnn/lib/; done
      ln -sf "$(ls "$wheel"/lib/libcudnn.so.* | head -1)" /tmp/veto-cudnn/lib/libcudnn.so
      export CUDNN_ROOT=/tmp/veto-cudnn LD_LIBRARY_PATH="/tmp/veto-cudnn/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
  fi
fi

build="${VETO_DEVICE_BUILD:-build-device}"
generator=$(command -v ninja >/dev/null && echo "-G Ninja")
configure="cmake -S . -B $build $generator -DCMAKE_BUILD_TYPE=Release $cuda_flag -DVETO_MPI=OFF -DVETO_ONNX=OFF"
[ -n "${VETO_DEVICE_BUILD:-}" ] && configure=true
if ! step build 360 "$out/build.log" bash -c "$configure && cmake --build $build -j$jobs"; then
  tail -n 30 "$out/build.log"
  exit 1
fi

step ctest 240 "$out/ctest.log" ctest --test-dir "$build" -j"$jobs" -R "${VETO_DEVICE_TESTS:-.}" --output-on-failure
grep -E "tests passed|tests failed" "$out/ctest.log" | tee -a "$summary"

veto="$build/veto"
tmp=/tmp/veto-device-check  # cleared: a warm machine keeps the last run's files
rm -rf "$tmp" && mkdir -p "$tmp/jobs"
step torch 300 - "$py" bench/torch_baseline.py --device "$backend" --batches "$batches" --precisions "$precisions" \
  --conductance-images "$cond_images" --steps "$steps" --threads "$jobs" --save-state-dict "$tmp/inception.pth" \
  --out "$out/torch.json"
step convert 120 "$tmp/convert.log" "$py" weights_tools/convert.py --arch inception_v3_torchvision \
  --transform-input false "$tmp/inception.pth" "$tmp/inception.safetensors"
"$py" - "$tmp" "$cond_images" <<'PY'
import sys
import numpy as np
tmp, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(8)
np.save(f"{tmp}/x8.npy", rng.standard_normal((8, 3, 299, 299), dtype=np.float32))
np.save(f"{tmp}/xc.npy", rng.standard_normal((n, 3, 299, 299), dtype=np.float32))
PY

job() {  # job NAME COMMAND...: one timed job, veto's JSON (stdout) into $tmp/jobs/NAME.json
  local name="$1" result="$tmp/jobs/$1.json"; shift
  # shellcheck disable=SC2016
  if ! step "$name" 300 "$tmp/$name.err" sh -c '"$@" >"$0"' "$result" "$@"; then
    [ -f "$tmp/$name.err" ] && tail -n 3 "$tmp/$name.err" | tee -a "$summary"
    rm -f "$result"
  fi
}
# The issue's two targets first (bf16 forward at the largest batch, the detection features),
# so a run cut short by the deadline still has them; then the rest.
reversed() { local out="" x; for x in ${1//,/ }; do out="$x $out"; done; echo "$out"; }
for b in $(reversed "$batches"); do
  for p in $(reversed "$precisions"); do
    job "forward_${p}_b$b" "$veto" bench --model "$tmp/inception.safetensors" --backend "$backend" \
      --precision "$p" --input "$tmp/x8.npy" --batch "$b" --repeat 10 --format json
  done
done
cifar=data/cifar10_test_0-999.bin
step mutants 300 "$tmp/mutants.log" "$veto" mutants build --model resnet20 --backend "$backend" --data "$cifar" \
  --limit "$mutant_limit" --op nai --gamma 0.002 --count 100 --seed 0 --out "$tmp/nai.safetensors"
for p in $(reversed "$precisions"); do  # detection features per precision (LCR against the same mode's predictions)
  job "features_$p" "$veto" features --model resnet20 --backend "$backend" --precision "$p" \
    --mutants "$tmp/nai.safetensors" --data "$cifar" --limit "$features_limit" --batch 256 --max-memory "$memory" \
    --out "$tmp/features_$p.safetensors" --format json
done
job conductance "$veto" attribute --model "$tmp/inception.safetensors" --backend "$backend" --input "$tmp/xc.npy" \
  --steps "$steps" --batch "$cond_images" --max-memory "$memory" --out "$tmp/attr.npy" --format json
job lcr "$veto" lcr --model resnet20 --backend "$backend" --mutants "$tmp/nai.safetensors" --data "$cifar" \
  --limit "$lcr_limit" --batch 256 --format json
# Batch 1 with every kernel launched each pass: what the CUDA Graph replay saves.
job forward_nographs_b1 "$veto" bench --model "$tmp/inception.safetensors" --backend "$backend" --graphs off \
  --input "$tmp/x8.npy" --batch 1 --repeat 10 --format json

"$py" - "$out" "$tmp/jobs" <<'PY' | tee -a "$summary"
import glob, json, os, sys
out, job_dir = sys.argv[1], sys.argv[2]
jobs = {}
for path in sorted(glob.glob(f"{job_dir}/*.json")):
    try:
        with open(path) as f:
            r = json.load(f)
    except ValueError:
        print(f"{path}: not JSON, left out")
        continue
    r.pop("images", None)  # per-input rows
    jobs[os.path.basename(path)[:-5]] = r
with open(f"{out}/veto.json", "w") as f:
    json.dump(jobs, f, indent=2)
try:
    with open(f"{out}/torch.json") as f:
        torch = json.load(f)
except (OSError, ValueError):
    torch = {"forward": [], "conductance": None}
    print("torch.json is missing or incomplete: no PyTorch side")
forward = {}  # (precision, batch) -> images/s, from the job names forward_<precision>_b<batch>
for name, r in jobs.items():
    if name.startswith("forward_"):
        _, precision, batch = name.split("_")
        forward[(precision, int(batch[1:]))] = r["images_per_second"]
jobs = {name: r for name, r in jobs.items() if not name.startswith("forward_")}
summary = {"forward": [], "jobs": {}}
for r in torch["forward"]:
    v = forward.get((r["precision"], r["batch"]))
    entry = dict(batch=r["batch"], precision=r["precision"], torch_images_per_second=r["images_per_second"],
                 veto_images_per_second=v, ratio=v / r["images_per_second"] if v else None)
    summary["forward"].append(entry)
    mine = f"{v:10.1f} img/s" if v else "    (none)"
    ratio = f"{entry['ratio']:.2f}" if v else "n/a"
    print(f"forward {r['precision']} batch {r['batch']:4d}: veto {mine}, PyTorch "
          f"{r['images_per_second']:10.1f} img/s, ratio {ratio}")
if ("nographs", 1) in forward and ("fp32", 1) in forward:
    summary["graph_replay_speedup_b1"] = forward[("fp32", 1)] / forward[("nographs", 1)]
    print(f"forward fp32 batch 1: CUDA Graph replay {summary['graph_replay_speedup_b1']:.2f}x kernel by kernel")
for name, r in jobs.items():
    summary["jobs"][name] = {k: r.get(k) for k in ("images_per_second", "seconds", "count", "steps", "backend")}
    print(f"{name}: veto {r['images_per_second']:.1f} img/s ({r.get('count')} inputs)")
if torch.get("conductance") and "conductance" in jobs:
    c = torch["conductance"]
    ratio = jobs["conductance"]["images_per_second"] / c["images_per_second"]
    summary["conductance_ratio_vs_captum"] = ratio
    print(f"conductance: Captum {c['images_per_second']:.2f} img/s ({c['images']} images), ratio {ratio:.2f}")
summary["veto_forward"] = {f"{p}_b{b}": v for (p, b), v in sorted(forward.items())}
summary["torch"] = {k: torch.get(k) for k in ("torch", "torchvision", "device", "gpu")}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
PY
