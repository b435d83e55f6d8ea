// Text for the Train view's runs (train_text.h).
#include "app/train_text.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/data.h"

namespace cs::app {

namespace {

const std::vector<uint8_t>& sample_file(const FileSet& files, const std::string& name) {
  const auto it = files.find(name);
  if (it == files.end()) throw Error("text sample: " + name + " is missing");
  return it->second;
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\v'; }

// Whether cutting at `cut` leaves the ids of the text around it as they are.
bool safe_cut(std::string_view text, size_t from, size_t cut, const Tokenizer& tok) {
  const size_t a = std::max(from, cut >= kProbeBytes ? cut - kProbeBytes : 0);
  const size_t b = std::min(text.size(), cut + kProbeBytes);
  std::vector<int> left = tok.encode(text.substr(a, cut - a));
  const std::vector<int> right = tok.encode(text.substr(cut, b - cut));
  left.insert(left.end(), right.begin(), right.end());
  return left == tok.encode(text.substr(a, b - a));
}

}  // namespace

TrainText sample_text(const FileSet& files) {
  const std::vector<uint8_t>& index_bytes = sample_file(files, "index.json");
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(index_bytes.begin(), index_bytes.end());
  } catch (const std::exception& e) {
    throw Error(std::string("text sample: index.json is not JSON (") + e.what() + ")");
  }
  const auto field = [&index](const char* name) -> const nlohmann::json& {
    if (!index.is_object() || !index.contains(name)) throw Error(std::string("text sample: index.json has no \"") + name + "\"");
    return index.at(name);
  };
  const auto text_field = [&](const nlohmann::json& j, const char* name) {
    if (!j.is_object() || !j.contains(name) || !j.at(name).is_string())
      throw Error(std::string("text sample: index.json: \"") + name + "\" must be a string");
    return j.at(name).get<std::string>();
  };
  const auto int_field = [&](const nlohmann::json& j, const char* name) {
    if (!j.is_object() || !j.contains(name) || !j.at(name).is_number_integer())
      throw Error(std::string("text sample: index.json: \"") + name + "\" must be a whole number");
    return j.at(name).get<int64_t>();
  };
  if (field("dtype") != "uint16") throw Error("text sample: index.json: \"dtype\" must be \"uint16\"");
  TrainText t;
  t.source = "sample";
  t.name = text_field(index, "title");
  t.d_vocab = int(int_field(index, "vocab_size"));
  t.bos = int(int_field(index, "bos_id"));
  if (t.d_vocab < 2 || t.d_vocab > 65536) throw Error("text sample: index.json: \"vocab_size\" is out of range");
  if (t.bos >= t.d_vocab) throw Error("text sample: index.json: \"bos_id\" is outside the vocabulary");
  const std::vector<uint8_t>& tok = sample_file(files, text_field(index, "tokenizer"));
  t.tokenizer_json.assign(tok.begin(), tok.end());
  const Tokenizer tokenizer = Tokenizer::from_json(t.tokenizer_json);
  if (tokenizer.vocab_size() != t.d_vocab)
    throw Error("text sample: the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                " tokens, index.json says " + std::to_string(t.d_vocab));
  for (const char* split : {"train", "heldout"}) {
    const nlohmann::json& part = field(split);
    const std::string file = text_field(part, "file");
    const std::vector<uint8_t>& bytes = sample_file(files, file);
    std::vector<int> ids = train::decode_token_ids(bytes, train::TokenDtype::U16, "text sample " + file);
    if (int64_t(ids.size()) != int_field(part, "tokens"))
      throw Error("text sample: " + file + " holds " + std::to_string(ids.size()) + " ids, index.json says " +
                  std::to_string(int_field(part, "tokens")));
    train::check_token_ids(ids, t.d_vocab, 1, "text sample " + file);
    t.bytes += int64_t(bytes.size());
    (std::string(split) == "train" ? t.ids : t.heldout) = std::move(ids);
  }
  return t;
}

size_t text_chunk_end(std::string_view text, size_t from, size_t target, const Tokenizer& tok) {
  size_t at = from + target;
  for (int probes = 0; at < text.size() && probes < kMaxProbes;) {
    const size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos || nl + 1 >= text.size()) break;
    const size_t cut = nl + 1;
    if (!is_space(text[cut])) {
      if (safe_cut(text, from, cut, tok)) return cut;
      ++probes;
    }
    at = cut;
  }
  return text.size();
}

void check_text_file_size(const std::string& name, double bytes) {
  if (bytes <= double(kMaxTextFileBytes)) return;
  throw Error("text file " + name + " is " + std::to_string(int64_t(bytes / 1048576)) +
              " MB; a run in the page reads at most " + std::to_string(kMaxTextFileBytes >> 20) + " MB");
}

TokenizeWork::TokenizeWork(std::string name, std::vector<uint8_t> bytes, Tokenizer tok, std::string tokenizer_json)
    : bytes_(std::move(bytes)), tok_(std::move(tok)) {
  if (bytes_.empty()) throw Error("text file '" + name + "' is empty");
  check_text_file_size(name, double(bytes_.size()));
  text_.source = "file";
  text_.name = std::move(name);
  text_.tokenizer_json = std::move(tokenizer_json);
  text_.d_vocab = tok_.vocab_size();
  if (text_.d_vocab > kMaxVocab)
    throw Error("text file '" + text_.name + "': the tokenizer's " + std::to_string(text_.d_vocab) +
                " tokens are more than a run in the page trains (" + std::to_string(kMaxVocab) + ")");
  text_.bos = tok_.bos_id().value_or(-1);
  text_.bytes = int64_t(bytes_.size());
}

bool TokenizeWork::step(double budget_ms) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string_view text(reinterpret_cast<const char*>(bytes_.data()), bytes_.size());
  do {
    if (pos_ >= text.size()) break;
    const size_t end = text_chunk_end(text, pos_, kChunkBytes, tok_);
    const std::vector<int> ids = tok_.encode(text.substr(pos_, end - pos_));
    text_.ids.insert(text_.ids.end(), ids.begin(), ids.end());
    pos_ = end;
  } while (std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() < budget_ms);
  if (pos_ < text.size()) return false;
  if (text_.ids.size() < 2)
    throw Error("text file '" + text_.name + "' gives " + std::to_string(text_.ids.size()) +
                " token ids; a run needs a longer text");
  bytes_ = {};
  done_ = true;
  return true;
}

float TokenizeWork::progress() const {
  return done_ ? 1.f : bytes_.empty() ? 0.f : float(double(pos_) / double(bytes_.size()));
}

train::TrainData training_data(const TrainText& text, int n_ctx) {
  const size_t T = size_t(n_ctx), row = text.bos >= 0 ? T - 1 : T;
  train::TrainData d;
  d.tokenizer_json = text.tokenizer_json;
  if (text.source == "sample") {
    d.train = text.ids;
    d.heldout = text.heldout;
  } else {
    const size_t n = text.ids.size();
    const size_t held = std::max(n / 20, 2 * T);
    if (n >= held + 8 * T) {
      d.train.assign(text.ids.begin(), text.ids.end() - ptrdiff_t(held));
      d.heldout.assign(text.ids.end() - ptrdiff_t(held), text.ids.end());
    } else {
      d.train = text.ids;
    }
  }
  if (d.train.size() < row)
    throw Error("text '" + text.name + "' has " + std::to_string(d.train.size()) + " token ids of training text; " +
                "a row of n_ctx " + std::to_string(n_ctx) + " needs " + std::to_string(row));
  return d;
}

}  // namespace cs::app
