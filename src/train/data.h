// Training data for the trainer: token-id streams and the batches drawn from
// them. A batch is B rows of T token ids, row-major ([B, T], the layout of
// BatchView in backward.h).
//
// Sources:
//  - text: random windows of a token-id stream (the training split). With a
//    BOS id, every row is [BOS] + T - 1 consecutive ids from a random offset
//    (the models are always run with a BOS in front, TransformerLens'
//    default); without one, T consecutive ids.
//  - repeated-random: generated on the fly, [BOS] + s + s + ... cut to T
//    tokens, s = `len` random ids (distinct when possible, never BOS or an
//    excluded id), len uniform in [min_len, max_len] per row: the induction
//    heads paper's repeated random tokens ("In-context Learning and Induction
//    Heads"), on which an induction head is the only way to lower the loss.
// Every draw comes from the caller's cs::Rng, so a fixed seed gives the same
// batches, and saving the Rng's one-word state is enough to resume.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/induction.h"

namespace cs::train {

// Raw little-endian token ids without a header.
enum class TokenDtype { U16, U32, I32 };
// "u16"/"uint16", "u32"/"uint32", "i32"/"int32"; throws cs::Error otherwise.
TokenDtype parse_token_dtype(const std::string& s);
const char* to_string(TokenDtype d);  // "uint16" | "uint32" | "int32"

// Decodes raw token ids; `what` names the data in messages (e.g. the path).
// Throws cs::Error when the byte count is not a multiple of the element size,
// the data is empty, or an id is negative / above INT32_MAX.
std::vector<int> decode_token_ids(std::span<const uint8_t> bytes, TokenDtype dtype, const std::string& what);

// Checks a stream against a model: every id in [0, d_vocab) and at least
// `min_tokens` ids. Throws cs::Error naming `what`, the offending id and its
// position, or the sizes.
void check_token_ids(std::span<const int> ids, int d_vocab, int64_t min_tokens, const std::string& what);

// Largest id in the stream (-1 when empty).
int max_token_id(std::span<const int> ids);

// Fills out ([B, T], resized) with text windows (see above). bos < 0: no BOS.
// Needs ids.size() >= T (or T - 1 with a BOS); throws cs::Error otherwise.
void sample_text_batch(std::span<const int> ids, int B, int T, int bos, Rng& rng, std::vector<int>& out);

struct RepeatedRandomSpec {
  int d_vocab = 0;
  int bos = -1;                // < 0: none
  int min_len = 0, max_len = 0;  // segment length range (0: auto, see resolve())
  std::vector<int> exclude;    // ids never drawn
  // Fills min_len / max_len when 0: min_len = min(8, m), max_len = min(40, m),
  // where m = (T - 1) / 2 with a BOS (T / 2 without), so every row holds at
  // least two copies. (Measured at n_ctx 128, 2 layers, d_model 64: with
  // periods 8..40 an induction head formed within 600-700 steps for each of
  // 10 seeds; with 4..32 one seed in 5 never formed one in 2,500 steps, and
  // 4..63 took 800-900 steps.) Throws cs::Error when the range is empty or T
  // is too short.
  void resolve(int T);
};
// Fills out ([B, T], resized) with repeated random rows (see above).
void sample_repeated_batch(const RepeatedRandomSpec& spec, int B, int T, Rng& rng, std::vector<int>& out);

// `count` windows of length T (with a BOS in front when bos >= 0, like the
// training windows) at evenly spaced offsets: a fixed held-out evaluation set.
// Fewer when the stream is short (at least one; throws when even that fails).
std::vector<std::vector<int>> fixed_windows(std::span<const int> ids, int count, int T, int bos);

}  // namespace cs::train
