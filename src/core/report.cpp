// The analysis report (report.h).
#include "core/report.h"

#include <algorithm>

#include "core/error.h"

namespace cs {

ReportPlan::ReportPlan(const Model& m, const ReportOptions& opt) : m_(m), opt_(opt) {
  const ModelConfig& c = m.config();
  if (opt.virtual_top < 0) throw Error("report: virtual_top must be >= 0");
  // Checked now, so a context too short for the experiment fails before any work.
  const BadgeExperimentShape shape = badge_experiment_shape(c, opt.bos >= 0);
  const double diag = opt.diagonal ? double(c.d_vocab) * double(c.vocab_out()) * double(c.d_head) : 0.0;
  const double heads_cost = double(c.n_layers * c.n_heads) * (double(c.d_model) * c.d_model * c.d_head + diag) +
                            double(c.d_vocab) * c.d_model * c.d_model;

  chain_.then<HeadSummaryPlan>(
      "head summaries", std::max(heads_cost, 1.0),
      [this] {
        HeadSummaryOptions o;
        o.circuit = opt_.circuit;
        o.diagonal = opt_.diagonal;
        return std::make_unique<HeadSummaryPlan>(m_, o);
      },
      [this](HeadSummaryPlan& p) {
        r_.heads = p.result();
        grams_ = p.grams();
      });

  const double pairs = double(c.n_layers) * c.n_heads * double(c.n_layers) * c.n_heads;
  chain_.then<CompositionPlan>(
      "composition scores", std::max(pairs * c.d_model * c.d_head * c.d_head, 1.0),
      [this] { return std::make_unique<CompositionPlan>(m_, CompositionOptions{}); },
      [this](CompositionPlan& p) {
        r_.composition = p.result();
        r_.virtual_heads = rank_virtual_heads(r_.composition);
      });

  // The listed virtual heads' OV eigenvalues (square models) from the
  // vocabulary sums, each small matrix in blocks of columns (a few ms each).
  const double listed = std::min(pairs, double(opt.virtual_top));
  chain_.then<WorkPlan>(
      "virtual heads", std::max(listed * c.d_model * c.d_model * c.d_head, 1.0),
      [this]() -> std::unique_ptr<WorkPlan> {
        const size_t n = std::min(r_.virtual_heads.size(), size_t(opt_.virtual_top));
        r_.virtual_eigenvalues.assign(n, {});
        const ModelConfig& cc = m_.config();
        if (n == 0 || cc.d_vocab != cc.vocab_out() || !grams_) return nullptr;
        virtual_eigen_.assign(n, HeadEigen{});
        auto plan = std::make_unique<WorkPlan>();
        for (size_t i = 0; i < n; ++i) {
          const VirtualHeadRef v = r_.virtual_heads[i].head;
          add_virtual_ov_eigen_units(*plan, m_, v.l1, v.h1, v.l2, v.h2,
                                     [this]() -> const EmbedGrams& { return *grams_; }, &virtual_eigen_[i]);
        }
        return plan;
      },
      [this](WorkPlan&) {
        for (size_t i = 0; i < virtual_eigen_.size(); ++i) r_.virtual_eigenvalues[i] = std::move(virtual_eigen_[i].ov);
        virtual_eigen_.clear();
      });

  const double tokens = double(shape.examples) * (shape.tokens * shape.repeats + 1);
  chain_.then<InductionExperimentPlan>(
      "repeated random tokens", std::max(tokens * c.n_layers * c.n_heads * c.d_model * c.d_head, 1.0),
      [this, shape] {
        return std::make_unique<InductionExperimentPlan>(m_, shape.tokens, shape.repeats, shape.examples, 0, opt_.bos,
                                                         opt_.circuit);
      },
      [this](InductionExperimentPlan& p) { r_.induction = p.result(); });

  chain_.then<InductionScatterPlan>(
      "induction scatter", std::max(double(c.n_layers) * c.n_heads * c.d_model * c.d_model * c.d_head, 1.0),
      [this]() -> std::unique_ptr<InductionScatterPlan> {
        if (m_.config().n_layers < 2) return nullptr;
        const HeadId prev = previous_token_head(r_.induction.previous_token);
        return std::make_unique<InductionScatterPlan>(m_, opt_.circuit, prev.layer, prev.head,
                                                      std::vector<std::vector<int>>{}, grams_);
      },
      [this](InductionScatterPlan& p) { r_.scatter = p.result(); });
}

const Report& ReportPlan::result() const {
  if (!done()) throw Error("report: result() before the computation finished");
  return r_;
}

}  // namespace cs
