// Hugging Face tokenizer.json (docs/model.md, Files): byte-level BPE (GPT-2 / GPT-NeoX,
// with the split-digits pre-tokenizer variant), WordLevel, and character
// models. Also gives each token a visible display form.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cs {

class Tokenizer {
 public:
  // Parses tokenizer.json text. Throws cs::Error naming the field at fault.
  static Tokenizer from_json(std::string_view json_text);

  // Ids for text, without any BOS (the caller prepends one if wanted).
  std::vector<int> encode(std::string_view text) const;
  // Concatenated bytes of the tokens, decoded the way the tokenizer's decoder does.
  std::string decode(std::span<const int> ids) const;
  // The token's raw bytes (byte-level BPE: the original bytes, possibly a partial UTF-8 sequence).
  std::string token_bytes(int id) const;
  // The token as stored in the vocabulary (e.g. "Ġthe" for byte-level BPE).
  std::string token_string(int id) const;
  // A visible form: space -> "␣", newline -> "↵", tab -> "⇥", other control
  // bytes and partial/invalid UTF-8 bytes -> "<0xNN>"; unknown id -> "#id".
  std::string display(int id) const;

  // Exact lookup of a token by its vocabulary string or by its raw bytes.
  std::optional<int> find_token(std::string_view token_or_bytes) const;

  int vocab_size() const;             // highest id + 1 over vocab and added_tokens
  std::optional<int> bos_id() const;  // from the post_processor or an added token like <|endoftext|>, <bos>, <s>
  std::string kind() const;           // e.g. "BPE, byte-level, split digits", "WordLevel", "char"

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// Display form of raw bytes (the same rules as Tokenizer::display), shared with
// views that show text without a tokenizer.
std::string visible_bytes(std::string_view bytes);

}  // namespace cs
