// Head badges (head_badges.h; docs/two-layer.md, "Badges").
#include "core/head_badges.h"

#include <algorithm>
#include <limits>
#include <string>

#include "core/error.h"

namespace cs {

BadgeExperimentShape badge_experiment_shape(const ModelConfig& c, bool bos) {
  BadgeExperimentShape s;
  if (!c.has_pos()) return s;
  const int room = c.n_ctx - (bos ? 1 : 0);
  if (room < 2) throw Error("head badges: n_ctx " + std::to_string(c.n_ctx) + " is too short for a repeated sequence");
  if (room < 8) s.repeats = 2;
  s.tokens = std::min(s.tokens, room / s.repeats);
  return s;
}

HeadBadgePlan::HeadBadgePlan(const Model& m, int bos, const CircuitOptions& circuit,
                             std::shared_ptr<const EmbedGrams> grams) {
  const ModelConfig& c = m.config();
  const int L = c.n_layers, H = c.n_heads;
  if (L == 0) {
    add("head badges", 1.0, [] {});
    return;
  }
  const BadgeExperimentShape shape = badge_experiment_shape(c, bos >= 0);
  experiment_ = std::make_unique<InductionExperimentPlan>(m, shape.tokens, shape.repeats, shape.examples, 0, bos, circuit);
  HeadSummaryOptions o;
  o.circuit = circuit;
  o.diagonal = false;  // not needed for the badges; the one full vocabulary scan per head
  o.share_samples = 1;
  o.attn_sequences = 1;
  o.attn_length = 2;
  o.grams = std::move(grams);
  summary_ = std::make_unique<HeadSummaryPlan>(m, o);
  add_units_of(experiment_.get(), experiment_->units(), "repeated random tokens", 1.0);
  add_units_of(summary_.get(), summary_->units(), "OV eigenvalues", 1.0);
  add("head badges", 1.0, [this, L, H] {
    r_.experiment = experiment_->result();
    r_.ov_copying = RowMat::Constant(L, H, std::numeric_limits<float>::quiet_NaN());
    for (const HeadSummary& s : summary_->result()) r_.ov_copying(s.layer, s.head) = float(s.ov_copying_score);
    grams_ = summary_->grams();
    experiment_.reset();
    summary_.reset();
  });
}

std::shared_ptr<const EmbedGrams> HeadBadgePlan::grams() const {
  if (!done()) throw Error("head badges: grams() before the computation finished");
  return grams_;
}

const HeadBadges& HeadBadgePlan::result() const {
  if (!done()) throw Error("head badges: result() before the computation finished");
  return r_;
}

}  // namespace cs
