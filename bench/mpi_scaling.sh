#!/usr/bin/env bash
# MPI scaling on one machine: `veto lcr` and `veto features` on the bundled CIFAR-10 records
# as one process (all cores), as `mpirun -np 1` (Open MPI binds the rank to one core) and as
# `mpirun -np N` (N ranks, one core each), same inputs and mutants; checks that every run
# wrote the same bytes and prints images/s (veto's own timing: the slowest rank's loading +
# compute, setup excluded) and wall seconds (process start to exit, setup included).
#
#   bench/mpi_scaling.sh OUT [N] [VETO]        (N defaults to the core count)
#
# Needs a build with MPI (cmake finds Open MPI: apt-get install libopenmpi-dev openmpi-bin).
set -euo pipefail
out=${1:?usage: bench/mpi_scaling.sh OUT [N] [VETO]}
ranks=${2:-$(nproc)}
veto=${3:-build/veto}
data=data/cifar10_test_0-999.bin
mkdir -p "$out"
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_plm_rsh_agent=
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mutants="$out/mutants.safetensors"
[ -f "$mutants" ] || "$veto" mutants build --model resnet20 --data "$data" --limit 500 --op nai --gamma 0.01 \
  --count 50 --seed 0 --out "$mutants" > /dev/null

run() {  # label, launcher words..., -- veto args
  local label=$1; shift
  local launcher=()
  while [ "$1" != -- ]; do launcher+=("$1"); shift; done; shift
  local start end
  start=$(date +%s.%N)
  "${launcher[@]}" "$veto" "$@" --format json > "$out/$label.json"
  end=$(date +%s.%N)
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('%-22s %8.2f images/s  %6.1f s wall' % (sys.argv[2], j['images_per_second'], float(sys.argv[4]) - float(sys.argv[3])))" \
    "$out/$label.json" "$label" "$start" "$end"
}

for job in lcr features; do
  if [ "$job" = lcr ]; then args=(lcr --model resnet20 --mutants "$mutants" --data "$data" --batch 64)
  else args=(features --model resnet20 --mutants "$mutants" --data "$data" --batch 64); fi
  run "${job}_process" -- "${args[@]}" --out "$out/${job}_process.safetensors"
  run "${job}_np1" mpirun -np 1 -- "${args[@]}" --out "$out/${job}_np1.safetensors"
  run "${job}_np$ranks" mpirun -np "$ranks" --oversubscribe -- "${args[@]}" --out "$out/${job}_np$ranks.safetensors"
  cmp "$out/${job}_process.safetensors" "$out/${job}_np1.safetensors"
  cmp "$out/${job}_process.safetensors" "$out/${job}_np$ranks.safetensors"
  echo "$job: all three runs wrote the same bytes"
done
