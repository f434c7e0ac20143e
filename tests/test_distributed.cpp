// Scale-out pieces that run in one process: the shards (runtime/distributed.h), the
// one-process communicator, and LCR over image and mutant ranges combined as the ranks of
// an MPI job combine them (tests/test_mpi.cpp runs the real thing under mpirun).
#include <gtest/gtest.h>

#include "runtime/distributed.h"
#include "runtime/error.h"
#include "runtime/lcr.h"
#include "runtime/model.h"

namespace veto {
namespace {

const std::string kRepo = VETO_REPO_DIR;

TEST(ShardRange, CutsWholeBatchesInOrderCoveringEverything) {
  for (int64_t n : {0, 1, 7, 64, 65, 1000})
    for (int64_t batch : {1, 7, 64})
      for (int parts : {1, 2, 3, 8}) {
        int64_t expect_begin = 0, biggest = 0, smallest = n;
        for (int p = 0; p < parts; ++p) {
          const Range r = shard_range(n, batch, p, parts);
          EXPECT_EQ(r.begin, expect_begin) << n << " " << batch << " " << p << "/" << parts;
          EXPECT_LE(r.begin, r.end);
          EXPECT_TRUE(r.begin % batch == 0 || r.begin == n);
          expect_begin = r.end;
          biggest = std::max(biggest, r.size());
          smallest = std::min(smallest, r.size());
        }
        EXPECT_EQ(expect_begin, n);
        // Balanced to within one batch (the short last one aside).
        EXPECT_LE(biggest - smallest, batch) << n << " " << batch << " " << parts;
      }
  EXPECT_THROW(shard_range(10, 0, 0, 1), Error);
  EXPECT_THROW(shard_range(10, 4, 2, 2), Error);
}

TEST(Communicator, AloneGathersItsOwnRows) {
  const Communicator one;
  EXPECT_EQ(one.size(), 1);
  EXPECT_TRUE(one.root());
  std::vector<int64_t> v{1, 2, 3};
  one.allreduce_sum(v);
  EXPECT_EQ(v, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(gather_rows(one, std::vector<float>{1.5f, 2.5f}), (std::vector<float>{1.5f, 2.5f}));
  std::vector<int> full{0, 0, 5, 6, 0};
  gather_shard_rows(one, full, Range{2, 4}, 1);
  EXPECT_EQ(full, (std::vector<int>{5, 6}));
  EXPECT_EQ(one.split(3).size(), 1);
}

// Every (image shard, mutant shard) pair computed on its own and merged the way
// compute_lcr_sharded merges ranks (sums of counts, max of the -1-filled predictions,
// rows by shard) equals one whole run, bit for bit.
TEST(Lcr, ShardsOfImagesAndMutantsMergeIntoTheWholeRun) {
  Model m = load_model(kRepo + "/models/resnet20.safetensors");
  auto data = open_cifar_dataset(kRepo + "/data/cifar10_test_0-999.bin", m.preprocess, 50);
  const MutantGenerator gen(m, MutationOperator::NAI, 0.01, 4);
  std::vector<WeightDelta> deltas;
  for (int64_t d = 0; d < 7; ++d) deltas.push_back(resolve_mutant(m, gen.draw(d)));
  auto backend = make_backend("cpu");
  MutantRunner runner(m, *backend, 16);
  const LcrResult whole = compute_lcr(runner, *data, deltas);

  const int groups = 3, parts = 2;
  LcrResult merged;
  merged.changes.assign(50, 0);
  merged.used.assign(50, 0);
  merged.predictions.assign(50, -1);
  merged.mutant_predictions.assign(50 * 7, -1);
  std::vector<float> logits(50 * 10, 0.0f);
  for (int g = 0; g < groups; ++g)
    for (int p = 0; p < parts; ++p) {
      LcrOptions o;
      o.images = shard_range(50, runner.batch(), g, groups);
      o.mutants = shard_range(7, 1, p, parts);
      const LcrResult r = compute_lcr(runner, *data, deltas, o);
      EXPECT_EQ(r.mutant_forwards, o.images.size() * o.mutants.size());
      for (size_t i = 0; i < 50; ++i) {
        const bool mine = static_cast<int64_t>(i) >= o.images.begin && static_cast<int64_t>(i) < o.images.end;
        EXPECT_EQ(r.used[i], mine ? o.mutants.size() : 0);
        merged.changes[i] += r.changes[i];
        merged.used[i] += r.used[i];
        if (mine) merged.predictions[i] = r.predictions[i];
        for (size_t k = 0; k < 7; ++k)
          merged.mutant_predictions[i * 7 + k] = std::max(merged.mutant_predictions[i * 7 + k], r.mutant_predictions[i * 7 + k]);
        if (mine) std::copy(r.logits.data() + i * 10, r.logits.data() + (i + 1) * 10, logits.begin() + static_cast<std::ptrdiff_t>(i * 10));
      }
    }
  EXPECT_EQ(merged.changes, whole.changes);
  EXPECT_EQ(merged.used, whole.used);
  EXPECT_EQ(merged.predictions, whole.predictions);
  EXPECT_EQ(merged.mutant_predictions, whole.mutant_predictions);
  EXPECT_EQ(logits, whole.logits.values());
  // And through the sharded entry point with this process as the only rank.
  const LcrResult alone = compute_lcr_sharded(runner, *data, deltas, LcrOptions{}, Communicator(), 1);
  EXPECT_EQ(alone.mutant_predictions, whole.mutant_predictions);
  EXPECT_EQ(alone.logits.values(), whole.logits.values());
}

TEST(Lcr, RejectsBadRangesAndSplitSprt) {
  Model m = load_model(kRepo + "/models/resnet20.safetensors");
  auto data = open_cifar_dataset(kRepo + "/data/cifar10_test_0-999.bin", m.preprocess, 8);
  const MutantGenerator gen(m, MutationOperator::NAI, 0.01, 4);
  const std::vector<WeightDelta> deltas{resolve_mutant(m, gen.draw(0)), resolve_mutant(m, gen.draw(1))};
  auto backend = make_backend("cpu");
  MutantRunner runner(m, *backend, 8);
  LcrOptions o;
  o.images = Range{0, 9};
  EXPECT_THROW(compute_lcr(runner, *data, deltas, o), Error);
  o.images = Range{0, -1};
  o.mutants = Range{1, 3};
  EXPECT_THROW(compute_lcr(runner, *data, deltas, o), Error);
  o.mutants = Range{1, 2};
  o.sprt = true;
  try {
    compute_lcr(runner, *data, deltas, o);
    ADD_FAILURE() << "SPRT over part of the mutants was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--mutant-shards 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(compute_lcr_sharded(runner, *data, deltas, LcrOptions{}, Communicator(), 2), Error);
}

}  // namespace
}  // namespace veto
