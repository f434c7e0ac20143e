#include "runtime/distributed.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include <unistd.h>

#include "runtime/error.h"

#ifdef VETO_HAVE_MPI
#include <mpi.h>
#endif

namespace veto {

Range shard_range(int64_t n, int64_t batch, int part, int parts) {
  VETO_CHECK(n >= 0 && batch >= 1 && parts >= 1 && part >= 0 && part < parts, "shard_range: part ", part, " of ",
             parts, " of ", n, " in batches of ", batch);
  const int64_t batches = (n + batch - 1) / batch;
  auto edge = [&](int p) { return std::min(n, batches * p / parts * batch); };
  return {edge(part), edge(part + 1)};
}

namespace {

// What an MPI launcher puts in each process's environment: Open MPI's mpirun, MPICH/Intel
// hydra and Slurm's PMI2 (PMI_*), PMIx (srun --mpi=pmix).
bool started_by_launcher() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMI_RANK") ||
         std::getenv("PMIX_RANK");
}

// `srun -n 4 veto ...` without an MPI plugin starts 4 independent processes that would each
// run the whole job and write the same files.
void check_not_plain_srun() {
  const char* tasks = std::getenv("SLURM_STEP_NUM_TASKS");
  VETO_CHECK(!tasks || std::atoi(tasks) <= 1 || started_by_launcher(), "started by srun as one of ", tasks,
             " tasks without an MPI plugin: run `srun --mpi=pmix veto ...` (or pmi2), or mpirun inside the allocation");
}

Communicator& world_storage() {
  static Communicator world;
  return world;
}

}  // namespace

const Communicator& Communicator::world() { return world_storage(); }

#ifdef VETO_HAVE_MPI

struct Communicator::Handle {
  MPI_Comm comm = MPI_COMM_NULL;
  bool owned = false;
  ~Handle() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned && !finalized) MPI_Comm_free(&comm);
  }
};

namespace {

void mpi_check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  fail("MPI: ", what, " failed: ", std::string(text, static_cast<size_t>(length)));
}

// Large messages go in pieces: MPI counts are ints.
constexpr size_t kPiece = size_t(1) << 30;

}  // namespace

struct CommunicatorFactory {
  // `find_local`: also learn the rank's place among the ranks on its machine (a collective;
  // the world's is what devices and threads use, split communicators skip it).
  static Communicator make(MPI_Comm comm, bool owned, bool find_local);
};

Communicator Communicator::split(int color) const {
  if (!handle_) return *this;
  MPI_Comm part;
  mpi_check(MPI_Comm_split(handle_->comm, color, rank_, &part), "MPI_Comm_split");
  return CommunicatorFactory::make(part, true, false);
}

std::vector<char> Communicator::gather(const void* data, size_t bytes) const {
  if (!handle_) return std::vector<char>(static_cast<const char*>(data), static_cast<const char*>(data) + bytes);
  const auto mine = static_cast<uint64_t>(bytes);
  std::vector<uint64_t> sizes(static_cast<size_t>(size_));
  mpi_check(MPI_Gather(&mine, 1, MPI_UINT64_T, sizes.data(), 1, MPI_UINT64_T, 0, handle_->comm), "MPI_Gather");
  std::vector<char> all;
  if (root()) {
    uint64_t total = 0;
    for (uint64_t s : sizes) total += s;
    all.resize(static_cast<size_t>(total));
    size_t at = 0;
    for (int r = 0; r < size_; ++r) {
      const auto s = static_cast<size_t>(sizes[static_cast<size_t>(r)]);
      if (r == 0) {
        if (s) std::memcpy(all.data(), data, s);
      } else {
        for (size_t done = 0; done < s; done += kPiece)
          mpi_check(MPI_Recv(all.data() + at + done, static_cast<int>(std::min(kPiece, s - done)), MPI_BYTE, r, 0,
                             handle_->comm, MPI_STATUS_IGNORE),
                    "MPI_Recv");
      }
      at += s;
    }
  } else {
    for (size_t done = 0; done < bytes; done += kPiece)
      mpi_check(MPI_Send(static_cast<const char*>(data) + done, static_cast<int>(std::min(kPiece, bytes - done)),
                         MPI_BYTE, 0, 0, handle_->comm),
                "MPI_Send");
  }
  return all;
}

namespace {
void allreduce_int64(std::vector<int64_t>& values, MPI_Op op, MPI_Comm comm) {
  for (size_t done = 0; done < values.size(); done += kPiece / 8)
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, values.data() + done, static_cast<int>(std::min(kPiece / 8, values.size() - done)),
                            MPI_INT64_T, op, comm),
              "MPI_Allreduce");
}
}  // namespace

void Communicator::allreduce_sum(std::vector<int64_t>& values) const {
  if (handle_) allreduce_int64(values, MPI_SUM, handle_->comm);
}

void Communicator::allreduce_max(std::vector<int64_t>& values) const {
  if (handle_) allreduce_int64(values, MPI_MAX, handle_->comm);
}

double Communicator::allreduce_max(double value) const {
  if (handle_) mpi_check(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_DOUBLE, MPI_MAX, handle_->comm), "MPI_Allreduce");
  return value;
}

void Communicator::barrier() const {
  if (handle_) mpi_check(MPI_Barrier(handle_->comm), "MPI_Barrier");
}

Communicator CommunicatorFactory::make(MPI_Comm comm, bool owned, bool find_local) {
  Communicator c;
  c.handle_ = std::make_shared<Communicator::Handle>();
  c.handle_->comm = comm;
  c.handle_->owned = owned;
  mpi_check(MPI_Comm_rank(comm, &c.rank_), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(comm, &c.size_), "MPI_Comm_size");
  if (find_local) {
    MPI_Comm node;
    mpi_check(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, c.rank_, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
    mpi_check(MPI_Comm_rank(node, &c.local_rank_), "MPI_Comm_rank");
    mpi_check(MPI_Comm_size(node, &c.local_size_), "MPI_Comm_size");
    MPI_Comm_free(&node);
  }
  return c;
}

void start_distributed(int* argc, char*** argv) {
  check_not_plain_srun();
  if (!started_by_launcher()) return;
  int initialized = 0;
  MPI_Initialized(&initialized);
  // OpenMP (and CUDA) run threads of their own; only the main thread calls MPI.
  int provided = 0;
  if (!initialized) mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  // Errors come back as codes (mpi_check turns them into one line), not as a silent abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  world_storage() = CommunicatorFactory::make(MPI_COMM_WORLD, false, true);
}

void stop_distributed() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  world_storage() = Communicator();
  MPI_Finalize();
}

[[noreturn]] void abort_job(const std::string& message) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  const bool mpi = initialized && !finalized;
  int rank = 0, size = 1;
  if (mpi) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  // One write, so the launcher's own abort notice cannot land inside the line.
  const std::string line = "veto: error: " +
                           (size > 1 ? "rank " + std::to_string(rank) + " of " + std::to_string(size) + ": " : std::string()) +
                           message + "\n";
  std::cout.flush();
  (void)!::write(STDERR_FILENO, line.data(), line.size());
  if (mpi && size > 1) MPI_Abort(MPI_COMM_WORLD, 1);  // the other ranks may wait in a collective
  if (mpi) MPI_Finalize();
  std::exit(1);
}

bool distributed_available() { return true; }

#else  // no MPI: the world is this process.

struct Communicator::Handle {};

Communicator Communicator::split(int) const { return *this; }

std::vector<char> Communicator::gather(const void* data, size_t bytes) const {
  return std::vector<char>(static_cast<const char*>(data), static_cast<const char*>(data) + bytes);
}

void Communicator::allreduce_sum(std::vector<int64_t>&) const {}
void Communicator::allreduce_max(std::vector<int64_t>&) const {}
double Communicator::allreduce_max(double value) const { return value; }
void Communicator::barrier() const {}

namespace {
// The job's rank count as the launcher states it (null when it does not).
const char* launcher_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"})
    if (const char* v = std::getenv(name)) return v;
  return nullptr;
}
}  // namespace

void start_distributed(int*, char***) {
  check_not_plain_srun();
  // Started by mpirun with several ranks, a build without MPI would run the whole job in
  // every process, each writing the same files.
  if (!started_by_launcher()) return;
  const char* size = launcher_size();
  VETO_CHECK(!size || std::atoi(size) <= 1, "this veto was built without MPI but was started as one of ", size,
             " MPI ranks; rebuild with -DVETO_MPI=ON (Open MPI: apt-get install libopenmpi-dev)");
}

void stop_distributed() {}

[[noreturn]] void abort_job(const std::string& message) {
  std::cerr << "veto: error: " << message << std::endl;
  std::exit(1);
}

bool distributed_available() { return false; }

#endif

}  // namespace veto
