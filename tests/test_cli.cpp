// The veto binary end to end: its outputs on the bundled data, and one clear line on
// stderr plus a non-zero exit for every kind of bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include <stb/stb_image_write.h>

#include "runtime/detection.h"
#include "runtime/features.h"
#include "runtime/io/npy.h"
#include "runtime/io/safetensors.h"
#include "tests/cli_run.h"

namespace veto {
namespace {

namespace fs = std::filesystem;
const std::string kRepo = VETO_REPO_DIR;
const std::string kCifar = kRepo + "/data/cifar10_test_0-999.bin";
const std::string kResnet20 = kRepo + "/models/resnet20.safetensors";
const std::string kData = VETO_TEST_DATA_DIR;

using test::CliRun;
using test::slurp;

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::path(testing::TempDir()) / ("veto_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

CliRun veto(const std::string& args) { return test::run_cli("", args, scratch("").parent_path()); }

// A failed run: exit code 1, exactly one line on stderr, containing `message`.
void expect_error(const CliRun& r, const std::string& message) {
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find(message), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr: " << r.err;
  EXPECT_EQ(r.err.rfind("veto: error: ", 0), 0u) << "stderr: " << r.err;
}

TEST(Cli, HelpAndUsage) {
  CliRun r = veto("");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("usage: veto COMMAND"), std::string::npos);
  r = veto("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* cmd : {"predict", "eval", "info"}) {
    r = veto(std::string(cmd) + " --help");
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("--model"), std::string::npos) << cmd;
  }
}

TEST(Cli, EvalOnTheBundledRecordsGivesPyTorchsAccuracy) {
  const CliRun r = veto("eval --model " + kResnet20 + " --data " + kCifar + " --format json --threads 2");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["count"], 1000);
  EXPECT_EQ(j["errors"], 85);
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), 0.915);
  int64_t total = 0;
  for (const auto& row : j["confusion"])
    for (const auto& v : row) total += v.get<int64_t>();
  EXPECT_EQ(total, 1000);
}

TEST(Cli, PredictWritesLogitsAndAgreesWithItsTable) {
  const fs::path logits = scratch("logits.npy");
  const CliRun r = veto("predict --model " + kResnet20 + " --data " + kCifar + " --limit 4 --batch 3 --format csv " +
                     "--logits " + logits.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const Tensor t = read_npy(logits.string());
  EXPECT_EQ(t.shape(), (Shape{4, 10}));
  // Record 0 is a cat, 1 and 2 ships, 3 an airplane; resnet20 gets all four right.
  EXPECT_NE(r.out.find(",3,3,cat,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(",0,0,airplane,"), std::string::npos) << r.out;
}

TEST(Cli, PredictOnNpyAndImageInputs) {
  // The bundled golden inputs are preprocessed records 0-7.
  const std::string npy = kRepo + "/tests/data/golden/resnet20_inputs_0-7.npy";
  const CliRun r = veto("predict --model resnet20 --input " + npy + " --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["count"], 8);
  EXPECT_EQ(j["predictions"][0]["class"], "cat");
}

// CIFAR records 0-3 (cat, ship, ship, airplane) as PNG files in `dir`/<class>/ or flat.
void write_records_as_png(const fs::path& dir, bool class_folders) {
  const std::string raw = slurp(kCifar);
  const char* names[10] = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  for (int i = 0; i < 4; ++i) {
    const unsigned char* rec = reinterpret_cast<const unsigned char*>(raw.data()) + i * 3073;
    std::vector<unsigned char> rgb(32 * 32 * 3);
    for (int p = 0; p < 32 * 32; ++p)
      for (int c = 0; c < 3; ++c) rgb[p * 3 + c] = rec[1 + c * 1024 + p];
    const fs::path folder = class_folders ? dir / names[rec[0]] : dir;
    fs::create_directories(folder);
    ASSERT_NE(stbi_write_png((folder / (std::to_string(i) + ".png")).c_str(), 32, 32, 3, rgb.data(), 96), 0);
  }
}

TEST(Cli, PredictOnImageFoldersWithTopK) {
  const fs::path labelled = scratch("labelled"), flat = scratch("flat");
  write_records_as_png(labelled, true);
  write_records_as_png(flat, false);
  CliRun r = veto("predict --model resnet20 --input " + labelled.string() + " --topk 3 --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["count"], 4);
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), 1.0);  // lossless PNGs of records resnet20 gets right
  EXPECT_EQ(j["predictions"][0]["topk"].size(), 3u);
  EXPECT_EQ(j["predictions"][0]["topk"][0]["class"], j["predictions"][0]["class"]);
  EXPECT_GE(j["predictions"][0]["topk"][0]["probability"].get<double>(),
            j["predictions"][0]["topk"][1]["probability"].get<double>());
  r = veto("predict --model resnet20 --input " + flat.string() + " --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j.contains("accuracy"));
  EXPECT_EQ(j["predictions"][3]["class"], "airplane");
  fs::create_directories(labelled / "unicorn");
  expect_error(veto("predict --model resnet20 --input " + labelled.string()),
               "class folder 'unicorn' is not one of the model's 10 class names");
  expect_error(veto("predict --model resnet20 --input " + labelled.string() + " --topk 11"),
               "option '--topk' must be in [1, 10]");
}

TEST(Cli, PreprocessWritesWhatTheModelSees) {
  const fs::path out = scratch("pre.npy");
  const CliRun r = veto("preprocess --model resnet20 --data " + kCifar + " --limit 8 --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const Tensor got = read_npy(out.string());
  const Tensor want = read_npy(kRepo + "/tests/data/golden/resnet20_inputs_0-7.npy");  // torchvision's
  ASSERT_EQ(got.shape(), want.shape());
  for (int64_t i = 0; i < got.numel(); ++i) ASSERT_NEAR(got[i], want[i], 1e-6) << i;
  expect_error(veto("preprocess --model resnet20 --data " + kCifar), "'veto preprocess' needs --out");
}

TEST(Cli, InfoListsTheLayerNames) {
  const CliRun r = veto("info --model resnet20");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* name : {"conv1 ", "layer1.0 ", "layer3.2 ", "linear ", "271098"})
    EXPECT_NE(r.out.find(name), std::string::npos) << name;
}

TEST(Cli, BadFlagsAndNames) {
  expect_error(veto("frobnicate"), "unknown command 'frobnicate'");
  expect_error(veto("eval --model resnet20 --data " + kCifar + " --bogus"), "unknown option '--bogus' for 'veto eval'");
  expect_error(veto("eval --model resnet20 --data " + kCifar + " --limit abc"), "option '--limit' expects an integer");
  expect_error(veto("eval --model resnet20 --data " + kCifar + " --batch 0"), "option '--batch' must be in [1, 65536]");
  expect_error(veto("eval --model resnet20 --data " + kCifar + " --backend tpu"), "option '--backend' must be one of");
  expect_error(veto("eval --model resnet20 --data " + kCifar + " --precision fp16"),
               "option '--precision' must be one of fp32|tf32|bf16, got 'fp16'");
  expect_error(veto("eval --model resnet20 --data " + kCifar + " --precision bf16"),
               "precision bf16 needs the cuda backend (the cpu backend computes in fp32 only)");
  expect_error(veto("run --data " + kCifar + " --out-dir " + scratch("run-tf32").string() +
                    " --precision tf32 --backend reference"),
               "precision tf32 needs the cuda backend (the reference backend computes in fp32 only)");
  EXPECT_FALSE(fs::exists(scratch("run-tf32"))) << "the refused run made its report folder";
  expect_error(veto("eval --model resnet20"), "'veto eval' needs --data");
  expect_error(veto("predict --model resnet20"), "no inputs: give --data FILE or --input FILE...");
  expect_error(veto("eval --model resnet99 --data " + kCifar), "unknown model 'resnet99'");
  expect_error(veto("eval --model /nonexistent/m.safetensors --data " + kCifar), "no such model file");
}

TEST(Cli, MissingAndTruncatedDataFiles) {
  expect_error(veto("eval --model resnet20 --data /nonexistent/test_batch.bin"), "/nonexistent/test_batch.bin");
  const fs::path truncated = scratch("truncated.bin");
  {
    const std::string bytes = slurp(kCifar).substr(0, 3073 * 2 + 100);
    std::ofstream(truncated, std::ios::binary) << bytes;
  }
  expect_error(veto("eval --model resnet20 --data " + truncated.string()), "truncated");
}

TEST(Cli, UndecodableImage) {
  const fs::path bad = scratch("garbage.png");
  std::ofstream(bad, std::ios::binary) << "this is not a PNG file at all";
  expect_error(veto("predict --model resnet20 --input " + bad.string()), "cannot decode image");
}

// Rewrites the bundled model with one change and checks the loader names it.
TEST(Cli, CorruptModelFiles) {
  const SafetensorsFile good = read_safetensors(kResnet20);
  auto variant = [&](const std::string& name, auto change) {
    SafetensorsFile f = good;
    change(f);
    const fs::path p = scratch(name);
    write_safetensors(p.string(), f);
    return p.string();
  };
  auto find = [](SafetensorsFile& f, const std::string& name) -> SafeTensor& {
    for (auto& t : f.tensors)
      if (t.name == name) return t;
    throw std::runtime_error("no tensor " + name);
  };
  const std::string data = " --data " + kCifar + " --limit 1";
  expect_error(veto("eval --model " + variant("shape.safetensors", [&](SafetensorsFile& f) {
                      find(f, "linear.weight").shape = Shape{64, 10};
                    }) + data),
               "tensor 'linear.weight' has shape (64,10), expected (10,64)");
  expect_error(veto("eval --model " + variant("dtype.safetensors", [&](SafetensorsFile& f) {
                      SafeTensor& t = find(f, "bn1.bias");
                      t = make_i64("bn1.bias", t.shape, std::vector<int64_t>(16, 1));
                    }) + data),
               "tensor 'bn1.bias' has dtype I64, expected F32");
  expect_error(veto("eval --model " + variant("missing.safetensors", [&](SafetensorsFile& f) {
                      f.tensors.erase(f.tensors.begin());
                    }) + data),
               "missing tensor");
  expect_error(veto("eval --model " + variant("nan.safetensors", [&](SafetensorsFile& f) {
                      SafeTensor& t = find(f, "conv1.weight");
                      const float nan = std::nanf("");
                      std::memcpy(t.bytes.data() + 4 * 5, &nan, 4);
                    }) + data),
               "tensor 'conv1.weight' has a non-finite value (nan) at flat index 5");
  expect_error(veto("eval --model " + variant("classes.safetensors", [&](SafetensorsFile& f) {
                      f.metadata["classes"] = "[\"a\",\"b\"]";
                    }) + data),
               "the class list has 2 names but the model's head has 10 outputs");
  expect_error(veto("eval --model " + variant("arch.safetensors", [&](SafetensorsFile& f) {
                      f.metadata["arch"] = "resnet1202";
                    }) + data),
               "unknown architecture 'resnet1202'");
  // An InceptionV3 file whose class list does not fit its classifier.
  SafetensorsFile inception = read_safetensors(kRepo + "/tests/data/inception_v3_keras_w8.safetensors");
  inception.metadata["classes"] = "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\"]";
  const fs::path head = scratch("head.safetensors");
  write_safetensors(head.string(), inception);
  expect_error(veto("info --model " + head.string()), "tensor 'fc.weight' has shape (10,256), expected (11,256)");
  const fs::path cut = scratch("cut.safetensors");
  std::ofstream(cut, std::ios::binary) << slurp(kResnet20).substr(0, 5000);
  expect_error(veto("eval --model " + cut.string() + data), cut.string());
}

// attribute: the file holds per-layer features, predictions equal predict's, and the .npy
// form is the same features concatenated.
TEST(Cli, AttributeWritesFeaturesPredictionsAndMaps) {
  const fs::path st = scratch("cond.safetensors"), npy = scratch("cond.npy"), maps = scratch("maps");
  const std::string common = "attribute --model resnet20 --data " + kCifar + " --limit 3 --steps 4 --batch 2";
  const CliRun r = veto(common + " --out '" + st.string() + "' --maps '" + maps.string() + "' --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["count"], 3);
  EXPECT_EQ(j["features"], 336);
  EXPECT_EQ(j["layers"].size(), 9u);
  const SafetensorsFile f = read_safetensors(st.string());
  EXPECT_EQ(f.metadata.at("format"), "veto-conductance/1");
  EXPECT_EQ(f.metadata.at("rule"), "paper");
  EXPECT_EQ(f.metadata.at("model_fingerprint").rfind("fnv1a64:", 0), 0u);
  EXPECT_EQ(f.get("conductance.layer3.2").shape, (Shape{3, 64}));
  EXPECT_EQ(f.get("delta").shape, (Shape{3, 9}));
  const auto predictions = f.get("prediction").to_int64();
  ASSERT_EQ(veto("predict --model resnet20 --data " + kCifar + " --limit 3 --logits '" + scratch("l.npy").string() + "'").code, 0);
  const Tensor logits = read_npy(scratch("l.npy").string());
  const Tensor attributed = f.get("logits").to_float();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(predictions[i], j["images"][i]["predicted"]);
    EXPECT_EQ(f.get("target").to_int64()[i], predictions[i]);
    for (int k = 0; k < 10; ++k) EXPECT_NEAR(attributed[i * 10 + k], logits[i * 10 + k], 1e-4);
  }
  EXPECT_TRUE(fs::exists(maps / "0_layer1.0.png"));
  EXPECT_TRUE(fs::exists(maps / "2_layer3.2.png"));

  ASSERT_EQ(veto(common + " --out '" + npy.string() + "'").code, 0);
  const Tensor all = read_npy(npy.string());
  ASSERT_EQ(all.shape(), (Shape{3, 336}));
  const Tensor first = f.get("conductance.layer1.0").to_float(), last = f.get("conductance.layer3.2").to_float();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(all[i * 336], first[i * 16]);
    EXPECT_EQ(all[i * 336 + 335], last[i * 64 + 63]);
  }
}

TEST(Cli, AttributeBadOptions) {
  const std::string common = "attribute --model resnet20 --data " + kCifar + " --limit 1";
  expect_error(veto(common + " --layers layer9.9"), "unknown layer 'layer9.9'");
  expect_error(veto(common + " --rule simpson"), "unknown conductance rule 'simpson'");
  expect_error(veto(common + " --steps 0"), "option '--steps' must be in [1, 100000]");
  expect_error(veto(common + " --out features.csv"), "--out must end in .safetensors or .npy");
  expect_error(veto(common + " --out /nonexistent/dir/f.npy"), "folder '/nonexistent/dir' does not exist");
  expect_error(veto(common + " --target 10"), "option '--target' must be in [0, 9]");
  expect_error(veto(common + " --baseline nan"), "--baseline: nan is not a finite number");
  expect_error(veto(common + " --baseline /nonexistent.npy"), "/nonexistent.npy");
  expect_error(veto(common + " --max-memory 0"), "option '--max-memory' must be in");
  const fs::path small = scratch("small_baseline.npy");
  write_npy(small.string(), Tensor(Shape{3, 8, 8}));
  expect_error(veto(common + " --baseline '" + small.string() + "'"), "the baseline has shape (3,8,8)");
}

TEST(Cli, MutantsBuildInfoAndLcr) {
  const fs::path set = scratch("cli_mutants.safetensors"), lcr = scratch("cli_lcr.safetensors"),
                 naive = scratch("cli_lcr_naive.safetensors"), sprt = scratch("cli_lcr_sprt.safetensors");
  CliRun r = veto("mutants build --model resnet20 --data " + kCifar +
                  " --limit 100 --gamma 0.005 --count 2 --seed 3 --format json --out '" + set.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["count"], 2);
  EXPECT_EQ(j["operator"], "nai");
  EXPECT_EQ(j["filters_per_mutant"], 3);
  EXPECT_EQ(j["acceptance_count"], 100);
  EXPECT_GE(j["draws"].get<int>(), 2);

  r = veto("mutants info '" + set.string() + "' --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["mutants"].size(), 2u);
  EXPECT_EQ(j["mutants"][0]["filters"], 3);
  r = veto("mutants info '" + set.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("2 accepted of"), std::string::npos) << r.out;

  const std::string common = "lcr --model resnet20 --mutants '" + set.string() + "' --data " + kCifar + " --limit 30";
  r = veto(common + " --batch 8 --format json --out '" + lcr.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["count"], 30);
  EXPECT_EQ(j["mutant_forwards"], 60);
  const SafetensorsFile f = read_safetensors(lcr.string());
  EXPECT_EQ(f.metadata.at("format"), "veto-lcr/1");
  const Tensor rate = f.get("lcr").to_float();
  const auto changes = f.get("changes").to_int64(), predictions = f.get("prediction").to_int64(),
             mutant = f.get("mutant_prediction").to_int64();
  ASSERT_EQ(f.get("mutant_prediction").shape, (Shape{30, 2}));
  for (int i = 0; i < 30; ++i) {
    const int64_t c = (mutant[2 * i] != predictions[i]) + (mutant[2 * i + 1] != predictions[i]);
    EXPECT_EQ(changes[i], c);
    EXPECT_EQ(rate[i], c / 2.0f);
    EXPECT_EQ(j["images"][i]["lcr"].get<double>(), c / 2.0);
  }
  // The naive path writes the same file, byte for byte.
  ASSERT_EQ(veto(common + " --naive --out '" + naive.string() + "'").code, 0);
  EXPECT_EQ(slurp(lcr), slurp(naive));
  r = veto(common + " --sprt --sprt-threshold 0.2 --out '" + sprt.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("SPRT (threshold 0.200)"), std::string::npos) << r.out;
  EXPECT_EQ(read_safetensors(sprt.string()).get("sprt_decision").shape, (Shape{30}));
}

TEST(Cli, MutantsAndLcrBadInput) {
  const fs::path set = scratch("bad_mutants.safetensors"), out = scratch("kept.safetensors");
  const std::string base = "mutants build --model resnet20 --data " + kCifar + " --limit 40 --count 2";
  const std::string build = base + " --out '" + set.string() + "'";
  expect_error(veto(build), "--gamma is required");
  expect_error(veto(build + " --gamma 0"), "--gamma must be in (0, 1]");
  expect_error(veto(build + " --gamma 1.5"), "option '--gamma' must be in [0, 1]");
  expect_error(veto(build + " --gamma 0.01 --op flip"), "unknown mutation operator 'flip'");
  expect_error(veto(build + " --gamma 0.01 --layers nothing"), "'nothing' matches no convolution");
  expect_error(veto(build + " --gamma 1 --max-draws 3"), "only 0 of 2 mutants passed acceptance");
  expect_error(veto(base + " --gamma 0.01 --out m.npy"), "--out must end in .safetensors");
  EXPECT_FALSE(fs::exists(set));
  expect_error(veto("mutants"), "give a subcommand, build or info");
  expect_error(veto("mutants frob"), "unknown subcommand 'frob'");
  expect_error(veto("mutants info /nonexistent.safetensors"), "/nonexistent.safetensors");

  ASSERT_EQ(veto(build + " --gamma 0.005").code, 0);
  std::ofstream(out) << "keep me";
  const std::string lcr = " --data " + kCifar + " --limit 4 --out '" + out.string() + "'";
  // Built for another model: the message names both.
  expect_error(veto("lcr --model '" + kData + "/keras_resnet20v1_random.safetensors' --mutants '" + set.string() + "'" + lcr),
               "was built for model '");
  const std::string bytes = slurp(set);
  const fs::path truncated = scratch("truncated_mutants.safetensors");
  std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  expect_error(veto("lcr --model resnet20 --mutants '" + truncated.string() + "'" + lcr), truncated.string());
  expect_error(veto("lcr --model resnet20 --mutants '" + kResnet20 + "'" + lcr), "not a veto mutant file");
  expect_error(veto("lcr --model resnet20 --mutants '" + set.string() + "' --sprt --sprt-threshold 0.95" + lcr),
               "SPRT threshold must be in");
  expect_error(veto("lcr --model resnet20" + lcr), "needs --mutants");
  expect_error(veto("lcr --model resnet20 --mutants '" + set.string() + "' --max-memory 1" + lcr),
               "one image needs 6 MiB of activations for mutant evaluation, more than --max-memory (1 MiB)");
  EXPECT_EQ(slurp(out), "keep me");  // nothing already written is touched by a failed run
}

// `veto features` resumes from OUT.partial: the final file equals an uninterrupted run's,
// byte for byte, after a checkpoint cut at a batch boundary and after kill -9 mid-run.
TEST(Cli, FeaturesResumeGivesTheSameFile) {
  const fs::path set = scratch("features_mutants.safetensors"), full = scratch("features_full.safetensors"),
                 cut = scratch("features_cut.safetensors"), killed = scratch("features_killed.safetensors");
  ASSERT_EQ(veto("mutants build --model resnet20 --data " + kCifar + " --limit 60 --gamma 0.005 --count 3 --out '" +
                 set.string() + "'").code, 0);
  const std::string common = "features --model resnet20 --mutants '" + set.string() + "' --data " + kCifar +
                             " --limit 60 --batch 8 --layers layer2.2 layer3.2";
  CliRun r = veto(common + " --out '" + full.string() + "' --csv '" + scratch("features.csv").string() + "' --format json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["count"], 60);
  EXPECT_FALSE(fs::exists(full.string() + ".partial"));
  const SafetensorsFile f = read_safetensors(full.string());
  EXPECT_EQ(f.metadata.at("format"), "veto-features/1");
  EXPECT_EQ(f.metadata.at("complete"), "true");
  EXPECT_EQ(f.get("conductance.layer3.2").shape, (Shape{60, 64}));
  EXPECT_EQ(f.get("softmax_scores").shape, (Shape{60, 6}));
  EXPECT_EQ(f.get("lcr").shape, (Shape{60}));

  // A checkpoint after 24 rows, as a run interrupted there leaves it.
  SafetensorsFile partial = f;
  for (SafeTensor& t : partial.tensors) {
    const size_t row = t.bytes.size() / 60;
    t.bytes.resize(row * 24);
    t.shape[0] = 24;
  }
  partial.metadata["complete"] = "false";
  partial.metadata["count"] = "24";
  write_safetensors(cut.string() + ".partial", partial);
  r = veto(common + " --out '" + cut.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("resumed after 24"), std::string::npos) << r.out;
  EXPECT_EQ(slurp(cut), slurp(full));
  EXPECT_FALSE(fs::exists(cut.string() + ".partial"));

  // A checkpoint of other options is refused, not mixed in.
  write_safetensors(cut.string() + ".partial", partial);
  expect_error(veto(common + " --steps 5 --out '" + cut.string() + "'"), "is the checkpoint of another run (steps: '10' there, '5' now)");
  fs::remove(cut.string() + ".partial");

  // kill -9 once the first checkpoint exists, then the same command again.
  const std::string cmd = std::string("exec '") + VETO_CLI_PATH + "' " + common + " --out '" + killed.string() + "' >/dev/null 2>&1";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 6000 && !fs::exists(killed.string() + ".partial"); ++i) ::usleep(10000);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_FALSE(fs::exists(killed));  // killed before the end: no output yet, never a torn one
  r = veto(common + " --out '" + killed.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(killed), slurp(full));
}

// train-detector then detect on the same inputs: detect recomputes the features from the
// images and reproduces the decisions (and scores) the detector gives on the features file.
TEST(Cli, DetectReproducesTheDetectorsDecisions) {
  const fs::path set = scratch("detect_mutants.safetensors"), features = scratch("detect_features.safetensors"),
                 detector = scratch("detect_detector.safetensors");
  ASSERT_EQ(veto("mutants build --model resnet20 --data " + kCifar + " --limit 60 --gamma 0.005 --count 3 --out '" +
                 set.string() + "'").code, 0);
  const std::string inputs = " --data " + kCifar + " --limit 200";
  CliRun r = veto("features --model resnet20 --mutants '" + set.string() + "'" + inputs +
                  " --layers layer3.1 layer3.2 --steps 4 --out '" + features.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  r = veto("train-detector --features '" + features.string() + "' --detector two-stage --epochs 5 --hidden 32,16 --out '" +
           detector.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  r = veto("detect --model resnet20 --mutants '" + set.string() + "' --detector '" + detector.string() + "'" + inputs);
  ASSERT_EQ(r.code, 0) << r.err;

  const ErrorDetector d = load_error_detector(detector.string());
  const FeatureSet f = load_features(features.string());
  std::vector<int64_t> rows(200);
  for (int i = 0; i < 200; ++i) rows[static_cast<size_t>(i)] = i;
  const std::vector<double> want = d.score(f, rows);
  std::istringstream csv(r.out);
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "index,input,prediction,class,label,score,decision");
  int count = 0, cancelled = 0;
  while (std::getline(csv, line)) {
    std::vector<std::string> cells;
    std::stringstream ls(line);
    for (std::string c; std::getline(ls, c, ',');) cells.push_back(c);
    ASSERT_EQ(cells.size(), 7u) << line;
    const auto i = static_cast<size_t>(std::stoi(cells[0]));
    EXPECT_EQ(std::stoll(cells[2]), f.prediction[i]);
    EXPECT_NEAR(std::stod(cells[5]), want[i], 1e-8 * std::max(1.0, want[i]));
    EXPECT_EQ(cells[6], want[i] >= d.threshold ? "cancel" : "accept") << line;
    cancelled += cells[6] == "cancel";
    ++count;
  }
  EXPECT_EQ(count, 200);
  EXPECT_GT(cancelled, 0);
  EXPECT_LT(cancelled, 200);

  // Another model's inputs, a missing mutant file, features without errors to learn from.
  expect_error(veto("detect --model '" + kData + "/keras_resnet20v1_random.safetensors' --mutants '" + set.string() +
                    "' --detector '" + detector.string() + "'" + inputs),
               "was built for model");
  expect_error(veto("detect --model resnet20 --detector '" + detector.string() + "'" + inputs), "give --mutants FILE");
  expect_error(veto("detect --model resnet20 --mutants '" + set.string() + "' --detector '" + features.string() + "'" + inputs),
               "not a veto detector file");
  expect_error(veto("train-detector --features '" + features.string() + "' --split 0.9,0.09 --out '" + detector.string() + "'"),
               "each part needs some of them");
  expect_error(veto("train-detector --features '" + features.string() + "' --detector mlp --groups conductance+nope --out '" + detector.string() + "'"),
               "unknown feature group 'nope'");
  expect_error(veto("evaluate --features '" + set.string() + "'"), "not a veto features file");

  // Truncated and garbage detector and features files: one line, exit code 1.
  const fs::path cut_detector = scratch("cut_detector.safetensors"), cut_features = scratch("cut_features.safetensors");
  const std::string d_bytes = slurp(detector), f_bytes = slurp(features);
  for (const std::string& bytes : {d_bytes.substr(0, d_bytes.size() / 2), d_bytes.substr(0, 5), std::string(300, 'x')}) {
    std::ofstream(cut_detector, std::ios::binary) << bytes;
    expect_error(veto("detect --model resnet20 --mutants '" + set.string() + "' --detector '" + cut_detector.string() + "'" + inputs),
                 cut_detector.string());
  }
  for (const std::string& bytes : {f_bytes.substr(0, f_bytes.size() / 2), f_bytes.substr(0, 5), std::string(300, 'x')}) {
    std::ofstream(cut_features, std::ios::binary) << bytes;
    expect_error(veto("evaluate --features '" + cut_features.string() + "'"), cut_features.string());
  }
}

TEST(Cli, RunWritesTheWholeReportAndReusesItsMutants) {
  const fs::path dir = scratch("run_report");
  fs::remove_all(dir);
  const std::string cmd = "run --data " + kCifar + " --limit 200 --count 3 --accept-limit 60 --gamma 0.005 --layers layer3.2"
                          " --steps 4 --epochs 3 --hidden 16,16 --out-dir '" + dir.string() + "'";
  CliRun r = veto(cmd);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("== mutants: building"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| msp | raw score |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| conductance+lcr | two-stage |"), std::string::npos) << r.out;
  for (const char* file : {"mutants.safetensors", "features.safetensors", "detector.safetensors", "report.json",
                           "report.md", "roc.svg", "risk_coverage.svg"})
    EXPECT_TRUE(fs::exists(dir / file)) << file;
  const nlohmann::json report = nlohmann::json::parse(slurp(dir / "report.json"));
  EXPECT_EQ(report["inputs"], 200);
  EXPECT_EQ(report["split"]["test"].get<int>() + report["split"]["validation"].get<int>() +
                report["split"]["train"].get<int>(), 200);
  EXPECT_EQ(report["signals"].size(), 12u);  // 6 softmax scores, LCR, 5 detectors
  for (const auto& s : report["signals"]) {
    EXPECT_GE(s["auroc"].get<double>(), 0.0);
    EXPECT_LE(s["auroc_ci95"][0].get<double>(), s["auroc_ci95"][1].get<double>());
  }
  EXPECT_EQ(slurp(dir / "roc.svg").rfind("<svg", 0), 0u);
  const std::string mutants = slurp(dir / "mutants.safetensors");
  r = veto(cmd);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("== mutants: reusing"), std::string::npos) << r.out;
  EXPECT_EQ(slurp(dir / "mutants.safetensors"), mutants);
  expect_error(veto("run --split 0.9,0.2 --out-dir '" + dir.string() + "'"), "--split: the shares must be positive and leave a test part");
}

}  // namespace
}  // namespace veto
