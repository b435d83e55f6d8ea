// Hugging Face tokenizer.json: reading, encoding, decoding, display forms.
//
// Encoding follows the Hugging Face pipeline:
//   1. added_tokens are found in the raw text (leftmost match, longest first)
//      and become their ids directly; the text between them goes on to
//   2. the normalizer (Lowercase, Strip, Replace with a literal, Prepend;
//      NFC/NFKC are taken as the identity, i.e. the input is assumed composed),
//   3. the pre_tokenizer, which cuts a segment into pieces (ByteLevel with the
//      GPT-2 regex split by hand, Digits, Split, Whitespace, WhitespaceSplit,
//      Punctuation, Metaspace, BertPreTokenizer, Sequence of these),
//   4. the model, piece by piece: BPE (merges by rank; a heap over adjacent
//      pairs, leftmost first on ties) or WordLevel (whole-piece lookup).
// Decoding runs the decoder chain (ByteLevel, ByteFallback, Fuse, Replace,
// Strip, Metaspace, WordPiece, BPEDecoder); without a decoder tokens are joined
// with spaces as Hugging Face does, except for character models, which are
// joined directly. Unlike Hugging Face, decoding keeps invalid UTF-8 bytes as
// they are rather than replacing them, so decode(encode(x)) == x byte for byte.
#include "io/tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <queue>

#include "core/error.h"
#include "io/unicode.h"

namespace cs {

namespace {

using json = nlohmann::json;
namespace uc = unicode;

[[noreturn]] void fail(const std::string& msg) { throw Error("tokenizer.json: " + msg); }

// Quoted display form of a token for messages: keeps an error to one line.
std::string tok_name(std::string_view s) {
  std::string out(1, '\'');
  out += visible_bytes(s);
  out += '\'';
  return out;
}

// GPT-2 / GPT-NeoX pre-tokenizer pattern as it appears in tokenizer.json files.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct PreTokStep {
  enum class Kind {
    ByteLevel, Digits, SplitLiteral, SplitGpt2, SplitChars, Whitespace, WhitespaceSplit,
    Punctuation, Metaspace
  };
  Kind kind = Kind::ByteLevel;
  bool add_prefix_space = false;  // ByteLevel
  bool use_regex = true;          // ByteLevel
  bool individual_digits = false; // Digits
  std::string literal;            // SplitLiteral; Metaspace replacement
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
  enum class Prepend { Always, First, Never } prepend = Prepend::Always;  // Metaspace
  bool split = true;                                                     // Metaspace
};

struct NormStep {
  enum class Kind { Lowercase, Strip, Replace, Prepend };
  Kind kind = Kind::Lowercase;
  bool left = false, right = false;
  std::string pattern, content;
};

struct DecStep {
  enum class Kind { ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, WordPiece, BPEDecoder };
  Kind kind = Kind::ByteLevel;
  std::string a, b;  // Replace: pattern, content; Strip: content; Metaspace: replacement; WordPiece: prefix; BPEDecoder: suffix
  int start = 0, stop = 0;
  bool flag = false;  // Metaspace: strip the leading space of the first token; WordPiece: cleanup
};

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);
  std::string out;
  size_t i = 0;
  for (size_t k; (k = s.find(from, i)) != std::string_view::npos; i = k + from.size()) {
    out.append(s.substr(i, k - i));
    out.append(to);
  }
  out.append(s.substr(i));
  return out;
}

bool is_word_char(char32_t c) { return uc::is_letter(c) || uc::is_number(c) || c == '_' || uc::is_mark(c); }

char32_t to_lower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return c | 1;
  if (c >= 0x139 && c <= 0x148) return (c % 2 == 1) ? c + 1 : c;
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

// ---- small checked JSON accessors ------------------------------------------

const json* field(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string get_string(const json& obj, const char* key, const std::string& where, std::string def = {}) {
  const json* v = field(obj, key);
  if (!v) return def;
  if (!v->is_string()) fail(where + "." + key + " must be a string");
  return v->get<std::string>();
}

std::optional<std::string> get_opt_string(const json& obj, const char* key, const std::string& where) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) fail(where + "." + key + " must be a string or null");
  return v->get<std::string>();
}

bool get_bool(const json& obj, const char* key, const std::string& where, bool def) {
  const json* v = field(obj, key);
  if (!v) return def;
  if (!v->is_boolean()) fail(where + "." + key + " must be true or false");
  return v->get<bool>();
}

int get_count(const json& obj, const char* key, const std::string& where, int def) {
  const json* v = field(obj, key);
  if (!v) return def;
  if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<int64_t>() > 1000000) {
    fail(where + "." + key + " must be a small non-negative integer");
  }
  return static_cast<int>(v->get<int64_t>());
}

// Token ids: non-negative integers; capped so a corrupt file cannot make us
// allocate gigabytes for the id table.
constexpr int64_t kMaxId = (int64_t{1} << 24) - 1;

int parse_id(const json& v, const std::string& where) {
  if (!v.is_number_integer()) fail(where + " must be an integer id (got " + v.dump() + ")");
  if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(kMaxId)
                             : (v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxId)) {
    fail(where + " id " + v.dump() + " is out of range [0, " + std::to_string(kMaxId) + "]");
  }
  return static_cast<int>(v.get<int64_t>());
}

// The string pattern of a Split / Replace step: {"String": s} or {"Regex": r}.
struct Pattern {
  bool regex = false;
  std::string text;
};
Pattern get_pattern(const json& obj, const std::string& where) {
  const json* p = field(obj, "pattern");
  if (!p) fail(where + ".pattern is missing");
  if (p->is_string()) return {false, p->get<std::string>()};
  if (const json* s = field(*p, "String"); s && s->is_string()) return {false, s->get<std::string>()};
  if (const json* r = field(*p, "Regex"); r && r->is_string()) return {true, r->get<std::string>()};
  fail(where + ".pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

Behavior get_behavior(const json& obj, const std::string& where, Behavior def) {
  const json* v = field(obj, "behavior");
  if (!v) return def;
  if (!v->is_string()) fail(where + ".behavior must be a string");
  std::string b = v->get<std::string>();
  std::transform(b.begin(), b.end(), b.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (b == "removed") return Behavior::Removed;
  if (b == "isolated") return Behavior::Isolated;
  if (b == "mergedwithprevious" || b == "merged_with_previous") return Behavior::MergedWithPrevious;
  if (b == "mergedwithnext" || b == "merged_with_next") return Behavior::MergedWithNext;
  if (b == "contiguous") return Behavior::Contiguous;
  fail(where + ".behavior '" + v->get<std::string>() + "' is not supported");
}

// ---- splitting helpers -------------------------------------------------------

using Ranges = std::vector<std::pair<size_t, size_t>>;

Ranges code_point_ranges(std::string_view s) {
  Ranges r;
  for (size_t i = 0; i < s.size();) {
    const size_t len = static_cast<size_t>(uc::decode_utf8(s, i).len);
    r.emplace_back(i, i + len);
    i += len;
  }
  return r;
}

// Splits piece by the (sorted, disjoint) matches the way Hugging Face's
// SplitDelimiterBehavior does, and appends the non-empty parts to out.
void split_by(std::string_view piece, const Ranges& matches, Behavior behavior, bool invert,
              std::vector<std::string>& out) {
  struct Seg {
    size_t b, e;
    bool m;
  };
  std::vector<Seg> segs;
  size_t pos = 0;
  for (const auto& [b, e] : matches) {
    if (b > pos) segs.push_back({pos, b, false});
    if (e > b) segs.push_back({b, e, true});
    pos = e;
  }
  if (pos < piece.size()) segs.push_back({pos, piece.size(), false});
  if (invert) {
    for (auto& s : segs) s.m = !s.m;
  }
  std::vector<Seg> res;
  switch (behavior) {
    case Behavior::Isolated:
      res = segs;
      break;
    case Behavior::Removed:
      for (const auto& s : segs) {
        if (!s.m) res.push_back(s);
      }
      break;
    case Behavior::Contiguous:
      for (const auto& s : segs) {
        if (s.m && !res.empty() && res.back().m) {
          res.back().e = s.e;
        } else {
          res.push_back(s);
        }
      }
      break;
    case Behavior::MergedWithPrevious: {
      bool prev_match = false;
      for (const auto& s : segs) {
        if (s.m && !prev_match && !res.empty()) {
          res.back().e = s.e;
        } else {
          res.push_back(s);
        }
        prev_match = s.m;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prev_match = false;  // walking backwards: whether the segment after was a match
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->m && !prev_match && !res.empty()) {
          res.back().b = it->b;
        } else {
          res.push_back(*it);
        }
        prev_match = it->m;
      }
      std::reverse(res.begin(), res.end());
      break;
    }
  }
  for (const auto& s : res) {
    if (s.e > s.b) out.emplace_back(piece.substr(s.b, s.e - s.b));
  }
}

Ranges literal_matches(std::string_view s, std::string_view lit) {
  if (lit.empty()) return code_point_ranges(s);
  Ranges r;
  for (size_t i = 0; (i = s.find(lit, i)) != std::string_view::npos; i += lit.size()) {
    r.emplace_back(i, i + lit.size());
  }
  return r;
}

// Runs of code points for which pred holds (or each one alone when single).
template <class Pred>
Ranges class_matches(std::string_view s, Pred pred, bool single) {
  Ranges r;
  for (size_t i = 0; i < s.size();) {
    const uc::CodePoint c = uc::decode_utf8(s, i);
    const size_t next = i + static_cast<size_t>(c.len);
    if (pred(c.cp)) {
      if (!single && !r.empty() && r.back().second == i) {
        r.back().second = next;
      } else {
        r.emplace_back(i, next);
      }
    }
    i = next;
  }
  return r;
}

// Byte-level token string -> raw bytes (Hugging Face's rule: when any
// character is outside the byte alphabet, the token's own UTF-8 is used).
std::string byte_level_to_bytes(std::string_view tok) {
  std::string out;
  for (size_t i = 0; i < tok.size();) {
    const uc::CodePoint c = uc::decode_utf8(tok, i);
    const int b = c.valid ? uc::unicode_to_byte(c.cp) : -1;
    if (b < 0) return std::string(tok);
    out += static_cast<char>(b);
    i += c.len;
  }
  return out;
}

// "<0xNN>" -> NN, else -1.
int byte_fallback_value(std::string_view t) {
  if (t.size() != 6 || !starts_with(t, "<0x") || t[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = t[k];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

uint64_t pair_key(int a, int b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

}  // namespace

// ============================================================================

struct Tokenizer::Impl {
  enum class ModelType { BPE, WordLevel };
  ModelType model = ModelType::BPE;

  // Model vocabulary (string as stored -> id) and, by id, the string of every
  // token (model or added). state: 0 no token, 1 model token, 2 added, 3 added special.
  std::unordered_map<std::string, int> vocab;
  std::vector<std::string> id_string;
  std::vector<uint8_t> id_state;

  struct Added {
    int id;
    std::string content;
    bool special, single_word, lstrip, rstrip;
  };
  std::vector<Added> added;
  std::array<std::vector<int>, 256> added_by_byte;  // indices into added, longest content first
  std::unordered_map<std::string, int> added_by_content;

  // BPE: (left id, right id) -> (rank, merged id).
  std::unordered_map<uint64_t, std::pair<int, int>> merges;
  std::optional<int> unk_id;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
  std::string cont_prefix, eow_suffix;

  std::vector<NormStep> normalizer;
  std::vector<PreTokStep> pre_tokenizer;
  std::optional<std::vector<DecStep>> decoder;  // nullopt: Hugging Face's default (join with " ")

  bool byte_level = false, split_digits = false, is_char = false;
  std::optional<int> bos;
  std::unordered_map<std::string, int> by_bytes;  // token_bytes -> lowest id

  // ---- loading --------------------------------------------------------------

  void set_token(int id, const std::string& s, uint8_t state, const std::string& where) {
    if (static_cast<size_t>(id) >= id_string.size()) {
      id_string.resize(id + 1);
      id_state.resize(id + 1, 0);
    }
    if (id_state[id] != 0 && id_string[id] != s) {
      fail(where + ": id " + std::to_string(id) + " is used by both " + tok_name(id_string[id]) + " and " + tok_name(s));
    }
    if (id_state[id] == 0 || state >= 2) id_state[id] = state;
    id_string[id] = s;
  }

  void load_model(const json& m) {
    if (!m.is_object()) fail("model must be an object");
    std::string type = get_string(m, "type", "model");
    if (type.empty()) {  // older files leave the type out; infer it
      if (field(m, "merges")) {
        type = "BPE";
      } else if (const json* v = field(m, "vocab"); v && v->is_object()) {
        type = "WordLevel";
      } else {
        fail("model.type is missing");
      }
    }
    if (type == "BPE") {
      model = ModelType::BPE;
    } else if (type == "WordLevel") {
      model = ModelType::WordLevel;
    } else {
      fail("model.type '" + type + "' is not supported (BPE and WordLevel are)");
    }
    const json* v = field(m, "vocab");
    if (!v) fail("model.vocab is missing");
    if (!v->is_object()) fail("model.vocab must be an object {token: id}");
    if (v->empty()) fail("model.vocab is empty");
    for (auto it = v->begin(); it != v->end(); ++it) {
      const int id = parse_id(it.value(), "model.vocab[" + tok_name(it.key()) + "]");
      set_token(id, it.key(), 1, "model.vocab");
      vocab.emplace(it.key(), id);
    }
    if (auto unk = get_opt_string(m, "unk_token", "model")) {
      auto it = vocab.find(*unk);
      if (it == vocab.end()) fail("model.unk_token " + tok_name(*unk) + " is not in the vocab");
      unk_id = it->second;
    }
    if (model == ModelType::WordLevel) return;

    cont_prefix = get_opt_string(m, "continuing_subword_prefix", "model").value_or("");
    eow_suffix = get_opt_string(m, "end_of_word_suffix", "model").value_or("");
    fuse_unk = get_bool(m, "fuse_unk", "model", false);
    byte_fallback = get_bool(m, "byte_fallback", "model", false);
    ignore_merges = get_bool(m, "ignore_merges", "model", false);
    const json* ms = field(m, "merges");
    if (!ms) return;
    if (!ms->is_array()) fail("model.merges must be an array");
    merges.reserve(ms->size());
    int rank = 0;
    for (const json& e : *ms) {
      const std::string where = "model.merges[" + std::to_string(rank) + "]";
      std::string a, b;
      if (e.is_string()) {
        const std::string s = e.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos || sp == 0 || sp + 1 == s.size()) {
          fail(where + " " + tok_name(s) + " is not two tokens separated by one space");
        }
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        a = e[0].get<std::string>();
        b = e[1].get<std::string>();
      } else {
        fail(where + " must be \"a b\" or [\"a\", \"b\"]");
      }
      auto ia = vocab.find(a);
      if (ia == vocab.end()) fail(where + ": token " + tok_name(a) + " is not in the vocab");
      auto ib = vocab.find(b);
      if (ib == vocab.end()) fail(where + ": token " + tok_name(b) + " is not in the vocab");
      const std::string merged =
          a + (!cont_prefix.empty() && starts_with(b, cont_prefix) ? b.substr(cont_prefix.size()) : b);
      auto im = vocab.find(merged);
      if (im == vocab.end()) fail(where + ": merged token " + tok_name(merged) + " is not in the vocab");
      merges.emplace(pair_key(ia->second, ib->second), std::make_pair(rank, im->second));  // first rank wins
      ++rank;
    }
  }

  void load_added(const json& arr) {
    if (!arr.is_array()) fail("added_tokens must be an array");
    for (size_t i = 0; i < arr.size(); ++i) {
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      const json& t = arr[i];
      if (!t.is_object()) fail(where + " must be an object");
      const json* idj = field(t, "id");
      if (!idj) fail(where + ".id is missing");
      Added a;
      a.id = parse_id(*idj, where + ".id");
      a.content = get_string(t, "content", where);
      if (a.content.empty()) fail(where + ".content is missing or empty");
      a.special = get_bool(t, "special", where, false);
      a.single_word = get_bool(t, "single_word", where, false);
      a.lstrip = get_bool(t, "lstrip", where, false);
      a.rstrip = get_bool(t, "rstrip", where, false);
      set_token(a.id, a.content, a.special ? 3 : 2, where);
      if (added_by_content.emplace(a.content, a.id).second) added.push_back(std::move(a));
    }
    for (size_t i = 0; i < added.size(); ++i) {
      added_by_byte[static_cast<unsigned char>(added[i].content[0])].push_back(static_cast<int>(i));
    }
    for (auto& bucket : added_by_byte) {
      std::stable_sort(bucket.begin(), bucket.end(),
                       [&](int x, int y) { return added[x].content.size() > added[y].content.size(); });
    }
  }

  void load_normalizer(const json& n, const std::string& where) {
    if (n.is_null()) return;
    const std::string type = get_string(n, "type", where);
    if (type == "Sequence") {
      const json* list = field(n, "normalizers");
      if (!list || !list->is_array()) fail(where + ".normalizers must be an array");
      for (size_t i = 0; i < list->size(); ++i) load_normalizer((*list)[i], where + ".normalizers[" + std::to_string(i) + "]");
    } else if (type == "NFC" || type == "NFKC") {
      // Identity: text typed or pasted is already composed in practice.
    } else if (type == "Lowercase") {
      normalizer.push_back({NormStep::Kind::Lowercase, false, false, {}, {}});
    } else if (type == "Strip") {
      normalizer.push_back({NormStep::Kind::Strip, get_bool(n, "strip_left", where, true),
                            get_bool(n, "strip_right", where, true), {}, {}});
    } else if (type == "Replace") {
      const Pattern p = get_pattern(n, where);
      if (p.regex) fail(where + ": Replace with a regex pattern is not supported");
      normalizer.push_back({NormStep::Kind::Replace, false, false, p.text, get_string(n, "content", where)});
    } else if (type == "Prepend") {
      normalizer.push_back({NormStep::Kind::Prepend, false, false, {}, get_string(n, "prepend", where)});
    } else {
      fail(where + ".type '" + type + "' is not supported");
    }
  }

  void load_pre_tokenizer(const json& p, const std::string& where) {
    if (p.is_null()) return;
    const std::string type = get_string(p, "type", where);
    PreTokStep st;
    if (type == "Sequence") {
      const json* list = field(p, "pretokenizers");
      if (!list || !list->is_array()) fail(where + ".pretokenizers must be an array");
      for (size_t i = 0; i < list->size(); ++i) {
        load_pre_tokenizer((*list)[i], where + ".pretokenizers[" + std::to_string(i) + "]");
      }
      return;
    } else if (type == "ByteLevel") {
      st.kind = PreTokStep::Kind::ByteLevel;
      st.add_prefix_space = get_bool(p, "add_prefix_space", where, true);
      st.use_regex = get_bool(p, "use_regex", where, true);
      byte_level = true;
    } else if (type == "Digits") {
      st.kind = PreTokStep::Kind::Digits;
      st.individual_digits = get_bool(p, "individual_digits", where, false);
      if (st.individual_digits) split_digits = true;
    } else if (type == "Split") {
      const Pattern pat = get_pattern(p, where);
      st.behavior = get_behavior(p, where, Behavior::Isolated);
      st.invert = get_bool(p, "invert", where, false);
      if (!pat.regex) {
        st.kind = PreTokStep::Kind::SplitLiteral;
        st.literal = pat.text;
      } else if (pat.text == kGpt2Pattern) {
        st.kind = PreTokStep::Kind::SplitGpt2;
      } else if (pat.text.empty() || pat.text == "." || pat.text == "(?s)." || pat.text == "(?s:.)" ||
                 pat.text == "\\X") {
        st.kind = PreTokStep::Kind::SplitChars;  // "." also takes newlines here
      } else {
        fail(where + ": Split regex " + tok_name(pat.text) +
             " is not supported (known: the GPT-2/NeoX pattern and single characters)");
      }
    } else if (type == "Whitespace") {
      st.kind = PreTokStep::Kind::Whitespace;
    } else if (type == "WhitespaceSplit") {
      st.kind = PreTokStep::Kind::WhitespaceSplit;
    } else if (type == "Punctuation") {
      st.kind = PreTokStep::Kind::Punctuation;
      st.behavior = get_behavior(p, where, Behavior::Isolated);
    } else if (type == "BertPreTokenizer") {
      st.kind = PreTokStep::Kind::WhitespaceSplit;
      pre_tokenizer.push_back(st);
      st.kind = PreTokStep::Kind::Punctuation;
      st.behavior = Behavior::Isolated;
    } else if (type == "Metaspace") {
      st.kind = PreTokStep::Kind::Metaspace;
      st.literal = get_string(p, "replacement", where, "\xE2\x96\x81");  // U+2581
      if (st.literal.empty()) fail(where + ".replacement is empty");
      const std::string scheme = get_string(p, "prepend_scheme", where);
      if (scheme.empty()) {
        st.prepend = get_bool(p, "add_prefix_space", where, true) ? PreTokStep::Prepend::Always
                                                                   : PreTokStep::Prepend::Never;
      } else if (scheme == "always") {
        st.prepend = PreTokStep::Prepend::Always;
      } else if (scheme == "first") {
        st.prepend = PreTokStep::Prepend::First;
      } else if (scheme == "never") {
        st.prepend = PreTokStep::Prepend::Never;
      } else {
        fail(where + ".prepend_scheme '" + scheme + "' is not supported");
      }
      st.split = get_bool(p, "split", where, true);
    } else {
      fail(where + ".type '" + type + "' is not supported");
    }
    pre_tokenizer.push_back(st);
  }

  void load_decoder(const json& d, const std::string& where, std::vector<DecStep>& out) {
    if (d.is_null()) return;
    const std::string type = get_string(d, "type", where);
    DecStep st;
    if (type == "Sequence") {
      const json* list = field(d, "decoders");
      if (!list || !list->is_array()) fail(where + ".decoders must be an array");
      for (size_t i = 0; i < list->size(); ++i) {
        load_decoder((*list)[i], where + ".decoders[" + std::to_string(i) + "]", out);
      }
      return;
    } else if (type == "ByteLevel") {
      st.kind = DecStep::Kind::ByteLevel;
      byte_level = true;
    } else if (type == "ByteFallback") {
      st.kind = DecStep::Kind::ByteFallback;
    } else if (type == "Fuse") {
      st.kind = DecStep::Kind::Fuse;
    } else if (type == "Replace") {
      st.kind = DecStep::Kind::Replace;
      const Pattern p = get_pattern(d, where);
      if (p.regex) fail(where + ": Replace with a regex pattern is not supported");
      st.a = p.text;
      st.b = get_string(d, "content", where);
    } else if (type == "Strip") {
      st.kind = DecStep::Kind::Strip;
      st.a = get_string(d, "content", where, " ");
      st.start = get_count(d, "start", where, 0);
      st.stop = get_count(d, "stop", where, 0);
    } else if (type == "Metaspace") {
      st.kind = DecStep::Kind::Metaspace;
      st.a = get_string(d, "replacement", where, "\xE2\x96\x81");
      const std::string scheme = get_string(d, "prepend_scheme", where);
      st.flag = scheme.empty() ? get_bool(d, "add_prefix_space", where, true) : scheme != "never";
    } else if (type == "WordPiece") {
      st.kind = DecStep::Kind::WordPiece;
      st.a = get_string(d, "prefix", where, "##");
      st.flag = get_bool(d, "cleanup", where, true);
    } else if (type == "BPEDecoder") {
      st.kind = DecStep::Kind::BPEDecoder;
      st.a = get_string(d, "suffix", where, "</w>");
    } else {
      fail(where + ".type '" + type + "' is not supported");
    }
    out.push_back(st);
  }

  std::optional<int> special_id(const std::string& name) const {
    if (auto it = added_by_content.find(name); it != added_by_content.end()) return it->second;
    if (auto it = vocab.find(name); it != vocab.end()) return it->second;
    return std::nullopt;
  }

  // BOS from a post_processor: the special token before $A in a
  // TemplateProcessing single template, or the cls token of Roberta/Bert.
  std::optional<int> bos_from_post_processor(const json& p) const {
    if (!p.is_object()) return std::nullopt;
    const std::string type = p.value("type", std::string());
    if (type == "Sequence") {
      if (const json* list = field(p, "processors"); list && list->is_array()) {
        for (const json& q : *list) {
          if (auto id = bos_from_post_processor(q)) return id;
        }
      }
      return std::nullopt;
    }
    if (type == "RobertaProcessing" || type == "BertProcessing") {
      const json* cls = field(p, "cls");
      if (cls && cls->is_array() && cls->size() == 2 && (*cls)[1].is_number_integer()) {
        return static_cast<int>((*cls)[1].get<int64_t>());
      }
      return std::nullopt;
    }
    if (type != "TemplateProcessing") return std::nullopt;
    const json* single = field(p, "single");
    if (!single) return std::nullopt;
    std::string name;
    if (single->is_array() && !single->empty()) {
      const json* st = field((*single)[0], "SpecialToken");
      if (!st) return std::nullopt;  // the template starts with the sequence: no BOS
      name = st->value("id", std::string());
    } else if (single->is_string()) {  // "<s> $A" form
      const std::string s = single->get<std::string>();
      name = s.substr(0, s.find(' '));
      if (name.empty() || name[0] == '$') return std::nullopt;
      if (const size_t colon = name.rfind(':'); colon != std::string::npos && colon > 0) name.resize(colon);
    }
    if (name.empty()) return std::nullopt;
    if (const json* sp = field(p, "special_tokens"); sp && sp->is_object()) {
      if (const json* entry = field(*sp, name.c_str())) {
        if (const json* ids = field(*entry, "ids"); ids && ids->is_array() && !ids->empty() && (*ids)[0].is_number_integer()) {
          return static_cast<int>((*ids)[0].get<int64_t>());
        }
      }
    }
    return special_id(name);
  }

  void finish(const json& root) {
    // BOS
    if (const json* pp = field(root, "post_processor")) bos = bos_from_post_processor(*pp);
    if (bos && (*bos < 0 || static_cast<size_t>(*bos) >= id_string.size() || id_state[*bos] == 0)) bos.reset();
    if (!bos) {
      for (const char* name : {"<|endoftext|>", "<|BOS|>", "<bos>", "<s>", "[BOS]"}) {
        auto it = added_by_content.find(name);
        if (it != added_by_content.end() && id_state[it->second] == 3) {
          bos = it->second;
          break;
        }
      }
    }
    // Character model: every model token one code point (the unk token and
    // bracketed specials such as "<pad>" or "[PAD]" that were left in the vocab aside).
    size_t singles = 0;
    is_char = true;
    for (const auto& [s, id] : vocab) {
      if (id_state[id] != 1 || (unk_id && id == *unk_id)) continue;
      if (s.size() >= 3 && ((s.front() == '<' && s.back() == '>') || (s.front() == '[' && s.back() == ']'))) continue;
      if (uc::count_code_points(s) != 1) {
        is_char = false;
        break;
      }
      ++singles;
    }
    if (singles == 0) is_char = false;
    // Raw bytes -> id, for find_token.
    for (size_t id = 0; id < id_string.size(); ++id) {
      if (id_state[id] != 0) by_bytes.emplace(token_bytes(static_cast<int>(id)), static_cast<int>(id));
    }
  }

  // ---- encoding ---------------------------------------------------------------

  std::string normalize(std::string s) const {
    for (const NormStep& n : normalizer) {
      switch (n.kind) {
        case NormStep::Kind::Lowercase: {
          std::string out;
          out.reserve(s.size());
          for (size_t i = 0; i < s.size();) {
            const uc::CodePoint c = uc::decode_utf8(s, i);
            if (c.valid) {
              uc::append_utf8(out, to_lower(c.cp));
            } else {
              out += s[i];
            }
            i += c.len;
          }
          s = std::move(out);
          break;
        }
        case NormStep::Kind::Strip: {
          const Ranges cps = code_point_ranges(s);
          size_t b = 0, e = cps.size();
          auto ws = [&](size_t k) { return uc::is_whitespace(uc::decode_utf8(s, cps[k].first).cp); };
          if (n.left) {
            while (b < e && ws(b)) ++b;
          }
          if (n.right) {
            while (e > b && ws(e - 1)) --e;
          }
          s = b < e ? s.substr(cps[b].first, cps[e - 1].second - cps[b].first) : std::string();
          break;
        }
        case NormStep::Kind::Replace:
          s = replace_all(s, n.pattern, n.content);
          break;
        case NormStep::Kind::Prepend:
          if (!s.empty()) s = n.content + s;
          break;
      }
    }
    return s;
  }

  void pre_tokenize_step(const PreTokStep& st, const std::string& piece, bool first,
                         std::vector<std::string>& out) const {
    using K = PreTokStep::Kind;
    switch (st.kind) {
      case K::ByteLevel: {
        std::string s = (st.add_prefix_space && piece[0] != ' ') ? " " + piece : piece;
        if (!st.use_regex) {
          out.push_back(uc::bytes_to_byte_level(s));
          return;
        }
        for (const auto& [b, e] : uc::gpt2_split(s)) {
          out.push_back(uc::bytes_to_byte_level(std::string_view(s).substr(b, e - b)));
        }
        return;
      }
      case K::Digits:
        split_by(piece, class_matches(piece, uc::is_number, st.individual_digits), Behavior::Isolated, false, out);
        return;
      case K::SplitLiteral:
        split_by(piece, literal_matches(piece, st.literal), st.behavior, st.invert, out);
        return;
      case K::SplitGpt2:
        split_by(piece, uc::gpt2_split(piece), st.behavior, st.invert, out);
        return;
      case K::SplitChars:
        split_by(piece, code_point_ranges(piece), st.behavior, st.invert, out);
        return;
      case K::Whitespace: {
        // \w+|[^\w\s]+ ; whitespace dropped.
        Ranges r;
        int prev = -1;  // 0 word, 1 other
        for (size_t i = 0; i < piece.size();) {
          const uc::CodePoint c = uc::decode_utf8(piece, i);
          const size_t next = i + static_cast<size_t>(c.len);
          const int cls = uc::is_whitespace(c.cp) ? -1 : is_word_char(c.cp) ? 0 : 1;
          if (cls >= 0) {
            if (cls == prev && !r.empty() && r.back().second == i) {
              r.back().second = next;
            } else {
              r.emplace_back(i, next);
            }
          }
          prev = cls;
          i = next;
        }
        for (const auto& [b, e] : r) out.push_back(piece.substr(b, e - b));
        return;
      }
      case K::WhitespaceSplit:
        split_by(piece, class_matches(piece, uc::is_whitespace, false), Behavior::Removed, false, out);
        return;
      case K::Punctuation:
        split_by(piece, class_matches(piece, uc::is_punctuation, true), st.behavior, false, out);
        return;
      case K::Metaspace: {
        std::string s = replace_all(piece, " ", st.literal);
        const bool prepend = st.prepend == PreTokStep::Prepend::Always || (st.prepend == PreTokStep::Prepend::First && first);
        if (prepend && !starts_with(s, st.literal)) s = st.literal + s;
        if (st.split) {
          split_by(s, literal_matches(s, st.literal), Behavior::MergedWithNext, false, out);
        } else {
          out.push_back(std::move(s));
        }
        return;
      }
    }
  }

  [[noreturn]] static void unknown(std::string_view what) {
    throw Error("tokenizer: " + tok_name(what) + " is not in the vocabulary and the model has no unk_token");
  }

  void bpe_word(const std::string& w, std::vector<int>& out) const {
    if (ignore_merges) {
      if (auto it = vocab.find(w); it != vocab.end()) {
        out.push_back(it->second);
        return;
      }
    }
    struct Sym {
      int id, prev, next;
    };
    std::vector<Sym> syms;
    const Ranges chars = code_point_ranges(w);
    syms.reserve(chars.size());
    bool prev_unk = false;
    auto push = [&](int id) {
      const int k = static_cast<int>(syms.size());
      syms.push_back({id, k - 1, -1});
      if (k > 0) syms[k - 1].next = k;
    };
    std::string s;
    for (size_t k = 0; k < chars.size(); ++k) {
      const std::string_view ch = std::string_view(w).substr(chars[k].first, chars[k].second - chars[k].first);
      s.clear();
      if (k > 0) s += cont_prefix;
      s += ch;
      if (k + 1 == chars.size()) s += eow_suffix;
      if (auto it = vocab.find(s); it != vocab.end()) {
        push(it->second);
        prev_unk = false;
        continue;
      }
      if (byte_fallback) {
        std::vector<int> ids;
        for (char b : ch) {
          static const char* hex = "0123456789ABCDEF";
          const auto u = static_cast<unsigned char>(b);
          const std::string t = std::string("<0x") + hex[u >> 4] + hex[u & 15] + ">";
          auto it = vocab.find(t);
          if (it == vocab.end()) break;
          ids.push_back(it->second);
        }
        if (ids.size() == ch.size()) {
          for (int id : ids) push(id);
          prev_unk = false;
          continue;
        }
      }
      if (!unk_id) unknown(ch);
      if (!(fuse_unk && prev_unk)) push(*unk_id);
      prev_unk = true;
    }
    if (syms.empty()) return;

    struct Cand {
      int rank, pos, left, right, merged;
    };
    auto later = [](const Cand& x, const Cand& y) { return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos; };
    std::priority_queue<Cand, std::vector<Cand>, decltype(later)> heap(later);
    auto consider = [&](int l) {
      const int r = syms[l].next;
      if (r < 0) return;
      auto it = merges.find(pair_key(syms[l].id, syms[r].id));
      if (it != merges.end()) heap.push({it->second.first, l, syms[l].id, syms[r].id, it->second.second});
    };
    for (int l = 0; l + 1 < static_cast<int>(syms.size()); ++l) consider(l);
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      Sym& left = syms[c.pos];
      if (left.id != c.left || left.next < 0 || syms[left.next].id != c.right) continue;  // stale
      const int r = left.next;
      left.id = c.merged;
      left.next = syms[r].next;
      if (left.next >= 0) syms[left.next].prev = c.pos;
      syms[r].id = -1;
      if (left.prev >= 0) consider(left.prev);
      consider(c.pos);
    }
    for (int k = 0; k >= 0; k = syms[k].next) out.push_back(syms[k].id);
  }

  void encode_segment(std::string_view seg, bool first, std::vector<int>& out) const {
    std::vector<std::string> pieces{normalize(std::string(seg))};
    if (pieces[0].empty()) return;
    std::vector<std::string> next;
    for (const PreTokStep& st : pre_tokenizer) {
      next.clear();
      for (size_t p = 0; p < pieces.size(); ++p) {
        if (!pieces[p].empty()) pre_tokenize_step(st, pieces[p], first && p == 0, next);
      }
      pieces.swap(next);
    }
    for (const std::string& piece : pieces) {
      if (piece.empty()) continue;
      if (model == ModelType::BPE) {
        bpe_word(piece, out);
      } else if (auto it = vocab.find(piece); it != vocab.end()) {
        out.push_back(it->second);
      } else if (unk_id) {
        out.push_back(*unk_id);
      } else {
        unknown(piece);
      }
    }
  }

  static bool ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

  // Whether the code point ending just before byte i (or starting at i) is a word character.
  static bool word_before(std::string_view t, size_t i) {
    if (i == 0) return false;
    size_t b = i - 1;
    while (b > 0 && i - b < 4 && (static_cast<unsigned char>(t[b]) & 0xC0) == 0x80) --b;
    return is_word_char(uc::decode_utf8(t, b).cp);
  }
  static bool word_at(std::string_view t, size_t i) { return i < t.size() && is_word_char(uc::decode_utf8(t, i).cp); }

  std::vector<int> encode(std::string_view text) const {
    std::vector<int> out;
    out.reserve(text.size() / 3 + 4);
    size_t seg = 0, i = 0;
    while (i < text.size()) {
      const Added* hit = nullptr;
      for (int idx : added_by_byte[static_cast<unsigned char>(text[i])]) {
        const Added& a = added[idx];
        if (text.compare(i, a.content.size(), a.content) != 0) continue;
        if (a.single_word && (word_before(text, i) || word_at(text, i + a.content.size()))) continue;
        hit = &a;
        break;
      }
      if (!hit) {
        ++i;
        continue;
      }
      size_t b = i, e = i + hit->content.size();
      if (hit->lstrip) {
        while (b > seg && ascii_space(text[b - 1])) --b;
      }
      if (hit->rstrip) {
        while (e < text.size() && ascii_space(text[e])) ++e;
      }
      if (b > seg) encode_segment(text.substr(seg, b - seg), seg == 0, out);
      out.push_back(hit->id);
      seg = i = e;
    }
    if (seg < text.size()) encode_segment(text.substr(seg), seg == 0, out);
    return out;
  }

  // ---- decoding ---------------------------------------------------------------

  // Runs the decoder chain. whole = false: the view of one token on its own
  // (no first-token or last-token rules, no stripping, no joining spaces).
  std::string run_decoder(std::vector<std::string> toks, bool whole) const {
    if (!decoder) {
      if (!whole || is_char) {
        std::string out;
        for (const auto& t : toks) out += t;
        return out;
      }
      std::string out;
      for (size_t k = 0; k < toks.size(); ++k) out += (k ? " " : "") + toks[k];
      return out;
    }
    for (const DecStep& st : *decoder) {
      switch (st.kind) {
        case DecStep::Kind::ByteLevel: {
          std::string all;
          for (const auto& t : toks) all += byte_level_to_bytes(t);
          toks.assign(1, std::move(all));
          break;
        }
        case DecStep::Kind::ByteFallback: {
          std::vector<std::string> res;
          std::string bytes;
          bool in_bytes = false;
          for (auto& t : toks) {
            const int v = byte_fallback_value(t);
            if (v >= 0) {
              bytes += static_cast<char>(v);
              in_bytes = true;
              continue;
            }
            if (in_bytes) res.push_back(std::move(bytes)), bytes.clear(), in_bytes = false;
            res.push_back(std::move(t));
          }
          if (in_bytes) res.push_back(std::move(bytes));
          toks = std::move(res);
          break;
        }
        case DecStep::Kind::Fuse: {
          std::string all;
          for (const auto& t : toks) all += t;
          toks.assign(1, std::move(all));
          break;
        }
        case DecStep::Kind::Replace:
          for (auto& t : toks) t = replace_all(t, st.a, st.b);
          break;
        case DecStep::Kind::Strip:
          if (!whole) break;
          for (auto& t : toks) {
            int n = 0;
            while (n < st.start && starts_with(t, st.a)) t.erase(0, st.a.size()), ++n;
            n = 0;
            while (n < st.stop && ends_with(t, st.a)) t.resize(t.size() - st.a.size()), ++n;
          }
          break;
        case DecStep::Kind::Metaspace:
          for (size_t k = 0; k < toks.size(); ++k) {
            toks[k] = replace_all(toks[k], st.a, " ");
            if (whole && k == 0 && st.flag && starts_with(toks[k], " ")) toks[k].erase(0, 1);
          }
          break;
        case DecStep::Kind::WordPiece:
          for (size_t k = 0; k < toks.size(); ++k) {
            if (starts_with(toks[k], st.a)) {
              toks[k].erase(0, st.a.size());
            } else if (whole && k > 0) {
              toks[k] = " " + toks[k];
            }
            if (whole && st.flag) {
              for (const auto& [from, to] : std::initializer_list<std::pair<const char*, const char*>>{
                       {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
                       {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}}) {
                toks[k] = replace_all(toks[k], from, to);
              }
            }
          }
          break;
        case DecStep::Kind::BPEDecoder:
          for (size_t k = 0; k < toks.size(); ++k) {
            toks[k] = replace_all(toks[k], st.a, (whole && k + 1 == toks.size()) ? "" : " ");
          }
          break;
      }
    }
    std::string out;
    for (const auto& t : toks) out += t;
    return out;
  }

  bool valid(int id) const { return id >= 0 && static_cast<size_t>(id) < id_string.size() && id_state[id] != 0; }

  std::string token_bytes(int id) const {
    if (!valid(id)) return {};
    if (id_state[id] >= 2) return id_string[id];
    return run_decoder({id_string[id]}, false);
  }
};

// ============================================================================

namespace {
// A template so that it need not name the private Tokenizer::Impl.
template <class Ptr>
auto checked(const Ptr& p) {
  if (!p) throw Error("tokenizer: no tokenizer loaded");
  return p.get();
}
}  // namespace

Tokenizer Tokenizer::from_json(std::string_view json_text) {
  json root;
  try {
    root = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    fail(std::string("invalid JSON: ") + e.what());
  }
  if (!root.is_object()) fail("the top level must be an object");
  auto impl = std::make_shared<Impl>();
  try {
    const json* m = field(root, "model");
    if (!m) fail("missing 'model'");
    impl->load_model(*m);
    if (const json* a = field(root, "added_tokens")) impl->load_added(*a);
    if (const json* n = field(root, "normalizer")) impl->load_normalizer(*n, "normalizer");
    if (const json* p = field(root, "pre_tokenizer")) impl->load_pre_tokenizer(*p, "pre_tokenizer");
    if (const json* d = field(root, "decoder")) {
      impl->decoder.emplace();
      impl->load_decoder(*d, "decoder", *impl->decoder);
    }
    impl->finish(root);
  } catch (const json::exception& e) {
    fail(std::string("unexpected structure: ") + e.what());
  }
  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

std::vector<int> Tokenizer::encode(std::string_view text) const { return checked(impl_)->encode(text); }

std::string Tokenizer::decode(std::span<const int> ids) const {
  const Impl* im = checked(impl_);
  std::vector<std::string> toks;
  toks.reserve(ids.size());
  for (int id : ids) {
    if (im->valid(id)) toks.push_back(im->id_string[id]);
  }
  if (toks.empty()) return {};
  return im->run_decoder(std::move(toks), true);
}

std::string Tokenizer::token_bytes(int id) const { return checked(impl_)->token_bytes(id); }

std::string Tokenizer::token_string(int id) const {
  const Impl* im = checked(impl_);
  return im->valid(id) ? im->id_string[id] : std::string();
}

std::string Tokenizer::display(int id) const {
  const Impl* im = checked(impl_);
  if (!im->valid(id)) {
    std::string out(1, '#');
    out += std::to_string(id);
    return out;
  }
  if (im->id_state[id] == 3) return im->id_string[id];
  return visible_bytes(im->token_bytes(id));
}

std::optional<int> Tokenizer::find_token(std::string_view s) const {
  const Impl* im = checked(impl_);
  const std::string key(s);
  if (auto it = im->vocab.find(key); it != im->vocab.end()) return it->second;
  if (auto it = im->added_by_content.find(key); it != im->added_by_content.end()) return it->second;
  if (auto it = im->by_bytes.find(key); it != im->by_bytes.end()) return it->second;
  // The display form typed back ("␣the", "<0xE2>").
  std::string raw;
  for (size_t i = 0; i < s.size();) {
    const std::string_view rest = s.substr(i);
    const int v = byte_fallback_value(rest.substr(0, 6));
    if (v >= 0) {
      raw += static_cast<char>(v), i += 6;
    } else if (starts_with(rest, "\xE2\x90\xA3")) {  // ␣
      raw += ' ', i += 3;
    } else if (starts_with(rest, "\xE2\x86\xB5")) {  // ↵
      raw += '\n', i += 3;
    } else if (starts_with(rest, "\xE2\x87\xA5")) {  // ⇥
      raw += '\t', i += 3;
    } else if (starts_with(rest, "\xE2\x90\x8D")) {  // ␍
      raw += '\r', i += 3;
    } else {
      raw += s[i++];
    }
  }
  if (raw != key) {
    if (auto it = im->by_bytes.find(raw); it != im->by_bytes.end()) return it->second;
  }
  return std::nullopt;
}

int Tokenizer::vocab_size() const { return static_cast<int>(checked(impl_)->id_string.size()); }

std::optional<int> Tokenizer::bos_id() const { return checked(impl_)->bos; }

std::string Tokenizer::kind() const {
  const Impl* im = checked(impl_);
  // Byte-level BPE without merges has one-"character" tokens too, but they are bytes.
  if (im->is_char && !im->byte_level) return "char";
  if (im->model == Impl::ModelType::WordLevel) return "WordLevel";
  std::string k = "BPE";
  if (im->byte_level) k += im->is_char ? ", byte-level (single bytes, no merges)" : ", byte-level";
  if (im->split_digits) k += ", split digits";
  return k;
}

std::string visible_bytes(std::string_view bytes) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size() + 8);
  auto escaped = [&](unsigned char b) {
    out += "<0x";
    out += hex[b >> 4];
    out += hex[b & 15];
    out += '>';
  };
  for (size_t i = 0; i < bytes.size();) {
    const uc::CodePoint c = uc::decode_utf8(bytes, i);
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (!c.valid) {
      escaped(b);
      i += 1;
      continue;
    }
    if (c.cp == ' ') {
      out += "\xE2\x90\xA3";  // ␣
    } else if (c.cp == '\n') {
      out += "\xE2\x86\xB5";  // ↵
    } else if (c.cp == '\t') {
      out += "\xE2\x87\xA5";  // ⇥
    } else if (c.cp == '\r') {
      out += "\xE2\x90\x8D";  // ␍
    } else if (c.cp < 0x20 || c.cp == 0x7F || (c.cp >= 0x80 && c.cp <= 0x9F)) {
      for (int k = 0; k < c.len; ++k) escaped(static_cast<unsigned char>(bytes[i + k]));  // control
    } else {
      out.append(bytes.substr(i, c.len));
    }
    i += c.len;
  }
  return out;
}

}  // namespace cs
