#include "runtime/lcr.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <optional>

#include "runtime/error.h"
#include "runtime/inference.h"

namespace veto {

MutantRunner::MutantRunner(Model& model, Backend& backend, int64_t batch, bool naive)
    : model_(model), backend_(backend), batch_(batch), naive_(naive) {
  VETO_CHECK(batch > 0, "batch size must be positive, got ", batch);
  if (naive) copy_ = std::make_unique<Model>(model);
}

MutantRunner::~MutantRunner() = default;

Plan& MutantRunner::plan_for(int64_t count) {
  auto& plan = plans_[count];
  if (!plan) {
    PlanOptions options;
    options.incremental = !naive_;
    plan = std::make_unique<Plan>(naive_ ? *copy_ : model_, backend_, count, options);
  }
  return *plan;
}

const std::vector<int>& MutantRunner::load(const float* images, int64_t count) {
  VETO_CHECK(count > 0 && count <= batch_, "load: ", count, " images for a runner of batch ", batch_);
  current_ = &plan_for(count);
  const int64_t total = current_->shape(model_.graph.node(0).name).numel(), sample = total / count;
  for (int64_t i = 0; i < total; ++i)
    VETO_CHECK(std::isfinite(images[i]), "image ", i / sample, " of the batch holds a non-finite value (at ", i % sample, ")");
  if (naive_) {
    // The copy holds the last mutant's weights: back to the original model.
    std::memcpy(copy_->params.data(), model_.params.data(), static_cast<size_t>(model_.params.size()) * sizeof(float));
    current_->refresh_parameters();
    images_.assign(images, images + total);
  }
  current_->forward(images);
  logits_ = current_->logits();
  predictions_ = argmax_rows(logits_);
  return predictions_;
}

std::vector<int> MutantRunner::predict(const WeightDelta& delta) {
  VETO_CHECK(current_, "predict before load");
  Plan& plan = *current_;
  if (naive_) {
    // Copy the whole model, change the copy, re-read every weight, run everything.
    std::memcpy(copy_->params.data(), model_.params.data(), static_cast<size_t>(model_.params.size()) * sizeof(float));
    const ScopedDelta applied(copy_->params, delta);
    plan.refresh_parameters();
    plan.forward(images_.data());
    return argmax_rows(plan.logits());
  }
  std::exception_ptr error;
  std::vector<int> predictions;
  {
    const ScopedDelta applied(model_.params, delta);
    try {
      refresh_changed_filters(plan, delta);
      plan.forward_changed(delta.convs);
      predictions = argmax_rows(plan.logits());
    } catch (...) {
      error = std::current_exception();
    }
  }
  refresh_changed_filters(plan, delta);  // the original weights again
  if (error) std::rethrow_exception(error);
  return predictions;
}

void refresh_changed_filters(Plan& plan, const WeightDelta& delta) {
  for (size_t c = 0; c < delta.convs.size(); ++c) plan.refresh_filters(delta.convs[c], delta.filters[c]);
}

int64_t mutant_batch(const Model& model, int64_t requested, size_t max_memory) {
  size_t per_image = 0;
  for (const Node& n : model.graph.nodes()) per_image += static_cast<size_t>(n.shape.numel()) * 2 * sizeof(float);
  VETO_CHECK(per_image <= max_memory, "one image needs ", (per_image + (1 << 20) - 1) >> 20,
             " MiB of activations for mutant evaluation, more than --max-memory (", max_memory >> 20, " MiB)");
  return std::max<int64_t>(1, std::min<int64_t>(requested, static_cast<int64_t>(max_memory / per_image)));
}

Sprt::Sprt(double threshold_, double alpha, double beta) : threshold(threshold_) {
  VETO_CHECK(std::isfinite(threshold) && threshold > 0 && threshold * 1.1 < 1, "SPRT threshold must be in (0, ",
             1 / 1.1, "), got ", threshold);
  VETO_CHECK(alpha > 0 && alpha < 1 && beta > 0 && beta < 1, "SPRT alpha and beta must be in (0, 1)");
  p0 = threshold * 0.9;
  p1 = threshold * 1.1;
  upper = std::log((1 - beta) / alpha);
  lower = std::log(beta / (1 - alpha));
}

int64_t MutantRunner::classes() const { return model_.graph.node(model_.graph.output()).shape.numel(); }

Sprt::Decision Sprt::decide(int64_t changes, int64_t mutants) const {
  const double llr = static_cast<double>(changes) * std::log(p1 / p0) +
                     static_cast<double>(mutants - changes) * std::log((1 - p1) / (1 - p0));
  if (llr >= upper) return Suspicious;
  if (llr <= lower) return Stable;
  return Undecided;
}

LcrResult compute_lcr(MutantRunner& runner, const Dataset& data, const std::vector<WeightDelta>& mutants,
                      const LcrOptions& options) {
  const int64_t n = data.size(), count = static_cast<int64_t>(mutants.size());
  VETO_CHECK(count > 0, "LCR needs at least one mutant");
  std::optional<Sprt> sprt;
  if (options.sprt) sprt.emplace(options.sprt_threshold);
  const Range rows = options.images.end < 0 ? Range{0, n} : options.images;
  const Range part = options.mutants.end < 0 ? Range{0, count} : options.mutants;
  VETO_CHECK(rows.begin >= 0 && rows.begin <= rows.end && rows.end <= n, "LCR: images [", rows.begin, ", ",
             rows.end, ") are not a range of the ", n, " inputs");
  VETO_CHECK(part.begin >= 0 && part.begin <= part.end && part.end <= count, "LCR: mutants [", part.begin, ", ",
             part.end, ") are not a range of the ", count, " mutants");
  VETO_CHECK(!options.sprt || part.size() == count,
             "SPRT decides after each mutant in order, so an input's mutants cannot be split (--mutant-shards 1)");
  LcrResult r;
  r.logits = Tensor(Shape{n, runner.classes()});
  r.predictions.assign(static_cast<size_t>(n), -1);
  r.mutant_predictions.assign(static_cast<size_t>(n * count), -1);
  r.changes.assign(static_cast<size_t>(n), 0);
  r.used.assign(static_cast<size_t>(n), 0);
  if (options.sprt) r.decisions.assign(static_cast<size_t>(n), Sprt::Undecided);
  std::vector<float> images;
  for (int64_t start = rows.begin; start < rows.end; start += runner.batch()) {
    const int64_t b = std::min(runner.batch(), rows.end - start);
    const auto t0 = std::chrono::steady_clock::now();
    images.resize(static_cast<size_t>(b * data.sample_size()));
    data.load_batch(start, b, images.data());
    const std::vector<int> original = runner.load(images.data(), b);
    const int64_t classes = r.logits.shape()[1];
    std::copy(runner.logits().data(), runner.logits().data() + b * classes, r.logits.data() + start * classes);
    std::vector<bool> active(static_cast<size_t>(b), true);
    int64_t undecided = b;
    for (int64_t m = part.begin; m < part.end && undecided > 0; ++m) {
      const std::vector<int> p = runner.predict(mutants[static_cast<size_t>(m)]);
      r.mutant_forwards += b;
      for (int64_t i = 0; i < b; ++i) {
        if (!active[static_cast<size_t>(i)]) continue;
        const auto at = static_cast<size_t>(start + i);
        r.mutant_predictions[at * static_cast<size_t>(count) + static_cast<size_t>(m)] = p[static_cast<size_t>(i)];
        r.used[at] += 1;
        r.changes[at] += p[static_cast<size_t>(i)] != original[static_cast<size_t>(i)];
        if (!sprt) continue;
        const Sprt::Decision d = sprt->decide(r.changes[at], r.used[at]);
        if (d != Sprt::Undecided) {
          r.decisions[at] = d;
          active[static_cast<size_t>(i)] = false;
          --undecided;
        }
      }
    }
    for (int64_t i = 0; i < b; ++i) r.predictions[static_cast<size_t>(start + i)] = original[static_cast<size_t>(i)];
    r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return r;
}

LcrResult compute_lcr_sharded(MutantRunner& runner, const Dataset& data, const std::vector<WeightDelta>& mutants,
                              LcrOptions options, const Communicator& comm, int mutant_shards) {
  VETO_CHECK(mutant_shards >= 1 && comm.size() % mutant_shards == 0, "--mutant-shards ", mutant_shards,
             " does not divide the ", comm.size(), " ranks");
  const int groups = comm.size() / mutant_shards;
  const int group = comm.rank() / mutant_shards, part = comm.rank() % mutant_shards;
  const int64_t n = data.size(), count = static_cast<int64_t>(mutants.size());
  options.images = shard_range(n, runner.batch(), group, groups);
  options.mutants = shard_range(count, 1, part, mutant_shards);
  LcrResult r = compute_lcr(runner, data, mutants, options);

  // Within a group, on the group's rows: counts add up; every mutant's prediction comes
  // from one rank (the others hold -1).
  const Range rows = options.images;
  const Communicator team = comm.split(group);
  auto combine = [&](auto& full, size_t width, bool max) {
    const auto from = static_cast<std::ptrdiff_t>(static_cast<size_t>(rows.begin) * width);
    const auto to = static_cast<std::ptrdiff_t>(static_cast<size_t>(rows.end) * width);
    std::vector<int64_t> mine(full.begin() + from, full.begin() + to);
    max ? team.allreduce_max(mine) : team.allreduce_sum(mine);
    std::copy(mine.begin(), mine.end(), full.begin() + from);
  };
  combine(r.changes, 1, false);
  combine(r.used, 1, false);
  combine(r.mutant_predictions, static_cast<size_t>(count), true);
  // Across groups: each group's first rank sends its rows to rank 0 (the first of group 0).
  const Communicator leaders = comm.split(part);
  if (part == 0) {
    gather_shard_rows(leaders, r.mutant_predictions, rows, static_cast<size_t>(count));
    gather_shard_rows(leaders, r.predictions, rows, 1);
    gather_shard_rows(leaders, r.changes, rows, 1);
    gather_shard_rows(leaders, r.used, rows, 1);
    gather_shard_rows(leaders, r.decisions, options.sprt ? rows : Range{}, 1);
    gather_shard_rows(leaders, r.logits.values(), rows, static_cast<size_t>(runner.classes()));
  }
  std::vector<int64_t> forwards{r.mutant_forwards};
  comm.allreduce_sum(forwards);
  r.mutant_forwards = forwards[0];
  r.seconds = comm.allreduce_max(r.seconds);
  return r;
}

MutantSet build_mutant_set(Model& model, MutantRunner& runner, const Dataset& acceptance,
                           const MutantBuildOptions& options, const Communicator& comm) {
  VETO_CHECK(options.count > 0, "the mutant count must be positive, got ", options.count);
  VETO_CHECK(std::isfinite(options.accept_ratio) && options.accept_ratio >= 0 && options.accept_ratio <= 1,
             "the acceptance ratio must be in [0, 1], got ", options.accept_ratio);
  const int64_t max_draws = options.max_draws > 0 ? options.max_draws : 10 * options.count;
  VETO_CHECK(max_draws >= options.count, "--max-draws (", max_draws, ") is below the mutant count (", options.count,
             ")");
  const int64_t n = acceptance.size();
  VETO_CHECK(n > 0, "the acceptance data holds no inputs");
  for (int64_t i = 0; i < n; ++i)
    VETO_CHECK(acceptance.label(i) >= 0, "the acceptance data must be labelled: input ", acceptance.name(i),
               " has no label");
  const MutantGenerator generator(model, options.op, options.gamma, options.seed, options.scope);

  // The original model's correct count on the acceptance images.
  const int64_t batch = runner.batch();
  std::vector<float> images;
  auto load = [&](int64_t start) {
    const int64_t b = std::min(batch, n - start);
    images.resize(static_cast<size_t>(b * acceptance.sample_size()));
    acceptance.load_batch(start, b, images.data());
    return runner.load(images.data(), b);
  };
  int64_t original_correct = 0;
  for (int64_t start = 0; start < n; start += batch) {
    const std::vector<int>& p = load(start);
    for (size_t i = 0; i < p.size(); ++i) original_correct += p[i] == acceptance.label(start + static_cast<int64_t>(i));
  }
  const double bound = options.accept_ratio * static_cast<double>(original_correct);

  MutantSet set;
  set.model_fingerprint = model_fingerprint(model);
  set.model_source = model.source;
  set.arch = model.arch;
  set.op = options.op;
  set.gamma = options.gamma;
  set.seed = options.seed;
  set.scope = options.scope;
  set.filters_per_mutant = generator.filters_per_mutant();
  set.accept_ratio = options.accept_ratio;
  set.acceptance_count = n;
  set.original_accuracy = static_cast<double>(original_correct) / static_cast<double>(n);

  // Rounds of draws, each evaluated over the acceptance images batch by batch; within a
  // round, the first passing draws in draw order are kept, so the set does not depend on
  // how draws are grouped into rounds. A draw that can no longer pass stops being run.
  int64_t drawn = 0;
  while (static_cast<int64_t>(set.mutants.size()) < options.count) {
    const int64_t needed = options.count - static_cast<int64_t>(set.mutants.size());
    if (drawn >= max_draws)
      fail("only ", set.mutants.size(), " of ", options.count, " mutants passed acceptance (accuracy > ",
           options.accept_ratio, " x ", set.original_accuracy, " on ", n, " inputs) in ", drawn,
           " draws; gamma ", options.gamma, " may change too much of this model: lower --gamma or --accept-ratio, or raise --max-draws");
    const double rate = drawn > 0 ? std::max(0.05, static_cast<double>(set.mutants.size()) / static_cast<double>(drawn)) : 1.0;
    const int64_t round = std::min(max_draws - drawn, static_cast<int64_t>(std::ceil(static_cast<double>(needed) / rate)));
    // Under MPI each rank runs a shard of the round's draws; the counts are then shared.
    const Range mine = shard_range(round, 1, comm.rank(), comm.size());
    std::vector<Mutant> candidates;
    std::vector<WeightDelta> deltas(static_cast<size_t>(round));
    for (int64_t d = 0; d < round; ++d) {
      candidates.push_back(generator.draw(drawn + d));
      if (d >= mine.begin && d < mine.end) deltas[static_cast<size_t>(d)] = resolve_mutant(model, candidates.back());
    }
    std::vector<int64_t> correct(static_cast<size_t>(round), 0), dead(static_cast<size_t>(round), 0);
    if (mine.size() > 0)
      for (int64_t start = 0; start < n; start += batch) {
        const int64_t b = std::min(batch, n - start);
        load(start);
        for (int64_t c = mine.begin; c < mine.end; ++c) {
          if (dead[static_cast<size_t>(c)]) continue;
          const std::vector<int> p = runner.predict(deltas[static_cast<size_t>(c)]);
          for (int64_t i = 0; i < b; ++i) correct[static_cast<size_t>(c)] += p[static_cast<size_t>(i)] == acceptance.label(start + i);
          // Even if every remaining image were right it could not pass.
          if (static_cast<double>(correct[static_cast<size_t>(c)] + n - start - b) <= bound) dead[static_cast<size_t>(c)] = 1;
        }
      }
    comm.allreduce_sum(correct);
    comm.allreduce_sum(dead);
    for (int64_t c = 0; c < round && static_cast<int64_t>(set.mutants.size()) < options.count; ++c) {
      ++drawn;
      if (dead[static_cast<size_t>(c)] || static_cast<double>(correct[static_cast<size_t>(c)]) <= bound) continue;
      candidates[static_cast<size_t>(c)].correct = correct[static_cast<size_t>(c)];
      set.mutants.push_back(std::move(candidates[static_cast<size_t>(c)]));
    }
    if (options.progress) options.progress(static_cast<int64_t>(set.mutants.size()), drawn);
  }
  set.draws = drawn;
  set.rejected = drawn - static_cast<int64_t>(set.mutants.size());
  return set;
}

}  // namespace veto
