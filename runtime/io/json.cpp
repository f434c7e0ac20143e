#include "runtime/io/json.h"

#include "runtime/error.h"

namespace veto {

nlohmann::json parse_metadata_json(const std::string& text, const std::string& key, const std::string& source) {
  constexpr int kMaxDepth = 8;
  using Json = nlohmann::json;
  auto bound = [&](int depth, Json::parse_event_t event, Json&) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) && depth >= kMaxDepth)
      fail(source, ": metadata '", key, "' is nested deeper than ", kMaxDepth, " levels");
    return true;
  };
  try {
    return Json::parse(text, bound);
  } catch (const Json::exception&) {
    fail(source, ": metadata '", key, "' is not valid JSON");
  }
}

}  // namespace veto
