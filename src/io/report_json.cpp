// JSON of the model-wide analyses (report_json.h).
#include "io/report_json.h"

#include <string>

namespace cs {

Json info_json(const LoadedModel& lm) {
  Json j;
  j["config"] = config_json(lm.model.config());
  j["parameters"] = lm.model.parameter_count();
  j["weights"] = weights_kind(lm.model);
  j["processing"] = lm.model.processing.describe();
  if (lm.tokenizer) {
    Json t;
    t["kind"] = lm.tokenizer->kind();
    t["vocab_size"] = lm.tokenizer->vocab_size();
    if (auto b = lm.tokenizer->bos_id())
      t["bos_id"] = *b;
    else
      t["bos_id"] = nullptr;
    j["tokenizer"] = t;
  } else {
    j["tokenizer"] = nullptr;
  }
  j["warnings"] = lm.warnings;
  j["weights_file"] = lm.weights_file;
  return j;
}

Json heads_json(const Model& m, bool embed_norm, std::span<const HeadSummary> heads) {
  Json j;
  j["weights"] = weights_kind(m);
  j["embed_norm"] = embed_norm;
  Json a = Json::array();
  for (const HeadSummary& h : heads) a.push_back(head_summary_json(h));
  j["heads"] = std::move(a);
  return j;
}

Json composition_json(const Model& m, const CompositionScores& s) {
  Json j;
  j["weights"] = weights_kind(m);
  j["n_layers"] = s.n_layers;
  j["n_heads"] = s.n_heads;
  for (CompositionKind k : {CompositionKind::Q, CompositionKind::K, CompositionKind::V})
    j[to_string(k)] = head_pairs_json(s.of(k), s.n_layers, s.n_heads);
  j["virtual_norm"] = head_pairs_json(s.virtual_norm, s.n_layers, s.n_heads);
  j["baseline"] = s.baseline;
  return j;
}

Json virtual_heads_json(const Model& m, bool embed_norm, std::span<const VirtualHeadNorm> all,
                        std::span<const std::vector<std::complex<double>>> eigenvalues) {
  const ModelConfig& c = m.config();
  const bool square = c.d_vocab == c.vocab_out();
  Json j;
  j["weights"] = weights_kind(m);
  j["embed_norm"] = embed_norm;
  j["n_layers"] = c.n_layers;
  j["n_heads"] = c.n_heads;
  j["count"] = all.size();
  Json list = Json::array();
  for (size_t i = 0; i < eigenvalues.size() && i < all.size(); ++i) {
    const VirtualHeadNorm& v = all[i];
    list.push_back(Json{{"earlier", Json{{"layer", v.head.l1}, {"head", v.head.h1}}},
                        {"later", Json{{"layer", v.head.l2}, {"head", v.head.h2}}},
                        {"norm", v.norm},
                        {"v_composition", v.v_composition},
                        {"ov_copying_score", square ? Json(copying_score(eigenvalues[i])) : Json(nullptr)},
                        {"ov_eigenvalues", complex_list_json(eigenvalues[i])}});
  }
  j["virtual_heads"] = list;
  return j;
}

Json induction_json(const Model& m, const InductionExperiment& ex, const std::optional<InductionScatter>& scatter) {
  Json j;
  j["weights"] = weights_kind(m);
  j["tokens"] = ex.tokens;
  j["repeats"] = ex.repeats;
  j["examples"] = ex.examples;
  j["seed"] = ex.seed;
  j["bos"] = ex.bos >= 0 ? Json(ex.bos) : Json(nullptr);
  j["sequences"] = ex.sequences;
  j["prefix_matching"] = matrix_json(ex.prefix_matching);
  j["previous_token"] = matrix_json(ex.previous_token);
  j["copying"] = matrix_json(ex.copying);
  j["loss_first"] = ex.loss.first;
  j["loss_repeat"] = ex.loss.repeats;
  j["k_term"] = scatter ? induction_scatter_json(scatter->prev_layer, scatter->prev_head, scatter->points)
                        : Json(nullptr);
  return j;
}

Json report_commands(const Model& m, const ReportOptions& opt, const Report& r) {
  const std::string raw = m.processing.any() ? "" : " --raw";
  const std::string norm = opt.circuit.normalize_embed ? "" : " --no-embed-norm";
  Json j;
  j["info"] = "--json" + raw;
  j["heads"] = "--json" + raw + norm + (opt.diagonal ? "" : " --no-diagonal");
  j["composition"] = "--json" + raw;
  j["virtual"] = "--json" + raw + norm + " --top " + std::to_string(opt.virtual_top);
  j["induction"] = "--json" + raw + norm + " --tokens " + std::to_string(r.induction.tokens) + " --repeats " +
                   std::to_string(r.induction.repeats) + " --examples " + std::to_string(r.induction.examples) +
                   " --seed " + std::to_string(r.induction.seed);
  return j;
}

Json report_json(const LoadedModel& lm, const ReportOptions& opt, const Report& r) {
  const Model& m = lm.model;
  const bool norm = opt.circuit.normalize_embed;
  Json j;
  j["report"] = "circuitscope analysis report";
  j["version"] = 1;
  j["commands"] = report_commands(m, opt, r);
  j["info"] = info_json(lm);
  j["heads"] = heads_json(m, norm, r.heads);
  j["composition"] = composition_json(m, r.composition);
  j["virtual"] = virtual_heads_json(m, norm, r.virtual_heads, r.virtual_eigenvalues);
  j["induction"] = induction_json(m, r.induction, r.scatter);
  return j;
}

}  // namespace cs
