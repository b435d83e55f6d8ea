// Head detector (head_detector.h; docs/two-layer.md, "Head detector").
#include "core/head_detector.h"

#include <string>

#include "core/error.h"
#include "core/forward.h"

namespace cs {

const char* to_string(HeadPattern p) {
  switch (p) {
    case HeadPattern::PreviousToken: return "previous_token";
    case HeadPattern::DuplicateToken: return "duplicate_token";
    case HeadPattern::Induction: return "induction";
  }
  return "?";
}

RowMat detection_pattern(HeadPattern p, std::span<const int> tokens) {
  const Eigen::Index T = Eigen::Index(tokens.size());
  RowMat P = RowMat::Zero(T, T);
  for (Eigen::Index i = 0; i < T; ++i)
    for (Eigen::Index j = 0; j <= i; ++j) {
      bool on = false;
      switch (p) {
        case HeadPattern::PreviousToken: on = j == i - 1; break;
        case HeadPattern::DuplicateToken: on = j < i && tokens[size_t(j)] == tokens[size_t(i)]; break;
        case HeadPattern::Induction: on = j >= 1 && j - 1 != i && tokens[size_t(j - 1)] == tokens[size_t(i)]; break;
      }
      P(i, j) = on ? 1.f : 0.f;
    }
  return P;
}

double detection_score(const RowMat& A, const RowMat& P, const DetectorOptions& opt) {
  if (A.rows() != P.rows() || A.cols() != P.cols())
    throw Error("detection_score: the pattern is " + std::to_string(P.rows()) + " x " + std::to_string(P.cols()) +
                ", the attention " + std::to_string(A.rows()) + " x " + std::to_string(A.cols()));
  double hit = 0, all = 0;
  for (Eigen::Index i = 0; i < A.rows(); ++i)
    for (Eigen::Index j = 0; j < A.cols(); ++j) {
      if ((opt.exclude_bos && j == 0) || (opt.exclude_current_token && i == j)) continue;
      const double a = A(i, j);
      all += a;
      hit += a * P(i, j);
    }
  return all > 0 ? hit / all : 0.0;
}

const RowMat& DetectorScores::of(HeadPattern p) const {
  return p == HeadPattern::PreviousToken ? previous_token : p == HeadPattern::DuplicateToken ? duplicate_token
                                                                                              : induction;
}

namespace {

void add_scores(const ModelConfig& c, const ForwardCache& cache, std::span<const int> seq, const DetectorOptions& opt,
                double weight, DetectorScores& s) {
  const HeadPattern kinds[] = {HeadPattern::PreviousToken, HeadPattern::DuplicateToken, HeadPattern::Induction};
  RowMat* outs[] = {&s.previous_token, &s.duplicate_token, &s.induction};
  for (int kind = 0; kind < 3; ++kind) {
    const RowMat P = detection_pattern(kinds[kind], seq);
    RowMat& out = *outs[kind];
    for (int l = 0; l < c.n_layers; ++l)
      for (int h = 0; h < c.n_heads; ++h) out(l, h) += float(detection_score(cache.attn(l, h, c.n_heads), P, opt) * weight);
  }
}

}  // namespace

DetectorPlan::DetectorPlan(const Model& m, std::vector<std::vector<int>> sequences, const DetectorOptions& opt)
    : seqs_(std::move(sequences)) {
  if (seqs_.empty()) throw Error("detect_heads: no sequences");
  const ModelConfig& c = m.config();
  for (RowMat* r : {&s_.previous_token, &s_.duplicate_token, &s_.induction}) *r = RowMat::Zero(c.n_layers, c.n_heads);
  const double weight = 1.0 / double(seqs_.size());
  for (size_t i = 0; i < seqs_.size(); ++i) {
    // Built now, so a sequence forward() rejects throws here, as detect_heads did.
    passes_.push_back(std::make_unique<ForwardPlan>(m, seqs_[i], patterns_only()));
    ForwardPlan* pass = passes_.back().get();
    add_units_of(pass, pass->units(), "head detector", double(seqs_[i].size()));
    add("head detector", double(seqs_[i].size()), [this, &m, i, pass, opt, weight] {
      add_scores(m.config(), pass->result().cache, seqs_[i], opt, weight, s_);
      passes_[i].reset();  // its patterns are no longer needed
    });
  }
}

DetectorPlan::~DetectorPlan() = default;

const DetectorScores& DetectorPlan::result() const {
  if (!done()) throw Error("head detector: result() before the computation finished");
  return s_;
}

DetectorScores detect_heads(const Model& m, const std::vector<std::vector<int>>& sequences,
                            const DetectorOptions& opt) {
  DetectorPlan p(m, sequences, opt);
  p.run();
  return p.result();
}

}  // namespace cs
