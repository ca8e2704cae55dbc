#!/usr/bin/env bash
# The main job, end to end on the CPU: export a real SimAM network, prove ONNX Runtime computes
# what PyTorch computes, fuse each SimAM into one node, prove that too, and time the fused kernel.
# Usage: scripts/demo.sh CLI OUTDIR [CHECKPOINT]   (make demo fills these in)
set -euo pipefail
cli=$1
outdir=$2
checkpoint=${3:-}
mkdir -p "$outdir"

ckpt_args=()
if [[ -n "$checkpoint" && -f "$checkpoint" ]]; then
  echo "== using the SimAM authors' trained CIFAR-100 ResNet-20: $checkpoint"
  ckpt_args=(--checkpoint "$checkpoint")
else
  echo "== no checkpoint found${checkpoint:+ at $checkpoint}: using seeded random weights"
fi

step() { echo; echo "== $*"; }

step "the model zoo"
"$cli" models

step "export cifar-resnet20 to ONNX (standard ops, dynamic batch/H/W)"
"$cli" export cifar-resnet20 "${ckpt_args[@]}" -o "$outdir/r20.onnx" --dynamic all

step "validate: ONNX Runtime vs PyTorch"
"$cli" validate "$outdir/r20.onnx" --reference cifar-resnet20 "${ckpt_args[@]}" --json "$outdir/r20-parity.json"

step "fuse: one SimAM node per module (the TensorRT plugin path)"
"$cli" fuse "$outdir/r20.onnx" -o "$outdir/r20-fused.onnx" --json "$outdir/r20-fuse.json"

step "validate the fused model (ONNX Runtime custom op backed by the fused CPU kernel)"
"$cli" validate "$outdir/r20-fused.onnx" --reference cifar-resnet20 "${ckpt_args[@]}"

step "the fused SimAM kernel vs eager PyTorch on the CPU"
"$cli" bench --kernel --device cpu --shape 8x256x56x56 --dtype fp32 --iters 20 --json "$outdir/kernel-bench.json"

echo
echo "== done: artefacts in $outdir/"
