// Training data (data.h): raw token-id decoding, text windows and repeated
// random rows.
#include "train/data.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "core/error.h"

namespace cs::train {

TokenDtype parse_token_dtype(const std::string& s) {
  if (s == "u16" || s == "uint16") return TokenDtype::U16;
  if (s == "u32" || s == "uint32") return TokenDtype::U32;
  if (s == "i32" || s == "int32") return TokenDtype::I32;
  throw Error("token dtype '" + s + "' is not uint16, uint32 or int32");
}

const char* to_string(TokenDtype d) {
  switch (d) {
    case TokenDtype::U16: return "uint16";
    case TokenDtype::U32: return "uint32";
    case TokenDtype::I32: return "int32";
  }
  return "?";
}

std::vector<int> decode_token_ids(std::span<const uint8_t> bytes, TokenDtype dtype, const std::string& what) {
  const size_t w = dtype == TokenDtype::U16 ? 2 : 4;
  if (bytes.empty()) throw Error(what + ": no token ids (the data is empty)");
  if (bytes.size() % w != 0)
    throw Error(what + ": " + std::to_string(bytes.size()) + " bytes is not a whole number of " + to_string(dtype) +
                " token ids");
  const size_t n = bytes.size() / w;
  std::vector<int> ids(n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = bytes.data() + i * w;
    if (w == 2) {
      ids[i] = int(uint16_t(p[0] | (p[1] << 8)));
    } else {
      const uint32_t u = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
      if (u > uint32_t(INT32_MAX))
        throw Error(what + ": token id " + (dtype == TokenDtype::I32 ? std::to_string(int32_t(u)) : std::to_string(u)) +
                    " at position " + std::to_string(i) + " is out of range");
      ids[i] = int(u);
    }
  }
  return ids;
}

void check_token_ids(std::span<const int> ids, int d_vocab, int64_t min_tokens, const std::string& what) {
  if (int64_t(ids.size()) < min_tokens)
    throw Error(what + ": " + std::to_string(ids.size()) + " tokens, fewer than the " + std::to_string(min_tokens) +
                " one context window needs");
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= d_vocab)
      throw Error(what + ": token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                  " is outside the model's vocabulary [0, d_vocab = " + std::to_string(d_vocab) + ")");
}

int max_token_id(std::span<const int> ids) {
  int mx = -1;
  for (int v : ids) mx = std::max(mx, v);
  return mx;
}

void sample_text_batch(std::span<const int> ids, int B, int T, int bos, Rng& rng, std::vector<int>& out) {
  const size_t body = size_t(T) - (bos >= 0 ? 1 : 0);  // ids taken from the stream per row
  if (T < 2 || ids.size() < body)
    throw Error("text data: " + std::to_string(ids.size()) + " tokens, fewer than one window of " +
                std::to_string(body));
  out.resize(size_t(B) * size_t(T));
  const uint64_t n_offsets = uint64_t(ids.size() - body) + 1;
  for (int b = 0; b < B; ++b) {
    int* row = out.data() + size_t(b) * size_t(T);
    const size_t off = size_t(rng.below(n_offsets));
    size_t t = 0;
    if (bos >= 0) row[t++] = bos;
    std::copy_n(ids.begin() + ptrdiff_t(off), body, row + t);
  }
}

void RepeatedRandomSpec::resolve(int T) {
  const int m = bos >= 0 ? (T - 1) / 2 : T / 2;
  if (m < 1) throw Error("repeated-random data: a context of " + std::to_string(T) + " tokens cannot hold two copies");
  if (min_len <= 0) min_len = std::min(8, m);
  if (max_len <= 0) max_len = std::max(std::min(m, 40), min_len);
  if (min_len > max_len)
    throw Error("repeated-random data: min_len " + std::to_string(min_len) + " > max_len " + std::to_string(max_len));
  if (max_len > m)
    throw Error("repeated-random data: max_len " + std::to_string(max_len) + " leaves no room for a second copy in " +
                std::to_string(T) + " tokens (at most " + std::to_string(m) + ")");
}

void sample_repeated_batch(const RepeatedRandomSpec& spec, int B, int T, Rng& rng, std::vector<int>& out) {
  if (spec.min_len < 1 || spec.max_len < spec.min_len)
    throw Error("repeated-random data: segment length range [" + std::to_string(spec.min_len) + ", " +
                std::to_string(spec.max_len) + "] is empty (call resolve())");
  out.resize(size_t(B) * size_t(T));
  const int o = spec.bos >= 0 ? 1 : 0;
  for (int b = 0; b < B; ++b) {
    const int len = spec.min_len + int(rng.below(uint64_t(spec.max_len - spec.min_len) + 1));
    const int copies = (T - o + len - 1) / len;
    const std::vector<int> seq = repeated_random_tokens(rng, spec.d_vocab, len, copies, spec.bos, spec.exclude);
    std::copy_n(seq.begin(), T, out.begin() + ptrdiff_t(size_t(b) * size_t(T)));
  }
}

std::vector<std::vector<int>> fixed_windows(std::span<const int> ids, int count, int T, int bos) {
  const size_t body = size_t(T) - (bos >= 0 ? 1 : 0);
  if (T < 2 || ids.size() < body)
    throw Error("held-out data: " + std::to_string(ids.size()) + " tokens, fewer than one window of " +
                std::to_string(body));
  const size_t span = ids.size() - body;  // last possible offset
  const int n = int(std::min<size_t>(size_t(std::max(count, 1)), span / std::max<size_t>(body, 1) + 1));
  std::vector<std::vector<int>> out;
  for (int i = 0; i < n; ++i) {
    const size_t off = n == 1 ? 0 : size_t(uint64_t(span) * uint64_t(i) / uint64_t(n - 1));
    std::vector<int> w;
    w.reserve(size_t(T));
    if (bos >= 0) w.push_back(bos);
    w.insert(w.end(), ids.begin() + ptrdiff_t(off), ids.begin() + ptrdiff_t(off + body));
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace cs::train
