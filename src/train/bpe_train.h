// Byte-level BPE tokenizer training and corpus encoding.
//
// Training (train_bpe) follows GPT-2's byte-level BPE:
//   1. The text is cut at the special tokens (leftmost match, longest first,
//      the way cs::Tokenizer finds added tokens); the specials themselves are
//      not learned from.
//   2. Each remaining segment is pre-tokenized by the GPT-2 regex split, the
//      very function the reader uses (cs::unicode::gpt2_split, io/unicode.h), so a
//      merge never crosses a pre-token ("word") boundary. Distinct words are
//      counted once, with their frequency.
//   3. Every word starts as its bytes. Repeatedly, the adjacent symbol pair with
//      the highest count (adjacent pairs of every word, overlapping ones
//      included, times the word's frequency) is merged everywhere, left to
//      right within a word. Ties: the pair (left id, right id) that is smaller
//      in lexicographic order wins. Pair counts are updated incrementally for
//      the words that contain the merged pair only.
//
// Vocabulary ids: 0..255 are the bytes (id b = byte b, token string in GPT-2's
// byte-to-unicode alphabet), 256.. the special tokens in the order given (by
// default just "<|endoftext|>", id 256, the BOS/document separator: the same
// layout as the demo model's byte-level tokenizer), then one id per merge in
// merge order. Should a merge's result have the bytes of an existing token
// (two different splits of one string; not seen in practice, handled anyway)
// it reuses that token's id and adds none: the vocabulary then grows one merge later.
//
// The tokenizer.json written is Hugging Face's format (model BPE with vocab and
// merges "a b", ByteLevel pre-tokenizer without prefix space and ByteLevel
// decoder, the specials as added_tokens with special = true, no normalizer,
// no post_processor), which cs::Tokenizer::from_json and Hugging Face
// tokenizers both read; cs::Tokenizer then encodes a training word into the
// same tokens training ended with.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cs::train {

struct BpeOptions {
  // Total vocabulary: 256 byte tokens + special tokens + learned merges.
  int vocab_size = 4096;
  std::vector<std::string> special_tokens{"<|endoftext|>"};
  // A pair must occur at least this often (summed over the corpus) to be merged.
  int64_t min_frequency = 2;
  // Invalid UTF-8 in the corpus: false -> cs::Error with the byte offset;
  // true -> accepted (the invalid bytes take part as single bytes).
  bool allow_invalid_utf8 = false;
  // Worker threads for counting pre-tokens; 0 = hardware concurrency. Always 1 in wasm.
  int n_threads = 0;
};

// Distinct pre-tokens ("words", raw bytes) with their counts, sorted by bytes.
struct WordCounts {
  std::vector<std::pair<std::string, int64_t>> words;
  int64_t n_bytes = 0;     // bytes of the text, specials included
  int64_t n_words = 0;     // pre-tokens in the text (with repetition)
  int64_t n_specials = 0;  // special-token occurrences in the text
};

// Steps 1-2 above. Throws cs::Error on invalid UTF-8 (unless allowed), naming
// the byte offset, and when the text holds no word to learn from.
WordCounts count_words(std::string_view text, const BpeOptions& opt);

struct BpeModel {
  std::vector<std::string> special_tokens;  // ids 256, 257, ...
  struct Merge {
    int left, right, result;  // token ids
  };
  std::vector<Merge> merges;             // in rank order
  std::vector<int64_t> merge_counts;     // the pair count when each merge was chosen
  std::vector<std::string> token_bytes;  // by id: raw bytes (specials: their text)
  int64_t corpus_tokens = 0;             // tokens the training text encodes to (specials included)
  int64_t corpus_bytes = 0;

  int vocab_size() const { return static_cast<int>(token_bytes.size()); }
  int first_special_id() const { return 256; }
  // The Hugging Face tokenizer.json text (pretty-printed, vocab sorted by id).
  std::string to_tokenizer_json() const;
};

// Step 3. Throws cs::Error when the corpus supports fewer merges than
// vocab_size asks for (no pair left with count >= min_frequency), saying how
// many it supports, and on a vocab_size below 256 + specials.
BpeModel train_bpe(const WordCounts& words, const BpeOptions& opt);
// count_words + train_bpe.
BpeModel train_bpe(std::string_view text, const BpeOptions& opt);

// Byte offset of the first invalid UTF-8 sequence (strict: no overlong forms,
// surrogates or code points above U+10FFFF), or nullopt when s is valid.
std::optional<size_t> first_invalid_utf8(std::string_view s);

// A position p in text (1 < p < text.size()) where the GPT-2 pre-tokenization
// is certain to cut, so that splitting text[0, p) and text[p, end) separately
// gives the same pieces as splitting the whole: text[p-1] is '\n' and both
// text[p-2] and text[p] are printable ASCII characters other than space (a
// longer whitespace run would be split differently at the end of a string).
// Searches backwards from near; nullopt if there is none in (lo, near].
std::optional<size_t> safe_cut_before(std::string_view text, size_t lo, size_t near);

// ---- token-id files ---------------------------------------------------------
// OUT: the token ids, little-endian, uint16 when the vocabulary has at most
// 65536 ids, else uint32, nothing else (numpy: np.fromfile(OUT, "<u2")).
// OUT.json beside it: {"format": "circuitscope token ids", "dtype": "uint16",
// "byte_order": "little", "vocab_size", "n_tokens", "bos_id" (or null),
// "source", "source_bytes", "tokenizer"}.

struct EncodeOptions {
  bool allow_invalid_utf8 = false;
  int n_threads = 0;                   // 0 = hardware concurrency; 1 in wasm
  size_t block_bytes = size_t{8} << 20;  // text read and encoded per step
  // Called after each block with (bytes done, tokens so far); may be empty.
  std::function<void(int64_t, int64_t)> progress;
};

struct EncodeStats {
  int64_t n_bytes = 0, n_tokens = 0;
  std::string dtype;  // "uint16" or "uint32"
  bool chunked = false;  // false: the tokenizer needed the whole text at once
};

// Encodes the text file in_path with the tokenizer (tokenizer.json text) into
// out_path (+ out_path + ".json"). Streams block by block, cutting only where
// the pre-tokenization cuts anyway (safe_cut_before), so the ids equal those of
// one encode() of the whole text; tokenizers whose normalizer or pre-tokenizer
// could see across such a cut (anything but ByteLevel without prefix space and
// no normalizer) are given the whole text at once. Throws cs::Error naming the
// file on I/O failure, an empty file, or invalid UTF-8 (byte offset in the file).
EncodeStats encode_file(const std::string& in_path, std::string_view tokenizer_json, const std::string& tokenizer_name,
                        const std::string& out_path, const EncodeOptions& opt = {});

struct TokenFile {
  std::vector<int> ids;
  int vocab_size = 0;
  std::optional<int> bos_id;
};
// Reads OUT and OUT.json as written by encode_file; checks the sizes agree.
TokenFile read_token_file(const std::string& path);
// The same from the two files' bytes: the sidecar's JSON text and the raw ids
// (`path` names them in messages: path and path + ".json").
TokenFile parse_token_file(std::string_view sidecar_json, std::span<const uint8_t> raw, const std::string& path);

}  // namespace cs::train
