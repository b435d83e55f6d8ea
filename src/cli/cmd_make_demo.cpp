// `circuitscope make-demo OUTDIR [--corpus DIR]`: the bundled demo model.
//
// A 2-layer attention-only model (d_model 64, 4 heads of 16, n_ctx 256, no
// normalization, standard positions) over a byte-level vocabulary: ids 0..255
// are the bytes themselves (token strings in GPT-2's byte-to-unicode mapping,
// no merges) and id 256 is "<|endoftext|>", the BOS. Not trained: its direct
// path is set from byte-bigram statistics of a corpus every Debian machine has,
// the texts in /usr/share/common-licenses (regular files, sorted by name;
// the symlinks there only repeat other files), and its attention weights are
// small seeded random numbers so that the direct path dominates.
//
// Direct path (TransformerLens convention, row vectors): logits = W_E[a] W_U + b_U,
// W_E [257, 64], W_U [64, 257], b_U [257]. With C[a][b] the count of byte b
// following a (BOS before each file's first byte):
//   L[a][b] = log((C[a][b] + 1) / (sum_b' C[a][b'] + 257))   add-1 smoothed log p(b | a)
//   R = L - row means (softmax ignores a per-row constant)
//   b_U = column means of R;  M = R - 1 b_U^T   (rows and columns of M sum to 0)
//   M ~ U_k S_k V_k^T (truncated SVD, k = 64):  W_E = U_k sqrt(S_k),  W_U = sqrt(S_k) V_k^T
// so softmax(W_E[a] W_U + b_U) ~ the smoothed bigram row of a. Deterministic:
// the same corpus and code give the same bytes.
#include <Eigen/SVD>
#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "cli/cli_common.h"
#include "core/error.h"

namespace cs::cli {

namespace {

namespace fs = std::filesystem;

constexpr int kBytes = 256;
constexpr int kBos = 256;
constexpr int kVocab = 257;
constexpr int kDModel = 64;
constexpr uint64_t kSeed = 20211222;  // the framework paper's publication date
constexpr float kAttnStd = 0.02f;

// GPT-2's byte-to-unicode mapping: printable Latin-1 bytes map to themselves,
// the other 68 bytes to code points 256, 257, ... in byte order.
std::array<char32_t, kBytes> gpt2_byte_to_unicode() {
  std::array<char32_t, kBytes> map{};
  auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  int next = 0;
  for (int b = 0; b < kBytes; ++b) map[size_t(b)] = printable(b) ? char32_t(b) : char32_t(256 + next++);
  return map;
}

std::string utf8(char32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// tokenizer.json of a byte-level BPE with the 256 byte tokens (id = byte value)
// and no merges, plus <|endoftext|> (id 256) as a special added token.
std::string byte_level_tokenizer_json() {
  auto map = gpt2_byte_to_unicode();
  Json vocab = Json::object();
  for (int b = 0; b < kBytes; ++b) vocab[utf8(map[size_t(b)])] = b;
  vocab["<|endoftext|>"] = kBos;
  Json bytelevel = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  Json t;
  t["version"] = "1.0";
  t["truncation"] = nullptr;
  t["padding"] = nullptr;
  t["added_tokens"] = Json::array({Json{{"id", kBos},
                                        {"content", "<|endoftext|>"},
                                        {"single_word", false},
                                        {"lstrip", false},
                                        {"rstrip", false},
                                        {"normalized", false},
                                        {"special", true}}});
  t["normalizer"] = nullptr;
  t["pre_tokenizer"] = bytelevel;
  t["post_processor"] = bytelevel;
  t["decoder"] = bytelevel;
  t["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"vocab", vocab},
                {"merges", Json::array()}};
  return t.dump(2, ' ', true);
}

struct Corpus {
  std::vector<std::string> names;
  std::vector<std::vector<uint8_t>> texts;
  size_t bytes = 0;
};

Corpus read_corpus(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error("make-demo: corpus folder '" + dir + "' does not exist");
  std::vector<fs::path> paths;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && !e.is_symlink()) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });
  if (paths.empty()) throw Error("make-demo: corpus folder '" + dir + "' has no regular files");
  Corpus c;
  for (const auto& p : paths) {
    c.names.push_back(p.filename().string());
    c.texts.push_back(read_file(p.string()));
    c.bytes += c.texts.back().size();
  }
  return c;
}

using MatD = Eigen::MatrixXd;

// C[a][b]: how often b follows a; a = BOS before each text's first byte.
MatD bigram_counts(const Corpus& c) {
  MatD counts = MatD::Zero(kVocab, kVocab);
  for (const auto& text : c.texts) {
    int prev = kBos;
    for (uint8_t b : text) {
      counts(prev, b) += 1.0;
      prev = b;
    }
  }
  return counts;
}

// Add-1 smoothed log p(b | a), rows = a.
MatD smoothed_log_probs(const MatD& counts) {
  MatD L(kVocab, kVocab);
  for (int a = 0; a < kVocab; ++a) {
    double total = counts.row(a).sum() + kVocab;
    for (int b = 0; b < kVocab; ++b) L(a, b) = std::log((counts(a, b) + 1.0) / total);
  }
  return L;
}

// Mean next-byte loss (nats) of the corpus bigrams under row-wise softmax(logits).
double corpus_bigram_loss(const MatD& counts, const MatD& logits) {
  double nll = 0, n = 0;
  for (int a = 0; a < kVocab; ++a) {
    double mx = logits.row(a).maxCoeff();
    double lse = mx + std::log((logits.row(a).array() - mx).exp().sum());
    for (int b = 0; b < kVocab; ++b) {
      nll += counts(a, b) * (lse - logits(a, b));
      n += counts(a, b);
    }
  }
  return nll / n;
}

}  // namespace

int cmd_make_demo(const std::vector<std::string>& words) {
  Args args(words, {{}, {"--corpus"}});
  args.expect_positional(1, "OUTDIR");
  const std::string corpus_dir = args.value("--corpus").value_or("/usr/share/common-licenses");
  Corpus corpus = read_corpus(corpus_dir);

  MatD counts = bigram_counts(corpus);
  MatD L = smoothed_log_probs(counts);
  MatD R = L.colwise() - L.rowwise().mean();
  Eigen::RowVectorXd bU = R.colwise().mean();
  MatD M = R.rowwise() - bU;

  Eigen::JacobiSVD<MatD> svd(M, Eigen::ComputeFullU | Eigen::ComputeFullV);
  Eigen::VectorXd sroot = svd.singularValues().head(kDModel).cwiseSqrt();
  MatD WE = svd.matrixU().leftCols(kDModel) * sroot.asDiagonal();              // [257, 64]
  MatD WU = sroot.asDiagonal() * svd.matrixV().leftCols(kDModel).transpose();  // [64, 257]

  ModelConfig cfg;
  cfg.n_layers = 2;
  cfg.d_model = kDModel;
  cfg.n_heads = 4;
  cfg.d_head = 16;
  cfg.n_ctx = 256;
  cfg.d_vocab = kVocab;
  cfg.d_vocab_out = kVocab;
  cfg.positional = PosEmbed::Standard;
  cfg.normalization = Norm::None;
  cfg.name = "demo-byte-bigrams";
  cfg.tokenizer_name = "byte-level BPE: 256 byte tokens (GPT-2 byte-to-unicode), no merges, <|endoftext|> = 256";

  Model m(cfg);
  randomize(m, kSeed, kAttnStd);  // attention weights, biases and W_pos: small and seeded
  m.W_E() = WE.cast<float>();
  m.W_U() = WU.cast<float>();
  m.b_U() = bU.transpose().cast<float>();
  for (int l = 0; l < cfg.n_layers; ++l) m.b_O(l).setZero();

  const std::string tok_json = byte_level_tokenizer_json();
  FileSet files = save_model(m, tok_json, false);

  // How well the direct path reproduces the bigrams (both in nats per byte).
  MatD direct = (WE.cast<float>() * WU.cast<float>()).cast<double>().rowwise() + bU.cast<float>().cast<double>();
  double loss_direct = corpus_bigram_loss(counts, direct);
  double loss_smoothed = corpus_bigram_loss(counts, L);

  std::string names;
  for (const auto& n : corpus.names) names += (names.empty() ? "" : ", ") + n;
  auto cfg_json = nlohmann::ordered_json::parse(files.at("config.json"));
  cfg_json["description"] =
      "Demo, not trained. 2-layer attention-only model whose direct path (W_E W_U + b_U) is a rank-64 SVD "
      "of the centred add-1 smoothed log bigram probabilities of bytes in " + corpus_dir +
      " (regular files, sorted by name); attention weights are small seeded random numbers (seed " +
      std::to_string(kSeed) + ", std " + std::to_string(kAttnStd).substr(0, 4) + "), b_O = 0.";
  cfg_json["corpus"] = {{"folder", corpus_dir}, {"files", corpus.names}, {"bytes", corpus.bytes}};
  cfg_json["direct_path_bigram_loss_nats"] = loss_direct;
  cfg_json["smoothed_bigram_loss_nats"] = loss_smoothed;
  std::string text = cfg_json.dump(2) + "\n";
  files["config.json"] = std::vector<uint8_t>(text.begin(), text.end());

  write_files(args.positional()[0], files);
  size_t total = 0;
  for (const auto& [n, b] : files) total += b.size();
  std::cout << "wrote " << args.positional()[0] << " (" << total << " bytes): " << m.parameter_count()
            << " parameters; corpus " << corpus.names.size() << " files, " << corpus.bytes
            << " bytes; next-byte loss of the corpus: direct path " << loss_direct << " nats, smoothed bigrams "
            << loss_smoothed << " nats\n";
  return 0;
}

}  // namespace cs::cli
