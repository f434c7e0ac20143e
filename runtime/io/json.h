// JSON held in a file's metadata strings (a model's preprocessing and classes, a mutant
// set's layers), parsed with a bound on nesting: the values veto stores nest at most two
// levels, and an unbounded depth would let a crafted file exhaust the stack (nlohmann
// destroys nested values recursively).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace veto {

// Throws veto::Error "<source>: metadata '<key>' is not valid JSON" (or nested too deep).
nlohmann::json parse_metadata_json(const std::string& text, const std::string& key, const std::string& source);

}  // namespace veto
