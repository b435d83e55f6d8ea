// OV and QK circuits of one attention head, and the eigenvalue copying score
// ("A Mathematical Framework for Transformer Circuits", called [F]; the math:
// docs/one-layer.md, the tensors: docs/model.md).
//
// Convention: TransformerLens, row vectors, x @ W. The paper writes the same
// matrices acting on column vectors, so every TL matrix here is the
// transpose of the paper's:
//   paper                         TL (here)                          shape
//   W_OV  = W_O W_V               ov_circuit  = W_V W_O              [d_model, d_model]
//   W_QK  = W_Q^T W_K             qk_circuit  = W_Q W_K^T            [d_model, d_model]
//   OV circuit W_U W_OV W_E       full OV     = E W_V W_O W_U        [d_vocab, d_vocab_out]
//                                 (row = source token attended to, column = output logit)
// Transposing does not change eigenvalues, so the copying score is the same
// in either convention.
//
// E, the token embeddings as the head reads them: the rows of W_E, each
// passed through the normalization of block l (ln1) when `normalize_embed`
// is set, as the paper does for one-layer skip-trigrams ("the LayerNorm is
// applied to each row of W_E"); W_E as is otherwise. Biases (b_V, b_O, b_U)
// are not part of the circuit: they add the same vector whatever the source
// token. The final LayerNorm is not linear and is left out (on processed
// weights its w and b are already folded into W_U).
//
// Eigenvalues: the full OV circuit E W_V W_O W_U (d_vocab x d_vocab) has rank
// at most d_head, and lambda(AB) = lambda(BA) for the nonzero eigenvalues, so
// they come from the small d_head x d_head matrix W_O W_U E W_V; the dense
// vocab x vocab matrix is never formed. Likewise the QK circuit
// E W_Q W_K^T E^T (d_vocab x d_vocab) from W_K^T E^T E W_Q (d_head x d_head).
//
// The vocabulary-wide sums these small matrices need (E^T E, W_U E, W_U W_U^T)
// are accumulated once per model in row chunks (EmbedGrams below), in double,
// and every head's small matrices are a few d_model x d_model products away.
// Definitions and formulas: docs/one-layer.md.
#pragma once
#include <complex>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/sliced.h"

namespace cs {

class VocabMatrix;  // core/vocab_matrix.h
struct RowStats;    // core/vocab_matrix.h

// W_V[h] W_O[h]: [d_model, d_model] (TL; the paper's W_OV transposed).
RowMat ov_circuit(const Model& m, int layer, int head);
// W_Q[h] W_K[h]^T: [d_model, d_model] (TL; the paper's W_QK transposed):
// score(query row x, key row y) = x qk_circuit y^T (before attn_scale and biases).
RowMat qk_circuit(const Model& m, int layer, int head);

// Throws cs::Error naming `fn` when (layer, head) is not a head of m.
void check_head(const Model& m, int layer, int head, const char* fn);
// Throws cs::Error naming `fn` unless l1.h1 and l2.h2 are heads of m with l1 < l2
// (an earlier and a later head: a virtual head, a composition term).
void check_head_pair(const Model& m, int l1, int h1, int l2, int h2, const char* fn);
// "fn(layer, head)": how error messages name a head's matrix.
std::string head_name(const char* fn, int layer, int head);

struct CircuitOptions {
  bool normalize_embed = true;  // apply block `layer`'s normalization to each row of W_E (see above)
  // row_stats of W_E's rows, when computed beforehand (LoadedModel::embed_stats):
  // a row or column of a circuit then reads W_E once. Optional; must belong
  // to this model's W_E.
  std::shared_ptr<const RowStats> embed_stats;
};

// E as the head of block `layer` reads it (see above): [d_vocab, d_model].
RowMat embed_for_layer(const Model& m, int layer, const CircuitOptions& opt = {});

// The full OV circuit E W_V W_O W_U: [d_vocab, d_vocab_out]. Dense, so only
// for small vocabularies (tests, a few hundred tokens); entry (s, o) is the
// logit effect on output token o of attending to source token s.
RowMat full_ov_circuit(const Model& m, int layer, int head, const CircuitOptions& opt = {});

// The d_head x d_head matrix W_O W_U E W_V (double precision), whose
// eigenvalues are the nonzero eigenvalues of the full OV circuit (and zeros).
Eigen::MatrixXd ov_small_matrix(const Model& m, int layer, int head, const CircuitOptions& opt = {});

// The d_head eigenvalues of ov_small_matrix (Eigen's EigenSolver), sorted by
// descending absolute value. They include the nonzero eigenvalues of the full
// OV circuit; the others are (numerically) zero. Throws cs::Error when
// d_vocab != d_vocab_out (the full circuit is not square), or layer / head is
// out of range.
std::vector<std::complex<double>> ov_eigenvalues(const Model& m, int layer, int head,
                                                 const CircuitOptions& opt = {});

// Copying score of a set of eigenvalues: sum_i Re(lambda_i) / sum_i |lambda_i|,
// in [-1, 1]; positive means the head copies on average ([F]: "positive
// eigenvalues mean copying"). 0 when every eigenvalue is 0.
double copying_score(std::span<const std::complex<double>> eigenvalues);

// copying_score(ov_eigenvalues(m, l, h)) of every head: [n_layers, n_heads].
RowMat copying_scores(const Model& m, const CircuitOptions& opt = {});

// ---- vocabulary sums (docs/one-layer.md, "Small matrices") -------------------
//
// N: the rows of W_E centred and divided by their RMS (the normalization
// without its w and b), or W_E itself when the model has no normalization or
// opt.normalize_embed is false. E of block l is then N diag(w_l) + 1 b_l^T
// (LN), or N. Every sum below is over the d_vocab token rows s.
struct EmbedGrams {
  bool normalized = false;  // N is the normalized W_E (else N = W_E)
  bool square = false;      // d_vocab == d_vocab_out (UN and U_sum are filled)
  int64_t d_vocab = 0;
  Eigen::MatrixXd NtN;    // N^T N                        [d_model, d_model]
  Eigen::VectorXd N_sum;  // N^T 1                        [d_model]
  Eigen::MatrixXd UN;     // W_U N (sum_s W_U[:, s] N[s]) [d_model, d_model]   (square only)
  Eigen::VectorXd U_sum;  // W_U 1 (sum of W_U's columns) [d_model]            (square only)
  Eigen::MatrixXd UUt;    // W_U W_U^T                    [d_model, d_model]   (when asked for)
};

// Accumulates EmbedGrams in row chunks, one WorkPlan unit per chunk (a few ms
// each). want_UUt adds the pass over W_U's columns for W_U W_U^T (needed for
// the OV circuit's Frobenius norm only). The model must outlive the plan.
class EmbedGramsPlan final : public WorkPlan {
 public:
  EmbedGramsPlan(const Model& m, const CircuitOptions& opt, bool want_UUt);
  const EmbedGrams& result() const;  // once done()
  EmbedGrams& mutable_result();      // once done()

  // A fixed number of strands (not the thread count, so the sums are the same
  // on any number of threads) each sum a contiguous share of the rows into
  // their own part; the parts are added in order at the end.
  using RowMatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  struct Part {
    RowMatD NtN, UN, UUt;  // lower triangles of the Grams; UN whole (row-major, as the float sums)
    Eigen::VectorXd N_sum, U_sum;
    RowMat x;             // scratch: one unit's rows [rows_per_unit, d_model]
    // Float partial sums [d_model, d_model] of the Gram (lower triangle) and
    // of W_U N, carried across the strand's units until they cover
    // kFloatRows rows (circuits.cpp), then added into the doubles above.
    RowMat acc, acc_un;
    Eigen::Index acc_rows = 0;  // rows in acc and acc_un so far
  };
 private:
  const Model& m_;
  EmbedGrams g_;
  std::vector<Part> parts_;
};
EmbedGrams embed_grams(const Model& m, const CircuitOptions& opt = {}, bool want_UUt = false);

// From EmbedGrams of the same model and options (cheap: d_model^2 d_head):
//   E^T E of block l                                   [d_model, d_model]
Eigen::MatrixXd embed_gram_for_layer(const Model& m, int layer, const EmbedGrams& g);
//   E_l1^T E_l2: E as block l1 and as block l2 reads it    [d_model, d_model]
Eigen::MatrixXd embed_cross_gram(const Model& m, int l1, int l2, const EmbedGrams& g);
//   W_O W_U E W_V (OV small matrix; square models only) [d_head, d_head]
Eigen::MatrixXd ov_small_matrix(const Model& m, int layer, int head, const EmbedGrams& g);
//   W_K^T E^T E W_Q (QK small matrix)                   [d_head, d_head]
Eigen::MatrixXd qk_small_matrix(const Model& m, int layer, int head, const EmbedGrams& g);
// The d_head eigenvalues of a small matrix, sorted by descending modulus.
std::vector<std::complex<double>> small_eigenvalues(const Eigen::MatrixXd& S, const char* what);
// One head's eigenvalues and copying scores (what the page's Head view
// shows): the vocabulary sums first unless given (they serve every head of the
// model and option), then each small matrix's d_head x d_model x d_model
// product in blocks of columns, then the two d_head x d_head eigenvalue
// problems; every unit a few ms in wasm. The model must outlive the plan.
struct HeadEigen {
  // Descending modulus; ov empty when d_vocab != d_vocab_out, qk empty for a virtual head.
  std::vector<std::complex<double>> ov, qk;
  double ov_score = 0, qk_score = 0;  // copying_score of each (NaN when its list is empty)
};
// Appends to `plan` the units that compute head (layer, head)'s HeadEigen
// into *out from the sums grams() returns when they run (so the sums may be
// computed by earlier units of the same plan). *out must outlive the plan.
// Each eigen-problem is a strand of concurrent units (sliced.h): a unit that
// reads *out must not be concurrent.
void add_head_eigen_units(WorkPlan& plan, const Model& m, int layer, int head,
                          std::function<const EmbedGrams&()> grams, HeadEigen* out);
// The virtual head h2 o h1 (docs/two-layer.md, "Virtual heads"): head h2 of
// layer l2 reading, through its values, what head h1 of layer l1 < l2 wrote.
struct VirtualHeadRef {
  int l1 = 0, h1 = 0, l2 = 1, h2 = 0;
  bool operator==(const VirtualHeadRef&) const = default;
};
// Appends the units of the virtual head's OV eigenvalues (*out: ov and
// ov_score; qk empty, qk_score NaN), as add_head_eigen_units. Square models only.
void add_virtual_ov_eigen_units(WorkPlan& plan, const Model& m, int l1, int h1, int l2, int h2,
                                std::function<const EmbedGrams&()> grams, HeadEigen* out);
class HeadEigenPlan final : public WorkPlan {
 public:
  HeadEigenPlan(const Model& m, int layer, int head, const CircuitOptions& opt,
                std::shared_ptr<const EmbedGrams> grams = nullptr);
  // A virtual head's OV eigenvalues (add_virtual_ov_eigen_units).
  HeadEigenPlan(const Model& m, VirtualHeadRef v, const CircuitOptions& opt,
                std::shared_ptr<const EmbedGrams> grams = nullptr);
  ~HeadEigenPlan() override;
  const HeadEigen& result() const;                   // once done()
  std::shared_ptr<const EmbedGrams> grams() const;   // once done(): the sums it used
 private:
  HeadEigenPlan(const Model& m, const CircuitOptions& opt, std::shared_ptr<const EmbedGrams> grams);  // the sums' units
  struct Impl;
  std::unique_ptr<Impl> impl_;
  HeadEigen result_;
};

// The virtual head h2 o h1's OV small matrix (W_O1 W_V2 W_O2) (W_U E_l1) W_V1
// [d_head, d_head] (double): its eigenvalues are the nonzero eigenvalues of
// the full circuit E_l1 W_V1 W_O1 W_V2 W_O2 W_U (virtual_ov_circuit_matrix,
// core/vocab_matrix.h) and zeros. Square models only.
Eigen::MatrixXd virtual_ov_small_matrix(const Model& m, int l1, int h1, int l2, int h2, const EmbedGrams& g);
// Its d_head eigenvalues, descending modulus (one-shot: runs embed_grams).
std::vector<std::complex<double>> virtual_ov_eigenvalues(const Model& m, int l1, int h1, int l2, int h2,
                                                         const CircuitOptions& opt = {});

// Squared Frobenius norms of the full circuits, exactly from the factors:
// ||L R^T||_F^2 = trace((L^T L)(R^T R)).
//   OV: L = E W_V, R = (W_O W_U)^T (needs g.UUt)      over d_vocab x d_vocab_out entries
double ov_frobenius_sq(const Model& m, int layer, int head, const EmbedGrams& g);
//   QK: L = E W_Q, R = E W_K                          over d_vocab x d_vocab entries
double qk_frobenius_sq(const Model& m, int layer, int head, const EmbedGrams& g);

// ---- QK circuit ----------------------------------------------------------------

// The full QK circuit E W_Q W_K^T E^T: [d_vocab(destination/query), d_vocab(source/key)],
// before attn_scale, without biases. Dense: small vocabularies only (tests).
RowMat full_qk_circuit(const Model& m, int layer, int head, const CircuitOptions& opt = {});
// W_K^T E^T E W_Q [d_head, d_head] (one-shot: runs embed_grams).
Eigen::MatrixXd qk_small_matrix(const Model& m, int layer, int head, const CircuitOptions& opt = {});
// Its d_head eigenvalues, descending modulus: the nonzero eigenvalues of the
// full QK circuit, and zeros. The QK copying score is copying_score() of them
// (positive: a token tends to attend to copies of itself).
std::vector<std::complex<double>> qk_eigenvalues(const Model& m, int layer, int head,
                                                 const CircuitOptions& opt = {});

// ---- positions (docs/one-layer.md, "Positions") ------------------------------
//
// P, the positional rows as block l's queries and keys read them [n_ctx, d_model]:
//  Shortformer: W_pos as is (added to q/k inputs after ln1, so never normalized).
//  Standard: each row of W_pos passed through block l's normalization like E
//    (when opt.normalize_embed), i.e. the position taken alone. The real input
//    norm(W_E[t] + W_pos[i]) is not the sum of the two, so for standard
//    positions with a normalization the position terms below are the
//    "position alone" view; positional_share splits the real input exactly.
//  None: throws cs::Error (no positions).
RowMat positions_for_layer(const Model& m, int layer, const CircuitOptions& opt = {});
// The positional QK pattern P W_Q W_K^T P^T: [n_ctx(query position), n_ctx(key position)],
// before attn_scale, no biases.
RowMat positional_qk_circuit(const Model& m, int layer, int head, const CircuitOptions& opt = {});

// The four terms of the pre-softmax score of a (query token t, query position i,
// key token u, key position j) with q_in = E[t] + P[i], k_in = E[u] + P[j]
// (exact for Shortformer, and for standard positions without normalization):
//   token_token       E[t] W_Q W_K^T E[u]^T   (= the QK circuit)   [query tokens, key tokens]
//   token_position    E[t] W_Q W_K^T P[j]^T                         [query tokens, key positions]
//   position_token    P[i] W_Q W_K^T E[u]^T                         [query positions, key tokens]
//   position_position P[i] W_Q W_K^T P[j]^T                         [query positions, key positions]
// for the given lists (a block of each term; the full token_position term is
// [d_vocab, n_ctx]).
struct QkTerms {
  RowMat token_token, token_position, position_token, position_position;
};
QkTerms qk_terms(const Model& m, int layer, int head, std::span<const int> query_tokens,
                 std::span<const int> query_positions, std::span<const int> key_tokens,
                 std::span<const int> key_positions, const CircuitOptions& opt = {});

// The same terms as factored engine matrices (core/vocab_matrix.h), for
// scans over the whole vocabulary (rows, columns, top-k) without forming them:
//   qk_token_position_matrix     E W_Q W_K^T P^T   [d_vocab(query token), n_ctx(key position)]
//   qk_position_token_matrix     P W_Q W_K^T E^T   [n_ctx(query position), d_vocab(key token)]
//   qk_position_position_matrix  P W_Q W_K^T P^T   [n_ctx, n_ctx]
// (token-token is qk_circuit_matrix). Throws cs::Error without positions.
VocabMatrix qk_token_position_matrix(const Model& m, int layer, int head, const CircuitOptions& opt = {});
VocabMatrix qk_position_token_matrix(const Model& m, int layer, int head, const CircuitOptions& opt = {});
VocabMatrix qk_position_position_matrix(const Model& m, int layer, int head, const CircuitOptions& opt = {});

// One random (query token, query position, key token, key position) draw.
struct QkSample {
  int query_token = 0, query_pos = 0, key_token = 0, key_pos = 0;
};
// `samples` draws from Rng(seed) (core/induction.h), in this order per draw:
// query_token = below(d_vocab), query_pos = below(n_ctx), key_token =
// below(d_vocab), key_pos = below(query_pos + 1) (causal: key_pos <= query_pos).
std::vector<QkSample> draw_qk_samples(const ModelConfig& c, uint64_t seed, int samples);

// Share of the pre-softmax score variance carried by the terms that involve a
// position, over draw_qk_samples(seed, samples) (docs/one-layer.md):
//   score = q_in W_Q W_K^T k_in^T (no biases, no attn_scale) split into
//   tt (token part x token part) and pos = tp + pt + pp;
//   share = Var(pos) / (Var(tt) + Var(pos))   (population variances; 0 when both are 0).
// The split of the input x into token part a and position part p:
//   Shortformer: a = norm(W_E[t]) (E), p = W_pos[i].
//   Standard, no normalization (or !normalize_embed): a = W_E[t], p = W_pos[i].
//   Standard with LN/LNPre: x = norm(W_E[t] + W_pos[i]) = rho * w o (c(W_E[t]) + c(W_pos[i])) + b
//     (c = centring, rho = 1/sqrt(mean(c(W_E[t] + W_pos[i])^2) + eps) of the real sum) is split
//     linearly: a = rho * w o c(W_E[t]) + b, p = rho * w o c(W_pos[i]) (w = 1, b = 0 for LNPre).
//   None: 0.
// Computed in double, so the value does not depend on the platform.
double positional_share(const Model& m, int layer, int head, uint64_t seed, int samples,
                        const CircuitOptions& opt = {});

// positional_share in pieces, for sliced plans: run_chunk(0 .. chunks() - 1)
// in order (each a fixed block of samples), then value(). The same arithmetic
// as positional_share. The model must outlive it.
class PositionalShareAccumulator {
 public:
  PositionalShareAccumulator(const Model& m, int layer, int head, uint64_t seed, int samples,
                             const CircuitOptions& opt = {});
  int chunks() const { return chunks_; }
  void run_chunk(int i);
  double value() const;  // after every chunk has run
  static constexpr int kChunk = 256;  // samples per chunk

 private:
  const Model& m_;
  int layer_, head_, chunks_ = 0;
  CircuitOptions opt_;
  std::vector<QkSample> samples_;
  std::vector<double> tt_, pos_;  // per sample
  Eigen::MatrixXd W_Q_, W_K_;     // [d_model, d_head], double
};

}  // namespace cs
