// Path expansion and term importance (paths.h; docs/two-layer.md, "Paths").
#include "core/paths.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/error.h"

namespace cs {

int PathTerm::order() const {
  switch (kind) {
    case kDirect: return 0;
    case kHeads: return int(heads.size());
    default: return -1;
  }
}

std::string PathTerm::name() const {
  switch (kind) {
    case kDirect: return "direct";
    case kBiases: return "biases";
    case kHigherOrder: return "higher order";
    case kHeads: break;
  }
  std::string s;
  for (const HeadId& h : heads) s += (s.empty() ? "" : " > ") + std::to_string(h.layer) + "." + std::to_string(h.head);
  return s;
}

namespace {

// 1 / scale of each row of a stream as the normalization computes it: [T].
Eigen::VectorXf inv_scales(const Model& m, const RowMat& x) {
  const float D = float(x.cols());
  const Eigen::VectorXf mean = x.rowwise().sum() / D;
  const Eigen::VectorXf sq = (x.colwise() - mean).rowwise().squaredNorm();
  return (sq.array() / D + m.config().eps).rsqrt().matrix();
}

// The linear part of normalization `layer` (-1: final) with frozen scales:
// ((X - rowmean(X)) / s) o w. Identity without normalization.
RowMat frozen_norm(const Model& m, const RowMat& X, const Eigen::VectorXf& inv, int layer) {
  if (!m.config().normalizes()) return X;
  RowMat Y = X;
  const Eigen::VectorXf mean = Y.rowwise().sum() / float(Y.cols());
  Y.colwise() -= mean;
  Y.array().colwise() *= inv.array();
  if (m.config().has_ln_weights()) {
    const ConstVecMap w = layer >= 0 ? m.ln1_w(layer) : m.ln_final_w();
    Y.array().rowwise() *= w.transpose().array();
  }
  return Y;
}

// The normalization's constant part b (zero without LN weights): [d_model].
Vec norm_bias(const Model& m, int layer) {
  if (!m.config().has_ln_weights()) return Vec::Zero(m.config().d_model);
  return layer >= 0 ? Vec(m.ln1_b(layer)) : Vec(m.ln_final_b());
}

void check_cache(const Model& m, size_t T, const ForwardCache& cache) {
  const ModelConfig& c = m.config();
  const size_t L = size_t(c.n_layers), H = size_t(c.n_heads);
  if (cache.resid.size() != L + 1 || cache.pattern.size() != L * H)
    throw Error("expand_paths: the cache has " + std::to_string(cache.resid.size()) + " residual streams and " +
                std::to_string(cache.pattern.size()) + " patterns, expected n_layers + 1 = " + std::to_string(L + 1) +
                " and n_layers * n_heads = " + std::to_string(L * H) + " (run forward with keep_cache)");
  for (const RowMat& r : cache.resid)
    if (size_t(r.rows()) != T || r.cols() != c.d_model)
      throw Error("expand_paths: a cached residual stream is " + std::to_string(r.rows()) + " x " +
                  std::to_string(r.cols()) + ", expected " + std::to_string(T) + " x d_model = " +
                  std::to_string(c.d_model) + " (the cache of another sequence?)");
  for (const RowMat& A : cache.pattern)
    if (size_t(A.rows()) != T || size_t(A.cols()) != T)
      throw Error("expand_paths: a cached pattern is " + std::to_string(A.rows()) + " x " + std::to_string(A.cols()) +
                  ", expected " + std::to_string(T) + " x " + std::to_string(T));
}

}  // namespace

namespace {

// The direct path and every path of 1..max_order heads, in expand_paths'
// order: by order, each order in the order found (by the last head's layer,
// then head, then the earlier path's place).
std::vector<PathTerm> head_path_terms(int L, int H, int max_order) {
  std::vector<PathTerm> terms{PathTerm{PathTerm::kDirect, {}}};
  for (int l = 0; l < L; ++l) {
    const size_t existing = terms.size();
    for (int h = 0; h < H; ++h)
      for (size_t i = 0; i < existing; ++i) {
        if (terms[i].order() + 1 > max_order) continue;
        PathTerm t{PathTerm::kHeads, terms[i].heads};
        t.heads.push_back(HeadId{l, h});
        terms.push_back(std::move(t));
      }
  }
  std::stable_sort(terms.begin(), terms.end(),
                   [](const PathTerm& a, const PathTerm& b) { return a.order() < b.order(); });
  return terms;
}

// The path's heads for every path of more than max_order heads (one head per
// layer, layers increasing): what "higher order" sums.
void long_paths(int L, int H, int max_order, int from, std::vector<HeadId>& cur, std::vector<std::vector<HeadId>>& out) {
  if (int(cur.size()) > max_order) out.push_back(cur);
  for (int l = from; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      cur.push_back(HeadId{l, h});
      long_paths(L, H, max_order, l + 1, cur, out);
      cur.pop_back();
    }
}

}  // namespace

// The expansion at one position, from the right (docs/two-layer.md, "One
// prediction's split"): a path's term at row p is
//   inv_f,p * N_f( (c x0) N_a1 W_OV1 N_a2 W_OV2 ... )
// where N_l is the normalization's linear part without its scale (centre,
// times w), and the row c [R = p + 1] carries the patterns and the scales
// back from p: c = A_n[p, :] o inv_an, then c <- (c A_k) o inv_ak for the
// earlier heads. Each path costs a few R x R vector products and one
// R x d_model one: on a long prompt of a wide model far less than the full
// expansion's streams. The bias term is the normalized output minus every
// other term.
PathsAtPlan::PathsAtPlan(const Model& m, const ForwardCache& cache, int max_order, int position)
    : m_(m), cache_(cache), position_(position) {
  const ModelConfig& c = m.config();
  const int L = c.n_layers, H = c.n_heads;
  const Eigen::Index R = Eigen::Index(position) + 1, D = c.d_model;
  p_.max_order = max_order;
  p_.position = position;
  p_.terms = head_path_terms(L, H, max_order);
  p_.resid.resize(p_.terms.size());
  const double per_path = double(R) * double(R) * double(L) + double(R) * double(D);
  add("logit split by path: scales", double(L + 1) * double(R) * double(D), [this, L, R] {
    const ModelConfig& c = m_.config();
    inv_.resize(size_t(L) + 1);
    for (int l = 0; l <= L; ++l)
      inv_[size_t(l)] = c.normalizes() ? inv_scales(m_, RowMat(cache_.resid[size_t(l)].topRows(R)))
                                       : Eigen::VectorXf::Ones(R);  // no scales without normalization
  });
  // One unit per last head (the paths ending in it), the direct path with the first.
  std::vector<std::vector<size_t>> groups(size_t(L) * size_t(H) + 1);
  for (size_t i = 0; i < p_.terms.size(); ++i) {
    const PathTerm& t = p_.terms[i];
    groups[t.heads.empty() ? 0 : 1 + size_t(t.heads.back().layer) * size_t(H) + size_t(t.heads.back().head)].push_back(i);
  }
  for (const std::vector<size_t>& g : groups)
    if (!g.empty())
      add("logit split by path", double(g.size()) * per_path, [this, g] {
        for (size_t i : g) p_.resid[i] = RowMat(term_row(p_.terms[i].heads));
      });
  if (L > max_order) {
    std::vector<std::vector<HeadId>> paths;
    std::vector<HeadId> cur;
    long_paths(L, H, max_order, 0, cur, paths);
    add("logit split by path: longer paths", double(paths.size()) * per_path, [this, paths, D] {
      Eigen::RowVectorXf rest = Eigen::RowVectorXf::Zero(D);
      for (const auto& path : paths) rest += term_row(path);
      p_.terms.push_back(PathTerm{PathTerm::kHigherOrder, {}});
      p_.resid.push_back(RowMat(rest));
    });
  }
  add("logit split by path", double(D) * double(p_.terms.size()), [this, L, D] {
    // Biases: the normalized output at the position (with its b) minus everything above.
    Eigen::RowVectorXf sum = Eigen::RowVectorXf::Zero(D);
    for (const RowMat& r : p_.resid) sum += r.row(0);
    RowMat y = cache_.resid[size_t(L)].row(position_);
    normalize_rows(m_, y, -1);
    p_.terms.push_back(PathTerm{PathTerm::kBiases, {}});
    p_.resid.push_back(RowMat(y.row(0) - sum));
  });
}

// A path's term at the position (the comment above PathsAtPlan's constructor).
Eigen::RowVectorXf PathsAtPlan::term_row(const std::vector<HeadId>& heads) const {
  const ModelConfig& c = m_.config();
  const int H = c.n_heads, L = c.n_layers;
  const Eigen::Index R = Eigen::Index(position_) + 1;
  // N_l on a row: centre, times w_l (identity without normalization).
  auto n_row = [&](Eigen::RowVectorXf v, int layer) {
    if (!c.normalizes()) return v;
    v.array() -= v.mean();
    if (c.has_ln_weights()) v.array() *= (layer >= 0 ? m_.ln1_w(layer) : m_.ln_final_w()).transpose().array();
    return v;
  };
  Eigen::RowVectorXf v;
  if (heads.empty()) {
    v = cache_.resid[0].row(position_);
  } else {
    const HeadId& last = heads.back();
    Eigen::RowVectorXf w = cache_.attn(last.layer, last.head, H).row(position_).head(R);
    w.array() *= inv_[size_t(last.layer)].transpose().array();
    for (size_t k = heads.size() - 1; k-- > 0;) {
      const HeadId& hk = heads[k];
      w = (w * cache_.attn(hk.layer, hk.head, H).topLeftCorner(R, R)).eval();
      w.array() *= inv_[size_t(hk.layer)].transpose().array();
    }
    v = w * cache_.resid[0].topRows(R);  // [1, d_model]
    for (const HeadId& hk : heads) v = (n_row(v, hk.layer) * m_.W_V(hk.layer, hk.head)) * m_.W_O(hk.layer, hk.head);
  }
  return inv_[size_t(L)][R - 1] * n_row(v, -1);
}

PathExpansion PathsAtPlan::take() {
  if (!done()) throw Error("expand_paths: take() before the computation finished");
  return std::move(p_);
}

PathExpansion expand_paths(const Model& m, std::span<const int> tokens, const ForwardCache& cache, int max_order,
                           int position) {
  const ModelConfig& c = m.config();
  if (max_order < 0) throw Error("expand_paths: max_order is " + std::to_string(max_order) + ", expected >= 0");
  const Eigen::Index T = Eigen::Index(tokens.size()), D = c.d_model;
  check_cache(m, size_t(T), cache);
  if (position >= T)
    throw Error("expand_paths: position " + std::to_string(position) + " is outside [0, T = " + std::to_string(T) + ")");
  if (position >= 0) {
    PathsAtPlan plan(m, cache, max_order, position);
    plan.run();
    return plan.take();
  }
  const int L = c.n_layers, H = c.n_heads;

  // Each term's contribution to the stream x_l (before block l): [T, d_model].
  std::vector<PathTerm> terms;
  std::vector<RowMat> stream;
  terms.push_back(PathTerm{PathTerm::kDirect, {}});
  stream.push_back(cache.resid[0]);  // x0 = W_E[tokens] (+ W_pos): the embedding as the run had it
  RowMat biases = RowMat::Zero(T, D);
  const bool higher = L > max_order;
  RowMat rest = RowMat::Zero(T, D);  // paths of more than max_order heads

  for (int l = 0; l < L; ++l) {
    const Eigen::VectorXf inv = inv_scales(m, cache.resid[size_t(l)]);
    const size_t existing = terms.size();
    // The constant part of the normalized input: lin(biases) + b_l.
    const RowMat y_const = frozen_norm(m, biases, inv, l).rowwise() + norm_bias(m, l).transpose();
    const RowMat y_rest = frozen_norm(m, rest, inv, l);
    RowMat new_biases = biases, new_rest = rest;
    new_biases.rowwise() += m.b_O(l).transpose();
    for (int h = 0; h < H; ++h) {
      const RowMat& A = cache.attn(l, h, H);  // [T(query), T(key)]
      // A (y W_V) W_O: [T, d_model]; b_V goes with the constant part.
      auto head = [&](const RowMat& y, bool with_bias) {
        RowMat v = y * m.W_V(l, h);
        if (with_bias) v.rowwise() += m.b_V(l, h).transpose();
        return RowMat((A * v) * m.W_O(l, h));
      };
      new_biases += head(y_const, true);
      if (higher) new_rest += head(y_rest, false);
      for (size_t i = 0; i < existing; ++i) {
        const RowMat out = head(frozen_norm(m, stream[i], inv, l), false);
        if (terms[i].order() + 1 > max_order) {
          new_rest += out;
          continue;
        }
        PathTerm t{PathTerm::kHeads, terms[i].heads};
        t.heads.push_back(HeadId{l, h});
        terms.push_back(std::move(t));
        stream.push_back(out);
      }
    }
    biases = std::move(new_biases);
    rest = std::move(new_rest);
  }

  PathExpansion p;
  p.max_order = max_order;
  const Eigen::VectorXf inv_f = inv_scales(m, cache.resid[size_t(L)]);
  // By order (direct, single heads, pairs, ...), each order in the order found
  // (by the last head's layer, then head).
  std::vector<size_t> idx(terms.size());
  std::iota(idx.begin(), idx.end(), size_t(0));
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return terms[a].order() < terms[b].order(); });
  for (size_t i : idx) {
    p.terms.push_back(std::move(terms[i]));
    p.resid.push_back(frozen_norm(m, stream[i], inv_f, -1));
  }
  if (higher) {
    p.terms.push_back(PathTerm{PathTerm::kHigherOrder, {}});
    p.resid.push_back(frozen_norm(m, rest, inv_f, -1));
  }
  p.terms.push_back(PathTerm{PathTerm::kBiases, {}});
  p.resid.push_back(frozen_norm(m, biases, inv_f, -1).rowwise() + norm_bias(m, -1).transpose());
  return p;
}

Vec path_logit_contributions(const Model& m, const PathExpansion& p, int position, int token) {
  const Eigen::Index T = p.resid.empty() ? 0 : p.resid[0].rows();
  if (p.position >= 0 && position != p.position)
    throw Error("path_logit_contributions: position " + std::to_string(position) + ", but the expansion is of position " +
                std::to_string(p.position) + " only");
  const Eigen::Index row = p.position >= 0 ? 0 : position;
  if (position < 0 || row >= T)
    throw Error("path_logit_contributions: position " + std::to_string(position) + " is outside [0, T = " +
                std::to_string(T) + ")");
  const int V = m.config().vocab_out();
  if (token < 0 || token >= V)
    throw Error("path_logit_contributions: token " + std::to_string(token) + " is outside [0, d_vocab_out = " +
                std::to_string(V) + ")");
  const auto u = m.W_U().col(token);
  Vec out(Eigen::Index(p.terms.size()));
  for (size_t i = 0; i < p.terms.size(); ++i) {
    out[Eigen::Index(i)] = p.resid[i].row(row).dot(u.transpose());
    if (p.terms[i].kind == PathTerm::kBiases) out[Eigen::Index(i)] += m.b_U()[token];
  }
  return out;
}

RowMat path_logits(const Model& m, const PathExpansion& p, const std::vector<char>& keep) {
  if (keep.size() != p.terms.size())
    throw Error("path_logits: keep has " + std::to_string(keep.size()) + " entries, the expansion has " +
                std::to_string(p.terms.size()) + " terms");
  const Eigen::Index T = p.resid.empty() ? 0 : p.resid[0].rows();
  RowMat x = RowMat::Zero(T, m.config().d_model);
  bool bias = false;
  for (size_t i = 0; i < keep.size(); ++i)
    if (keep[i]) {
      x += p.resid[i];
      bias = bias || p.terms[i].kind == PathTerm::kBiases;
    }
  RowMat logits = x * m.W_U();
  if (bias) logits.rowwise() += m.b_U().transpose();
  return logits;
}

size_t path_term_count(const ModelConfig& c, int max_order) {
  // direct and head paths + higher order (when cut) + biases
  return head_path_terms(c.n_layers, c.n_heads, max_order).size() + (c.n_layers > max_order ? 1 : 0) + 1;
}

namespace {

double loss_sum(const RowMat& logits, const std::vector<int>& seq) {
  double s = 0;
  for (float v : token_losses(logits, seq)) s += v;
  return s;
}

}  // namespace

TermImportancePlan::TermImportancePlan(const Model& m, std::vector<std::vector<int>> sequences, int max_order)
    : m_(m), seqs_(std::move(sequences)), max_order_(max_order) {
  const ModelConfig& c = m.config();
  if (max_order < 0) throw Error("term importance: max_order is " + std::to_string(max_order) + ", expected >= 0");
  std::erase_if(seqs_, [](const std::vector<int>& s) { return s.size() < 2; });
  if (seqs_.empty()) throw Error("term_importance: no sequence has two tokens or more");
  const size_t n = path_term_count(c, max_order);
  r_.loss_by_order.assign(size_t(max_order) + 1, 0.0);
  r_.loss_without.assign(n, 0.0);
  const double D = double(c.d_model), V = double(c.vocab_out());
  for (size_t si = 0; si < seqs_.size(); ++si) {
    const double T = double(seqs_[si].size());
    const double per_head = T * D * double(c.d_head) * 2 + T * T * double(c.d_head);
    add("forward pass and path expansion", T * D * V + double(n) * per_head, [this, si] {
      const std::vector<int>& seq = seqs_[si];
      const ForwardResult run = forward(m_, seq);
      p_ = expand_paths(m_, seq, run.cache, max_order_);
      if (r_.terms.empty()) r_.terms = p_.terms;
      r_.tokens += int(seq.size()) - 1;
      r_.loss_full += loss_sum(run.logits, seq);
    });
    for (int k = 0; k <= max_order; ++k)
      add("loss by path order", T * D * V, [this, si, k] {
        const size_t n = p_.terms.size();
        std::vector<char> keep(n);
        for (size_t i = 0; i < n; ++i) {
          const PathTerm& t = p_.terms[i];
          keep[i] = t.kind == PathTerm::kBiases || (t.order() >= 0 && t.order() <= k) ||
                    (k == max_order_ && t.kind == PathTerm::kHigherOrder);
        }
        r_.loss_by_order[size_t(k)] += loss_sum(path_logits(m_, p_, keep), seqs_[si]);
      });
    for (size_t i = 0; i < n; ++i)
      add("loss without each term", T * D * V, [this, si, i] {
        std::vector<char> keep(p_.terms.size(), 1);
        keep[i] = 0;
        r_.loss_without[i] += loss_sum(path_logits(m_, p_, keep), seqs_[si]);
      });
  }
  add("term importance", 1.0, [this] {
    const double inv = 1.0 / double(r_.tokens);
    r_.loss_full *= inv;
    for (double& v : r_.loss_by_order) v *= inv;
    for (double& v : r_.loss_without) v *= inv;
    p_ = PathExpansion();
  });
}

const TermImportance& TermImportancePlan::result() const {
  if (!done()) throw Error("term importance: result() before the computation finished");
  return r_;
}

TermImportance term_importance(const Model& m, const std::vector<std::vector<int>>& sequences, int max_order) {
  TermImportancePlan plan(m, sequences, max_order);
  plan.run();
  return plan.result();
}

}  // namespace cs
