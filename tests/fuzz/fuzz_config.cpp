// Fuzz target: config.json (io/model_io.h, parse_config_json). A config that
// parses must also parse again from what config_to_json writes of it.
#include <string_view>

#include "fuzz_input.h"
#include "io/model_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  cs::ModelConfig c;
  bool parsed = false;
  cs::fuzz::refusing_cleanly([&] {
    bool pos = false, norm = false;
    c = cs::parse_config_json(text, &pos, &norm);
    parsed = true;
  });
  if (parsed) (void)cs::parse_config_json(cs::config_to_json(c));  // throws (a finding) if not
  return 0;
}
