#include "models/builders.h"
#include "runtime/error.h"

namespace veto {

std::vector<std::string> known_archs() {
  return {"resnet20", "resnet32", "resnet44", "resnet56", "keras_resnet20v1"};
}

Graph build_graph(const std::string& arch) {
  if (arch == "resnet20") return build_cifar_resnet(20);
  if (arch == "resnet32") return build_cifar_resnet(32);
  if (arch == "resnet44") return build_cifar_resnet(44);
  if (arch == "resnet56") return build_cifar_resnet(56);
  if (arch == "keras_resnet20v1") return build_keras_resnet20v1();
  std::string known;
  for (const auto& a : known_archs()) known += (known.empty() ? "" : ", ") + a;
  fail("unknown architecture '", arch, "' (known: ", known, ")");
}

}  // namespace veto
