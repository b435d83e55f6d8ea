// Skip-trigrams of one attention head: "[source] ... [destination] -> [out]"
// ([F], one-layer models): the destination (query) token attends to the source
// (key) token when the QK circuit entry QK[destination, source] is large, and
// attending to the source raises the out logit when the OV circuit entry
// OV[source, out] is large. TransformerLens convention (row vectors, x @ W):
//   QK = E W_Q W_K^T E^T   [d_vocab(destination), d_vocab(source)]  (before attn_scale, no biases)
//   OV = E W_V W_O W_U     [d_vocab(source), d_vocab_out(out)]
// (E as in core/circuits.h). Score and the "bug": docs/one-layer.md.
//
// Score of a trigram (s, d, o), used for every ranking here:
//   score = (QK[d, s] / rms(QK)) * (OV[s, o] / rms(OV)),
// only over trigrams with QK[d, s] > 0 and OV[s, o] > 0, where
//   rms(M) = ||M||_F / sqrt(rows * cols), computed exactly from the factors.
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "core/circuits.h"
#include "core/model.h"
#include "core/sliced.h"

namespace cs {

struct SkipTrigram {
  int source = 0, destination = 0, out = 0;
  float qk = 0;     // QK[destination, source]
  float ov = 0;     // OV[source, out]
  float score = 0;  // (qk / rms(QK)) * (ov / rms(OV))
};

// Which trigrams are ranked (the candidate set; docs/one-layer.md):
//  sources S:
//    {source} when source is set;
//    else, when destination and out are both set: every source;
//    else, when destination is set: the sources_k largest entries of QK row
//      `destination` (the keys that destination attends to most);
//    else, when out is set: the sources_k largest entries of OV column `out`
//      (the sources that raise `out` most);
//    else every source.
//  for each s in S:
//    destinations D(s) = {destination} when set, else the per_source_k largest
//      entries of QK column s (the queries that attend to key s most);
//    outs O(s) = {out} when set, else the per_source_k largest entries of OV row s.
//  candidates: (s, d, o) for s in S, d in D(s), o in O(s) with QK[d, s] > 0
//  and OV[s, o] > 0; the top_n by score are kept, sorted by score descending,
//  ties by (source, destination, out) ascending. Every "largest entries" list
//  ranks by value descending, ties smaller id first.
struct SkipTrigramQuery {
  int top_n = 20;
  int per_source_k = 5;
  int sources_k = 50;
  std::optional<int> source, destination, out;
  // Candidates ranked per unit of the final step (slicing only: the result
  // does not depend on it).
  int64_t candidates_per_unit = int64_t(1) << 17;
};

struct SkipTrigramResult {
  std::vector<SkipTrigram> trigrams;
  double qk_rms = 0, ov_rms = 0;  // rms(QK), rms(OV)
};

// Sliced: the Frobenius norms (vocabulary sums in row chunks), then the scans
// the query needs (without a filter the top-k of every QK column and of every
// OV row: full scans, many units), then the ranking. The model must outlive
// it. Throws cs::Error for a bad layer / head / filter id or k < 1.
class SkipTrigramScan final : public WorkPlan {
 public:
  SkipTrigramScan(const Model& m, int layer, int head, const CircuitOptions& opt, const SkipTrigramQuery& query);
  ~SkipTrigramScan() override;
  const SkipTrigramResult& result() const;  // once done()
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  SkipTrigramResult result_;
};
SkipTrigramResult skip_trigrams(const Model& m, int layer, int head, const CircuitOptions& opt,
                                const SkipTrigramQuery& query);

// The "bug" ([F]): a head's trigram strength factors as QK[d, s] * OV[s, o],
// so two trigrams with the same source, a = (s, d_a, o_a) and b = (s, d_b, o_b)
// ("keep ... in -> mind", "keep ... at -> bay"), force the cross terms
// (s, d_a, o_b) and (s, d_b, o_a) ("keep ... in -> bay"). Both, with their qk,
// ov and score (the score formula above, whatever the signs). Throws
// cs::Error when a.source != b.source or an id is out of range.
struct SkipTrigramBug {
  SkipTrigram a_destination_b_out;  // (s, d_a, o_b)
  SkipTrigram b_destination_a_out;  // (s, d_b, o_a)
};
SkipTrigramBug skip_trigram_bugs(const Model& m, int layer, int head, const SkipTrigram& a, const SkipTrigram& b,
                                 const CircuitOptions& opt = {});
// The same with rms(QK) and rms(OV) already known (e.g. a SkipTrigramResult's),
// so no vocabulary pass is needed.
SkipTrigramBug skip_trigram_bugs(const Model& m, int layer, int head, const SkipTrigram& a, const SkipTrigram& b,
                                 double qk_rms, double ov_rms, const CircuitOptions& opt = {});

}  // namespace cs
