// veto under mpirun: two ranks on the bundled data write byte for byte what one process
// writes (features, lcr with image and with mutant shards, mutants build, attribute,
// detect); a failing rank ends the job with its message; unsharded commands are refused.
// Runs where the build has MPI (VETO_MPIEXEC); skipped otherwise.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/cli_run.h"

namespace veto {
namespace {

namespace fs = std::filesystem;
const std::string kRepo = VETO_REPO_DIR;
const std::string kCifar = kRepo + "/data/cifar10_test_0-999.bin";

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::path(testing::TempDir()) / ("veto_mpi_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

using test::CliRun;
using test::slurp;

// `veto args` as one process (ranks == 0) or under mpirun with that many ranks.
CliRun veto(int ranks, const std::string& args) {
#ifdef VETO_MPIEXEC
  // CI runs as root, in containers without ptrace for Open MPI's shared-memory single copy;
  // one machine needs no ssh (plm_rsh_agent empty).
  const std::string env =
      "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none "
      "OMPI_MCA_plm_rsh_agent= ";
  const std::string launcher =
      ranks > 0 ? env + "'" VETO_MPIEXEC "' -np " + std::to_string(ranks) + " --oversubscribe " : std::string();
#else
  const std::string launcher;
#endif
  return test::run_cli(launcher, args, scratch("").parent_path());
}

class Mpi : public testing::Test {
 protected:
  void SetUp() override {
#ifndef VETO_MPIEXEC
    GTEST_SKIP() << "this build has no MPI (-DVETO_MPI=ON with Open MPI installed)";
#endif
  }
  // Runs `args` once alone and once as `ranks` ranks (plus `sharding` options), with OUT
  // replaced by a file of each run, and expects success and the same bytes in the files.
  void expect_same(const std::string& args, const std::string& ext, int ranks = 2, const std::string& sharding = "") {
    const std::string one = scratch("one" + ext).string(), many = scratch("many" + ext).string();
    auto with = [&](const std::string& path) {
      std::string a = args;
      a.replace(a.find("OUT"), 3, path);
      return a;
    };
    const CliRun a = veto(0, with(one)), b = veto(ranks, with(many) + sharding);
    ASSERT_EQ(a.code, 0) << a.err;
    ASSERT_EQ(b.code, 0) << b.err;
    const std::string x = slurp(one), y = slurp(many);
    EXPECT_FALSE(x.empty());
    EXPECT_TRUE(x == y) << args << sharding << ": " << ranks << " ranks wrote other bytes than one process";
  }
  std::string mutants() {
    const std::string m = scratch("mutants.safetensors").string();
    if (!fs::exists(m)) {
      const CliRun r = veto(0, "mutants build --model resnet20 --data '" + kCifar +
                                "' --limit 100 --op nai --gamma 0.01 --count 6 --seed 1 --out '" + m + "'");
      EXPECT_EQ(r.code, 0) << r.err;
    }
    return m;
  }
};

TEST_F(Mpi, FeaturesAreTheOneProcessBytes) {
  expect_same("features --model resnet20 --mutants '" + mutants() + "' --data '" + kCifar +
                  "' --limit 80 --batch 16 --steps 4 --out 'OUT'",
              ".safetensors");
}

TEST_F(Mpi, LcrShardsImagesOrMutantsToTheSameBytes) {
  const std::string args = "lcr --model resnet20 --mutants '" + mutants() + "' --data '" + kCifar +
                           "' --limit 80 --batch 16 --out 'OUT'";
  expect_same(args, ".safetensors");
  expect_same(args, ".safetensors", 2, " --mutant-shards 2");
  expect_same(args + " --sprt", ".safetensors", 3);
}

TEST_F(Mpi, MutantsBuildAcceptsTheSameSet) {
  expect_same("mutants build --model resnet20 --data '" + kCifar +
                  "' --limit 64 --op gf --gamma 0.015 --count 5 --seed 7 --batch 32 --out 'OUT'",
              ".safetensors");
}

TEST_F(Mpi, AttributeAndDetectAreTheOneProcessResults) {
  expect_same("attribute --model resnet20 --data '" + kCifar + "' --limit 24 --batch 8 --steps 3 --out 'OUT'",
              ".safetensors");
  // A detector over the softmax scores and LCR of these records.
  const std::string features = scratch("train.safetensors").string(), detector = scratch("det.safetensors").string();
  CliRun r = veto(0, "features --model resnet20 --mutants '" + mutants() + "' --data '" + kCifar +
                      "' --limit 300 --layers none --out '" + features + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  r = veto(0, "train-detector --features '" + features + "' --groups softmax+lcr --detector logistic --out '" + detector + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string args = "detect --model resnet20 --mutants '" + mutants() + "' --detector '" + detector +
                           "' --data '" + kCifar + "' --limit 40 --batch 16";
  const CliRun a = veto(0, args), b = veto(2, args);
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(std::count(a.out.begin(), a.out.end(), '\n'), 41);
}

// Stopped once both ranks have checkpointed, the same job resumes every shard where it
// stopped and writes the one-process bytes.
TEST_F(Mpi, FeaturesResumePerShard) {
  const std::string args = "features --model resnet20 --data '" + kCifar +
                           "' --limit 96 --batch 16 --layers all --steps 30 --format json --out ";
  const std::string whole = scratch("whole.safetensors").string(), cut = scratch("cut.safetensors").string();
  const std::string p0 = cut + ".rank0-of-2.partial", p1 = cut + ".rank1-of-2.partial";
  for (const std::string& f : {cut, p0, p1}) fs::remove(f);  // a scratch folder of an earlier run with this pid
  ASSERT_EQ(veto(0, args + "'" + whole + "'").code, 0);
#ifdef VETO_MPIEXEC
  const std::string cmd = "exec env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                          "OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_plm_rsh_agent= '" VETO_MPIEXEC
                          "' -np 2 --oversubscribe '" + std::string(VETO_CLI_PATH) + "' " + args + "'" + cut +
                          "' >/dev/null 2>&1";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 12000 && !(fs::exists(p0) && fs::exists(p1)); ++i) ::usleep(5000);
  ::kill(child, SIGTERM);  // mpirun stops its ranks
  int status = 0;
  ::waitpid(child, &status, 0);
#endif
  if (fs::exists(cut)) GTEST_SKIP() << "the job ended before it could be stopped with both ranks checkpointed";
  // Another rank count does not touch these checkpoints.
  const CliRun other = veto(0, args + "'" + cut + "'");
  EXPECT_EQ(other.code, 1);
  EXPECT_NE(other.err.find("is the checkpoint of a run with another number of MPI ranks"), std::string::npos) << other.err;
  const CliRun r = veto(2, args + "'" + cut + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"resumed_from\": "), std::string::npos);
  EXPECT_EQ(r.out.find("\"resumed_from\": 0"), std::string::npos) << r.out;
  EXPECT_TRUE(slurp(whole) == slurp(cut));
  EXPECT_FALSE(fs::exists(p0) || fs::exists(p1));
}

TEST_F(Mpi, AFailingRankEndsTheJobWithItsMessage) {
  // Rank 1's checkpoint is garbage: rank 1 fails, and with it the job.
  const std::string out = scratch("broken.safetensors").string();
  { std::ofstream(out + ".rank1-of-2.partial") << "garbage"; }
  const CliRun r = veto(2, "features --model resnet20 --data '" + kCifar +
                            "' --limit 40 --batch 16 --layers layer3.2 --steps 1 --out '" + out + "'");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("veto: error: rank 1 of 2: " + out + ".rank1-of-2.partial"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Mpi, UnshardedCommandsAreRefused) {
  const CliRun r = veto(2, "eval --model resnet20 --data '" + kCifar + "' --limit 10");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("veto eval does not run as several MPI ranks"), std::string::npos) << r.err;
}

// Plain `srun -n 4` (no MPI plugin) would start 4 copies of the whole job: refused, in
// builds with and without MPI.
TEST(Launch, PlainSrunWithSeveralTasksIsRefused) {
  ASSERT_EQ(veto(0, "info --model resnet20").code, 0);
  ::setenv("SLURM_STEP_NUM_TASKS", "4", 1);
  const CliRun t = veto(0, "info --model resnet20");
  ::unsetenv("SLURM_STEP_NUM_TASKS");
  EXPECT_EQ(t.code, 1);
  EXPECT_NE(t.err.find("started by srun as one of 4 tasks without an MPI plugin"), std::string::npos) << t.err;
}

}  // namespace
}  // namespace veto
