// BPE tokenizer training (src/train/bpe_train.cpp). The learned merges are
// checked against a naive BPE written here (recounts every pair of every word
// before each merge); the written tokenizer.json against cs::Tokenizer (the
// reader); the chunked corpus encoder against one encode() of the whole text.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/tokenizer.h"
#include "io/unicode.h"
#include "train/bpe_train.h"

namespace {

using cs::train::BpeModel;
using cs::train::BpeOptions;
const std::string kEot = "<|endoftext|>";

// ---- naive BPE ----------------------------------------------------------------

struct NaiveResult {
  std::vector<std::array<int, 3>> merges;  // left, right, result
  std::vector<int64_t> counts;
  std::vector<std::string> token_bytes;
  bool ran_out = false;
};

// Words of the text: cut at the separator, then the GPT-2 split (the reader's,
// cs::unicode::gpt2_split, tested in test_tokenizer.cpp).
std::map<std::string, int64_t> naive_words(const std::string& text, const std::string& sep) {
  std::map<std::string, int64_t> words;
  size_t start = 0;
  while (true) {
    const size_t k = text.find(sep, start);
    const std::string seg = text.substr(start, k == std::string::npos ? std::string::npos : k - start);
    for (const auto& [b, e] : cs::unicode::gpt2_split(seg)) ++words[seg.substr(b, e - b)];
    if (k == std::string::npos) break;
    start = k + sep.size();
  }
  return words;
}

// Textbook BPE: before every merge, count every adjacent pair of every word
// (times the word's count); merge the most frequent pair, the smaller
// (left id, right id) on ties; a result with the bytes of an existing token reuses its id.
NaiveResult naive_bpe(const std::string& text, int vocab_size, int64_t min_frequency = 2) {
  NaiveResult r;
  for (int b = 0; b < 256; ++b) r.token_bytes.emplace_back(1, static_cast<char>(b));
  r.token_bytes.push_back(kEot);
  std::vector<std::pair<std::vector<int>, int64_t>> words;
  for (const auto& [w, c] : naive_words(text, kEot)) {
    std::vector<int> s;
    for (unsigned char ch : w) s.push_back(ch);
    words.emplace_back(s, c);
  }
  while (static_cast<int>(r.token_bytes.size()) < vocab_size) {
    std::map<std::pair<int, int>, int64_t> pairs;
    for (const auto& [s, c] : words) {
      for (size_t i = 0; i + 1 < s.size(); ++i) pairs[{s[i], s[i + 1]}] += c;
    }
    std::pair<int, int> best{-1, -1};
    int64_t best_count = 0;
    for (const auto& [p, c] : pairs) {  // std::map: increasing pairs, so ">" keeps the smallest on ties
      if (c > best_count) best = p, best_count = c;
    }
    if (best_count < min_frequency) {
      r.ran_out = true;
      return r;
    }
    const std::string bytes = r.token_bytes[best.first] + r.token_bytes[best.second];
    int id = -1;
    for (int t = 0; t < static_cast<int>(r.token_bytes.size()); ++t) {
      if (t != 256 && r.token_bytes[t] == bytes) id = t;
    }
    if (id < 0) {
      id = static_cast<int>(r.token_bytes.size());
      r.token_bytes.push_back(bytes);
    }
    r.merges.push_back({best.first, best.second, id});
    r.counts.push_back(best_count);
    for (auto& [s, c] : words) {
      std::vector<int> n;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == best.first && s[i + 1] == best.second) {
          n.push_back(id);
          i += 2;
        } else {
          n.push_back(s[i++]);
        }
      }
      s = n;
    }
  }
  return r;
}

void expect_same_as_naive(const std::string& text, int vocab_size, const std::string& what) {
  BpeOptions opt;
  opt.vocab_size = vocab_size;
  opt.n_threads = 1;
  const NaiveResult want = naive_bpe(text, vocab_size);
  ASSERT_FALSE(want.ran_out) << what << ": the test text is too small for vocab " << vocab_size;
  const BpeModel got = cs::train::train_bpe(text, opt);
  ASSERT_EQ(got.merges.size(), want.merges.size()) << what;
  for (size_t k = 0; k < want.merges.size(); ++k) {
    ASSERT_EQ(got.merges[k].left, want.merges[k][0]) << what << " merge " << k;
    ASSERT_EQ(got.merges[k].right, want.merges[k][1]) << what << " merge " << k;
    ASSERT_EQ(got.merges[k].result, want.merges[k][2]) << what << " merge " << k;
    ASSERT_EQ(got.merge_counts[k], want.counts[k]) << what << " merge " << k;
  }
  EXPECT_EQ(got.token_bytes, want.token_bytes) << what;
  EXPECT_EQ(got.vocab_size(), vocab_size) << what;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const cs::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// English and code, with identifiers that repeat.
const char* kProse =
    "The residual stream is the sum of the outputs of every previous layer and the original embedding.\n"
    "Each attention head reads from the residual stream and writes its result back to it.\n"
    "def attention_pattern(query, key):\n"
    "    scores = query @ key.T / scale\n"
    "    return softmax(scores, dim=-1)\n"
    "An induction head looks for the previous occurrence of the current token and copies the token after it.\n"
    "It's the token's successor that's predicted; they'll see it, we're sure, I'd say, you've seen, I'm done.\n"
    "class Tokenizer:\n"
    "    def encode(self, text):\n"
    "        return [self.vocab[t] for t in self.split(text)]\n"
    "Numbers 12345 and 2021-12-22, unicode caf\xC3\xA9 na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC, tabs\tand  double  spaces.\n";

// ---- training against the naive BPE --------------------------------------------

TEST(BpeTrain, SameMergesAsNaiveBpeOnHandMadeText) {
  // Ties everywhere ("ab" and "ba" equally often), overlapping pairs ("aaaa"),
  // a special token between documents, contractions, and Unicode.
  const std::string text = "ab ba ab ba abab baba aaaa aaa aa a" + kEot + "hello hello help helm he'll she's" + kEot +
                           "x = x + 1\nx = x + 1\n  y=y\n\n\ncaf\xC3\xA9 caf\xC3\xA9 na\xC3\xAFve";
  for (int vocab : {258, 260, 265, 275}) expect_same_as_naive(text, vocab, "hand-made, vocab " + std::to_string(vocab));
  expect_same_as_naive(kProse, 330, "prose");
}

TEST(BpeTrain, SameMergesAsNaiveBpeOnRandomTexts) {
  // Few symbols: many ties, long words, repeated merges of merged tokens, and
  // results that already exist with other splits (id reuse).
  std::mt19937 rng(7);
  const std::vector<std::string> alphabet = {"a", "b", "c", " ", "\n", "ab", "\xC3\xA9", "'s"};
  for (int trial = 0; trial < 12; ++trial) {
    std::string text;
    const int len = 400 + static_cast<int>(rng() % 300);
    for (int i = 0; i < len; ++i) text += alphabet[rng() % alphabet.size()];
    expect_same_as_naive(text, 256 + 1 + 20, "random text " + std::to_string(trial));
  }
}

TEST(BpeTrain, EveryTokenHasItsOwnBytes) {
  // Each merge's result is a token of its own (a result with the bytes of an
  // existing token would reuse that id; the naive BPE above checks the same
  // rule), so the vocabulary strings of tokenizer.json are distinct.
  std::mt19937 rng(99);
  for (int trial = 0; trial < 8; ++trial) {
    std::string text;
    for (int i = 0; i < 400; ++i) text += "ab \n"[rng() % 4];
    BpeOptions opt;
    opt.vocab_size = 290;
    opt.min_frequency = 1;
    const BpeModel m = cs::train::train_bpe(text, opt);
    std::map<std::string, int> seen;
    for (size_t id = 0; id < m.token_bytes.size(); ++id) {
      EXPECT_TRUE(seen.emplace(m.token_bytes[id], static_cast<int>(id)).second) << "token " << id;
    }
    for (size_t k = 0; k < m.merges.size(); ++k) {
      EXPECT_EQ(m.token_bytes[m.merges[k].result], m.token_bytes[m.merges[k].left] + m.token_bytes[m.merges[k].right]);
    }
    EXPECT_EQ(nlohmann::json::parse(m.to_tokenizer_json())["model"]["vocab"].size(), m.token_bytes.size());
  }
}

TEST(BpeTrain, MinFrequencyAndCorpusLimit) {
  const std::string text = "aaaa bbbb";  // pairs: aa x3, bb x3, then aa+aa, bb+bb (count 1 each)
  BpeOptions opt;
  opt.vocab_size = 259;
  const BpeModel m = cs::train::train_bpe(text, opt);
  ASSERT_EQ(m.merges.size(), 2u);
  EXPECT_EQ(m.token_bytes[257], "aa");
  EXPECT_EQ(m.token_bytes[258], "bb");
  opt.vocab_size = 261;  // the next pairs occur once: below min_frequency 2
  const std::string msg = error_of([&] { cs::train::train_bpe(text, opt); });
  EXPECT_NE(msg.find("vocab_size 261 is more than the corpus supports"), std::string::npos) << msg;
  EXPECT_NE(msg.find("after 2 merges no pair of tokens occurs 2 or more times"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ask for at most 259"), std::string::npos) << msg;
  opt.min_frequency = 1;
  EXPECT_EQ(cs::train::train_bpe(text, opt).vocab_size(), 261);
}

// ---- the tokenizer.json -----------------------------------------------------------

TEST(BpeTrain, TokenizerJsonLoadsAndRoundTrips) {
  std::string corpus;
  for (int k = 0; k < 6; ++k) corpus += kProse + kEot;
  BpeOptions opt;
  opt.vocab_size = 400;
  const BpeModel m = cs::train::train_bpe(corpus, opt);
  const std::string json_text = m.to_tokenizer_json();
  const cs::Tokenizer tok = cs::Tokenizer::from_json(json_text);
  EXPECT_EQ(tok.vocab_size(), 400);
  ASSERT_TRUE(tok.bos_id().has_value());
  EXPECT_EQ(*tok.bos_id(), 256);
  EXPECT_NE(tok.kind().find("byte-level"), std::string::npos) << tok.kind();
  for (int b = 0; b < 256; ++b) EXPECT_EQ(tok.token_bytes(b), std::string(1, static_cast<char>(b))) << b;
  for (size_t id = 257; id < m.token_bytes.size(); ++id) EXPECT_EQ(tok.token_bytes(static_cast<int>(id)), m.token_bytes[id]);

  // The format: Hugging Face's BPE model, ByteLevel pre-tokenizer and decoder, the special as an added token.
  const auto j = nlohmann::json::parse(json_text);
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_EQ(j["model"]["merges"].size(), m.merges.size());
  EXPECT_EQ(j["pre_tokenizer"]["type"], "ByteLevel");
  EXPECT_EQ(j["pre_tokenizer"]["add_prefix_space"], false);
  EXPECT_EQ(j["decoder"]["type"], "ByteLevel");
  ASSERT_EQ(j["added_tokens"].size(), 1u);
  EXPECT_EQ(j["added_tokens"][0]["content"], kEot);
  EXPECT_EQ(j["added_tokens"][0]["id"], 256);
  EXPECT_EQ(j["added_tokens"][0]["special"], true);
  EXPECT_EQ(j["model"]["vocab"]["\xC4\xA0the"], tok.find_token(" the").value_or(-1));  // "Ġthe"

  // Training and the reader agree: the corpus encodes to exactly the tokens training ended with.
  const std::vector<int> ids = tok.encode(corpus);
  EXPECT_EQ(static_cast<int64_t>(ids.size()), m.corpus_tokens);
  EXPECT_LT(ids.size() * 2, corpus.size()) << "a trained tokenizer should at least halve the byte count here";
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 256), 6);

  // Round trips: text -> ids -> text, and ids -> text -> ids.
  for (const std::string& text : {corpus, std::string("unseen words: zygote quixotic \xF0\x9F\x98\x80 ") + kEot + " x",
                                  std::string("  \n\t leading spaces and trailing  "), std::string("\xFF\xFE bad bytes \xC3")}) {
    const std::vector<int> e = tok.encode(text);
    EXPECT_EQ(tok.decode(e), text);
    EXPECT_EQ(tok.encode(tok.decode(e)), e);
  }
}

TEST(BpeTrain, FewerTokensThanBytesOnText) {
  std::string corpus;
  for (int k = 0; k < 4; ++k) corpus += kProse + kEot;
  BpeOptions opt;
  opt.vocab_size = 500;
  const cs::Tokenizer tok = cs::Tokenizer::from_json(cs::train::train_bpe(corpus, opt).to_tokenizer_json());
  // On a text it has not seen, made of the same words.
  const std::string text = "The attention head writes its result to the residual stream; the induction head copies the token.\n";
  const size_t n = tok.encode(text).size();
  EXPECT_LT(n * 2, text.size()) << n << " tokens for " << text.size() << " bytes";
}

// ---- pre-token counting ---------------------------------------------------------

TEST(BpeTrain, CountWordsByHand) {
  BpeOptions opt;
  const auto wc = cs::train::count_words("the cat" + kEot + "the  cat\n" + kEot + kEot, opt);
  // Segments: "the cat", "the  cat\n", "" ; pieces: the| cat  and  the| | cat|\n
  std::map<std::string, int64_t> got(wc.words.begin(), wc.words.end());
  const std::map<std::string, int64_t> want = {{"the", 2}, {" cat", 2}, {" ", 1}, {"\n", 1}};
  EXPECT_EQ(got, want);
  EXPECT_EQ(wc.n_words, 6);
  EXPECT_EQ(wc.n_specials, 3);
  EXPECT_TRUE(std::is_sorted(wc.words.begin(), wc.words.end()));
}

TEST(BpeTrain, CountWordsIsTheSameOnAnyNumberOfThreads) {
  // Over 1 MB so that the text is cut into chunks (natively; one thread in wasm).
  std::string text;
  std::mt19937 rng(3);
  while (text.size() < (size_t{1} << 20) + 1000) {
    text += kProse;
    text += std::string(rng() % 3, '\n') + std::string(rng() % 3, ' ');
    if (rng() % 4 == 0) text += kEot;
  }
  BpeOptions one, many;
  one.n_threads = 1;
  many.n_threads = 4;
  const auto a = cs::train::count_words(text, one);
  const auto b = cs::train::count_words(text, many);
  EXPECT_EQ(a.words, b.words);
  EXPECT_EQ(a.n_words, b.n_words);
  EXPECT_EQ(a.n_specials, b.n_specials);
}

TEST(BpeTrain, SafeCutsDoNotChangeThePreTokenization) {
  std::mt19937 rng(11);
  const std::vector<std::string> alphabet = {"a", "b", "1", ".", " ", " ", "\n", "\n", "\t", "'", "s", "\xC3\xA9",
                                             "\xC2\xA0"};
  int cuts_checked = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    const int len = 5 + static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) text += alphabet[rng() % alphabet.size()];
    const auto whole = cs::unicode::gpt2_split(text);
    for (size_t near = 1; near < text.size(); ++near) {
      const auto p = cs::train::safe_cut_before(text, 0, near);
      if (!p) continue;
      ASSERT_LE(*p, near);
      auto parts = cs::unicode::gpt2_split(std::string_view(text).substr(0, *p));
      for (auto [b, e] : cs::unicode::gpt2_split(std::string_view(text).substr(*p))) parts.emplace_back(b + *p, e + *p);
      ASSERT_EQ(parts, whole) << "cut at " << *p << " of '" << cs::visible_bytes(text) << "'";
      ++cuts_checked;
    }
  }
  EXPECT_GT(cuts_checked, 100);
  // A run of several whitespace characters before the cut would be split differently.
  EXPECT_FALSE(cs::train::safe_cut_before("a\n\nb", 0, 3).has_value());
  EXPECT_FALSE(cs::train::safe_cut_before("a \nb", 0, 3).has_value());
  EXPECT_EQ(cs::train::safe_cut_before("ab\ncd\nef", 0, 7), std::optional<size_t>(6));
}

TEST(BpeTrain, FirstInvalidUtf8) {
  EXPECT_FALSE(cs::train::first_invalid_utf8("plain ASCII text, long enough for the 8-byte path").has_value());
  EXPECT_FALSE(cs::train::first_invalid_utf8("caf\xC3\xA9 \xE6\x97\xA5 \xF0\x9F\x98\x80").has_value());
  EXPECT_EQ(cs::train::first_invalid_utf8("0123456789abcdef\xFF"), std::optional<size_t>(16));
  EXPECT_EQ(cs::train::first_invalid_utf8("ab\xC0\xAF"), std::optional<size_t>(2));           // overlong
  EXPECT_EQ(cs::train::first_invalid_utf8("abc\xED\xA0\x80"), std::optional<size_t>(3));      // surrogate
  EXPECT_EQ(cs::train::first_invalid_utf8("abcd\xE6\x97"), std::optional<size_t>(4));          // truncated
  EXPECT_EQ(cs::train::first_invalid_utf8("\x80"), std::optional<size_t>(0));                  // stray continuation
}

// ---- errors ---------------------------------------------------------------------

TEST(BpeTrain, ErrorsNameTheFault) {
  BpeOptions opt;
  opt.vocab_size = 300;
  std::string msg = error_of([&] { cs::train::train_bpe(std::string("good text \xFF then more"), opt); });
  EXPECT_EQ(msg, "corpus: invalid UTF-8 at byte offset 10 (byte 0xFF)");
  msg = error_of([&] { cs::train::train_bpe(std::string(), opt); });
  EXPECT_EQ(msg, "corpus: the text is empty");
  msg = error_of([&] { cs::train::train_bpe(kEot + kEot, opt); });
  EXPECT_NE(msg.find("nothing but special tokens"), std::string::npos) << msg;
  opt.vocab_size = 256;
  msg = error_of([&] { cs::train::train_bpe(std::string("some text"), opt); });
  EXPECT_NE(msg.find("vocab_size 256 is below the 257 fixed tokens"), std::string::npos) << msg;
  opt.vocab_size = 300;
  opt.special_tokens = {kEot, kEot};
  msg = error_of([&] { cs::train::train_bpe(std::string("some text"), opt); });
  EXPECT_NE(msg.find("given twice"), std::string::npos) << msg;

  // With invalid bytes allowed they are learned from as bytes, and round-trip.
  BpeOptions lax;
  lax.vocab_size = 259;
  lax.allow_invalid_utf8 = true;
  const std::string bad = "\xFF\xFE \xFF\xFE \xFF\xFE";
  const BpeModel m = cs::train::train_bpe(bad, lax);
  const cs::Tokenizer tok = cs::Tokenizer::from_json(m.to_tokenizer_json());
  EXPECT_EQ(tok.decode(tok.encode(bad)), bad);
  EXPECT_EQ(static_cast<int64_t>(tok.encode(bad).size()), m.corpus_tokens);
}

// ---- the corpus encoder -----------------------------------------------------------

TEST(BpeEncode, FileInBlocksEqualsOneEncode) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("cs_bpe_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                                    "_" + std::to_string(reinterpret_cast<uintptr_t>(&dir) & 0xFFFF));
  fs::create_directories(dir);
  std::string corpus;
  std::mt19937 rng(5);
  // Many 1 KB blocks; lines end in whitespace runs of every kind, so that a
  // careless cut (e.g. inside "\n\n") would change the pieces around it.
  const std::vector<std::string> line_ends = {"\n", "\n\n", "\n\n\n", " \n", "\n \n", "\t\n", "\n    "};
  const std::vector<std::string> line_words = {"x = 1", "return self.vocab", "def f(a):", "The head copies.", "caf\xC3\xA9"};
  while (corpus.size() < 60000) {
    if (rng() % 20 == 0) corpus += kEot + kProse;
    corpus += line_words[rng() % line_words.size()] + line_ends[rng() % line_ends.size()];
  }
  BpeOptions opt;
  opt.vocab_size = 500;
  const BpeModel m = cs::train::train_bpe(corpus, opt);
  const std::string json_text = m.to_tokenizer_json();
  const cs::Tokenizer tok = cs::Tokenizer::from_json(json_text);
  const std::vector<int> want = tok.encode(corpus);

  const std::string in = (dir / "corpus.txt").string(), out = (dir / "ids.bin").string();
  {
    std::ofstream f(in, std::ios::binary);
    f << corpus;
  }
  cs::train::EncodeOptions eo;
  // 1 KB blocks (one thread each), then 16 KB blocks cut again for 3 threads.
  int calls = 0;  // outlives eo.progress, which the calls after the loop still make
  for (const auto& [block, threads] : {std::pair<size_t, int>{1024, 1}, std::pair<size_t, int>{16384, 3}}) {
    SCOPED_TRACE("block " + std::to_string(block) + ", threads " + std::to_string(threads));
    eo.block_bytes = block;
    eo.n_threads = threads;
    calls = 0;
    eo.progress = [&](int64_t, int64_t) { ++calls; };
    fs::remove(out);
    const auto st = cs::train::encode_file(in, json_text, "tokenizer.json", out, eo);
    EXPECT_TRUE(st.chunked);
    EXPECT_GE(calls, block == 1024 ? 30 : 3);
    EXPECT_EQ(st.dtype, "uint16");
    EXPECT_EQ(st.n_bytes, static_cast<int64_t>(corpus.size()));
    EXPECT_EQ(st.n_tokens, static_cast<int64_t>(want.size()));
    EXPECT_EQ(fs::file_size(out), want.size() * 2);
    // The raw file: little-endian uint16, read here byte by byte.
    std::ifstream f(out, std::ios::binary);
    std::vector<unsigned char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ASSERT_EQ(raw.size(), want.size() * 2);
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(raw[2 * i] | (raw[2 * i + 1] << 8), want[i]) << i;
  }
  const auto tf = cs::train::read_token_file(out);
  EXPECT_EQ(tf.ids, want);
  EXPECT_EQ(tf.vocab_size, 500);
  EXPECT_EQ(tf.bos_id, std::optional<int>(256));
  const auto side = nlohmann::json::parse(std::ifstream(out + ".json"));
  EXPECT_EQ(side["dtype"], "uint16");
  EXPECT_EQ(side["n_tokens"], want.size());

  // Invalid UTF-8 in a later block: the offset in the file, and no output left behind.
  std::string bad = corpus;
  bad[40000] = '\xFF';
  {
    std::ofstream f(in, std::ios::binary);
    f << bad;
  }
  fs::remove(out);
  const std::string msg = error_of([&] { cs::train::encode_file(in, json_text, "t", out, eo); });
  EXPECT_EQ(msg, "corpus '" + in + "': invalid UTF-8 at byte offset 40000 (byte 0xFF)");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".part"));
  {
    std::ofstream f(in, std::ios::binary | std::ios::trunc);
  }
  EXPECT_EQ(error_of([&] { cs::train::encode_file(in, json_text, "t", out, eo); }), "corpus '" + in + "': the file is empty");
  EXPECT_NE(error_of([&] { cs::train::encode_file((dir / "missing.txt").string(), json_text, "t", out, eo); }).find("no such file"),
            std::string::npos);
  // A sidecar that disagrees with the data.
  {
    std::ofstream f(out, std::ios::binary);
    f << "abc";
    std::ofstream s(out + ".json");
    s << R"({"dtype": "uint16", "n_tokens": 2, "vocab_size": 500})";
  }
  EXPECT_NE(error_of([&] { cs::train::read_token_file(out); }).find("3 bytes, but n_tokens 2 of uint16 needs 4"), std::string::npos);
  fs::remove_all(dir);
}

// parse_token_file: the sidecar's numbers are checked before they size or
// index anything (a hostile sidecar gives a one-line reason, never an
// overflow or an allocation of its n_tokens).
TEST(TokenFile, ParsesFromBytesAndRefusesHostileSidecars) {
  const std::vector<uint8_t> raw = {3, 0, 1, 0, 4, 0};  // 3, 1, 4 as uint16
  const auto tf = cs::train::parse_token_file(R"({"dtype": "uint16", "n_tokens": 3, "vocab_size": 5, "bos_id": 1})", raw, "t.u16");
  EXPECT_EQ(tf.ids, (std::vector<int>{3, 1, 4}));
  EXPECT_EQ(tf.vocab_size, 5);
  EXPECT_EQ(tf.bos_id, std::optional<int>(1));
  EXPECT_FALSE(cs::train::parse_token_file(R"({"dtype": "uint16", "n_tokens": 3, "vocab_size": 5, "bos_id": null})", raw, "t.u16")
                   .bos_id.has_value());
  auto refusal = [&](const std::string& side) { return error_of([&] { cs::train::parse_token_file(side, raw, "t.u16"); }); };
  // n_tokens * 4 overflows 64 bits: refused by the byte count, not computed.
  EXPECT_EQ(refusal(R"({"dtype": "uint32", "n_tokens": 9223372036854775807, "vocab_size": 5})"),
            "'t.u16': 6 bytes, but n_tokens 9223372036854775807 of uint32 needs more than 2^64");
  EXPECT_EQ(refusal(R"({"dtype": "uint16", "n_tokens": 3, "vocab_size": 4294967296})"),
            "'t.u16.json': field 'vocab_size' must be an integer from 0 to 2147483647");
  EXPECT_EQ(refusal(R"({"dtype": "uint16", "n_tokens": 3, "vocab_size": 5, "bos_id": 5})"),
            "'t.u16.json': field 'bos_id' must be an id below vocab_size 5");
  EXPECT_EQ(refusal(R"({"dtype": "uint16", "n_tokens": 3, "vocab_size": 5, "bos_id": "x"})"),
            "'t.u16.json': field 'bos_id' must be an id below vocab_size 5");
  EXPECT_EQ(refusal(R"({"dtype": 16, "n_tokens": 3, "vocab_size": 5})"), "'t.u16.json': field 'dtype' must be \"uint16\" or \"uint32\"");
  EXPECT_EQ(refusal(R"({"dtype": "uint16", "byte_order": 1, "n_tokens": 3, "vocab_size": 5})"),
            "'t.u16.json': field 'byte_order' must be \"little\"");
  EXPECT_EQ(refusal(R"([1, 2])"), "'t.u16.json': field 'dtype' must be \"uint16\" or \"uint32\"");
  EXPECT_EQ(refusal("{"), "'t.u16.json': invalid JSON");
  EXPECT_EQ(refusal(R"({"dtype": "uint16", "n_tokens": 3, "vocab_size": 4})"), "'t.u16': token 2 has id 4, outside the vocabulary of 4");
}

}  // namespace
