// One job over several processes (MPI ranks, one per GPU or per share of the CPU cores), or
// this process alone. Commands that scale out (features, lcr, attribute, detect, mutants
// build) give each rank a contiguous shard of whole batches, run the one-process code on
// it, and gather the rows to rank 0, which writes the same output a one-process run
// writes. In a build without MPI (or when veto was not started by an MPI launcher) the
// world is this process and every collective is a copy.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace veto {

// [begin, end) of images or mutants.
struct Range {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// Part `part` of `parts` of [0, n): contiguous, in order, cut on multiples of `batch` (the
// last part may hold the short final batch). Every image then lands in the same batch, with
// the same neighbours, as in a one-process run, so its results are the same bits.
Range shard_range(int64_t n, int64_t batch, int part, int parts);

// A default-constructed Communicator is this process alone.
class Communicator {
 public:
  // The job: MPI_COMM_WORLD once start_distributed() initialized MPI, else this process.
  static const Communicator& world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }
  // This rank's index among the ranks on its machine, and their number (GPU binding,
  // default thread counts).
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }

  // The ranks sharing `color`, ordered by rank (MPI_Comm_split).
  Communicator split(int color) const;

  // Every rank's bytes, concatenated in rank order, at rank 0 (other ranks get nothing).
  std::vector<char> gather(const void* data, size_t bytes) const;
  // Elementwise over the ranks, in place on every rank.
  void allreduce_sum(std::vector<int64_t>& values) const;
  void allreduce_max(std::vector<int64_t>& values) const;
  double allreduce_max(double value) const;
  // Returns once every rank got here.
  void barrier() const;

 private:
  friend struct CommunicatorFactory;  // distributed.cpp: builds one from an MPI communicator
  struct Handle;
  std::shared_ptr<Handle> handle_;  // null: this process alone
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

// Every rank's rows concatenated in rank order at rank 0; other ranks get an empty vector.
template <class T>
std::vector<T> gather_rows(const Communicator& comm, const std::vector<T>& rows) {
  static_assert(std::is_trivially_copyable_v<T>, "gather_rows copies bytes");
  const std::vector<char> bytes = comm.gather(rows.data(), rows.size() * sizeof(T));
  std::vector<T> all(bytes.size() / sizeof(T));
  if (!bytes.empty()) std::memcpy(all.data(), bytes.data(), bytes.size());
  return all;
}

// Rows [shard.begin, shard.end) of `full` (rows of `row` elements) from every rank into
// their place in rank 0's `full`; the shards must be the consecutive parts of [0, N).
template <class T>
void gather_shard_rows(const Communicator& comm, std::vector<T>& full, Range shard, size_t row) {
  const auto from = static_cast<std::ptrdiff_t>(static_cast<size_t>(shard.begin) * row);
  const auto to = static_cast<std::ptrdiff_t>(static_cast<size_t>(shard.end) * row);
  std::vector<T> part;
  if (to > from) part.assign(full.begin() + from, full.begin() + to);
  std::vector<T> all = gather_rows(comm, part);
  if (comm.root()) full = std::move(all);
}

// Initializes MPI when this process was started by an MPI launcher (mpirun, mpiexec, srun):
// the launcher's environment says so. Call once, first thing in main.
void start_distributed(int* argc, char*** argv);
// Finalizes MPI (a no-op without it).
void stop_distributed();
// Ends the whole job after an error on this rank: prints "veto: error: rank R of N: message"
// and, under MPI, aborts every rank (MPI_Abort) with exit code 1.
[[noreturn]] void abort_job(const std::string& message);
// Whether this build can run under MPI.
bool distributed_available();

}  // namespace veto
