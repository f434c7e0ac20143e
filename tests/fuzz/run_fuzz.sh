#!/usr/bin/env bash
# Smoke-fuzzes every loader: builds the libFuzzer targets (clang-14, ASan + UBSan) in
# build-fuzz/ and runs each for SECONDS_PER_TARGET seconds (default 60), one after the
# other, on its seed corpus. Exits non-zero on the first finding; the crashing input is
# saved under build-fuzz/artifacts/<target>/ (see tests/fuzz/README.md for what to do).
#
#   tests/fuzz/run_fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Installs clang-14 and libclang-rt-14-dev with apt when they are missing (needs root).
# New inputs found go to build-fuzz/corpus/<target>/, never into the committed seeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(safetensors model npy cifar image args mutants detector features onnx)

if ! command -v clang++-14 >/dev/null 2>&1 || ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "run_fuzz: installing clang-14 and libclang-rt-14-dev"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends clang-14 libclang-rt-14-dev libomp-14-dev
fi

build=build-fuzz
CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -DVETO_FUZZ=ON -DVETO_CUDA=OFF -DVETO_MPI=OFF -DVETO_BUILD_TESTS=OFF \
  -DVETO_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}")

# A sanitizer report is a finding; leaks too (libFuzzer checks them after each input).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
for t in "${targets[@]}"; do
  work="$build/corpus/$t" artifacts="$build/artifacts/$t"
  mkdir -p "$work" "$artifacts"
  dict=()
  [ -f "tests/fuzz/dict/$t.dict" ] && dict=(-dict="tests/fuzz/dict/$t.dict")
  echo "run_fuzz: fuzz_$t for ${seconds}s"
  # -rss_limit_mb / -malloc_limit_mb: an allocation driven by an untrusted length is a
  # finding. -timeout: one input may take at most 30 s (the largest image a loader accepts
  # decodes and resizes in a few seconds under ASan).
  "$build/tests/fuzz/fuzz_$t" "${dict[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -timeout=30 -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "tests/fuzz/corpus/$t" \
    2>"$build/fuzz_$t.log" || {
    tail -n 60 "$build/fuzz_$t.log"
    echo "run_fuzz: fuzz_$t found a problem; the input is in $artifacts/" >&2
    exit 1
  }
  grep -E '^#[0-9]+[[:space:]]+DONE' "$build/fuzz_$t.log" || tail -n 3 "$build/fuzz_$t.log"
done
echo "run_fuzz: no findings in ${#targets[@]} targets x ${seconds}s"
