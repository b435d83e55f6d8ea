// `circuitscope tokenizer-train CORPUS.txt --vocab N --out tokenizer.json
//      [--min-frequency K] [--allow-invalid] [--threads N] [--json]`
// Learns a byte-level BPE tokenizer (train/bpe_train.h: 256 byte tokens,
// "<|endoftext|>" = id 256 as BOS and document separator, then the merges) from
// a UTF-8 text file and writes it as a Hugging Face tokenizer.json.
// Bad input, each one stderr line and exit 1: a missing, unreadable or empty
// corpus; invalid UTF-8 (with its byte offset; --allow-invalid learns from the
// bytes as they are); a --vocab the corpus cannot fill (says how far it goes).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/error.h"
#include "train/bpe_train.h"

namespace cs::cli {

namespace {

std::string mb(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

}  // namespace

int cmd_tokenizer_train(const std::vector<std::string>& words) {
  Args args(words, {{"--allow-invalid", "--json"}, {"--vocab", "--out", "--min-frequency", "--threads"}});
  args.expect_positional(1, "CORPUS.txt");
  if (!args.has("--vocab")) throw UsageError("--vocab N is required");
  if (!args.has("--out")) throw UsageError("--out tokenizer.json is required");
  train::BpeOptions opt;
  opt.vocab_size = static_cast<int>(*args.integer("--vocab", 257, 1'000'000));
  opt.min_frequency = args.integer("--min-frequency", 1, INT64_MAX).value_or(2);
  opt.n_threads = static_cast<int>(args.integer("--threads", 1, 1024).value_or(0));
  const std::string path = args.positional()[0];
  const std::string out_path = *args.value("--out");

  const auto t0 = std::chrono::steady_clock::now();
  if (std::filesystem::is_directory(path)) throw Error("corpus '" + path + "': is a folder, not a text file");
  const std::vector<uint8_t> bytes = read_file(path);
  if (bytes.empty()) throw Error("corpus '" + path + "': the file is empty");
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (!args.has("--allow-invalid")) {
    if (auto bad = train::first_invalid_utf8(text)) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(bytes[*bad]));
      throw Error("corpus '" + path + "': invalid UTF-8 at byte offset " + std::to_string(*bad) + " (byte " + hex +
                  "); fix the file, or pass --allow-invalid to learn from the raw bytes");
    }
  }
  opt.allow_invalid_utf8 = true;  // checked above (or allowed)

  const train::WordCounts wc = train::count_words(text, opt);
  const train::BpeModel model = train::train_bpe(wc, opt);
  const std::string json_text = model.to_tokenizer_json();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  {
    std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("'" + out_path + "': cannot open for writing");
    out << json_text;
    if (!out) throw Error("'" + out_path + "': write failed");
  }

  const int64_t n_merges = static_cast<int64_t>(model.merges.size());
  const double bytes_per_token = static_cast<double>(wc.n_bytes) / static_cast<double>(model.corpus_tokens);
  if (args.has("--json")) {
    Json j;
    j["corpus"] = path;
    j["corpus_bytes"] = wc.n_bytes;
    j["words"] = wc.n_words;
    j["distinct_words"] = static_cast<int64_t>(wc.words.size());
    j["special_tokens_in_corpus"] = wc.n_specials;
    j["vocab_size"] = model.vocab_size();
    j["merges"] = n_merges;
    j["bos_id"] = model.first_special_id();
    j["last_merge_count"] = model.merge_counts.empty() ? 0 : model.merge_counts.back();
    j["corpus_tokens"] = model.corpus_tokens;
    j["bytes_per_token"] = bytes_per_token;
    j["seconds"] = seconds;
    j["out"] = out_path;
    print_json(std::cout, j, 2);
    return 0;
  }
  std::ostringstream s;
  s << "corpus " << path << ": " << mb(wc.n_bytes) << ", " << wc.n_words << " pre-tokens (" << wc.words.size()
    << " distinct), " << wc.n_specials << " <|endoftext|> separators\n";
  s << "vocabulary " << model.vocab_size() << ": 256 bytes + " << model.special_tokens.size()
    << " special (BOS id " << model.first_special_id() << ") + " << n_merges << " merges; the last merged pair was seen "
    << (model.merge_counts.empty() ? 0 : model.merge_counts.back()) << " times\n";
  char line[160];
  std::snprintf(line, sizeof line, "the corpus encodes to %lld tokens (%.2f bytes/token); %.1f s\n",
                static_cast<long long>(model.corpus_tokens), bytes_per_token, seconds);
  s << line << "wrote " << out_path << "\n";
  std::cout << s.str();
  return 0;
}

}  // namespace cs::cli
