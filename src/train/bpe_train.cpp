// Byte-level BPE training and corpus encoding (see bpe_train.h for the rules).
#include "train/bpe_train.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "io/tokenizer.h"
#include "io/unicode.h"

#ifndef __EMSCRIPTEN__
#include <thread>
#endif

namespace cs::train {

namespace {

namespace uc = cs::unicode;
using ojson = nlohmann::ordered_json;

constexpr int kBytes = 256;

int resolve_threads(int n) {
#ifdef __EMSCRIPTEN__
  (void)n;
  return 1;
#else
  if (n > 0) return n;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
#endif
}

// Runs f(0) .. f(n-1), on n threads natively, one after another in wasm. The
// first exception thrown by any f is rethrown after all have finished.
template <class F>
void run_parallel(int n, F&& f) {
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
#ifdef __EMSCRIPTEN__
  for (int i = 0; i < n; ++i) {
    try {
      f(i);
    } catch (...) {
      errors[i] = std::current_exception();
    }
  }
#else
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      try {
        f(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
#endif
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

std::string hex_byte(unsigned char b) {
  static const char* hex = "0123456789ABCDEF";
  return std::string("0x") + hex[b >> 4] + hex[b & 15];
}

// Special tokens found in text the way cs::Tokenizer finds added tokens:
// at each position the longest special that starts there; scanning left to right.
class SpecialMatcher {
 public:
  explicit SpecialMatcher(const std::vector<std::string>& specials) : specials_(specials) {
    for (size_t i = 0; i < specials_.size(); ++i) {
      by_byte_[static_cast<unsigned char>(specials_[i][0])].push_back(static_cast<int>(i));
    }
    for (auto& bucket : by_byte_) {
      std::stable_sort(bucket.begin(), bucket.end(),
                       [&](int x, int y) { return specials_[x].size() > specials_[y].size(); });
    }
  }
  // Length of the special starting at text[i], or 0.
  size_t match(std::string_view text, size_t i) const {
    for (int idx : by_byte_[static_cast<unsigned char>(text[i])]) {
      const std::string& s = specials_[idx];
      if (text.compare(i, s.size(), s) == 0) return s.size();
    }
    return 0;
  }

 private:
  const std::vector<std::string>& specials_;
  std::array<std::vector<int>, 256> by_byte_;
};

void check_specials(const std::vector<std::string>& specials) {
  for (size_t i = 0; i < specials.size(); ++i) {
    if (specials[i].empty()) throw Error("bpe: special token " + std::to_string(i) + " is empty");
    for (size_t j = 0; j < i; ++j) {
      if (specials[i] == specials[j]) throw Error("bpe: special token '" + specials[i] + "' is given twice");
    }
  }
}

uint64_t pair_key(int a, int b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
int pair_left(uint64_t k) { return static_cast<int>(k >> 32); }
int pair_right(uint64_t k) { return static_cast<int>(k & 0xFFFFFFFFu); }

}  // namespace

std::optional<size_t> first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const uc::CodePoint c = uc::decode_utf8(s, i);
    if (!c.valid) return i;
    i += static_cast<size_t>(c.len);
  }
  return std::nullopt;
}

std::optional<size_t> safe_cut_before(std::string_view text, size_t lo, size_t near) {
  // Why this is a cut: the GPT-2 split takes a whitespace run followed by a
  // non-space as (run less its last character) + (last character), but a run
  // at the end of a string whole; a run of the single '\n' is "\n" either way.
  // The pre-token before it ends at the non-space (no class run continues into
  // '\n'), and the one at p starts afresh (' ' is the only prefix the regex takes).
  auto graphic = [](char ch) { return static_cast<unsigned char>(ch) > 0x20 && static_cast<unsigned char>(ch) < 0x7F; };
  if (text.size() < 3) return std::nullopt;
  size_t p = std::min(near, text.size() - 1);
  for (; p > lo && p >= 2; --p) {
    if (text[p - 1] == '\n' && graphic(text[p]) && graphic(text[p - 2])) return p;
  }
  return std::nullopt;
}

// ---- step 1-2: words and their counts ------------------------------------------

WordCounts count_words(std::string_view text, const BpeOptions& opt) {
  check_specials(opt.special_tokens);
  if (!opt.allow_invalid_utf8) {
    if (auto bad = first_invalid_utf8(text)) {
      throw Error("corpus: invalid UTF-8 at byte offset " + std::to_string(*bad) + " (byte " +
                  hex_byte(static_cast<unsigned char>(text[*bad])) + ")");
    }
  }
  const SpecialMatcher matcher(opt.special_tokens);

  // Chunks for the threads, cut where the GPT-2 split cuts anyway (a special
  // token with a newline inside could straddle such a cut: then one chunk).
  int n = resolve_threads(opt.n_threads);
  if (text.size() < (size_t{1} << 20)) n = 1;
  for (const auto& s : opt.special_tokens) {
    if (s.find('\n') != std::string::npos) n = 1;
  }
  std::vector<size_t> cuts{0};
  for (int k = 1; k < n; ++k) {
    const size_t target = text.size() * static_cast<size_t>(k) / static_cast<size_t>(n);
    if (auto c = safe_cut_before(text, cuts.back(), target)) cuts.push_back(*c);
  }
  cuts.push_back(text.size());
  const int chunks = static_cast<int>(cuts.size()) - 1;

  struct Local {
    std::unordered_map<std::string_view, int64_t> counts;
    int64_t n_words = 0, n_specials = 0;
  };
  std::vector<Local> local(static_cast<size_t>(chunks));
  run_parallel(chunks, [&](int c) {
    Local& L = local[static_cast<size_t>(c)];
    const std::string_view chunk = text.substr(cuts[c], cuts[c + 1] - cuts[c]);
    auto add_segment = [&](std::string_view seg) {
      if (seg.empty()) return;
      for (const auto& [b, e] : uc::gpt2_split(seg)) {
        ++L.counts[seg.substr(b, e - b)];
        ++L.n_words;
      }
    };
    size_t seg = 0;
    for (size_t i = 0; i < chunk.size();) {
      const size_t len = matcher.match(chunk, i);
      if (len == 0) {
        ++i;
        continue;
      }
      add_segment(chunk.substr(seg, i - seg));
      ++L.n_specials;
      i += len;
      seg = i;
    }
    add_segment(chunk.substr(seg));
  });

  WordCounts out;
  out.n_bytes = static_cast<int64_t>(text.size());
  std::unordered_map<std::string_view, int64_t> all;
  for (Local& L : local) {
    out.n_words += L.n_words;
    out.n_specials += L.n_specials;
    if (all.empty()) {
      all = std::move(L.counts);
    } else {
      for (const auto& [w, k] : L.counts) all[w] += k;
    }
  }
  out.words.reserve(all.size());
  for (const auto& [w, k] : all) out.words.emplace_back(std::string(w), k);
  std::sort(out.words.begin(), out.words.end());
  if (out.words.empty()) {
    throw Error(text.empty() ? "corpus: the text is empty"
                             : "corpus: the text holds nothing but special tokens, no word to learn from");
  }
  return out;
}

// ---- step 3: merges ------------------------------------------------------------

BpeModel train_bpe(const WordCounts& wc, const BpeOptions& opt) {
  check_specials(opt.special_tokens);
  const int n_specials = static_cast<int>(opt.special_tokens.size());
  const int base = kBytes + n_specials;
  if (opt.vocab_size < base) {
    throw Error("bpe: vocab_size " + std::to_string(opt.vocab_size) + " is below the " + std::to_string(base) +
                " fixed tokens (256 bytes + " + std::to_string(n_specials) + " special)");
  }
  if (opt.min_frequency < 1) throw Error("bpe: min_frequency must be at least 1");

  BpeModel m;
  m.special_tokens = opt.special_tokens;
  m.corpus_bytes = wc.n_bytes;
  m.token_bytes.reserve(static_cast<size_t>(opt.vocab_size));
  std::unordered_map<std::string, int> id_of;  // non-special token bytes -> id
  for (int b = 0; b < kBytes; ++b) {
    m.token_bytes.emplace_back(1, static_cast<char>(b));
    id_of.emplace(m.token_bytes.back(), b);
  }
  for (const auto& s : opt.special_tokens) m.token_bytes.push_back(s);

  // Words as symbol sequences.
  const size_t n_words = wc.words.size();
  std::vector<std::vector<int>> syms(n_words);
  std::vector<int64_t> freq(n_words);
  for (size_t w = 0; w < n_words; ++w) {
    const std::string& bytes = wc.words[w].first;
    syms[w].reserve(bytes.size());
    for (char ch : bytes) syms[w].push_back(static_cast<unsigned char>(ch));
    freq[w] = wc.words[w].second;
  }

  // Pair counts, the words each pair (may) occur in, and a max-heap of
  // (count, pair) with lazy deletion: an entry is pushed whenever a pair's
  // count rises, so every pair has an entry >= its count; a popped entry that
  // disagrees with the current count is dropped (and re-pushed if lower).
  std::unordered_map<uint64_t, int64_t> count;
  std::unordered_map<uint64_t, std::vector<int>> where;
  for (size_t w = 0; w < n_words; ++w) {
    const auto& s = syms[w];
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t p = pair_key(s[i], s[i + 1]);
      count[p] += freq[w];
      auto& list = where[p];
      if (list.empty() || list.back() != static_cast<int>(w)) list.push_back(static_cast<int>(w));
    }
  }
  struct Entry {
    int64_t count;
    uint64_t pair;
  };
  // "less" for a max-heap: lower count first; on equal counts the larger pair is lower.
  auto lower = [](const Entry& x, const Entry& y) { return x.count != y.count ? x.count < y.count : x.pair > y.pair; };
  std::vector<Entry> init;
  init.reserve(count.size());
  for (const auto& [p, c] : count) init.push_back({c, p});
  std::priority_queue<Entry, std::vector<Entry>, decltype(lower)> heap(lower, std::move(init));

  std::unordered_map<uint64_t, int64_t> delta;
  std::vector<int> next_syms;
  const int64_t wanted = opt.vocab_size;
  while (static_cast<int64_t>(m.token_bytes.size()) < wanted) {
    // The best valid pair.
    std::optional<Entry> best;
    while (!heap.empty()) {
      const Entry e = heap.top();
      heap.pop();
      auto it = count.find(e.pair);
      const int64_t cur = it == count.end() ? 0 : it->second;
      if (cur == e.count) {
        best = e;
        break;
      }
      if (cur > 0 && cur < e.count) heap.push({cur, e.pair});
    }
    if (!best || best->count < opt.min_frequency) {
      const int64_t have = static_cast<int64_t>(m.token_bytes.size());
      throw Error("bpe: vocab_size " + std::to_string(opt.vocab_size) + " is more than the corpus supports: after " +
                  std::to_string(m.merges.size()) + " merges no pair of tokens occurs " +
                  std::to_string(opt.min_frequency) + " or more times, so the vocabulary stops at " +
                  std::to_string(have) + "; ask for at most " + std::to_string(have) + ", or give a larger corpus");
    }
    const int a = pair_left(best->pair), b = pair_right(best->pair);
    std::string merged = m.token_bytes[a] + m.token_bytes[b];
    int id;
    if (auto it = id_of.find(merged); it != id_of.end()) {
      id = it->second;
    } else {
      id = static_cast<int>(m.token_bytes.size());
      id_of.emplace(merged, id);
      m.token_bytes.push_back(std::move(merged));
    }
    m.merges.push_back({a, b, id});
    m.merge_counts.push_back(best->count);

    std::vector<int> list = std::move(where[best->pair]);
    where.erase(best->pair);
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    delta.clear();
    for (int w : list) {
      std::vector<int>& s = syms[static_cast<size_t>(w)];
      bool found = false;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        if (s[i] == a && s[i + 1] == b) {
          found = true;
          break;
        }
      }
      if (!found) continue;  // a stale entry: the pair left this word earlier
      const int64_t f = freq[static_cast<size_t>(w)];
      for (size_t i = 0; i + 1 < s.size(); ++i) delta[pair_key(s[i], s[i + 1])] -= f;
      next_syms.clear();
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          next_syms.push_back(id);
          i += 2;
        } else {
          next_syms.push_back(s[i]);
          ++i;
        }
      }
      s.assign(next_syms.begin(), next_syms.end());
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t p = pair_key(s[i], s[i + 1]);
        delta[p] += f;
        if (s[i] == id || s[i + 1] == id) {
          auto& l = where[p];
          if (l.empty() || l.back() != w) l.push_back(w);
        }
      }
    }
    for (const auto& [p, d] : delta) {
      if (d == 0) continue;
      const int64_t c = count[p] + d;
      if (c <= 0) {
        count.erase(p);
      } else {
        count[p] = c;
        if (d > 0) heap.push({c, p});
      }
    }
  }

  m.corpus_tokens = wc.n_specials;
  for (size_t w = 0; w < n_words; ++w) m.corpus_tokens += freq[w] * static_cast<int64_t>(syms[w].size());
  return m;
}

BpeModel train_bpe(std::string_view text, const BpeOptions& opt) { return train_bpe(count_words(text, opt), opt); }

std::string BpeModel::to_tokenizer_json() const {
  const int first_merge = first_special_id() + static_cast<int>(special_tokens.size());
  std::vector<std::string> str(token_bytes.size());
  ojson vocab = ojson::object();
  for (size_t id = 0; id < token_bytes.size(); ++id) {
    const bool special = static_cast<int>(id) >= first_special_id() && static_cast<int>(id) < first_merge;
    str[id] = special ? token_bytes[id] : uc::bytes_to_byte_level(token_bytes[id]);
    if (vocab.contains(str[id])) {
      throw Error("bpe: token " + std::to_string(id) + " '" + visible_bytes(token_bytes[id]) +
                  "' has the same vocabulary string as another token");
    }
    vocab[str[id]] = id;
  }
  ojson merge_list = ojson::array();
  for (const Merge& mg : merges) merge_list.push_back(str[mg.left] + " " + str[mg.right]);
  ojson added = ojson::array();
  for (size_t k = 0; k < special_tokens.size(); ++k) {
    added.push_back({{"id", first_special_id() + static_cast<int>(k)},
                     {"content", special_tokens[k]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  const ojson byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  ojson root = {{"version", "1.0"},
                {"truncation", nullptr},
                {"padding", nullptr},
                {"added_tokens", added},
                {"normalizer", nullptr},
                {"pre_tokenizer", byte_level},
                {"post_processor", nullptr},
                {"decoder", byte_level},
                {"model",
                 {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"ignore_merges", false},
                  {"vocab", vocab},
                  {"merges", merge_list}}}};
  return root.dump(1) + "\n";
}

// ---- encoding a corpus file ------------------------------------------------------

namespace {

// Whether encode() of a text equals the concatenation of encode() of its parts
// cut at safe_cut_before positions: no normalizer, a ByteLevel pre-tokenizer
// without prefix space (the GPT-2 split restarts at such a cut), and added
// tokens that neither strip whitespace nor look at their neighbours.
bool chunkable(const nlohmann::json& root) {
  if (!root.is_object()) return false;
  if (root.contains("normalizer") && !root["normalizer"].is_null()) return false;
  const auto pt = root.find("pre_tokenizer");
  if (pt == root.end() || !pt->is_object() || pt->value("type", "") != "ByteLevel") return false;
  if (pt->value("add_prefix_space", true) || !pt->value("use_regex", true)) return false;
  if (auto at = root.find("added_tokens"); at != root.end() && at->is_array()) {
    for (const auto& t : *at) {
      if (!t.is_object()) return false;
      if (t.value("lstrip", false) || t.value("rstrip", false) || t.value("single_word", false)) return false;
      if (t.value("content", std::string()).find('\n') != std::string::npos) return false;
    }
  }
  return true;
}

}  // namespace

EncodeStats encode_file(const std::string& in_path, std::string_view tokenizer_json, const std::string& tokenizer_name,
                        const std::string& out_path, const EncodeOptions& opt) {
  namespace fs = std::filesystem;
  const Tokenizer tok = Tokenizer::from_json(tokenizer_json);
  bool chunk_ok = false;
  try {
    chunk_ok = chunkable(nlohmann::json::parse(tokenizer_json.begin(), tokenizer_json.end()));
  } catch (const nlohmann::json::exception&) {
    chunk_ok = false;  // from_json accepted it, so this does not happen
  }
  const int vocab = tok.vocab_size();
  const bool wide = vocab > 65536;
  EncodeStats st;
  st.dtype = wide ? "uint32" : "uint16";
  st.chunked = chunk_ok;

  std::error_code ec;
  if (!fs::exists(in_path, ec)) throw Error("corpus '" + in_path + "': no such file");
  if (fs::is_directory(in_path, ec)) throw Error("corpus '" + in_path + "': is a folder, not a text file");
  std::ifstream in(in_path, std::ios::binary);
  if (!in) throw Error("corpus '" + in_path + "': cannot open");
  const std::string tmp_path = out_path + ".part";
  std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("'" + tmp_path + "': cannot open for writing");

  const int n_threads = chunk_ok ? resolve_threads(opt.n_threads) : 1;
  std::vector<unsigned char> buf;
  auto encode_region = [&](std::string_view region, int64_t base) {
    if (!opt.allow_invalid_utf8) {
      if (auto bad = first_invalid_utf8(region)) {
        throw Error("corpus '" + in_path + "': invalid UTF-8 at byte offset " + std::to_string(base + static_cast<int64_t>(*bad)) +
                    " (byte " + hex_byte(static_cast<unsigned char>(region[*bad])) + ")");
      }
    }
    int n = region.size() < 4096 ? 1 : n_threads;
    std::vector<size_t> cuts{0};
    for (int k = 1; k < n; ++k) {
      const size_t target = region.size() * static_cast<size_t>(k) / static_cast<size_t>(n);
      if (auto c = safe_cut_before(region, cuts.back(), target)) cuts.push_back(*c);
    }
    cuts.push_back(region.size());
    const int parts = static_cast<int>(cuts.size()) - 1;
    std::vector<std::vector<int>> ids(static_cast<size_t>(parts));
    run_parallel(parts, [&](int k) { ids[k] = tok.encode(region.substr(cuts[k], cuts[k + 1] - cuts[k])); });
    for (const auto& v : ids) {
      const size_t width = wide ? 4 : 2;
      buf.resize(v.size() * width);
      for (size_t i = 0; i < v.size(); ++i) {
        const auto x = static_cast<uint32_t>(v[i]);
        for (size_t b = 0; b < width; ++b) buf[i * width + b] = static_cast<unsigned char>(x >> (8 * b));
      }
      out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
      if (!out) throw Error("'" + tmp_path + "': write failed");
      st.n_tokens += static_cast<int64_t>(v.size());
    }
  };

  std::string pending;
  int64_t done = 0;  // bytes of the file encoded so far
  const size_t block = std::max<size_t>(opt.block_bytes, 1024);
  try {
    std::vector<char> chunk(block);
    bool eof = false;
    while (!eof) {
      in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      const std::streamsize got = in.gcount();
      if (got < static_cast<std::streamsize>(chunk.size())) {
        if (in.bad()) throw Error("corpus '" + in_path + "': read failed");
        eof = true;
      }
      pending.append(chunk.data(), static_cast<size_t>(got));
      if (!chunk_ok && !eof) continue;
      size_t upto = pending.size();
      if (!eof) {
        auto c = safe_cut_before(pending, 0, pending.size() - 1);
        if (!c) continue;  // no cut yet: read on
        upto = *c;
      }
      if (upto == 0) continue;
      encode_region(std::string_view(pending).substr(0, upto), done);
      done += static_cast<int64_t>(upto);
      pending.erase(0, upto);
      if (opt.progress) opt.progress(done, st.n_tokens);
    }
    if (done == 0) throw Error("corpus '" + in_path + "': the file is empty");
    out.close();
    if (!out) throw Error("'" + tmp_path + "': write failed");
  } catch (...) {
    out.close();
    fs::remove(tmp_path, ec);
    throw;
  }
  st.n_bytes = done;

  const auto bos = tok.bos_id();
  ojson side = {{"format", "circuitscope token ids"},
                {"dtype", st.dtype},
                {"byte_order", "little"},
                {"vocab_size", vocab},
                {"n_tokens", st.n_tokens},
                {"bos_id", bos ? ojson(*bos) : ojson(nullptr)},
                {"source", fs::path(in_path).filename().string()},
                {"source_bytes", st.n_bytes},
                {"tokenizer", tokenizer_name}};
  const std::string side_path = out_path + ".json";
  {
    std::ofstream sj(side_path, std::ios::binary | std::ios::trunc);
    if (!sj) throw Error("'" + side_path + "': cannot open for writing");
    sj << side.dump(2) << "\n";
    if (!sj) throw Error("'" + side_path + "': write failed");
  }
  fs::rename(tmp_path, out_path, ec);
  if (ec) throw Error("'" + out_path + "': cannot move the finished file into place (" + ec.message() + ")");
  return st;
}

TokenFile parse_token_file(std::string_view sidecar_json, std::span<const uint8_t> raw, const std::string& path) {
  const std::string side_path = path + ".json";
  nlohmann::json side = nlohmann::json::parse(sidecar_json.begin(), sidecar_json.end(), nullptr, false);
  if (side.is_discarded()) throw Error("'" + side_path + "': invalid JSON");
  auto need_int = [&](const char* key, int64_t max) -> int64_t {
    if (!side.is_object() || !side.contains(key) || !side[key].is_number_integer() || side[key].get<int64_t>() < 0 ||
        side[key].get<int64_t>() > max) {
      throw Error("'" + side_path + "': field '" + key + "' must be an integer from 0 to " + std::to_string(max));
    }
    return side[key].get<int64_t>();
  };
  const std::string dtype = side.is_object() && side.contains("dtype") && side["dtype"].is_string()
                                ? side["dtype"].get<std::string>()
                                : std::string();
  size_t width;
  if (dtype == "uint16") {
    width = 2;
  } else if (dtype == "uint32") {
    width = 4;
  } else {
    throw Error("'" + side_path + "': field 'dtype' must be \"uint16\" or \"uint32\"");
  }
  const nlohmann::json* order = side.contains("byte_order") ? &side["byte_order"] : nullptr;
  if (order && !(order->is_string() && order->get<std::string>() == "little")) {
    throw Error("'" + side_path + "': field 'byte_order' must be \"little\"");
  }
  const int64_t n = need_int("n_tokens", INT64_MAX);
  const int64_t vocab = need_int("vocab_size", INT32_MAX);
  TokenFile tf;
  tf.vocab_size = static_cast<int>(vocab);
  if (side.contains("bos_id") && !side["bos_id"].is_null()) {
    const nlohmann::json& b = side["bos_id"];
    if (!b.is_number_integer() || b.get<int64_t>() < 0 || b.get<int64_t>() >= vocab)
      throw Error("'" + side_path + "': field 'bos_id' must be an id below vocab_size " + std::to_string(vocab));
    tf.bos_id = int(b.get<int64_t>());
  }
  if (raw.size() % width != 0 || uint64_t(n) != raw.size() / width) {
    const std::string need = uint64_t(n) <= UINT64_MAX / width ? std::to_string(uint64_t(n) * width) : "more than 2^64";
    throw Error("'" + path + "': " + std::to_string(raw.size()) + " bytes, but n_tokens " + std::to_string(n) + " of " +
                dtype + " needs " + need);
  }
  tf.ids.resize(static_cast<size_t>(n));
  for (size_t i = 0; i < tf.ids.size(); ++i) {
    uint32_t x = 0;
    for (size_t b = 0; b < width; ++b) x |= static_cast<uint32_t>(raw[i * width + b]) << (8 * b);
    if (x >= static_cast<uint32_t>(vocab)) {
      throw Error("'" + path + "': token " + std::to_string(i) + " has id " + std::to_string(x) +
                  ", outside the vocabulary of " + std::to_string(vocab));
    }
    tf.ids[i] = static_cast<int>(x);
  }
  return tf;
}

TokenFile read_token_file(const std::string& path) {
  const std::string side_path = path + ".json";
  std::ifstream sj(side_path, std::ios::binary);
  if (!sj) throw Error("'" + side_path + "': cannot open (the sidecar of a token-id file)");
  const std::string side((std::istreambuf_iterator<char>(sj)), std::istreambuf_iterator<char>());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("'" + path + "': cannot open");
  const std::vector<uint8_t> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error("'" + path + "': read failed");
  return parse_token_file(side, raw, path);
}

}  // namespace cs::train
