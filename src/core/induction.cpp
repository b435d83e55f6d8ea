// Head scores on token sequences ([I], induction.h). Every score is a plain
// average of entries of forward()'s attention patterns A [T(destination),
// T(source)] or of its per-position losses.
#include "core/induction.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "core/error.h"
#include "core/forward.h"
#include "core/head_detector.h"
#include "core/vocab_matrix.h"

namespace cs {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// The ids repeated_random_tokens may draw: [0, d_vocab) minus exclude and bos.
std::vector<int> allowed_ids(int d_vocab, int bos, std::span<const int> exclude) {
  std::vector<char> banned(size_t(std::max(d_vocab, 0)), 0);
  for (int e : exclude)
    if (e >= 0 && e < d_vocab) banned[size_t(e)] = 1;
  if (bos >= 0 && bos < d_vocab) banned[size_t(bos)] = 1;
  std::vector<int> ids;
  for (int i = 0; i < d_vocab; ++i)
    if (!banned[size_t(i)]) ids.push_back(i);
  return ids;
}

// Runs forward() keeping the patterns; checks the length first so the message
// names the score being computed.
ForwardResult run(const Model& m, const std::vector<int>& seq, const char* what) {
  const ModelConfig& c = m.config();
  if (c.has_pos() && seq.size() > size_t(c.n_ctx))
    throw Error(std::string(what) + ": a sequence of " + std::to_string(seq.size()) +
                " tokens is longer than n_ctx " + std::to_string(c.n_ctx));
  return forward(m, seq);  // with the cache
}

}  // namespace

std::vector<int> repeated_random_tokens(Rng& rng, int d_vocab, int n, int repeats, int bos,
                                        std::span<const int> exclude) {
  if (n < 1) throw Error("repeated_random_tokens: n must be >= 1 (got " + std::to_string(n) + ")");
  if (repeats < 1) throw Error("repeated_random_tokens: repeats must be >= 1 (got " + std::to_string(repeats) + ")");
  std::vector<int> ids = allowed_ids(d_vocab, bos, exclude);
  if (ids.empty())
    throw Error("repeated_random_tokens: no token id is left to draw from d_vocab " + std::to_string(d_vocab) +
                " after the exclusions");
  std::vector<int> s(static_cast<size_t>(n));
  if (size_t(n) <= ids.size()) {
    // n distinct ids: the first n steps of a Fisher-Yates shuffle.
    for (int j = 0; j < n; ++j) {
      const size_t k = size_t(j) + size_t(rng.below(ids.size() - size_t(j)));
      std::swap(ids[size_t(j)], ids[k]);
      s[size_t(j)] = ids[size_t(j)];
    }
  } else {
    for (int j = 0; j < n; ++j) s[size_t(j)] = ids[size_t(rng.below(ids.size()))];
  }
  std::vector<int> out;
  out.reserve(size_t(bos >= 0) + size_t(n) * size_t(repeats));
  if (bos >= 0) out.push_back(bos);
  for (int r = 0; r < repeats; ++r) out.insert(out.end(), s.begin(), s.end());
  return out;
}

std::vector<std::vector<int>> repeated_random_tokens(int d_vocab, int n, int repeats, int examples, uint64_t seed,
                                                     int bos, std::span<const int> exclude) {
  Rng rng(seed);
  std::vector<std::vector<int>> out;
  for (int e = 0; e < examples; ++e) out.push_back(repeated_random_tokens(rng, d_vocab, n, repeats, bos, exclude));
  return out;
}

RowMat previous_token_scores(const Model& m, const std::vector<std::vector<int>>& sequences) {
  const ModelConfig& c = m.config();
  const int L = c.n_layers, H = c.n_heads;
  Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(L, H);
  int64_t count = 0;
  for (const auto& seq : sequences) {
    if (seq.size() < 3) continue;
    const ForwardResult r = run(m, seq, "previous_token_scores");
    const Eigen::Index T = Eigen::Index(seq.size());
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) {
        const RowMat& A = r.cache.attn(l, h, H);
        double s = 0;
        for (Eigen::Index i = 2; i < T; ++i) s += A(i, i - 1);
        sum(l, h) += s;
      }
    count += T - 2;
  }
  if (count == 0) return RowMat::Constant(L, H, kNaN);
  return (sum / double(count)).cast<float>();
}

namespace {

// For each destination i of seq: the sources j (1 <= j <= i) with
// seq[j-1] == seq[i], only for tokens seen before i (a token's first
// occurrence has no such j < i other than j = i when seq[i-1] == seq[i],
// which is itself a repeat). Returns the number of destinations that have some.
int64_t prefix_sources(const std::vector<int>& seq, int bos, std::vector<std::vector<int>>& sources) {
  const size_t T = seq.size();
  sources.assign(T, {});
  int64_t count = 0;
  for (size_t i = 1; i < T; ++i) {
    if (seq[i] == bos) continue;
    bool seen = false;
    for (size_t j = 0; j < i; ++j) seen |= seq[j] == seq[i];
    if (!seen) continue;
    for (size_t j = 1; j <= i; ++j)
      if (seq[j - 1] == seq[i]) sources[i].push_back(int(j));
    ++count;
  }
  return count;
}

// sum(l, h) += the attention of each destination on its sources.
void add_prefix_attention(const ModelConfig& c, const ForwardCache& cache, const std::vector<std::vector<int>>& sources,
                          Eigen::MatrixXd& sum) {
  for (int l = 0; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_heads; ++h) {
      const RowMat& A = cache.attn(l, h, c.n_heads);
      double s = 0;
      for (size_t i = 0; i < sources.size(); ++i)
        for (int j : sources[i]) s += A(Eigen::Index(i), j);
      sum(l, h) += s;
    }
}

}  // namespace

RowMat prefix_matching_scores(const Model& m, const std::vector<std::vector<int>>& sequences, int bos) {
  const ModelConfig& c = m.config();
  const int L = c.n_layers, H = c.n_heads;
  Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(L, H);
  int64_t count = 0;
  std::vector<std::vector<int>> sources;
  for (const auto& seq : sequences) {
    const int64_t n = prefix_sources(seq, bos, sources);
    if (n == 0) continue;
    count += n;
    add_prefix_attention(c, run(m, seq, "prefix_matching_scores").cache, sources, sum);
  }
  if (count == 0) return RowMat::Constant(L, H, kNaN);
  return (sum / double(count)).cast<float>();
}

RowMat prefix_matching_scores(const Model& m, int n, int repeats, int examples, uint64_t seed, int bos,
                              std::span<const int> exclude) {
  const ModelConfig& c = m.config();
  const int64_t len = int64_t(bos >= 0) + int64_t(n) * repeats;
  if (c.has_pos() && len > c.n_ctx)
    throw Error("prefix_matching_scores: " + std::string(bos >= 0 ? "BOS + " : "") + std::to_string(n) + " x " +
                std::to_string(repeats) + " tokens = " + std::to_string(len) + " is longer than n_ctx " +
                std::to_string(c.n_ctx));
  return prefix_matching_scores(m, repeated_random_tokens(c.d_vocab, n, repeats, examples, seed, bos, exclude),
                                bos);
}

IclPositions icl_positions(int n_ctx) {
  if (n_ctx < 3) throw Error("icl_positions: n_ctx must be >= 3 (got " + std::to_string(n_ctx) + ")");
  const auto scaled = [&](int k) {
    const int p = int(std::lround(double(k) * double(n_ctx) / 512.0));
    return std::clamp(p, 1, n_ctx - 1);
  };
  IclPositions p{scaled(50), scaled(500)};
  if (p.early >= p.late) p.early = std::max(1, p.late - 1);
  return p;
}

double in_context_learning_score(const Model& m, const std::vector<std::vector<int>>& sequences, int early,
                                 int late, int window) {
  if (!(early >= 1 && early < late))
    throw Error("in_context_learning_score: need 1 <= early < late (got early " + std::to_string(early) +
                ", late " + std::to_string(late) + ")");
  if (sequences.empty()) throw Error("in_context_learning_score: no sequences");
  window = std::max(window, 0);
  double total = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const auto& seq = sequences[s];
    const int T = int(seq.size());
    if (late >= T)
      throw Error("in_context_learning_score: sequence " + std::to_string(s) + " has " + std::to_string(T) +
                  " tokens, too short for the late position " + std::to_string(late));
    const ForwardResult r = forward(m, seq, logits_only());
    // losses[t - 1] = -log p(seq[t] | seq[0..t)).
    const std::vector<float> losses = token_losses(r.logits, seq);
    const auto loss_at = [&](int t) {
      const int lo = std::max(1, t - window), hi = std::min(T - 1, t + window);
      double sum = 0;
      for (int u = lo; u <= hi; ++u) sum += losses[size_t(u - 1)];
      return sum / double(hi - lo + 1);
    };
    total += loss_at(early) - loss_at(late);
  }
  return total / double(sequences.size());
}

namespace {

// losses[t-1] predicts token t: tokens [1, first_end) are the first copy, the rest the repeats.
void add_repeat_losses(const std::vector<float>& losses, size_t first_end, double& first, int64_t& n_first,
                       double& rep, int64_t& n_rep) {
  for (size_t t = 1; t <= losses.size(); ++t) {
    if (t < first_end) {
      first += losses[t - 1];
      ++n_first;
    } else {
      rep += losses[t - 1];
      ++n_rep;
    }
  }
}

}  // namespace

RepeatLoss repeat_loss(const Model& m, const std::vector<std::vector<int>>& sequences, int n, int repeats,
                       bool has_bos) {
  if (n < 1 || repeats < 2) throw Error("repeat_loss: need n >= 1 and repeats >= 2");
  if (sequences.empty()) throw Error("repeat_loss: no sequences");
  const size_t o = has_bos ? 1 : 0, len = o + size_t(n) * size_t(repeats);
  double first = 0, rep = 0;
  int64_t n_first = 0, n_rep = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const auto& seq = sequences[s];
    if (seq.size() != len)
      throw Error("repeat_loss: sequence " + std::to_string(s) + " has " + std::to_string(seq.size()) +
                  " tokens, expected " + std::to_string(len));
    const ForwardResult r = run(m, seq, "repeat_loss");
    add_repeat_losses(token_losses(r.logits, seq), o + size_t(n), first, n_first, rep, n_rep);
  }
  return RepeatLoss{n_first ? first / double(n_first) : double(kNaN), rep / double(n_rep)};
}

RepeatLoss repeat_loss(const Model& m, int n, int repeats, int examples, uint64_t seed, int bos,
                       std::span<const int> exclude) {
  return repeat_loss(m, repeated_random_tokens(m.config().d_vocab, n, repeats, examples, seed, bos, exclude), n,
                     repeats, bos >= 0);
}

double token_copying_score(const Model& m, int layer, int head, const std::vector<std::vector<int>>& sequences,
                           int bos, const CircuitOptions& opt) {
  const ModelConfig& c = m.config();
  if (c.d_vocab != c.vocab_out())
    throw Error("token_copying_score: the OV circuit is not square (d_vocab != d_vocab_out)");
  const VocabMatrix ov = ov_circuit_matrix(m, layer, head, opt);
  double total = 0;
  int counted = 0;
  for (const std::vector<int>& seq : sequences) {
    std::vector<int> ids;
    for (int t : seq)
      if (t != bos) ids.push_back(t);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (int t : ids)
      if (t < 0 || t >= c.d_vocab)
        throw Error("token_copying_score: token " + std::to_string(t) + " is outside [0, d_vocab = " +
                    std::to_string(c.d_vocab) + ")");
    if (ids.size() < 2) continue;
    // The sequence's tokens' OV rows on its own tokens: [k, k], factored (never a vocabulary row).
    const RowMat rows = ov.block(ids, ids);
    double sum = 0;
    for (Eigen::Index i = 0; i < rows.rows(); ++i) {
      const Eigen::ArrayXd row = rows.row(i).transpose().cast<double>().array();
      const Eigen::ArrayXd r = (row - row.mean()).max(0.0);
      const double mass = r.sum();
      const double share = mass > 0 ? r[i] / mass : 0.0;
      sum += std::clamp(4.0 * share - 1.0, -1.0, 1.0);
    }
    total += sum / double(ids.size());
    ++counted;
  }
  return counted ? total / counted : double(kNaN);
}

RowMat token_copying_scores(const Model& m, const std::vector<std::vector<int>>& sequences, int bos,
                            const CircuitOptions& opt) {
  const ModelConfig& c = m.config();
  RowMat out(c.n_layers, c.n_heads);
  for (int l = 0; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_heads; ++h) out(l, h) = float(token_copying_score(m, l, h, sequences, bos, opt));
  return out;
}

InductionExperimentPlan::InductionExperimentPlan(const Model& m, int n, int repeats, int examples, uint64_t seed,
                                                 int bos, const CircuitOptions& opt) {
  const ModelConfig& c = m.config();
  if (n < 1 || repeats < 2 || examples < 1)
    throw Error("induction experiment: need tokens >= 1, repeats >= 2 and examples >= 1 (got " + std::to_string(n) +
                ", " + std::to_string(repeats) + ", " + std::to_string(examples) + ")");
  const int64_t len = int64_t(bos >= 0) + int64_t(n) * repeats;
  if (c.has_pos() && len > c.n_ctx)
    throw Error("induction experiment: " + std::string(bos >= 0 ? "BOS + " : "") + std::to_string(n) + " x " +
                std::to_string(repeats) + " tokens = " + std::to_string(len) + " is longer than n_ctx " +
                std::to_string(c.n_ctx));
  InductionExperiment& r = r_;
  r.tokens = n;
  r.repeats = repeats;
  r.examples = examples;
  r.seed = seed;
  r.bos = bos;
  r.sequences = repeated_random_tokens(c.d_vocab, n, repeats, examples, seed, bos);
  r.loss_by_position.assign(size_t(len - 1), 0.0);
  const int L = c.n_layers, H = c.n_heads;
  auto acc = std::make_shared<Acc>();
  acc->prefix = Eigen::MatrixXd::Zero(L, H);
  acc->previous = Eigen::MatrixXd::Zero(L, H);
  for (size_t e = 0; e < r.sequences.size(); ++e) {
    // The losses are folded into the unembedding's units (LogitSummary): no
    // [T, d_vocab_out] logits, and no log-softmax over them in one unit.
    ForwardOptions fo;
    fo.summarize = true;
    fo.top_k = 0;
    passes_.push_back(std::make_unique<ForwardPlan>(m, r.sequences[e], fo));
    ForwardPlan* pass = passes_.back().get();
    add_units_of(pass, pass->units(), "repeated random tokens", double(len) * double(c.d_model));
    add("repeated random tokens", double(len) * double(L * H), [this, &m, e, acc, bos, n] {
      InductionExperiment& r = r_;
      const ModelConfig& c = m.config();
      const std::vector<int>& seq = r.sequences[e];
      const ForwardResult& f = passes_[e]->result();
      std::vector<std::vector<int>> sources;
      acc->count += prefix_sources(seq, bos, sources);
      add_prefix_attention(c, f.cache, sources, acc->prefix);
      const RowMat P = detection_pattern(HeadPattern::PreviousToken, seq);
      for (int l = 0; l < c.n_layers; ++l)
        for (int h = 0; h < c.n_heads; ++h) acc->previous(l, h) += detection_score(f.cache.attn(l, h, c.n_heads), P);
      const std::vector<float> losses = f.summary.losses();
      for (size_t t = 0; t < losses.size(); ++t) r.loss_by_position[t] += losses[t] / double(r.examples);
      add_repeat_losses(losses, size_t(bos >= 0) + size_t(n), acc->first, acc->n_first, acc->rep, acc->n_rep);
      if (e == 0) r.patterns = f.cache.pattern;
      passes_[e].reset();
    });
  }
  // The copying scores: one unit per head (a [k, k] block of its OV circuit per sequence).
  const bool square = c.d_vocab == c.vocab_out();
  r.copying = RowMat::Constant(L, H, kNaN);
  if (square)
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h)
        add("copying scores", double(examples) * double(n) * double(c.d_model) * double(c.d_head) * 2,
            [this, &m, l, h, bos, opt] { r_.copying(l, h) = float(token_copying_score(m, l, h, r_.sequences, bos, opt)); });
  add("repeated random tokens", 1, [this, acc] {
    InductionExperiment& r = r_;
    r.prefix_matching = acc->count ? RowMat((acc->prefix / double(acc->count)).cast<float>())
                                   : RowMat::Constant(acc->prefix.rows(), acc->prefix.cols(), kNaN);
    r.previous_token = (acc->previous / double(r.examples)).cast<float>();
    r.loss = RepeatLoss{acc->n_first ? acc->first / double(acc->n_first) : double(kNaN), acc->rep / double(acc->n_rep)};
  });
}

InductionExperimentPlan::~InductionExperimentPlan() = default;

const InductionExperiment& InductionExperimentPlan::result() const {
  if (!done()) throw Error("induction experiment: result() before the computation finished");
  return r_;
}

}  // namespace cs
