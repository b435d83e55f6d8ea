// Fuzz target: a whole model folder as the page and the CLI load it
// (io/model_io.h, load_model with TransformerLens processing): config.json,
// model.safetensors and tokenizer.json together. Input: the three files in
// that order, separated (fuzz_input.h); a missing third means no tokenizer.
// A model that loads runs a forward pass on a prompt encoded with its
// tokenizer (or two token ids), so odd but accepted shapes reach the core.
#include <algorithm>
#include <vector>

#include "core/forward.h"
#include "fuzz_input.h"
#include "io/model_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto files = cs::fuzz::split_files(data, size, 3);
  cs::FileSet fs;
  const char* names[] = {"config.json", "model.safetensors", "tokenizer.json"};
  for (size_t i = 0; i < files.size(); ++i) fs[names[i]].assign(files[i].begin(), files[i].end());
  cs::fuzz::refusing_cleanly([&] {
    cs::LoadOptions opt;
    opt.max_bytes = uint64_t(64) << 20;  // a fuzz input is small; a bigger model must be refused, not allocated
    const cs::LoadedModel lm = cs::load_model(fs, opt);
    const cs::ModelConfig& c = lm.model.config();
    std::vector<int> ids = lm.tokenizer ? cs::encode_prompt(lm, "the cat sat", true) : std::vector<int>{0, 1};
    if (ids.size() > size_t(c.n_ctx)) ids.resize(size_t(c.n_ctx));
    for (int& id : ids) id = std::clamp(id, 0, c.d_vocab - 1);
    if (!ids.empty()) (void)cs::forward(lm.model, ids);
  });
  return 0;
}
