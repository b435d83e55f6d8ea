// `circuitscope encode CORPUS.txt --tokenizer TOKENIZER --out ids.bin
//      [--allow-invalid] [--threads N] [--json]`
// Encodes a UTF-8 text file with a tokenizer.json (TOKENIZER: the file, or a
// model folder holding one) into a token-id file: little-endian uint16 ids
// (uint32 for vocabularies above 65536), no header, plus ids.bin.json saying
// dtype, vocab_size, n_tokens and bos_id (train/bpe_train.h). Streams the text
// in blocks, encoded on the machine's cores. "<|endoftext|>" in the text is the
// BOS id (an added token), as written by scripts/corpus between documents.
// Bad input, each one stderr line and exit 1: missing/unreadable/empty corpus,
// invalid UTF-8 (byte offset; --allow-invalid encodes the raw bytes), a bad tokenizer.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/error.h"
#include "train/bpe_train.h"

namespace cs::cli {

int cmd_encode(const std::vector<std::string>& words) {
  Args args(words, {{"--allow-invalid", "--json"}, {"--tokenizer", "--out", "--threads"}});
  args.expect_positional(1, "CORPUS.txt");
  if (!args.has("--tokenizer")) throw UsageError("--tokenizer tokenizer.json is required");
  if (!args.has("--out")) throw UsageError("--out ids.bin is required");
  train::EncodeOptions opt;
  opt.allow_invalid_utf8 = args.has("--allow-invalid");
  opt.n_threads = static_cast<int>(args.integer("--threads", 1, 1024).value_or(0));
  const std::string path = args.positional()[0];
  const std::string out_path = *args.value("--out");
  std::string tok_path = *args.value("--tokenizer");
  if (std::filesystem::is_directory(tok_path)) tok_path = (std::filesystem::path(tok_path) / "tokenizer.json").string();

  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<uint8_t> tok_bytes = read_file(tok_path);
  const std::string tok_text(tok_bytes.begin(), tok_bytes.end());
  train::EncodeStats st;
  try {
    st = train::encode_file(path, tok_text, std::filesystem::path(tok_path).filename().string(), out_path, opt);
  } catch (const Error& e) {
    const std::string what = e.what();
    // The tokenizer's own errors name tokenizer.json, not which file that was.
    if (what.rfind("tokenizer", 0) == 0) throw Error("'" + tok_path + "': " + what);
    throw;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const train::TokenFile check = train::read_token_file(out_path);  // the sidecar and the sizes agree
  const double bpt = static_cast<double>(st.n_bytes) / static_cast<double>(std::max<int64_t>(st.n_tokens, 1));

  if (args.has("--json")) {
    Json j;
    j["corpus"] = path;
    j["corpus_bytes"] = st.n_bytes;
    j["tokens"] = st.n_tokens;
    j["bytes_per_token"] = bpt;
    j["dtype"] = st.dtype;
    j["vocab_size"] = check.vocab_size;
    j["bos_id"] = check.bos_id ? Json(*check.bos_id) : Json(nullptr);
    j["streamed"] = st.chunked;
    j["seconds"] = seconds;
    j["out"] = out_path;
    print_json(std::cout, j, 2);
    return 0;
  }
  char line[256];
  std::snprintf(line, sizeof line, "encoded %s: %.2f MB -> %lld tokens (%.2f bytes/token), %s, vocab %d; %.1f s\n",
                path.c_str(), static_cast<double>(st.n_bytes) / 1e6, static_cast<long long>(st.n_tokens), bpt,
                st.dtype.c_str(), check.vocab_size, seconds);
  std::cout << line << "wrote " << out_path << " and " << out_path << ".json\n";
  return 0;
}

}  // namespace cs::cli
