// NumPy .npy files (format versions 1.0, 2.0 and 3.0) holding float arrays.
#pragma once

#include <string>

#include "runtime/tensor.h"

namespace veto {

// Reads a C-order float array: dtype '<f4' (or '<f8', converted to float). Fortran order,
// other dtypes, a malformed header or a data size that differs from the shape are errors
// naming the file.
Tensor read_npy(const std::string& path);
// Parses an in-memory .npy file; `source` names it in error messages.
Tensor parse_npy(const std::string& bytes, const std::string& source);

// Writes format 1.0 (2.0 only if the header would not fit), dtype '<f4', C order, with the
// header padded to 64 bytes as NumPy does. Atomic: an existing file survives a failure.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace veto
