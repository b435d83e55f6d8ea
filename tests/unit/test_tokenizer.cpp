// Tokenizer (src/io/tokenizer.cpp) and its Unicode helpers (src/io/unicode.cpp).
// Every tokenizer.json is built in memory here; expected values are worked by
// hand or computed by the small independent implementations in this file.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/tokenizer.h"
#include "io/unicode.h"

namespace {

using json = nlohmann::json;
using cs::Tokenizer;

// ---- independent helpers ----------------------------------------------------

std::string utf8(char32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

bool gpt2_printable(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

// The GPT-2 byte -> code point rule, written out independently of the library.
char32_t rule_char(int b) {
  if (gpt2_printable(b)) return static_cast<char32_t>(b);
  int n = 0;
  for (int k = 0; k < b; ++k) n += gpt2_printable(k) ? 0 : 1;
  return static_cast<char32_t>(256 + n);
}

std::string byte_level(const std::string& raw) {
  std::string s;
  for (unsigned char c : raw) s += utf8(rule_char(c));
  return s;
}

// A byte-level BPE tokenizer.json: ids 0..255 are the bytes; each merge (given
// as raw byte strings) adds the concatenation as the next id.
struct ByteLevelSpec {
  std::vector<std::pair<std::string, std::string>> merges;
  json pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  json added_tokens = json::array();
  json post_processor = nullptr;
  bool merges_as_pairs = false;
};

json byte_level_json(const ByteLevelSpec& spec) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level(std::string(1, static_cast<char>(b)))] = b;
  json merges = json::array();
  int next = 256;
  for (const auto& [a, b] : spec.merges) {
    const std::string ab = byte_level(a + b);
    if (!vocab.contains(ab)) vocab[ab] = next++;
    if (spec.merges_as_pairs) {
      merges.push_back(json::array({byte_level(a), byte_level(b)}));
    } else {
      merges.push_back(byte_level(a) + " " + byte_level(b));
    }
  }
  return {{"version", "1.0"},
          {"added_tokens", spec.added_tokens},
          {"normalizer", nullptr},
          {"pre_tokenizer", spec.pre_tokenizer},
          {"post_processor", spec.post_processor},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
          {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                     {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"vocab", vocab}, {"merges", merges}}}};
}

Tokenizer byte_level_tokenizer(const ByteLevelSpec& spec) { return Tokenizer::from_json(byte_level_json(spec).dump()); }

std::vector<std::string> pieces(const std::string& s) {
  std::vector<std::string> out;
  for (const auto& [b, e] : cs::unicode::gpt2_split(s)) out.push_back(s.substr(b, e - b));
  return out;
}

int id_of(const Tokenizer& t, const std::string& raw) {
  auto id = t.find_token(raw);
  EXPECT_TRUE(id.has_value()) << raw;
  return id.value_or(-1);
}

std::string error_of(const std::string& text) {
  try {
    Tokenizer::from_json(text);
  } catch (const cs::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- Unicode helpers ------------------------------------------------------------

TEST(TokenizerUnicode, ByteToUnicodeFollowsTheGpt2Rule) {
  const auto& t = cs::unicode::byte_to_unicode();
  int next = 256, remapped = 0;
  for (int b = 0; b < 256; ++b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
      EXPECT_EQ(t[b], static_cast<char32_t>(b)) << b;
    } else {
      EXPECT_EQ(t[b], static_cast<char32_t>(next++)) << b;
      ++remapped;
    }
    EXPECT_EQ(cs::unicode::unicode_to_byte(t[b]), b);
  }
  EXPECT_EQ(remapped, 68);
  EXPECT_EQ(t[' '], U'\u0120');   // "Ġ"
  EXPECT_EQ(t['\n'], U'\u010A');  // "Ċ"
  EXPECT_EQ(t[0xAD], U'\u0143');  // soft hyphen is the last remapped byte
  EXPECT_EQ(cs::unicode::unicode_to_byte(U' '), -1);
  EXPECT_EQ(cs::unicode::unicode_to_byte(U'\u0144'), -1);
}

TEST(TokenizerUnicode, StrictUtf8Decoding) {
  using cs::unicode::decode_utf8;
  EXPECT_EQ(decode_utf8("\xC3\xA9", 0).cp, U'é');
  EXPECT_EQ(decode_utf8("\xF0\x9F\x99\x82", 0).cp, U'\U0001F642');
  EXPECT_EQ(decode_utf8("\xF0\x9F\x99\x82", 0).len, 4);
  EXPECT_FALSE(decode_utf8("\xC0\xAF", 0).valid);          // overlong
  EXPECT_FALSE(decode_utf8("\xED\xA0\x80", 0).valid);      // surrogate
  EXPECT_FALSE(decode_utf8("\xF4\x90\x80\x80", 0).valid);  // > U+10FFFF
  EXPECT_FALSE(decode_utf8("\xE2\x82", 0).valid);          // truncated
  EXPECT_FALSE(decode_utf8("\x82", 0).valid);              // stray continuation
  EXPECT_EQ(decode_utf8("\xE2\x82", 0).len, 1);
}

TEST(TokenizerUnicode, CategoryApproximation) {
  using namespace cs::unicode;
  for (char32_t c : {U'a', U'Z', U'é', U'ß', U'Ω', U'ж', U'中', U'ア', U'한'}) EXPECT_TRUE(is_letter(c)) << int(c);
  for (char32_t c : {U'1', U' ', U'!', U'\u0301', U'\U0001F642', U'×', U'÷'}) EXPECT_FALSE(is_letter(c)) << int(c);
  for (char32_t c : {U'0', U'9', U'²', U'½', U'٣', U'５'}) EXPECT_TRUE(is_number(c)) << int(c);
  for (char32_t c : {U' ', U'\t', U'\n', U'\u00A0', U'\u3000'}) EXPECT_TRUE(is_whitespace(c)) << int(c);
  EXPECT_FALSE(is_whitespace(U'\u200B'));  // zero-width space is not White_Space
}

TEST(TokenizerUnicode, Gpt2RegexSplit) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces(" hello world's  123"), (V{" hello", " world", "'s", " ", " 123"}));
  EXPECT_EQ(pieces("Hello, world!\n\nI'm  here   ok  "),
            (V{"Hello", ",", " world", "!", "\n", "\n", "I", "'m", " ", " here", "  ", " ok", "  "}));
  EXPECT_EQ(pieces("they're we've I'll he'd it't"),
            (V{"they", "'re", " we", "'ve", " I", "'ll", " he", "'d", " it", "'t"}));
  EXPECT_EQ(pieces("x's'S"), (V{"x", "'s", "'", "S"}));  // contractions are case-sensitive
  EXPECT_EQ(pieces("abc123def"), (V{"abc", "123", "def"}));
  EXPECT_EQ(pieces(" !!x?"), (V{" !!", "x", "?"}));
  EXPECT_EQ(pieces("\t\tfoo"), (V{"\t", "\t", "foo"}));
  EXPECT_EQ(pieces(" café 中文 🙂🙂"), (V{" café", " 中文", " 🙂🙂"}));
  EXPECT_EQ(pieces("e\xCC\x81"), (V{"e", "\xCC\x81"}));  // a combining mark is not a letter
  EXPECT_EQ(pieces(""), V{});
  EXPECT_EQ(pieces("   "), (V{"   "}));
}

// ---- byte-level BPE -----------------------------------------------------------

TEST(TokenizerBpe, VocabStringsUseTheByteAlphabet) {
  const Tokenizer t = byte_level_tokenizer({});
  EXPECT_EQ(t.vocab_size(), 256);
  EXPECT_EQ(t.token_string(' '), "\xC4\xA0");  // "Ġ"
  EXPECT_EQ(t.token_string('\n'), "\xC4\x8A");  // "Ċ"
  EXPECT_EQ(t.token_string('a'), "a");
  for (int b = 0; b < 256; ++b) EXPECT_EQ(t.token_bytes(b), std::string(1, static_cast<char>(b))) << b;
  EXPECT_EQ(t.kind(), "BPE, byte-level (single bytes, no merges)");  // one-character tokens, but bytes
}

TEST(TokenizerBpe, MergesAppliedByRank) {
  // "abcd" with merges  c d (0), a b (1), b cd (2), ab cd (3):
  //   a b c d -> a b cd -> ab cd -> abcd          (one token)
  // with  c d (0), b cd (1), a b (2), ab cd (3):
  //   a b c d -> a b cd -> a bcd                  (no "a bcd" merge: two tokens)
  ByteLevelSpec s1, s2;
  s1.merges = {{"c", "d"}, {"a", "b"}, {"b", "cd"}, {"ab", "cd"}};
  s2.merges = {{"c", "d"}, {"b", "cd"}, {"a", "b"}, {"ab", "cd"}};
  const Tokenizer t1 = byte_level_tokenizer(s1), t2 = byte_level_tokenizer(s2);
  EXPECT_EQ(t1.encode("abcd"), std::vector<int>{id_of(t1, "abcd")});
  EXPECT_EQ(t2.encode("abcd"), (std::vector<int>{'a', id_of(t2, "bcd")}));
  // Equal ranks compete by position: leftmost first ("aaa" -> "aa" "a").
  ByteLevelSpec s3;
  s3.merges = {{"a", "a"}, {"aa", "aa"}};
  const Tokenizer t3 = byte_level_tokenizer(s3);
  const int aa = id_of(t3, "aa"), aaaa = id_of(t3, "aaaa");
  EXPECT_EQ(t3.encode("aaa"), (std::vector<int>{aa, 'a'}));
  EXPECT_EQ(t3.encode("aaaa"), std::vector<int>{aaaa});
  EXPECT_EQ(t3.encode("aaaaa"), (std::vector<int>{aaaa, 'a'}));
  // Merges written as [a, b] pairs mean the same.
  s1.merges_as_pairs = true;
  EXPECT_EQ(byte_level_tokenizer(s1).encode("abcd"), t1.encode("abcd"));
}

// Naive BPE, written independently: repeatedly merge the leftmost occurrence of
// the lowest-ranked adjacent pair.
std::vector<std::string> naive_bpe(const std::string& word, const std::map<std::pair<std::string, std::string>, int>& rank) {
  std::vector<std::string> sym;
  for (char c : word) sym.emplace_back(1, c);
  for (;;) {
    int best = -1, best_rank = 1 << 30;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      auto it = rank.find({sym[i], sym[i + 1]});
      if (it != rank.end() && it->second < best_rank) best = static_cast<int>(i), best_rank = it->second;
    }
    if (best < 0) return sym;
    sym[best] += sym[best + 1];
    sym.erase(sym.begin() + best + 1);
  }
}

TEST(TokenizerBpe, AgreesWithNaiveBpeOnRandomMerges) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<std::string> tokens = {"a", "b", "c"};
    ByteLevelSpec spec;
    spec.pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
    std::map<std::pair<std::string, std::string>, int> rank;
    for (int m = 0; m < 25; ++m) {
      const std::string x = tokens[rng() % tokens.size()];
      const std::string y = tokens[rng() % tokens.size()];
      if (rank.count({x, y})) continue;
      rank[{x, y}] = static_cast<int>(spec.merges.size());
      spec.merges.emplace_back(x, y);
      if (std::find(tokens.begin(), tokens.end(), x + y) == tokens.end()) tokens.push_back(x + y);
    }
    const Tokenizer t = byte_level_tokenizer(spec);
    for (int k = 0; k < 10; ++k) {
      std::string text;
      const int len = 1 + static_cast<int>(rng() % 40);
      for (int i = 0; i < len; ++i) text += static_cast<char>('a' + rng() % 3);
      std::vector<int> expected;
      for (const auto& p : naive_bpe(text, rank)) expected.push_back(id_of(t, p));
      ASSERT_EQ(t.encode(text), expected) << "trial " << trial << " text " << text;
    }
  }
}

TEST(TokenizerBpe, PreTokenizationKeepsMergesInsideWords) {
  // "o" + " " would merge if the text were one word; the GPT-2 split puts the
  // space with the next word, so " w" forms instead.
  ByteLevelSpec spec;
  spec.merges = {{"o", " "}, {" ", "w"}, {"h", "e"}};
  const Tokenizer t = byte_level_tokenizer(spec);
  EXPECT_EQ(t.encode("he o wo"), (std::vector<int>{id_of(t, "he"), ' ', 'o', id_of(t, " w"), 'o'}));
  EXPECT_EQ(t.kind(), "BPE, byte-level");
  // add_prefix_space puts a space before the text.
  spec.pre_tokenizer["add_prefix_space"] = true;
  const Tokenizer tp = byte_level_tokenizer(spec);
  EXPECT_EQ(tp.encode("wo"), (std::vector<int>{id_of(tp, " w"), 'o'}));
}

TEST(TokenizerBpe, SplitDigits) {
  ByteLevelSpec spec;
  spec.merges = {{"1", "2"}, {"12", "3"}, {"4", "5"}};
  const Tokenizer plain = byte_level_tokenizer(spec);
  EXPECT_EQ(plain.encode("12345"), (std::vector<int>{id_of(plain, "123"), id_of(plain, "45")}));
  // GPT-NeoX "split digits" variant: Digits(individual) before ByteLevel.
  spec.pre_tokenizer = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Digits"}, {"individual_digits", true}},
                          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}}}};
  const Tokenizer digits = byte_level_tokenizer(spec);
  EXPECT_EQ(digits.encode("12345"), (std::vector<int>{'1', '2', '3', '4', '5'}));
  EXPECT_EQ(digits.encode("x12 3"), (std::vector<int>{'x', '1', '2', ' ', '3'}));
  EXPECT_EQ(digits.kind(), "BPE, byte-level, split digits");
  // The same through a Split step with the GPT-2 regex (as some files write it).
  spec.pre_tokenizer = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Digits"}, {"individual_digits", true}},
        {{"type", "Split"},
         {"pattern", {{"Regex", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  EXPECT_EQ(byte_level_tokenizer(spec).encode("12345"), (std::vector<int>{'1', '2', '3', '4', '5'}));
}

TEST(TokenizerBpe, RoundTripUtf8) {
  ByteLevelSpec spec;
  spec.merges = {{" ", "t"}, {" t", "h"}, {" th", "e"}, {"\xC3", "\xA9"}, {"\n", "\n"}, {"\xE4", "\xB8"}};
  const Tokenizer t = byte_level_tokenizer(spec);
  const std::vector<std::string> texts = {
      "The quick brown fox, the end.",
      "caf\xC3\xA9 na\xC3\xAFve \xC3\xA9t\xC3\xA9",
      "\xE4\xB8\xAD\xE6\x96\x87 text",              // 中文
      "emoji \xF0\x9F\x99\x82\xF0\x9F\x9A\x80!",       // 🙂🚀
      "line one\nline two\n\n\tindented\r\n  the end  \n",
      "",
      " ",
      "bad \xFF\xFE bytes \xE2\x82 kept",  // invalid UTF-8 survives byte for byte
  };
  for (const auto& x : texts) {
    const std::vector<int> ids = t.encode(x);
    EXPECT_EQ(t.decode(ids), x);
    std::string concat;
    for (int id : ids) concat += t.token_bytes(id);
    EXPECT_EQ(concat, x);
  }
  // Without merges every byte is its own token.
  const Tokenizer bytes = byte_level_tokenizer({});
  const std::string x = "h\xC3\xA9 \xF0\x9F\x99\x82\n";
  const std::vector<int> ids = bytes.encode(x);
  ASSERT_EQ(ids.size(), x.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(ids[i], static_cast<unsigned char>(x[i]));
  // A 10 KB text encodes quickly and round-trips.
  std::string big;
  while (big.size() < 10000) big += "the cat sat on the mat, caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 42\n";
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> big_ids = t.encode(big);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(t.decode(big_ids), big);
  EXPECT_LT(secs, 1.0);
}

TEST(TokenizerBpe, DisplayForms) {
  ByteLevelSpec spec;
  spec.merges = {{" ", "t"}, {" t", "h"}, {" th", "e"}, {"\xE2", "\x82"}, {"\xE2\x82", "\xAC"}, {"\n", "\n"}};
  spec.added_tokens = json::array({{{"id", 262}, {"content", "<|endoftext|>"}, {"special", true}}});
  const Tokenizer t = byte_level_tokenizer(spec);
  EXPECT_EQ(t.display(' '), "\xE2\x90\xA3");           // ␣
  EXPECT_EQ(t.display('\n'), "\xE2\x86\xB5");          // ↵
  EXPECT_EQ(t.display('\t'), "\xE2\x87\xA5");          // ⇥
  EXPECT_EQ(t.display('\r'), "\xE2\x90\x8D");          // ␍
  EXPECT_EQ(t.display(0), "<0x00>");
  EXPECT_EQ(t.display(0x7F), "<0x7F>");
  EXPECT_EQ(t.display(0xE2), "<0xE2>");                // partial UTF-8
  EXPECT_EQ(t.display(id_of(t, "\xE2\x82")), "<0xE2><0x82>");
  EXPECT_EQ(t.display(id_of(t, "\xE2\x82\xAC")), "\xE2\x82\xAC");  // €
  EXPECT_EQ(t.display(id_of(t, " the")), "\xE2\x90\xA3the");
  EXPECT_EQ(t.display(id_of(t, "\n\n")), "\xE2\x86\xB5\xE2\x86\xB5");
  EXPECT_EQ(t.display('a'), "a");
  EXPECT_EQ(t.display(262), "<|endoftext|>");
  EXPECT_EQ(t.display(100000), "#100000");
  EXPECT_EQ(t.display(-1), "#-1");
  EXPECT_EQ(t.vocab_size(), 263);
}

TEST(TokenizerBpe, VisibleBytes) {
  EXPECT_EQ(cs::visible_bytes("a b\n\t\r"), "a\xE2\x90\xA3" "b\xE2\x86\xB5\xE2\x87\xA5\xE2\x90\x8D");
  EXPECT_EQ(cs::visible_bytes(std::string("\x00\x1B\x7F", 3)), "<0x00><0x1B><0x7F>");
  EXPECT_EQ(cs::visible_bytes("\xC3"), "<0xC3>");
  EXPECT_EQ(cs::visible_bytes("\xC0\xAF"), "<0xC0><0xAF>");            // overlong
  EXPECT_EQ(cs::visible_bytes("\xED\xA0\x80"), "<0xED><0xA0><0x80>");  // surrogate
  EXPECT_EQ(cs::visible_bytes("\xC2\x85"), "<0xC2><0x85>");            // C1 control
  EXPECT_EQ(cs::visible_bytes("caf\xC3\xA9 \xF0\x9F\x99\x82"), "caf\xC3\xA9\xE2\x90\xA3\xF0\x9F\x99\x82");
}

TEST(TokenizerBpe, FindTokenByVocabStringOrBytes) {
  ByteLevelSpec spec;
  spec.merges = {{" ", "t"}, {" t", "h"}, {" th", "e"}, {"t", "h"}, {"th", "e"}};
  const Tokenizer t = byte_level_tokenizer(spec);
  const auto by_string = t.find_token("\xC4\xA0the");  // "Ġthe"
  ASSERT_TRUE(by_string.has_value());
  EXPECT_EQ(t.token_string(*by_string), "\xC4\xA0the");
  EXPECT_EQ(t.token_bytes(*by_string), " the");
  EXPECT_EQ(t.find_token(" the"), by_string);
  EXPECT_EQ(t.find_token("\xE2\x90\xA3the"), by_string);  // the display form "␣the"
  EXPECT_NE(t.find_token("the"), by_string);
  EXPECT_EQ(t.token_bytes(t.find_token("the").value()), "the");
  EXPECT_EQ(t.find_token("<0xE2>"), std::optional<int>(0xE2));
  EXPECT_EQ(t.find_token("nothing like this"), std::nullopt);
}

TEST(TokenizerBpe, AddedTokensMatchedInsideText) {
  ByteLevelSpec spec;
  spec.merges = {{"a", "b"}};
  spec.added_tokens = json::array({{{"id", 257}, {"content", "<|endoftext|>"}, {"special", true}},
                                   {{"id", 258}, {"content", "xy"}, {"special", false}},
                                   {{"id", 259}, {"content", "xyz"}, {"special", false}}});
  const Tokenizer t = byte_level_tokenizer(spec);
  const int ab = id_of(t, "ab");
  EXPECT_EQ(t.encode("ab<|endoftext|>ab"), (std::vector<int>{ab, 257, ab}));
  EXPECT_EQ(t.encode("<|endoftext|><|endoftext|>"), (std::vector<int>{257, 257}));
  EXPECT_EQ(t.encode("axyzb"), (std::vector<int>{'a', 259, 'b'}));  // longest first
  EXPECT_EQ(t.encode("axyb"), (std::vector<int>{'a', 258, 'b'}));
  // The text between added tokens is pre-tokenized on its own: "a" "b" around the token do not merge.
  EXPECT_EQ(t.encode("axyab"), (std::vector<int>{'a', 258, ab}));
  EXPECT_EQ(t.vocab_size(), 260);
  EXPECT_EQ(t.decode(t.encode("ab<|endoftext|>xyz")), "ab<|endoftext|>xyz");
  EXPECT_EQ(t.bos_id(), std::optional<int>(257));
}

TEST(TokenizerBpe, BosId) {
  auto added = [](std::vector<std::pair<std::string, bool>> toks) {
    json a = json::array();
    int id = 256;
    for (const auto& [c, special] : toks) a.push_back({{"id", id++}, {"content", c}, {"special", special}});
    return a;
  };
  ByteLevelSpec spec;
  EXPECT_EQ(byte_level_tokenizer(spec).bos_id(), std::nullopt);
  spec.added_tokens = added({{"<s>", true}, {"<|endoftext|>", true}});
  EXPECT_EQ(byte_level_tokenizer(spec).bos_id(), std::optional<int>(257));  // <|endoftext|> preferred
  spec.added_tokens = added({{"[BOS]", true}, {"<bos>", true}});
  EXPECT_EQ(byte_level_tokenizer(spec).bos_id(), std::optional<int>(257));
  spec.added_tokens = added({{"<bos>", false}});
  EXPECT_EQ(byte_level_tokenizer(spec).bos_id(), std::nullopt);  // not special
  // A TemplateProcessing post-processor wins.
  spec.added_tokens = added({{"<|endoftext|>", true}, {"<s>", true}});
  spec.post_processor = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair", json::array()},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {257}}, {"tokens", {"<s>"}}}}}}};
  EXPECT_EQ(byte_level_tokenizer(spec).bos_id(), std::optional<int>(257));
  // A template that starts with the sequence has no BOS: fall back to <|endoftext|>.
  spec.post_processor["single"] = {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, {{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}};
  EXPECT_EQ(byte_level_tokenizer(spec).bos_id(), std::optional<int>(256));
}

// ---- other BPE options ----------------------------------------------------------

TEST(TokenizerBpe, PrefixSuffixIgnoreMergesByteFallback) {
  // continuing_subword_prefix "##": merge "a ##b" -> "ab".
  json j = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"##b", 1}, {"ab", 2}, {"b", 3}, {"##a", 4}}},
                       {"merges", {"a ##b"}}, {"continuing_subword_prefix", "##"}}},
            {"pre_tokenizer", {{"type", "WhitespaceSplit"}}}};
  const Tokenizer p = Tokenizer::from_json(j.dump());
  EXPECT_EQ(p.encode("ab ba"), (std::vector<int>{2, 3, 4}));
  // end_of_word_suffix "</w>": the last character carries the suffix.
  j = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}, {"b", 3}, {"a</w>", 4}}},
                  {"merges", {"a b</w>"}}, {"end_of_word_suffix", "</w>"}}},
       {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
       {"decoder", {{"type", "BPEDecoder"}, {"suffix", "</w>"}}}};
  const Tokenizer s = Tokenizer::from_json(j.dump());
  EXPECT_EQ(s.encode("ab ba"), (std::vector<int>{2, 3, 4}));
  EXPECT_EQ(s.decode(s.encode("ab ba")), "ab ba");
  // ignore_merges: a word already in the vocab is taken whole.
  j = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"abc", 3}}}, {"merges", json::array()},
                  {"ignore_merges", true}}}};
  EXPECT_EQ(Tokenizer::from_json(j.dump()).encode("abc"), std::vector<int>{3});
  j["model"]["ignore_merges"] = false;
  EXPECT_EQ(Tokenizer::from_json(j.dump()).encode("abc"), (std::vector<int>{0, 1, 2}));
  // byte_fallback: unknown characters become <0xNN> tokens; the decoder puts the bytes back.
  json vocab = {{"a", 0}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 1 + b;
  }
  j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}, {"byte_fallback", true}}},
       {"decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}}}};
  const Tokenizer f = Tokenizer::from_json(j.dump());
  EXPECT_EQ(f.encode("a\xC3\xA9"), (std::vector<int>{0, 1 + 0xC3, 1 + 0xA9}));
  EXPECT_EQ(f.decode(f.encode("a\xC3\xA9" "a")), "a\xC3\xA9" "a");
  EXPECT_EQ(f.display(1 + 0xC3), "<0xC3>");
  // unk with fuse_unk: a run of unknown characters is one unk.
  j = {{"model", {{"type", "BPE"}, {"vocab", {{"<unk>", 0}, {"a", 1}}}, {"merges", json::array()}, {"unk_token", "<unk>"},
                  {"fuse_unk", true}}}};
  EXPECT_EQ(Tokenizer::from_json(j.dump()).encode("axyza"), (std::vector<int>{1, 0, 1}));
  j["model"]["fuse_unk"] = false;
  EXPECT_EQ(Tokenizer::from_json(j.dump()).encode("axya"), (std::vector<int>{1, 0, 0, 1}));
}

TEST(TokenizerBpe, MetaspaceAndLowercase) {
  const std::string m = "\xE2\x96\x81";  // ▁
  json j = {{"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Lowercase"}}}}}},
            {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "always"}, {"split", true}}},
            {"decoder", {{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "always"}, {"split", true}}},
            {"model", {{"type", "BPE"}, {"vocab", {{m, 0}, {"h", 1}, {"i", 2}, {m + "h", 3}, {m + "hi", 4}}},
                       {"merges", {m + " h", m + "h i"}}}}};
  const Tokenizer t = Tokenizer::from_json(j.dump());
  EXPECT_EQ(t.encode("Hi hI"), (std::vector<int>{4, 4}));
  EXPECT_EQ(t.decode(std::vector<int>{4, 4}), "hi hi");
  EXPECT_EQ(t.display(4), "\xE2\x90\xA3hi");
}

// ---- WordLevel and character models ---------------------------------------------

TEST(TokenizerWordLevel, UnknownWordsBecomeUnk) {
  json j = {{"model", {{"type", "WordLevel"}, {"vocab", {{"[UNK]", 0}, {"the", 1}, {"cat", 2}, {"sat", 3}, {".", 4}}},
                       {"unk_token", "[UNK]"}}},
            {"pre_tokenizer", {{"type", "WhitespaceSplit"}}}};
  const Tokenizer t = Tokenizer::from_json(j.dump());
  EXPECT_EQ(t.encode("the dog  sat\n"), (std::vector<int>{1, 0, 3}));
  EXPECT_EQ(t.encode("the cat."), (std::vector<int>{1, 0}));  // "cat." is one whitespace-split word
  EXPECT_EQ(t.kind(), "WordLevel");
  EXPECT_EQ(t.decode(std::vector<int>{1, 2, 3}), "the cat sat");  // no decoder: joined with spaces
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_EQ(Tokenizer::from_json(j.dump()).encode("the cat. sat!"), (std::vector<int>{1, 2, 4, 3, 0}));
  // Without an unk token an unknown word is an error naming it.
  j["model"].erase("unk_token");
  const Tokenizer no_unk = Tokenizer::from_json(j.dump());
  try {
    no_unk.encode("the dog");
    FAIL() << "expected an error";
  } catch (const cs::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'dog'"), std::string::npos) << e.what();
  }
}

TEST(TokenizerWordLevel, CharacterModel) {
  json vocab = json::object();
  const std::string chars = "abcdefghijklmnopqrstuvwxyz .,\n";
  for (size_t i = 0; i < chars.size(); ++i) vocab[std::string(1, chars[i])] = static_cast<int>(i);
  vocab["\xC3\xA9"] = static_cast<int>(chars.size());  // é
  for (const json& split : {json{{"type", "Split"}, {"pattern", {{"String", ""}}}, {"behavior", "Isolated"}, {"invert", false}},
                            json{{"type", "Split"}, {"pattern", {{"Regex", "."}}}, {"behavior", "Isolated"}, {"invert", false}}}) {
    json j = {{"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", nullptr}}}, {"pre_tokenizer", split}};
    const Tokenizer t = Tokenizer::from_json(j.dump());
    EXPECT_EQ(t.kind(), "char");
    const std::string text = "hi, caf\xC3\xA9.\nok";
    std::vector<int> expected;
    for (size_t i = 0; i < text.size(); ++i) {
      if (static_cast<unsigned char>(text[i]) == 0xC3) {
        expected.push_back(static_cast<int>(chars.size()));
        ++i;
      } else {
        expected.push_back(static_cast<int>(chars.find(text[i])));
      }
    }
    EXPECT_EQ(t.encode(text), expected);
    EXPECT_EQ(t.decode(t.encode(text)), text);
    EXPECT_EQ(t.display(static_cast<int>(chars.find('\n'))), "\xE2\x86\xB5");
  }
}

TEST(TokenizerWordLevel, SplitBehaviors) {
  // A literal "-" splits "a-b--c" differently per behaviour.
  json vocab = {{"[UNK]", 0}};
  const std::vector<std::string> words = {"a", "b", "c", "-", "--", "a-", "b-", "-b", "-c", "b--", "--c"};
  for (size_t i = 0; i < words.size(); ++i) vocab[words[i]] = static_cast<int>(i + 1);
  auto run = [&](const char* behavior) {
    json j = {{"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "[UNK]"}}},
              {"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", false}}}};
    const Tokenizer t = Tokenizer::from_json(j.dump());
    std::vector<std::string> out;
    for (int id : t.encode("a-b--c")) out.push_back(t.token_string(id));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(run("Removed"), (V{"a", "b", "c"}));
  EXPECT_EQ(run("Isolated"), (V{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(run("Contiguous"), (V{"a", "-", "b", "--", "c"}));
  EXPECT_EQ(run("MergedWithPrevious"), (V{"a-", "b-", "-", "c"}));
  EXPECT_EQ(run("MergedWithNext"), (V{"a", "-b", "-", "-c"}));
}

// ---- errors -------------------------------------------------------------------------

TEST(TokenizerErrors, EachNamesTheFault) {
  auto expect = [](const std::string& text, std::vector<std::string> parts) {
    const std::string msg = error_of(text);
    EXPECT_EQ(msg.rfind("tokenizer.json: ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  };
  expect("{\"model\": ", {"invalid JSON"});
  expect("[1, 2]", {"top level"});
  expect(R"({"version": "1.0"})", {"missing 'model'"});
  expect(R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})", {"model.type", "'Unigram'"});
  expect(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "a zz"]}})",
         {"model.merges[1]", "'zz'"});
  expect(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})", {"model.merges[0]", "'ab'"});
  expect(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b c"]}})", {"model.merges[0]"});
  expect(R"({"model": {"type": "WordLevel", "vocab": {"a": 0, "b": 0}}})", {"model.vocab", "id 0", "'a'", "'b'"});
  expect(R"({"model": {"type": "WordLevel", "vocab": {"a": 0, "b": 1.5}}})", {"model.vocab", "'b'", "1.5"});
  expect(R"({"model": {"type": "WordLevel", "vocab": {"a": 0, "b": "1"}}})", {"model.vocab", "'b'", "integer"});
  expect(R"({"model": {"type": "WordLevel", "vocab": {"a": -3}}})", {"'a'", "-3"});
  expect(R"({"model": {"type": "WordLevel", "vocab": {"a": 0}}, "added_tokens": [{"id": "x", "content": "<s>"}]})",
         {"added_tokens[0].id"});
  expect(R"({"model": {"type": "WordLevel", "vocab": {"a": 0}}, "added_tokens": [{"id": 0, "content": "<s>"}]})",
         {"added_tokens[0]", "id 0", "'a'", "'<s>'"});
  expect(R"({"model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "[UNK]"}})", {"model.unk_token", "'[UNK]'"});
  expect(R"({"model": {"type": "WordLevel", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Mystery"}})",
         {"pre_tokenizer.type", "'Mystery'"});
  expect(R"({"model": {"type": "WordLevel", "vocab": {"a": 0}},
             "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Isolated"}})",
         {"pre_tokenizer", "Split regex"});
  expect(R"({"model": {"type": "WordLevel", "vocab": {"a": 0}}, "decoder": {"type": "CTC"}})", {"decoder.type", "'CTC'"});
  expect(R"({"model": {"type": "WordLevel", "vocab": {"a\nb": 0, "c": 0}}})", {"'a\xE2\x86\xB5" "b'"});  // one line
}

}  // namespace
