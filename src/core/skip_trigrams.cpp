// Skip-trigrams of one head (skip_trigrams.h). The score and the candidate
// set: docs/one-layer.md, "Skip-trigrams". TransformerLens convention (row
// vectors, x @ W): QK = E W_Q W_K^T E^T [destination, source], OV = E W_V W_O W_U
// [source, out], both from the factored engine (core/vocab_matrix.h), never dense.
#include "core/skip_trigrams.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/vocab_matrix.h"

namespace cs {

namespace {

void check_id(int id, int n, const char* what) {
  if (id < 0 || id >= n)
    throw Error(std::string("skip_trigrams: ") + what + " " + std::to_string(id) + " is outside [0, " +
                std::to_string(n) + ")");
}

// The ranking: score descending, ties by (source, destination, out) ascending.
bool trigram_before(const SkipTrigram& a, const SkipTrigram& b) {
  if (a.score != b.score) return a.score > b.score;
  if (a.source != b.source) return a.source < b.source;
  if (a.destination != b.destination) return a.destination < b.destination;
  return a.out < b.out;
}

SkipTrigram make_trigram(int s, int d, int o, float qk, float ov, double qk_rms, double ov_rms) {
  SkipTrigram t;
  t.source = s;
  t.destination = d;
  t.out = o;
  t.qk = qk;
  t.ov = ov;
  t.score = float((double(qk) / qk_rms) * (double(ov) / ov_rms));
  return t;
}

}  // namespace

struct SkipTrigramScan::Impl {
  const Model* m = nullptr;
  int layer = 0, head = 0;
  SkipTrigramQuery q;
  std::unique_ptr<EmbedGramsPlan> grams;
  std::unique_ptr<VocabMatrix> QK, OV;
  // Per source: ranked destinations (QK column) and outs (OV row).
  std::vector<int> sources;
  std::vector<std::vector<IdValue>> dests, outs;  // indexed like `sources`
  // Scans and single queries, as needed.
  std::unique_ptr<VocabTopKPerRow> qk_cols, ov_rows;  // no filter
  std::unique_ptr<VocabRowQuery> qk_row;              // destination filter: QK row d
  std::unique_ptr<VocabColumnQuery> ov_col;           // out filter: OV column o
  std::vector<SkipTrigram> best;                      // the top_n candidates so far
};

SkipTrigramScan::SkipTrigramScan(const Model& m, int layer, int head, const CircuitOptions& opt,
                                 const SkipTrigramQuery& query)
    : impl_(std::make_unique<Impl>()) {
  const ModelConfig& c = m.config();
  check_head(m, layer, head, "skip_trigrams");
  if (query.top_n < 1) throw Error("skip_trigrams: top_n must be >= 1 (got " + std::to_string(query.top_n) + ")");
  if (query.per_source_k < 1)
    throw Error("skip_trigrams: per_source_k must be >= 1 (got " + std::to_string(query.per_source_k) + ")");
  if (query.sources_k < 1)
    throw Error("skip_trigrams: sources_k must be >= 1 (got " + std::to_string(query.sources_k) + ")");
  const int V = c.d_vocab, Vo = c.vocab_out();
  if (query.source) check_id(*query.source, V, "source");
  if (query.destination) check_id(*query.destination, V, "destination");
  if (query.out) check_id(*query.out, Vo, "out");

  Impl& I = *impl_;
  I.m = &m;
  I.layer = layer;
  I.head = head;
  I.q = query;
  I.QK = std::make_unique<VocabMatrix>(qk_circuit_matrix(m, layer, head, opt));  // [dest, source]
  I.OV = std::make_unique<VocabMatrix>(ov_circuit_matrix(m, layer, head, opt));  // [source, out]
  const int k = query.per_source_k;

  // 1. rms(QK), rms(OV) from the factors.
  I.grams = std::make_unique<EmbedGramsPlan>(m, opt, /*want_UUt=*/true);
  add_units_of(I.grams.get(), I.grams->units(), "Frobenius norms", 1);
  add("Frobenius norms", 1, [this, V, Vo] {
    Impl& I = *impl_;
    const EmbedGrams& g = I.grams->result();
    result_.qk_rms = std::sqrt(std::max(0.0, qk_frobenius_sq(*I.m, I.layer, I.head, g)) / (double(V) * double(V)));
    result_.ov_rms = std::sqrt(std::max(0.0, ov_frobenius_sq(*I.m, I.layer, I.head, g)) / (double(V) * double(Vo)));
    I.grams.reset();
  });

  // 2. Sources and, per source, destinations and outs.
  const bool by_source = bool(query.source);
  const bool both = !by_source && query.destination && query.out;
  if (by_source) {
    I.sources = {*query.source};
  } else if (both) {
    I.sources.resize(size_t(V));
    for (int s = 0; s < V; ++s) I.sources[size_t(s)] = s;
  }
  I.dests.assign(I.sources.size(), {});
  I.outs.assign(I.sources.size(), {});

  if (by_source) {
    const int s = *query.source;
    add("QK column", 1, [this, s, k] {
      Impl& I = *impl_;
      if (I.q.destination) {
        const int d = *I.q.destination;
        I.dests[0] = {IdValue{d, I.QK->block(std::span<const int>(&d, 1), std::span<const int>(&s, 1))(0, 0)}};
      } else {
        I.dests[0] = I.QK->column_top_k(s, k);
      }
    });
    add("OV row", 1, [this, s, k] {
      Impl& I = *impl_;
      if (I.q.out) {
        const int o = *I.q.out;
        I.outs[0] = {IdValue{o, I.OV->block(std::span<const int>(&s, 1), std::span<const int>(&o, 1))(0, 0)}};
      } else {
        I.outs[0] = I.OV->row_top_k(s, k);
      }
    });
  } else if (both) {
    // Row d of QK (QK[d, s] for every s) and column o of OV (OV[s, o] for every s).
    I.qk_row = std::make_unique<VocabRowQuery>(*I.QK, *query.destination);
    I.ov_col = std::make_unique<VocabColumnQuery>(*I.OV, *query.out);
    add_units_of(I.qk_row.get(), I.qk_row->units(), "QK row", 1);
    add_units_of(I.ov_col.get(), I.ov_col->units(), "OV column", 1);
    add("skip-trigrams", double(V), [this] {
      Impl& I = *impl_;
      const Vec& r = I.qk_row->result();
      const Vec& col = I.ov_col->result();
      for (size_t i = 0; i < I.sources.size(); ++i) {
        const int s = I.sources[i];
        I.dests[i] = {IdValue{*I.q.destination, r[s]}};
        I.outs[i] = {IdValue{*I.q.out, col[s]}};
      }
      I.qk_row.reset();
      I.ov_col.reset();
    });
  } else if (query.destination) {
    // Row d of QK gives the sources d attends to most; then their OV rows.
    const int nsrc = std::min(query.sources_k, V);
    I.sources.resize(size_t(nsrc));
    I.dests.assign(size_t(nsrc), {});
    I.outs.assign(size_t(nsrc), {});
    I.qk_row = std::make_unique<VocabRowQuery>(*I.QK, *query.destination);
    add_units_of(I.qk_row.get(), I.qk_row->units(), "QK row", 1);
    add("sources", double(V), [this, nsrc] {
      Impl& I = *impl_;
      const Vec& r = I.qk_row->result();
      const std::vector<IdValue> top = top_k_of(r, nsrc);
      for (size_t i = 0; i < top.size(); ++i) {
        I.sources[i] = top[i].id;
        I.dests[i] = {IdValue{*I.q.destination, top[i].value}};
      }
      I.qk_row.reset();
    });
    for (int i = 0; i < nsrc; ++i)
      add("OV rows", 1, [this, i, k] {
        Impl& I = *impl_;
        if (I.q.out) {
          const int s = I.sources[size_t(i)], o = *I.q.out;
          I.outs[size_t(i)] = {IdValue{o, I.OV->block(std::span<const int>(&s, 1), std::span<const int>(&o, 1))(0, 0)}};
        } else {
          I.outs[size_t(i)] = I.OV->row_top_k(I.sources[size_t(i)], k);
        }
      });
  } else if (query.out) {
    // Column o of OV gives the sources that raise o most; then their QK columns.
    const int nsrc = std::min(query.sources_k, V);
    I.sources.resize(size_t(nsrc));
    I.dests.assign(size_t(nsrc), {});
    I.outs.assign(size_t(nsrc), {});
    I.ov_col = std::make_unique<VocabColumnQuery>(*I.OV, *query.out);
    add_units_of(I.ov_col.get(), I.ov_col->units(), "OV column", 1);
    add("sources", double(V), [this, nsrc] {
      Impl& I = *impl_;
      const std::vector<IdValue> top = top_k_of(I.ov_col->result(), nsrc);
      for (size_t i = 0; i < top.size(); ++i) {
        I.sources[i] = top[i].id;
        I.outs[i] = {IdValue{*I.q.out, top[i].value}};
      }
      I.ov_col.reset();
    });
    for (int i = 0; i < nsrc; ++i)
      add("QK columns", 1, [this, i, k] { impl_->dests[size_t(i)] = impl_->QK->column_top_k(impl_->sources[size_t(i)], k); });
  } else {
    // No filter: top k of every QK column (rows of QK^T) and of every OV row.
    I.sources.resize(size_t(V));
    for (int s = 0; s < V; ++s) I.sources[size_t(s)] = s;
    I.qk_cols = std::make_unique<VocabTopKPerRow>(I.QK->transposed(), k);
    I.ov_rows = std::make_unique<VocabTopKPerRow>(*I.OV, k);
    add_units_of(I.qk_cols.get(), I.qk_cols->units(), "QK columns", 1);
    add_units_of(I.ov_rows.get(), I.ov_rows->units(), "OV rows", 1);
    // Moved out, and the scans dropped, one per unit (copying and freeing
    // 2 d_vocab small lists at once took about 95 ms in the page).
    add("skip-trigrams", double(V), [this] {
      impl_->dests = impl_->qk_cols->take();
      impl_->qk_cols.reset();
    });
    add("skip-trigrams", double(V), [this] {
      impl_->outs = impl_->ov_rows->take();
      impl_->ov_rows.reset();
    });
  }

  // 3. Candidates with both entries positive, ranked by score: in blocks of
  // sources (up to V k^2 candidates in all), each block's candidates joining
  // the best top_n kept so far. trigram_before is a total order, so the result
  // is the top_n of all candidates whatever the blocks.
  const int block = int(std::clamp<int64_t>(query.candidates_per_unit / std::max<int64_t>(1, int64_t(k) * k), 1, V));
  for (int b0 = 0; b0 < V; b0 += block) {
    add("skip-trigrams", double(std::min(block, V - b0)) * k * k, [this, b0, block] {
      Impl& I = *impl_;
      const double qr = result_.qk_rms, orr = result_.ov_rms;
      std::vector<SkipTrigram>& cand = I.best;
      const size_t end = std::min(I.sources.size(), size_t(b0) + size_t(block));
      for (size_t i = size_t(b0); i < end; ++i)
        for (const IdValue& d : I.dests[i]) {
          if (!(d.value > 0)) continue;
          for (const IdValue& o : I.outs[i])
            if (o.value > 0) cand.push_back(make_trigram(I.sources[i], d.id, o.id, d.value, o.value, qr, orr));
        }
      const size_t keep = std::min(cand.size(), size_t(I.q.top_n));
      std::partial_sort(cand.begin(), cand.begin() + std::ptrdiff_t(keep), cand.end(), trigram_before);
      cand.resize(keep);
    });
  }
  add("skip-trigrams", 1, [this] {
    result_.trigrams = std::move(impl_->best);
    impl_->dests = {};
  });
  add("skip-trigrams", 1, [this] { impl_->outs = {}; });
}

SkipTrigramScan::~SkipTrigramScan() = default;

const SkipTrigramResult& SkipTrigramScan::result() const {
  if (!done()) throw Error("skip_trigrams: result() before the computation finished");
  return result_;
}

SkipTrigramResult skip_trigrams(const Model& m, int layer, int head, const CircuitOptions& opt,
                                const SkipTrigramQuery& query) {
  SkipTrigramScan s(m, layer, head, opt, query);
  s.run();
  return s.result();
}

SkipTrigramBug skip_trigram_bugs(const Model& m, int layer, int head, const SkipTrigram& a, const SkipTrigram& b,
                                 double qk_rms, double ov_rms, const CircuitOptions& opt) {
  const ModelConfig& c = m.config();
  if (a.source != b.source)
    throw Error("skip_trigram_bugs: the two trigrams must share a source (got " + std::to_string(a.source) + " and " +
                std::to_string(b.source) + ")");
  check_id(a.source, c.d_vocab, "source");
  check_id(a.destination, c.d_vocab, "destination");
  check_id(b.destination, c.d_vocab, "destination");
  check_id(a.out, c.vocab_out(), "out");
  check_id(b.out, c.vocab_out(), "out");
  const VocabMatrix QK = qk_circuit_matrix(m, layer, head, opt), OV = ov_circuit_matrix(m, layer, head, opt);
  const int s = a.source;
  const int dests[2] = {a.destination, b.destination}, outs[2] = {a.out, b.out};
  const RowMat qk = QK.block(dests, std::span<const int>(&s, 1));  // [2, 1]: QK[d_a, s], QK[d_b, s]
  const RowMat ov = OV.block(std::span<const int>(&s, 1), outs);   // [1, 2]: OV[s, o_a], OV[s, o_b]
  SkipTrigramBug bug;
  bug.a_destination_b_out = make_trigram(s, a.destination, b.out, qk(0, 0), ov(0, 1), qk_rms, ov_rms);
  bug.b_destination_a_out = make_trigram(s, b.destination, a.out, qk(1, 0), ov(0, 0), qk_rms, ov_rms);
  return bug;
}

SkipTrigramBug skip_trigram_bugs(const Model& m, int layer, int head, const SkipTrigram& a, const SkipTrigram& b,
                                 const CircuitOptions& opt) {
  const ModelConfig& c = m.config();
  if (layer < 0 || layer >= c.n_layers || head < 0 || head >= c.n_heads)
    throw Error("skip_trigram_bugs: head " + std::to_string(layer) + "." + std::to_string(head) + " does not exist");
  const EmbedGrams g = embed_grams(m, opt, /*want_UUt=*/true);
  const double qk_rms = std::sqrt(std::max(0.0, qk_frobenius_sq(m, layer, head, g)) / (double(c.d_vocab) * c.d_vocab));
  const double ov_rms =
      std::sqrt(std::max(0.0, ov_frobenius_sq(m, layer, head, g)) / (double(c.d_vocab) * c.vocab_out()));
  return skip_trigram_bugs(m, layer, head, a, b, qk_rms, ov_rms, opt);
}

}  // namespace cs
