// Per-head summaries (head_summary.h). Definitions: docs/one-layer.md.
// TransformerLens convention throughout: row vectors, x @ W.
#include "core/head_summary.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/forward.h"
#include "core/induction.h"
#include "core/vocab_matrix.h"

namespace cs {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

// ---- OV diagonal test --------------------------------------------------------------

struct OvDiagonalScan::Impl {
  std::unique_ptr<VocabTopKPerRow> scan;  // top-k of every row of E W_V W_O W_U
};

OvDiagonalScan::OvDiagonalScan(const Model& m, int layer, int head, const CircuitOptions& opt)
    : impl_(std::make_unique<Impl>()) {
  check_head(m, layer, head, "ov_diagonal");
  const ModelConfig& c = m.config();
  const int k = std::min(5, c.vocab_out());
  impl_->scan = std::make_unique<VocabTopKPerRow>(ov_circuit_matrix(m, layer, head, opt), k);
  const size_t units = impl_->scan->units();
  const double cost = double(c.d_vocab) * double(c.vocab_out()) * double(c.d_head) / double(std::max<size_t>(units, 1));
  add_units_of(impl_->scan.get(), units, "OV diagonal", cost);
  add("OV diagonal", double(c.d_vocab), [this] {
    const auto& rows = impl_->scan->result();  // [d_vocab][k], value descending
    size_t top1 = 0, top5 = 0;
    for (size_t s = 0; s < rows.size(); ++s) {
      if (!rows[s].empty() && rows[s][0].id == int(s)) ++top1;
      for (const IdValue& iv : rows[s])
        if (iv.id == int(s)) {
          ++top5;
          break;
        }
    }
    result_.top1 = rows.empty() ? kNaN : double(top1) / double(rows.size());
    result_.top5 = rows.empty() ? kNaN : double(top5) / double(rows.size());
    impl_->scan.reset();
  });
}

OvDiagonalScan::~OvDiagonalScan() = default;

const OvDiagonal& OvDiagonalScan::result() const {
  if (!done()) throw Error("ov_diagonal: result() before the computation finished");
  return result_;
}

OvDiagonal ov_diagonal(const Model& m, int layer, int head, const CircuitOptions& opt) {
  OvDiagonalScan s(m, layer, head, opt);
  s.run();
  return s.result();
}

// ---- attention to the current and the previous token -----------------------------

std::vector<std::vector<int>> random_token_sequences(const ModelConfig& c, uint64_t seed, int sequences, int length) {
  if (sequences < 1) throw Error("attention_current_previous: sequences must be >= 1 (got " + std::to_string(sequences) + ")");
  if (length < 1) throw Error("attention_current_previous: length must be >= 1 (got " + std::to_string(length) + ")");
  if (c.d_vocab < 1) throw Error("attention_current_previous: d_vocab must be >= 1");
  const int T = c.n_ctx > 0 ? std::min(c.n_ctx, length) : length;
  Rng rng(seed);
  std::vector<std::vector<int>> out(static_cast<size_t>(sequences), std::vector<int>(static_cast<size_t>(T)));
  for (auto& seq : out)
    for (int& t : seq) t = int(rng.below(uint64_t(c.d_vocab)));
  return out;
}

namespace {

// Running sums of A[i, i] and A[i, i-1] over destinations i >= 1, per head.
struct AttnSums {
  Eigen::MatrixXd cur, prev;  // [n_layers, n_heads]
  size_t count = 0;
  void init(const ModelConfig& c) {
    cur = Eigen::MatrixXd::Zero(c.n_layers, c.n_heads);
    prev = Eigen::MatrixXd::Zero(c.n_layers, c.n_heads);
    count = 0;
  }
  void add(const ModelConfig& c, const ForwardCache& cache, size_t length) {
    if (length < 2) return;
    for (int l = 0; l < c.n_layers; ++l)
      for (int h = 0; h < c.n_heads; ++h) {
        const RowMat& A = cache.attn(l, h, c.n_heads);  // [query, key]
        for (Eigen::Index i = 1; i < A.rows(); ++i) {
          cur(l, h) += double(A(i, i));
          prev(l, h) += double(A(i, i - 1));
        }
      }
    count += length - 1;
  }
  AttentionShares result() const {
    AttentionShares s;
    s.current = (cur / double(count)).cast<float>();
    s.previous = (prev / double(count)).cast<float>();
    if (count == 0) {
      s.current.setConstant(std::numeric_limits<float>::quiet_NaN());
      s.previous.setConstant(std::numeric_limits<float>::quiet_NaN());
    }
    return s;
  }
};

}  // namespace

AttentionShares attention_current_previous(const Model& m, const std::vector<std::vector<int>>& sequences) {
  AttnSums sums;
  sums.init(m.config());
  for (const auto& seq : sequences)
    if (seq.size() >= 2) sums.add(m.config(), forward(m, seq, patterns_only()).cache, seq.size());
  return sums.result();
}

AttentionShares attention_current_previous(const Model& m, uint64_t seed, int sequences, int length) {
  return attention_current_previous(m, random_token_sequences(m.config(), seed, sequences, length));
}

// ---- the summary --------------------------------------------------------------------

struct HeadSummaryPlan::Impl {
  std::unique_ptr<EmbedGramsPlan> grams;
  std::vector<std::unique_ptr<PositionalShareAccumulator>> shares;  // per head
  std::vector<std::unique_ptr<OvDiagonalScan>> diagonals;           // per head (when asked)
  std::vector<std::vector<int>> sequences;
  std::vector<std::unique_ptr<ForwardPlan>> passes;  // per sequence, dropped once summed
  std::vector<HeadEigen> eigen;                       // per head, moved into the result
  AttnSums attn;
};

HeadSummaryPlan::HeadSummaryPlan(const Model& m, const HeadSummaryOptions& opt) : impl_(std::make_unique<Impl>()) {
  const ModelConfig& c = m.config();
  const int L = c.n_layers, H = c.n_heads;
  const bool square = c.d_vocab == c.vocab_out();
  const double dd = double(c.d_model) * double(c.d_model);
  Impl& I = *impl_;

  result_.resize(size_t(L) * H);
  if (result_.empty()) return;  // no heads (0 layers): nothing to compute
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      HeadSummary& s = result_[size_t(l) * H + h];
      s.layer = l;
      s.head = h;
      s.ov_copying_score = kNaN;
      s.ov_diagonal_top1 = s.ov_diagonal_top5 = kNaN;
    }

  // The vocabulary sums (unless given), then one unit per eigen-problem.
  if (opt.grams) {
    grams_ = opt.grams;
  } else {
    I.grams = std::make_unique<EmbedGramsPlan>(m, opt.circuit, /*want_UUt=*/false);
    add_units_of(I.grams.get(), I.grams->units(), "vocabulary sums", double(c.d_vocab) * dd * 2 /
                                                                             double(std::max<size_t>(I.grams->units(), 1)));
    add("vocabulary sums", 1, [this] {
      grams_ = std::make_shared<const EmbedGrams>(std::move(impl_->grams->mutable_result()));
      impl_->grams.reset();
    });
  }
  // Each head's small products in blocks (core/circuits.h), into I.eigen.
  I.eigen.resize(result_.size());
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      HeadEigen* e = &I.eigen[size_t(l) * H + h];
      add_head_eigen_units(*this, m, l, h, [this]() -> const EmbedGrams& { return *grams_; }, e);
    }
  add("eigenvalues", 1, [this, square] {  // after every head's strands
    for (size_t i = 0; i < result_.size(); ++i) {
      HeadSummary& s = result_[i];
      HeadEigen& e = impl_->eigen[i];
      s.qk_eigenvalues = std::move(e.qk);
      s.qk_copying_score = e.qk_score;
      if (square) {
        s.ov_eigenvalues = std::move(e.ov);
        s.ov_copying_score = e.ov_score;
      }
    }
  });

  // Positional shares, a block of samples per unit.
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      I.shares.push_back(std::make_unique<PositionalShareAccumulator>(m, l, h, opt.seed, opt.share_samples, opt.circuit));
      PositionalShareAccumulator* acc = I.shares.back().get();
      // A strand per head: the heads' samples are drawn beside each other natively.
      for (int i = 0; i < acc->chunks(); ++i)
        add_to_strand("positional share", double(PositionalShareAccumulator::kChunk) * c.d_model * c.d_head * 4,
                      [acc, i] { acc->run_chunk(i); }, /*new_strand=*/i == 0);
      HeadSummary* s = &result_[size_t(l) * H + h];
      add_to_strand("positional share", 1, [this, acc, s, idx = I.shares.size() - 1] {
        s->positional_share = acc->value();
        impl_->shares[idx].reset();
      });
    }

  // Attention to the current and previous token: one forward pass per sequence.
  I.sequences = random_token_sequences(c, opt.seed, opt.attn_sequences, opt.attn_length);
  I.attn.init(c);
  for (size_t i = 0; i < I.sequences.size(); ++i) {
    if (I.sequences[i].size() < 2) continue;
    I.passes.push_back(std::make_unique<ForwardPlan>(m, I.sequences[i], patterns_only()));
    ForwardPlan* p = I.passes.back().get();
    const double T = double(I.sequences[i].size());
    add_units_of(p, p->units(), "attention patterns",
                  T * c.d_model * 4.0 * c.d_model / double(std::max<size_t>(p->units(), 1)));
    add("attention patterns", T * T * c.n_layers * c.n_heads, [this, &m, i, idx = I.passes.size() - 1] {
      impl_->attn.add(m.config(), impl_->passes[idx]->result().cache, impl_->sequences[i].size());
      impl_->passes[idx].reset();
    });
  }
  add("attention patterns", 1, [this, L, H] {
    const AttentionShares a = impl_->attn.result();
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) {
        result_[size_t(l) * H + h].attn_current = double(a.current(l, h));
        result_[size_t(l) * H + h].attn_previous = double(a.previous(l, h));
      }
  });

  // The diagonal scans: many units each.
  if (opt.diagonal) {
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) {
        I.diagonals.push_back(std::make_unique<OvDiagonalScan>(m, l, h, opt.circuit));
        OvDiagonalScan* d = I.diagonals.back().get();
        const size_t units = d->units();
        add_units_of(d, units, "OV diagonal",
                      double(c.d_vocab) * c.vocab_out() * c.d_head / double(std::max<size_t>(units, 1)));
        HeadSummary* s = &result_[size_t(l) * H + h];
        add("OV diagonal", 1, [this, d, s, idx = I.diagonals.size() - 1] {
          s->ov_diagonal_top1 = d->result().top1;
          s->ov_diagonal_top5 = d->result().top5;
          impl_->diagonals[idx].reset();
        });
      }
  }
}

HeadSummaryPlan::~HeadSummaryPlan() = default;

const std::vector<HeadSummary>& HeadSummaryPlan::result() const {
  if (!done()) throw Error("head_summaries: result() before the computation finished");
  return result_;
}

std::shared_ptr<const EmbedGrams> HeadSummaryPlan::grams() const {
  if (!done()) throw Error("head_summaries: grams() before the computation finished");
  return grams_;
}

std::vector<HeadSummary> head_summaries(const Model& m, const HeadSummaryOptions& opt) {
  HeadSummaryPlan p(m, opt);
  p.run();
  return p.result();
}

}  // namespace cs
