#include <cerrno>
#include <cstdlib>

#include "models/builders.h"
#include "runtime/error.h"
#include "runtime/graph_json.h"

namespace veto {
namespace {

std::string option(const ArchSpec& s, const std::string& key, const std::string& fallback) {
  auto it = s.options.find(key);
  return it == s.options.end() ? fallback : it->second;
}

int64_t int_option(const ArchSpec& s, const std::string& key, int64_t fallback) {
  const std::string v = option(s, key, std::to_string(fallback));
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  VETO_CHECK(errno == 0 && !v.empty() && *end == '\0', "metadata '", key, "' must be an integer, got '", v, "'");
  return x;
}

bool bool_option(const ArchSpec& s, const std::string& key) {
  const std::string v = option(s, key, "false");
  VETO_CHECK(v == "true" || v == "false", "metadata '", key, "' must be true or false, got '", v, "'");
  return v == "true";
}

// The CIFAR ResNets take 32x32 inputs and end in a 10-way (or K-way) linear layer.
Graph cifar(const ArchSpec& s, Graph g) {
  VETO_CHECK(s.height == 32 && s.width == 32, s.arch, " takes 32x32 inputs, the metadata says ", s.height, "x",
             s.width);
  VETO_CHECK(s.num_classes == 10, "the class list has ", s.num_classes, " names but the model's head has 10 outputs");
  return g;
}

}  // namespace

std::vector<std::string> known_archs() {
  return {"resnet20", "resnet32", "resnet44", "resnet56", "keras_resnet20v1", "inception_v3", "graph"};
}

Graph build_graph(const ArchSpec& s) {
  if (s.arch == "resnet20") return cifar(s, build_cifar_resnet(20));
  if (s.arch == "resnet32") return cifar(s, build_cifar_resnet(32));
  if (s.arch == "resnet44") return cifar(s, build_cifar_resnet(44));
  if (s.arch == "resnet56") return cifar(s, build_cifar_resnet(56));
  if (s.arch == "keras_resnet20v1") return cifar(s, build_keras_resnet20v1());
  if (s.arch == "inception_v3") {
    InceptionV3Config c;
    c.variant = option(s, "variant", "torchvision");
    c.width_divisor = int_option(s, "width_divisor", 1);
    c.transform_input = bool_option(s, "transform_input");
    c.height = s.height;
    c.width = s.width;
    c.num_classes = s.num_classes;
    return build_inception_v3(c);
  }
  if (s.arch == "graph") {  // written out in the file (models imported from ONNX)
    auto it = s.options.find("graph");
    VETO_CHECK(it != s.options.end(), "arch 'graph' needs the graph in metadata 'graph'");
    Graph g = graph_from_json(it->second);
    const Shape want{1, 3, s.height, s.width};
    VETO_CHECK(g.node(0).shape == want, "the graph's input is ", g.node(0).shape.str(), " but the preprocessing makes ",
               want.str());
    return g;
  }
  std::string known;
  for (const auto& a : known_archs()) known += (known.empty() ? "" : ", ") + a;
  fail("unknown architecture '", s.arch, "' (known: ", known, ")");
}

}  // namespace veto
