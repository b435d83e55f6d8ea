// Forward pass of the attention-only transformer (forward.h), TransformerLens
// convention: the residual stream is a stack of row vectors x [T, d_model] and
// every weight multiplies on the right (x @ W).
//
// Cost is dominated by products, all done as Eigen GEMMs: per head q, k, v
// ([T, d_model] @ [d_model, d_head]), the scores and A v in blocks of query
// rows (each block against the keys it may see), the heads' outputs (one
// [T, n_heads*d_head] @ [n_heads*d_head, d_model] GEMM in row blocks when no
// per-head cache is wanted) and the unembedding ([T, d_model] @ W_U in blocks
// of columns). Each is a unit of ForwardPlan, so the page can spread a pass
// over frames; forward() runs the plan to the end.
#include "core/forward.h"
#include "core/kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"

namespace cs {

void normalize_rows(const Model& m, RowMat& x, int layer) {
  const ModelConfig& c = m.config();
  if (!c.normalizes()) return;
  const Eigen::Index D = x.cols();
  // Centre each row, then divide by its RMS: sqrt(mean(x_centered^2) + eps).
  const Eigen::VectorXf mean = x.rowwise().sum() / float(D);
  x.colwise() -= mean;
  const Eigen::ArrayXf inv_scale = (x.rowwise().squaredNorm().array() / float(D) + c.eps).rsqrt();
  x.array().colwise() *= inv_scale;
  if (c.has_ln_weights()) {
    const ConstVecMap w = layer >= 0 ? m.ln1_w(layer) : m.ln_final_w();
    const ConstVecMap b = layer >= 0 ? m.ln1_b(layer) : m.ln_final_b();
    x.array().rowwise() *= w.transpose().array();
    x.rowwise() += b.transpose();
  }
}

namespace {

void check_tokens(const Model& m, std::span<const int> tokens) {
  const ModelConfig& c = m.config();
  if (m.tensors().empty()) throw Error("forward: the model has no tensors (none loaded)");
  if (tokens.empty()) throw Error("forward: tokens is empty");
  if (c.has_pos() && tokens.size() > size_t(c.n_ctx))
    throw Error("forward: tokens has " + std::to_string(tokens.size()) + " positions, more than n_ctx " +
                std::to_string(c.n_ctx));
  for (size_t t = 0; t < tokens.size(); ++t)
    if (tokens[t] < 0 || tokens[t] >= c.d_vocab)
      throw Error("forward: tokens[" + std::to_string(t) + "] = " + std::to_string(tokens[t]) +
                  " is outside [0, d_vocab = " + std::to_string(c.d_vocab) + ")");
}

// In place: rows [r0, r0 + A.rows()) of a pattern, A holding their first
// r0 + A.rows() columns (the keys they may see): softmax over each row's
// causal part (columns 0..i of global row i); the columns after it become
// exactly 0. Only the causal part is read.
template <class Block>
void causal_softmax_rows(Block A, Eigen::Index r0) {
  for (Eigen::Index r = 0; r < A.rows(); ++r) {
    const Eigen::Index i = r0 + r;
    auto row = A.row(r);
    auto live = row.head(i + 1);
    const float mx = live.maxCoeff();
    live = (live.array() - mx).exp();
    live /= live.sum();
    if (i + 1 < A.cols()) row.tail(A.cols() - i - 1).setZero();
  }
}

// Rows r0..r0+n of out = (in W + b) * scale: in [T, d_model], W [d_model, d_head], b [d_head].
void project_rows(RowMat& out, const RowMat& in, ConstMatMap W, ConstVecMap b, Eigen::Index r0, Eigen::Index n,
                  float scale = 1.f) {
  auto o = out.middleRows(r0, n);
  kernels::matmul(in.middleRows(r0, n), W, o);
  o.rowwise() += b.transpose();
  if (scale != 1.f) o *= scale;
}

// Rows (or columns) per unit for about unit_macs multiply-adds each, at least 16.
Eigen::Index rows_for(double unit_macs, double macs_per_row, Eigen::Index total) {
  const double rows = std::min(unit_macs / std::max(macs_per_row, 1.0), double(std::max<Eigen::Index>(total, 16)));
  return std::max<Eigen::Index>(16, Eigen::Index(rows));
}

void check_options(const Model& m, size_t T, const ForwardOptions& opt) {
  const ModelConfig& c = m.config();
  const size_t heads = size_t(c.n_layers) * size_t(c.n_heads);
  if (!opt.ablate.empty() && opt.ablate.size() != heads)
    throw Error("forward: ablate has " + std::to_string(opt.ablate.size()) + " entries, expected n_layers * n_heads = " +
                std::to_string(heads));
  if (opt.frozen_patterns.empty()) return;
  if (opt.frozen_patterns.size() != heads)
    throw Error("forward: frozen_patterns has " + std::to_string(opt.frozen_patterns.size()) +
                " patterns, expected n_layers * n_heads = " + std::to_string(heads));
  for (size_t i = 0; i < heads; ++i) {
    const RowMat& A = opt.frozen_patterns[i];
    if (size_t(A.rows()) != T || size_t(A.cols()) != T)
      throw Error("forward: frozen_patterns[" + std::to_string(i) + "] (head " + std::to_string(i / size_t(c.n_heads)) +
                  "." + std::to_string(i % size_t(c.n_heads)) + ") is " + std::to_string(A.rows()) + " x " +
                  std::to_string(A.cols()) + ", expected " + std::to_string(T) + " x " + std::to_string(T) +
                  " (one row and column per token)");
  }
}

}  // namespace

ForwardPlan::ForwardPlan(const Model& m, std::span<const int> tokens, const ForwardOptions& opt, double unit_macs)
    : m_(m), tokens_(tokens.begin(), tokens.end()), opt_(opt) {
  const ModelConfig& c = m.config();
  check_tokens(m, tokens);
  check_options(m, tokens.size(), opt);
  const Eigen::Index T = Eigen::Index(tokens_.size());
  const Eigen::Index D = c.d_model, H = c.n_heads, Dh = c.d_head, Vo = c.vocab_out();
  const int L = c.n_layers;
  const double Td = double(T), Dd = double(D), Dhd = double(Dh);

  add("embedding", Td * Dd, [this, T, D, H, Dh, L] {
    ForwardCache& cache = res_.cache;
    if (opt_.keep_cache) {
      cache.resid.reserve(size_t(L) + 1);
      cache.pattern.reserve(size_t(L) * size_t(H));
      cache.head_out.reserve(size_t(L) * size_t(H));
    }
    // x0 = W_E[tokens] (+ W_pos[0..T) for Standard positions): [T, d_model].
    const ConstMatMap W_E = m_.W_E();
    x_.resize(T, D);
    for (Eigen::Index t = 0; t < T; ++t) x_.row(t) = W_E.row(tokens_[size_t(t)]);
    if (m_.config().positional == PosEmbed::Standard) x_ += m_.W_pos().topRows(T);
    if (opt_.keep_cache) cache.resid.push_back(x_);
    y_.resize(T, D);
    q_.resize(T, Dh);
    k_.resize(T, Dh);
    v_.resize(T, Dh);
    A_ = RowMat::Zero(T, T);  // columns a row block never writes stay 0
    z_.resize(T, H * Dh);
  });

  // Query rows per pattern unit (scores, softmax and A v of those rows), rows
  // per output-projection unit, W_U columns per unembedding unit.
  const Eigen::Index prows = rows_for(unit_macs, Dd * Dhd, T);  // q, k, v and one head's output
  const Eigen::Index qrows = rows_for(unit_macs, 2.0 * Td * Dhd, T);
  const Eigen::Index orows = rows_for(unit_macs, double(H * Dh) * Dd, T);
  const Eigen::Index ucols = rows_for(unit_macs, Td * Dd, Vo);
  for (int l = 0; l < L; ++l) {
    const std::string block = "block " + std::to_string(l);
    add(block + ": normalization", Td * Dd, [this, l, T] {
      y_ = x_;
      normalize_rows(m_, y_, l);
      if (m_.config().positional == PosEmbed::Shortformer) qk_in_ = y_ + m_.W_pos().topRows(T);  // Q and K only
    });
    for (int h = 0; h < int(H); ++h) {
      const std::string head = block + ", head " + std::to_string(h);
      const size_t idx = size_t(l) * size_t(H) + size_t(h);
      const bool frozen = !opt_.frozen_patterns.empty();
      // q, k and v of the head in blocks of rows (queries divided by attn_scale:
      // scores = q k^T / attn_scale). Concurrent: each unit writes its own rows
      // of q_, k_ or v_ and reads the block's input.
      for (Eigen::Index r0 = 0; r0 < T; r0 += prows) {
        const Eigen::Index n = std::min(prows, T - r0);
        if (!frozen) {
          add(head + ": queries", double(n) * Dd * Dhd, [this, l, h, r0, n] {
            project_rows(q_, qk_src(), m_.W_Q(l, h), m_.b_Q(l, h), r0, n, 1.f / m_.config().scale());
          }, /*concurrent=*/true);
          add(head + ": keys", double(n) * Dd * Dhd,
              [this, l, h, r0, n] { project_rows(k_, qk_src(), m_.W_K(l, h), m_.b_K(l, h), r0, n); },
              /*concurrent=*/true);
        }
        add(head + ": values", double(n) * Dd * Dhd,
            [this, l, h, r0, n] { project_rows(v_, y_, m_.W_V(l, h), m_.b_V(l, h), r0, n); }, /*concurrent=*/true);
      }
      add(head + ": pattern", 1, [] {});  // every row of q, k, v before any pattern row reads them
      // Concurrent: each unit writes its own rows of A_ and of the head's z_ columns.
      for (Eigen::Index r0 = 0; r0 < T; r0 += qrows) {
        const Eigen::Index n = std::min(qrows, T - r0), r1 = r0 + n;
        // Rows r0..r1 see keys 0..r1: scores [n, r1], softmax, then A v [n, d_head].
        add(head + ": pattern", 2.0 * double(n) * double(r1) * Dhd, [this, h, idx, frozen, r0, n, r1, Dh] {
          auto S = A_.block(r0, 0, n, r1);
          if (frozen) {
            S = opt_.frozen_patterns[idx].block(r0, 0, n, r1);
          } else {
            kernels::matmul(q_.middleRows(r0, n), k_.topRows(r1).transpose(), S);
            causal_softmax_rows(S, r0);
          }
          auto z = z_.block(r0, Eigen::Index(h) * Dh, n, Dh);
          if (!opt_.ablate.empty() && opt_.ablate[idx])
            z.setZero();  // the head's output z W_O is then 0 (and its cached head_out)
          else
            kernels::matmul(S, v_.topRows(r1), z);
        }, /*concurrent=*/true);
      }
      // Every pattern row before the next head's q, k, v overwrite their inputs.
      add(head + ": pattern", 1, [this] {
        if (opt_.keep_cache) res_.cache.pattern.push_back(A_);
      });
    }
    if (opt_.keep_cache) {
      // Each head's output z_h W_O[h] [T, d_model] kept, in blocks of rows.
      for (int h = 0; h < int(H); ++h)
        for (Eigen::Index r0 = 0; r0 < T; r0 += prows) {
          const Eigen::Index n = std::min(prows, T - r0);
          add(block + ": head outputs", double(n) * Dhd * Dd, [this, l, h, r0, n, T, D, Dh] {
            if (r0 == 0) res_.cache.head_out.emplace_back(T, D);
            auto out = res_.cache.head_out.back().middleRows(r0, n);
            kernels::matmul(z_.block(r0, Eigen::Index(h) * Dh, n, Dh), m_.W_O(l, h), out);
            x_.middleRows(r0, n) += out;
          });
        }
    } else {
      // W_O is [n_heads, d_head, d_model] contiguous: as a matrix it is
      // [n_heads * d_head, d_model], so sum_h z_h W_O[h] = z W_O (in row blocks).
      for (Eigen::Index r0 = 0; r0 < T; r0 += orows) {
        const Eigen::Index n = std::min(orows, T - r0);
        add(block + ": head outputs", double(n) * double(H * Dh) * Dd, [this, l, r0, n, H, Dh, D] {
          const ConstMatMap W_O_all(m_.W_O(l, 0).data(), H * Dh, D);
          kernels::matmul(z_.middleRows(r0, n), W_O_all, x_.middleRows(r0, n), /*accumulate=*/true);
        }, /*concurrent=*/true);  // its own rows of x_
      }
    }
    add(block + ": output bias", Td * Dd, [this, l] {
      x_.rowwise() += m_.b_O(l).transpose();
      if (opt_.keep_cache) res_.cache.resid.push_back(x_);
    });
  }

  if (opt_.logits) {
    // logits = norm_final(x_L) W_U + b_U: [T, d_vocab_out], in blocks of W_U's columns.
    // With summarize each block is folded into a summary and dropped: the
    // blocks go to kSummaryStrands strands, each folding its contiguous share
    // in order into its own summary, and the shares are merged in strand order
    // after. The strands do not depend on the thread count, so neither does
    // the result (docs/speed.md, "The logits' summary").
    const Eigen::Index blocks = (Vo + ucols - 1) / ucols;
    const int strands = opt_.summarize ? int(std::min<Eigen::Index>(kSummaryStrands, blocks)) : 0;
    add("final normalization", Td * Dd, [this, T, Vo, strands] {
      normalize_rows(m_, x_, -1);
      if (opt_.summarize) {
        res_.summary.reset(size_t(T), opt_.top_k, int(Vo));
        parts_.assign(size_t(strands), LogitSummary{});
        for (LogitSummary& p : parts_) p.reset(size_t(T), opt_.top_k, int(Vo));
      } else {
        res_.logits.resize(T, Vo);
      }
    });
    if (opt_.summarize) {
      for (int st = 0; st < strands; ++st) {
        const Eigen::Index b0 = blocks * st / strands, b1 = blocks * (st + 1) / strands;
        for (Eigen::Index b = b0; b < b1; ++b) {
          const Eigen::Index c0 = b * ucols, n = std::min(ucols, Vo - c0);
          add_to_strand("unembedding", Td * Dd * double(n), [this, st, c0, n] {
            RowMat block(x_.rows(), n);
            kernels::matmul(x_, m_.W_U().middleCols(c0, n), block);
            block.rowwise() += m_.b_U().segment(c0, n).transpose();
            parts_[size_t(st)].add_block(block, c0, tokens_);
          }, /*new_strand=*/b == b0);
        }
      }
      add("unembedding: merging the shares", Td * double(strands), [this] {
        for (const LogitSummary& p : parts_) res_.summary.merge(p);
        parts_.clear();
      });
    } else {
      for (Eigen::Index c0 = 0; c0 < Vo; c0 += ucols) {
        const Eigen::Index n = std::min(ucols, Vo - c0);
        add("unembedding", Td * Dd * double(n), [this, c0, n] {
          auto out = res_.logits.middleCols(c0, n);
          kernels::matmul(x_, m_.W_U().middleCols(c0, n), out);
          out.rowwise() += m_.b_U().segment(c0, n).transpose();
        }, /*concurrent=*/true);  // its own columns of the logits
      }
    }
  }
  add("done", 1.0, [this] {
    // Scratch goes; the result stays.
    if (opt_.summarize && opt_.logits) res_.summary.finish();
    x_ = y_ = qk_in_ = q_ = k_ = v_ = A_ = z_ = RowMat();
  });
}

const RowMat& ForwardPlan::qk_src() const {
  return m_.config().positional == PosEmbed::Shortformer ? qk_in_ : y_;
}

const ForwardResult& ForwardPlan::result() const {
  if (!done()) throw Error("forward: result() before the computation finished");
  return res_;
}

ForwardResult ForwardPlan::take() {
  if (!done()) throw Error("forward: take() before the computation finished");
  return std::move(res_);
}

ForwardResult forward(const Model& m, std::span<const int> tokens, const ForwardOptions& opt) {
  ForwardPlan p(m, tokens, opt);
  p.run();
  return p.take();
}

namespace {

// log sum_j exp(row_j), numerically stable.
float log_sum_exp(const Eigen::Ref<const Eigen::RowVectorXf>& row) {
  const float mx = row.maxCoeff();
  if (!std::isfinite(mx)) return mx;
  return mx + std::log((row.array() - mx).exp().sum());
}

}  // namespace

std::vector<float> token_losses(const RowMat& logits, std::span<const int> tokens) {
  if (size_t(logits.rows()) != tokens.size())
    throw Error("token_losses: logits has " + std::to_string(logits.rows()) + " rows but tokens has " +
                std::to_string(tokens.size()) + " entries");
  std::vector<float> out;
  if (tokens.size() < 2) return out;
  out.reserve(tokens.size() - 1);
  for (size_t t = 0; t + 1 < tokens.size(); ++t) {
    const int next = tokens[t + 1];
    if (next < 0 || next >= logits.cols())
      throw Error("token_losses: tokens[" + std::to_string(t + 1) + "] = " + std::to_string(next) +
                  " is outside [0, " + std::to_string(logits.cols()) + ")");
    const auto row = logits.row(Eigen::Index(t));
    out.push_back(log_sum_exp(row) - row(next));
  }
  return out;
}

float mean_loss(const RowMat& logits, std::span<const int> tokens) {
  const std::vector<float> l = token_losses(logits, tokens);
  if (l.empty()) return std::numeric_limits<float>::quiet_NaN();
  double s = 0;
  for (float v : l) s += v;
  return float(s / double(l.size()));
}

void LogitSummary::reset(size_t T, int top_k, int d_vocab_out) {
  k = std::clamp(top_k, 0, d_vocab_out);
  log_norm.assign(T, 0.f);
  top_ids.assign(T * size_t(k), -1);
  top_logits.assign(T * size_t(k), -std::numeric_limits<float>::infinity());
  next_logit.assign(T > 0 ? T - 1 : 0, std::numeric_limits<float>::quiet_NaN());
  max_.assign(T, -std::numeric_limits<float>::infinity());
  sum_.assign(T, 0.f);
}

namespace {

// The summary's total order on (logit, id): larger logit first, then lower id.
inline bool ranks_before(float va, int ia, float vb, int ib) { return va > vb || (va == vb && ia < ib); }

// Puts (v, id) into a list of k entries sorted by ranks_before (unused
// entries: id -1, logit -inf, at the end) if it ranks before the last one.
inline void insert_top(float* vals, int* ids, int k, float v, int id) {
  if (!(ids[k - 1] < 0 || ranks_before(v, id, vals[k - 1], ids[k - 1]))) return;
  int i = k - 1;
  for (; i > 0 && (ids[i - 1] < 0 || ranks_before(v, id, vals[i - 1], ids[i - 1])); --i) {
    vals[i] = vals[i - 1];
    ids[i] = ids[i - 1];
  }
  vals[i] = v;
  ids[i] = id;
}

}  // namespace

void LogitSummary::add_block(const Eigen::Ref<const RowMat>& block, Eigen::Index c0, std::span<const int> tokens) {
  const size_t T = max_.size();
  if (size_t(block.rows()) != T || tokens.size() != T)
    throw Error("LogitSummary: a block of " + std::to_string(block.rows()) + " rows for " + std::to_string(T) +
                " positions and " + std::to_string(tokens.size()) + " tokens");
  const Eigen::Index n = block.cols();
  for (size_t t = 0; t < T; ++t) {
    const auto row = block.row(Eigen::Index(t));
    const float* x = row.data();  // row-major: contiguous
    // Running log-sum-exp: sum_ holds sum exp(logit - max_).
    const float bm = row.maxCoeff();
    if (bm > max_[t]) {
      sum_[t] = sum_[t] * std::exp(max_[t] - bm) + kernels::sum_exp(x, n, bm);
      max_[t] = bm;
    } else {
      sum_[t] += kernels::sum_exp(x, n, max_[t]);
    }
    if (t + 1 < T && tokens[t + 1] >= c0 && tokens[t + 1] < c0 + n) next_logit[t] = row(tokens[t + 1] - c0);
    if (k == 0) continue;
    // Into the k held, by the total order: only an entry above the k-th can
    // enter, and after the first blocks few are.
    float* vals = top_logits.data() + t * size_t(k);
    int* ids = top_ids.data() + t * size_t(k);
    for (Eigen::Index j = 0; j < n; ++j) {
      const float v = x[j];
      if (ids[k - 1] < 0 || v >= vals[k - 1]) insert_top(vals, ids, k, v, int(c0 + j));
    }
  }
}

void LogitSummary::merge(const LogitSummary& o) {
  const size_t T = max_.size();
  if (o.max_.size() != T || o.k != k)
    throw Error("LogitSummary: merging a summary of " + std::to_string(o.max_.size()) + " positions and k " +
                std::to_string(o.k) + " into one of " + std::to_string(T) + " and k " + std::to_string(k));
  for (size_t t = 0; t < T; ++t) {
    if (o.max_[t] > max_[t]) {
      sum_[t] = sum_[t] * std::exp(max_[t] - o.max_[t]) + o.sum_[t];
      max_[t] = o.max_[t];
    } else if (o.max_[t] > -std::numeric_limits<float>::infinity()) {
      sum_[t] += o.sum_[t] * std::exp(o.max_[t] - max_[t]);
    }
    if (t + 1 < T && !std::isnan(o.next_logit[t])) next_logit[t] = o.next_logit[t];
    float* vals = top_logits.data() + t * size_t(k);
    int* ids = top_ids.data() + t * size_t(k);
    for (int i = 0; i < k && o.top_ids[t * size_t(k) + size_t(i)] >= 0; ++i)
      insert_top(vals, ids, k, o.top_logits[t * size_t(k) + size_t(i)], o.top_ids[t * size_t(k) + size_t(i)]);
  }
}

void LogitSummary::finish() {
  for (size_t t = 0; t < max_.size(); ++t)
    log_norm[t] = std::isfinite(max_[t]) ? max_[t] + std::log(sum_[t]) : max_[t];
  max_.clear();
  sum_.clear();
}

std::vector<float> LogitSummary::losses() const {
  std::vector<float> out(next_logit.size());
  for (size_t t = 0; t < out.size(); ++t) out[t] = log_norm[t] - next_logit[t];
  return out;
}

float LogitSummary::loss() const {
  const std::vector<float> l = losses();
  if (l.empty()) return std::numeric_limits<float>::quiet_NaN();
  double s = 0;
  for (float v : l) s += v;
  return float(s / double(l.size()));
}

RowMat log_softmax_rows(const RowMat& logits) {
  RowMat out(logits.rows(), logits.cols());
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    const auto row = logits.row(i);
    out.row(i) = row.array() - log_sum_exp(row);
  }
  return out;
}

}  // namespace cs
