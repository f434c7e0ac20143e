// The fast CPU convolution (kernels/cpu/conv2d: oneDNN, NCHW in/out) on the ResNet-20 CIFAR
// layers at batch 32 and 256: GFLOP/s (2 x MACs per second) and images/s per layer, plus
// all 19 convolutions of the network in order (with their fused epilogues) as one images/s
// figure to set next to a peer's whole forward pass; and backward_data (the data gradient,
// as many FLOPs as the forward) on the same layers, overwriting or accumulating into dx.
// Run with 2 threads on this machine.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/conv2d.h"
#include "runtime/ops.h"

namespace veto {
namespace {

struct Layer {
  const char* name;
  int64_t in_channels, out_channels, size, stride;
  int count;  // how many times ResNet-20 uses it
};
// All 3x3, pad 1. `size` is the input height = width.
const Layer kLayers[] = {{"conv1 3->16 32x32", 3, 16, 32, 1, 1},      {"16->16 32x32", 16, 16, 32, 1, 6},
                         {"16->32 s2 32x32", 16, 32, 32, 2, 1},       {"32->32 16x16", 32, 32, 16, 1, 5},
                         {"32->64 s2 16x16", 32, 64, 16, 2, 1},       {"64->64 8x8", 64, 64, 8, 1, 5}};

Conv2dOp layer_op(const Layer& l) {
  Conv2dOp op;
  op.in_channels = l.in_channels;
  op.out_channels = l.out_channels;
  op.kernel_h = op.kernel_w = 3;
  op.stride_h = op.stride_w = l.stride;
  op.pad_top = op.pad_left = op.pad_bottom = op.pad_right = 1;
  return op;
}

std::vector<float> random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

// One prepared convolution with its buffers.
struct Prepared {
  std::unique_ptr<Conv2dKernel> kernel;
  std::vector<float> x, y, residual;
  int64_t macs = 0;  // whole batch
};

Prepared prepare(const Layer& l, int64_t batch, ConvFusion fusion, uint32_t seed) {
  const Conv2dOp op = layer_op(l);
  const Shape in{batch, l.in_channels, l.size, l.size};
  const Shape out = infer_shape(OpParams(op), {in}, l.name);
  Prepared p;
  p.kernel = cpu::make_conv2d(op, in, fusion);
  // Weights scaled by 1/sqrt(fan-in) so chained layers keep activations of order one.
  auto w = random(op.out_channels * op.in_channels * 9, seed);
  for (float& v : w) v /= std::sqrt(static_cast<float>(op.in_channels * 9));
  const auto b = random(op.out_channels, seed + 1);
  p.kernel->set_weights(w.data(), b.data());
  p.x = random(in.numel(), seed + 2);
  p.y.assign(static_cast<size_t>(out.numel()), 0.0f);
  if (fusion.residual) p.residual = random(out.numel(), seed + 3);
  p.macs = op_macs(OpParams(op), out) * batch;
  return p;
}

void set_counters(benchmark::State& state, int64_t batch, double macs) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * macs, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

// One layer, conv + bias + ReLU (the common epilogue).
void BM_Conv2dResnet20Layer(benchmark::State& state) {
  const Layer& l = kLayers[state.range(0)];
  const int64_t batch = state.range(1);
  omp_set_num_threads(static_cast<int>(state.range(2)));
  ConvFusion fusion;
  fusion.relu = true;
  Prepared p = prepare(l, batch, fusion, 1);
  for (auto _ : state) p.kernel->forward(p.x.data(), p.y.data(), nullptr);
  set_counters(state, batch, static_cast<double>(p.macs));
  state.SetLabel(std::string(l.name) + " " + cpu::conv2d_implementation(*p.kernel));
}
BENCHMARK(BM_Conv2dResnet20Layer)
    ->ArgNames({"layer", "batch", "threads"})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {32, 256}, {2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One layer's backward_data: dy -> dx (same MACs as the forward; no epilogue). With
// accumulate:1 the result is added onto dx (a tensor read by two nodes, e.g. a block input
// feeding both the residual and the next conv).
void BM_Conv2dBackwardData(benchmark::State& state) {
  const Layer& l = kLayers[state.range(0)];
  const int64_t batch = state.range(1);
  omp_set_num_threads(static_cast<int>(state.range(2)));
  const bool accumulate = state.range(3) != 0;
  Prepared p = prepare(l, batch, ConvFusion{}, 1);
  std::vector<float> dy = random(static_cast<int64_t>(p.y.size()), 5);
  std::vector<float> dx(p.x.size(), 0.0f);
  p.kernel->backward_data(dy.data(), dx.data(), accumulate);  // builds the primitive: not timed
  for (auto _ : state) p.kernel->backward_data(dy.data(), dx.data(), accumulate);
  set_counters(state, batch, static_cast<double>(p.macs));
  state.SetLabel(std::string(l.name) + " " + cpu::conv2d_backward_implementation(*p.kernel));
}
BENCHMARK(BM_Conv2dBackwardData)
    ->ArgNames({"layer", "batch", "threads", "accumulate"})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5}, {32, 256}, {2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// All 19 convolutions of ResNet-20 in network order with their epilogues, chained as in the
// network (each reads the previous output, so activations are as cache-warm as they would
// be): the stem and each block's first conv end in ReLU, each block's second conv adds the
// block input (a separate buffer where the shortcut changes shape), then ReLU. With
// residual:0 every conv ends in ReLU only (what the residual fusion costs).
void BM_Conv2dResnet20AllConvs(benchmark::State& state) {
  const int64_t batch = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));
  const bool fuse_residual = state.range(2) != 0;
  std::vector<Prepared> convs;
  std::vector<const float*> residuals;
  ConvFusion relu, relu_residual;
  relu.relu = true;
  relu_residual.relu = true;
  relu_residual.residual = fuse_residual;
  uint32_t seed = 10;
  convs.push_back(prepare(kLayers[0], batch, relu, seed++));
  residuals.push_back(nullptr);
  for (int stage = 0; stage < 3; ++stage)
    for (int block = 0; block < 3; ++block) {
      // stage 0 uses layer 1 twice; stages 1-2 open with the stride-2 layer (2 or 4), then 3 or 5.
      const Layer& first = kLayers[stage == 0 ? 1 : (block == 0 ? 2 * stage : 2 * stage + 1)];
      const Layer& second = kLayers[stage == 0 ? 1 : 2 * stage + 1];
      const size_t block_input = convs.size() - 1;
      convs.push_back(prepare(first, batch, relu, seed++));
      residuals.push_back(nullptr);
      convs.push_back(prepare(second, batch, relu_residual, seed++));
      const bool same_shape = convs[block_input].y.size() == convs.back().y.size();
      residuals.push_back(!fuse_residual ? nullptr
                          : same_shape ? convs[block_input].y.data()
                                       : convs.back().residual.data());
    }
  double macs = 0;
  for (const auto& c : convs) macs += static_cast<double>(c.macs);
  for (auto _ : state)
    for (size_t i = 0; i < convs.size(); ++i)
      convs[i].kernel->forward(i == 0 ? convs[0].x.data() : convs[i - 1].y.data(), convs[i].y.data(), residuals[i]);
  set_counters(state, batch, macs);
}
BENCHMARK(BM_Conv2dResnet20AllConvs)
    ->ArgNames({"batch", "threads", "residual"})
    ->ArgsProduct({{32, 256}, {2}, {1, 0}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace veto
