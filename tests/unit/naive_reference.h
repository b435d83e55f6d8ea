// Test-only reference implementation of the attention-only transformer, written
// independently of src/core: plain loops over std::vector<double>, reading the
// weights straight from the flat parameter block by TransformerLens name with
// explicit index arithmetic (row-major, e.g. W_Q[h][d][e] at (h*d_model + d)*d_head + e).
// It follows docs/model.md literally: no Eigen, no shared helpers with forward.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/model.h"

namespace cs::naive {

using Mat = std::vector<std::vector<double>>;  // [rows][cols]

inline Mat zeros(size_t r, size_t c) { return Mat(r, std::vector<double>(c, 0.0)); }

inline Mat transpose(const Mat& a) {
  Mat t = zeros(a.empty() ? 0 : a[0].size(), a.size());
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < a[i].size(); ++j) t[j][i] = a[i][j];
  return t;
}

// a [n, k] times b [k, m].
inline Mat matmul(const Mat& a, const Mat& b) {
  Mat c = zeros(a.size(), b.empty() ? 0 : b[0].size());
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t k = 0; k < b.size(); ++k)
      for (size_t j = 0; j < b[k].size(); ++j) c[i][j] += a[i][k] * b[k][j];
  return c;
}

// Element i of the tensor called `name` (flat row-major index).
inline double w(const Model& m, const std::string& name, size_t i) {
  const TensorSpec* s = m.find(name);
  if (!s) throw std::runtime_error("naive: missing tensor " + name);
  if (i >= s->numel) throw std::runtime_error("naive: index out of range in " + name);
  return double(m.data()[s->offset + i]);
}

// A tensor looked up once: t[i] is element i (flat row-major index), checked.
struct Tensor {
  const float* p = nullptr;
  size_t n = 0;
  std::string name;
  double operator[](size_t i) const {
    if (i >= n) throw std::runtime_error("naive: index out of range in " + name);
    return double(p[i]);
  }
};
inline Tensor tensor(const Model& m, const std::string& name) {
  const TensorSpec* s = m.find(name);
  if (!s) throw std::runtime_error("naive: missing tensor " + name);
  return Tensor{m.data() + s->offset, s->numel, name};
}

inline std::string blk(int l, const char* rest) { return "blocks." + std::to_string(l) + "." + rest; }

// LayerNorm of one row as docs/model.md writes it: x - mean; / sqrt(mean(x^2) + eps); * w + b.
// ln_prefix is "blocks.l.ln1" or "ln_final"; w/b only when the model has LN weights.
inline std::vector<double> norm_row(const Model& m, const std::vector<double>& x, const std::string& ln_prefix) {
  const ModelConfig& c = m.config();
  if (c.normalization == Norm::None) return x;
  const size_t D = x.size();
  double mean = 0;
  for (double v : x) mean += v;
  mean /= double(D);
  double var = 0;
  for (double v : x) var += (v - mean) * (v - mean);
  var /= double(D);
  std::vector<double> y(D);
  for (size_t d = 0; d < D; ++d) y[d] = (x[d] - mean) / std::sqrt(var + double(c.eps));
  if (c.normalization == Norm::LN) {
    const Tensor lw = tensor(m, ln_prefix + ".w"), lb = tensor(m, ln_prefix + ".b");
    for (size_t d = 0; d < D; ++d) y[d] = y[d] * lw[d] + lb[d];
  }
  return y;
}

struct Result {
  Mat logits;                  // [T][d_vocab_out]
  std::vector<Mat> resid;      // n_layers + 1 of [T][d_model]
  std::vector<Mat> pattern;    // n_layers * n_heads of [T][T]
  std::vector<Mat> head_out;   // n_layers * n_heads of [T][d_model]
};

// attn_scale: the config's value, or sqrt(d_head) when it is 0.
inline double attn_scale(const ModelConfig& c) {
  return c.attn_scale > 0 ? double(c.attn_scale) : std::sqrt(double(c.d_head));
}

// forced: patterns to use instead of computing them ([n_layers * n_heads] of
// [T][T]); ablate: heads whose outputs are left out (same indexing).
inline Result forward(const Model& m, const std::vector<int>& tokens, const std::vector<Mat>* forced = nullptr,
                      const std::vector<bool>* ablate = nullptr) {
  const ModelConfig& c = m.config();
  const size_t T = tokens.size(), D = size_t(c.d_model), H = size_t(c.n_heads), Dh = size_t(c.d_head);
  const size_t V = size_t(c.d_vocab_out > 0 ? c.d_vocab_out : c.d_vocab);
  const bool standard = c.positional == PosEmbed::Standard, shortformer = c.positional == PosEmbed::Shortformer;
  Result r;
  const Tensor W_E = tensor(m, "embed.W_E");
  Tensor W_pos;
  if (standard || shortformer) W_pos = tensor(m, "pos_embed.W_pos");
  Mat x = zeros(T, D);
  for (size_t t = 0; t < T; ++t)
    for (size_t d = 0; d < D; ++d) {
      x[t][d] = W_E[size_t(tokens[t]) * D + d];
      if (standard) x[t][d] += W_pos[t * D + d];
    }
  r.resid.push_back(x);
  for (int l = 0; l < c.n_layers; ++l) {
    Mat y(T), qk_in(T);
    for (size_t t = 0; t < T; ++t) {
      y[t] = norm_row(m, x[t], blk(l, "ln1"));
      qk_in[t] = y[t];
      if (shortformer)
        for (size_t d = 0; d < D; ++d) qk_in[t][d] += W_pos[t * D + d];
    }
    const Tensor W_Q = tensor(m, blk(l, "attn.W_Q")), W_K = tensor(m, blk(l, "attn.W_K")),
                 W_V = tensor(m, blk(l, "attn.W_V")), W_O = tensor(m, blk(l, "attn.W_O"));
    const Tensor b_Q = tensor(m, blk(l, "attn.b_Q")), b_K = tensor(m, blk(l, "attn.b_K")),
                 b_V = tensor(m, blk(l, "attn.b_V")), b_O = tensor(m, blk(l, "attn.b_O"));
    Mat next = x;
    for (size_t h = 0; h < H; ++h) {
      Mat q = zeros(T, Dh), k = zeros(T, Dh), v = zeros(T, Dh);
      for (size_t t = 0; t < T; ++t)
        for (size_t e = 0; e < Dh; ++e) {
          q[t][e] = b_Q[h * Dh + e];
          k[t][e] = b_K[h * Dh + e];
          v[t][e] = b_V[h * Dh + e];
          for (size_t d = 0; d < D; ++d) {
            const size_t i = (h * D + d) * Dh + e;
            q[t][e] += qk_in[t][d] * W_Q[i];
            k[t][e] += qk_in[t][d] * W_K[i];
            v[t][e] += y[t][d] * W_V[i];
          }
        }
      Mat A = zeros(T, T);
      for (size_t i = 0; i < T; ++i) {
        std::vector<double> s(i + 1);
        double mx = -1e300;
        for (size_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (size_t e = 0; e < Dh; ++e) dot += q[i][e] * k[j][e];
          s[j] = dot / attn_scale(c);
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (size_t j = 0; j <= i; ++j) sum += std::exp(s[j] - mx);
        for (size_t j = 0; j <= i; ++j) A[i][j] = std::exp(s[j] - mx) / sum;
      }
      if (forced) A = (*forced)[size_t(l) * H + h];
      const bool off = ablate && (*ablate)[size_t(l) * H + h];
      Mat out = zeros(T, D);
      for (size_t i = 0; i < T && !off; ++i) {
        std::vector<double> z(Dh, 0.0);
        for (size_t j = 0; j <= i; ++j)
          for (size_t e = 0; e < Dh; ++e) z[e] += A[i][j] * v[j][e];
        for (size_t d = 0; d < D; ++d)
          for (size_t e = 0; e < Dh; ++e) out[i][d] += z[e] * W_O[(h * Dh + e) * D + d];
      }
      for (size_t i = 0; i < T; ++i)
        for (size_t d = 0; d < D; ++d) next[i][d] += out[i][d];
      r.pattern.push_back(A);
      r.head_out.push_back(out);
    }
    for (size_t i = 0; i < T; ++i)
      for (size_t d = 0; d < D; ++d) next[i][d] += b_O[d];
    x = next;
    r.resid.push_back(x);
  }
  const Tensor W_U = tensor(m, "unembed.W_U"), b_U = tensor(m, "unembed.b_U");
  r.logits = zeros(T, V);
  for (size_t t = 0; t < T; ++t) {
    const std::vector<double> xf = norm_row(m, x[t], "ln_final");
    for (size_t o = 0; o < V; ++o) {
      double s = b_U[o];
      for (size_t d = 0; d < D; ++d) s += xf[d] * W_U[d * V + o];
      r.logits[t][o] = s;
    }
  }
  return r;
}

// Dense bigram table norm_final(W_E[s]) W_U + b_U, [d_vocab][d_vocab_out].
inline Mat bigram_table(const Model& m) {
  const ModelConfig& c = m.config();
  const size_t D = size_t(c.d_model), Vin = size_t(c.d_vocab);
  const size_t V = size_t(c.d_vocab_out > 0 ? c.d_vocab_out : c.d_vocab);
  const Tensor W_E = tensor(m, "embed.W_E"), W_U = tensor(m, "unembed.W_U"), b_U = tensor(m, "unembed.b_U");
  Mat out = zeros(Vin, V);
  for (size_t s = 0; s < Vin; ++s) {
    std::vector<double> x(D);
    for (size_t d = 0; d < D; ++d) x[d] = W_E[s * D + d];
    const std::vector<double> xf = norm_row(m, x, "ln_final");
    for (size_t o = 0; o < V; ++o) {
      double v = b_U[o];
      for (size_t d = 0; d < D; ++d) v += xf[d] * W_U[d * V + o];
      out[s][o] = v;
    }
  }
  return out;
}

// Row-wise log-softmax in double.
inline Mat log_softmax(const Mat& z) {
  Mat out = z;
  for (auto& row : out) {
    double mx = -1e300;
    for (double v : row) mx = std::max(mx, v);
    double s = 0;
    for (double v : row) s += std::exp(v - mx);
    const double lse = mx + std::log(s);
    for (double& v : row) v -= lse;
  }
  return out;
}

}  // namespace cs::naive
