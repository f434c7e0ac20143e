#!/usr/bin/env bash
# LCR on CIFAR-10 with ResNet-20, one mutant set per operator: builds 100 accepted mutants
# (acceptance on the first $ACCEPT records) and runs `veto lcr` over the whole test file,
# writing each mutant set, the per-image LCR (.safetensors) and the JSON summary into OUT.
# The README's LCR table comes from the JSON files (`detection.auroc`, `mean_lcr_*`).
#
#   bench/lcr_cifar.sh OUT [CIFAR_TEST_BIN] [VETO]
#   OPS="gf:0.015 ws:0.01" ACCEPT=500 bench/lcr_cifar.sh OUT ...   (a subset; another acceptance size)
#
# Each operator takes about 10-15 minutes on 2 idle cores (acceptance over 1000 records,
# then 10,000 records x 100 mutants).
set -euo pipefail
out=${1:?usage: bench/lcr_cifar.sh OUT [CIFAR_TEST_BIN] [VETO]}
data=${2:-../shared/data/cifar10/test_batch.bin}
veto=${3:-build/veto}
# operator:gamma — the paper's CIFAR settings for NAI (0.01) and GF (0.015); WS and NS at 0.01.
ops=${OPS:-nai:0.01 gf:0.015 ws:0.01 ns:0.01}
accept=${ACCEPT:-1000}
mkdir -p "$out"
for spec in $ops; do
  op=${spec%%:*} gamma=${spec#*:}
  "$veto" mutants build --model resnet20 --data "$data" --limit "$accept" --op "$op" --gamma "$gamma" \
    --count 100 --seed 0 --out "$out/mutants_$op.safetensors" --format json > "$out/mutants_$op.json"
  "$veto" lcr --model resnet20 --mutants "$out/mutants_$op.safetensors" --data "$data" --batch 128 \
    --out "$out/lcr_$op.safetensors" --format json > "$out/lcr_$op.json"
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); d=j['detection']; print(sys.argv[2], 'AUROC', d['auroc'], 'right', d['mean_lcr_right'], 'wrong', d['mean_lcr_wrong'], 'img/s', j['images_per_second'])" "$out/lcr_$op.json" "$op"
done
