// Whole-file reads with a size bound, and crash-safe writes (temp file + fsync + rename).
#pragma once

#include <cstddef>
#include <functional>
#include <ostream>
#include <string>

namespace veto {

// Writes `bytes` to `path` so that readers see either the old file or the complete new one:
// the data goes to `path + ".tmp.<pid>"` in the same folder, is flushed and fsync'ed, then
// renamed over `path`. On any failure the temp file is removed, the old file is left
// untouched, and veto::Error names the path and the failing step.
void write_file_atomic(const std::string& path, const std::string& bytes);

// Streaming variant for large outputs: `writer` writes into the temp file's stream. An
// exception thrown by `writer` removes the temp file and propagates unchanged.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& writer);

// Reads a whole file. Throws veto::Error naming `path` when it is missing, unreadable, a
// directory, or larger than `max_bytes` (checked before anything is allocated).
std::string read_file(const std::string& path, size_t max_bytes);

}  // namespace veto
