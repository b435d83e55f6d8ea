// Fuzz target: the trainer's token-id files (train/bpe_train.h, train/data.h):
// a file written by `circuitscope encode` with its JSON sidecar, and raw ids of
// each dtype checked against a vocabulary. Input: the sidecar's JSON, separator,
// the ids' bytes (fuzz_input.h).
#include "fuzz_input.h"
#include "train/bpe_train.h"
#include "train/data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto files = cs::fuzz::split_files(data, size, 2);
  const std::span<const uint8_t> raw = cs::fuzz::bytes_of(files.size() > 1 ? files[1] : std::string_view());
  cs::fuzz::refusing_cleanly([&] {
    const cs::train::TokenFile tf = cs::train::parse_token_file(files[0], raw, "tokens.u16");
    for (int id : tf.ids)
      if (id < 0 || id >= tf.vocab_size) __builtin_trap();  // accepted ids are in the vocabulary
    if (tf.bos_id && (*tf.bos_id < 0 || *tf.bos_id >= tf.vocab_size)) __builtin_trap();
  });
  for (auto dt : {cs::train::TokenDtype::U16, cs::train::TokenDtype::U32, cs::train::TokenDtype::I32}) {
    cs::fuzz::refusing_cleanly([&] {
      const std::vector<int> ids = cs::train::decode_token_ids(raw, dt, "tokens");
      cs::train::check_token_ids(ids, 50000, 2, "tokens");
    });
  }
  return 0;
}
