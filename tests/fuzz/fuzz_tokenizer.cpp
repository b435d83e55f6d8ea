// Fuzz target: tokenizer.json (io/tokenizer.h) and encoding text with it.
// Input: tokenizer.json, separator, text (fuzz_input.h).
#include <algorithm>
#include <string>

#include "fuzz_input.h"
#include "io/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto files = cs::fuzz::split_files(data, size, 2);
  cs::fuzz::refusing_cleanly([&] {
    const cs::Tokenizer t = cs::Tokenizer::from_json(files[0]);
    (void)t.kind();
    (void)t.bos_id();
    const int V = t.vocab_size();
    const std::string_view text = files.size() > 1 ? files[1] : std::string_view("Hello, world! 123");
    const std::vector<int> ids = t.encode(text);
    for (int id : ids)
      if (id < 0 || id >= V) __builtin_trap();  // every id must be in the vocabulary
    (void)t.decode(ids);
    for (size_t i = 0; i < std::min<size_t>(ids.size(), 64); ++i) {
      (void)t.token_bytes(ids[i]);
      (void)t.token_string(ids[i]);
      (void)t.display(ids[i]);
    }
    for (int id : {0, V / 2, V - 1, V, -1}) {  // out-of-range ids included: a clean refusal or a value
      cs::fuzz::refusing_cleanly([&] { (void)t.display(id); });
    }
    (void)t.find_token(text.substr(0, 16));
    (void)cs::visible_bytes(text.substr(0, 64));
  });
  return 0;
}
