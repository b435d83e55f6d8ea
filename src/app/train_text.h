// Text for the Train view's runs (train_view.h, docs/training.md): the text
// sample shipped with the page (assets/text/: a slice of the bundled models'
// training text, already tokenized with their tokenizer) or a text file of
// the user's, tokenized in the page with the shown model's tokenizer. No
// ImGui, no browser: the bytes come in as a FileSet (bridge.cpp, the tests).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/sliced.h"
#include "io/model_io.h"
#include "io/tokenizer.h"
#include "train/trainer.h"

namespace cs::app {

// The most bytes of text the page takes for a run (a larger file is refused from its size).
inline constexpr size_t kMaxTextFileBytes = size_t(64) << 20;
// Throws cs::Error ("text file <name> is 80 MB; a run in the page reads at
// most 64 MB") for a file over kMaxTextFileBytes; the shell asks before it
// reads the file (bridge.cpp, cs_train_check_file).
void check_text_file_size(const std::string& name, double bytes);

struct TrainText {
  std::string source;  // "sample" | "file"
  std::string name;    // the sample's title, or the file's name
  std::vector<int> ids;      // the training text (a file's whole text: training_data cuts its held-out part)
  std::vector<int> heldout;  // the sample's held-out text (a file has none of its own)
  std::string tokenizer_json;
  int d_vocab = 0;  // the tokenizer's vocabulary
  int bos = -1;     // its BOS id, or -1 (none: rows start with text)
  int64_t bytes = 0;  // the text's size in bytes (a file), or the token files' (the sample)
};

// The sample's files as the shell fetched them: "index.json" ({"dtype":
// "uint16", "vocab_size", "bos_id", "train": {"file", "tokens"}, "heldout":
// {"file", "tokens"}, "tokenizer": file, "title"}) and the files it names.
// Throws cs::Error naming the file or field at fault (a missing file, a count
// that does not match, an id outside the vocabulary).
TrainText sample_text(const FileSet& files);

// Where the chunk of `text` that starts at `from` ends when about `target`
// bytes are wanted: just after a '\n' at or past from + target that is
// followed by a byte other than whitespace, where cutting the text does not
// change its ids: the ids of the kProbeBytes on each side encoded together
// equal those of each side encoded alone (so the pre-tokenizer starts a new
// piece there: always for byte-level BPE's GPT-2 split and whitespace
// splits; never for a tokenizer that adds a prefix to every text, such as
// Metaspace or add_prefix_space). After kMaxProbes cuts that would change the
// ids, or with no line end left, the end of the text: such a tokenizer
// encodes the rest in one piece (one long slice for a long text). Encoding
// the chunks one by one gives the ids of encoding the whole text
// (tests/unit/test_train_view.cpp).
inline constexpr size_t kProbeBytes = 256;
inline constexpr int kMaxProbes = 8;
size_t text_chunk_end(std::string_view text, size_t from, size_t target, const Tokenizer& tok);

// A user's text file tokenized a chunk at a time (kChunkBytes, a few ms in
// wasm), so no frame waits for a long text. Throws cs::Error when the text is
// empty or tokenizes to fewer than 2 ids.
class TokenizeWork final : public SlicedComputation {
 public:
  static constexpr size_t kChunkBytes = 16 << 10;
  static constexpr int kMaxVocab = 65536;  // a larger tokenizer makes embeddings too big to train here
  // tok: the tokenizer read from tokenizer_json (the shown model's, already parsed).
  TokenizeWork(std::string name, std::vector<uint8_t> bytes, Tokenizer tok, std::string tokenizer_json);
  bool step(double budget_ms) override;
  bool done() const override { return done_; }
  float progress() const override;
  std::string stage() const override { return "tokenizing " + text_.name; }
  // The result (valid once done()).
  TrainText& text() { return text_; }

 private:
  std::vector<uint8_t> bytes_;
  Tokenizer tok_;
  TrainText text_;
  size_t pos_ = 0;
  bool done_ = false;
};

// The trainer's data for a run with n_ctx T on this text. The sample keeps its
// own held-out split. A file's ids are cut: the last twentieth (at least 2 T
// ids) is held out when the rest still holds 8 T ids; a shorter text is all
// training text and the run has no held-out loss. Throws cs::Error naming the
// text when it is shorter than one row (T ids, T - 1 with a BOS).
train::TrainData training_data(const TrainText& text, int n_ctx);

}  // namespace cs::app
