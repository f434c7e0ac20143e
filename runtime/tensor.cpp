#include "runtime/tensor.h"

#include "runtime/error.h"

namespace veto {

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::string Shape::str() const {
  std::string s = "(";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(dims[i]);
  }
  return s + ")";
}

Shape Shape::with_batch(int64_t n) const {
  VETO_CHECK(!dims.empty(), "shape has no batch dimension");
  Shape s = *this;
  s.dims[0] = n;
  return s;
}

Tensor::Tensor(Shape shape, float fill)
    : shape_(std::move(shape)), data_(static_cast<size_t>(shape_.numel()), fill) {}

Tensor::Tensor(Shape shape, std::vector<float> values) : shape_(std::move(shape)), data_(std::move(values)) {
  VETO_CHECK(static_cast<int64_t>(data_.size()) == shape_.numel(), "tensor of shape ", shape_.str(), " given ",
             data_.size(), " values");
}

void Tensor::reshape(Shape shape) {
  VETO_CHECK(shape.numel() == numel(), "cannot reshape ", shape_.str(), " to ", shape.str());
  shape_ = std::move(shape);
}

}  // namespace veto
