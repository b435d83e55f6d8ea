// The shared JSON writers (json_out.h).
#include "io/json_out.h"

#include <cmath>

namespace cs {

std::string dump_json(const Json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::detail::error_handler_t::replace);
}

Json config_json(const ModelConfig& c) {
  Json j;
  j["model_name"] = c.name;
  j["n_layers"] = c.n_layers;
  j["d_model"] = c.d_model;
  j["n_heads"] = c.n_heads;
  j["d_head"] = c.d_head;
  j["n_ctx"] = c.n_ctx;
  j["d_vocab"] = c.d_vocab;
  j["d_vocab_out"] = c.vocab_out();
  j["attn_only"] = true;
  j["attn_scale"] = c.scale();
  j["use_attn_scale"] = true;
  if (c.normalization == Norm::None)
    j["normalization_type"] = nullptr;  // TransformerLens' None
  else
    j["normalization_type"] = to_string(c.normalization);
  j["positional_embedding_type"] = to_string(c.positional);
  j["eps"] = c.eps;
  j["tokenizer_name"] = c.tokenizer_name;
  j["positional"] = to_string(c.positional);
  j["normalization"] = to_string(c.normalization);
  j["name"] = c.name;
  return j;
}

Json config_json(const Model& m) {
  Json j = config_json(m.config());
  j["n_params"] = m.parameter_count();
  return j;
}

Json token_json(int id, const TokenDisplay& display) {
  Json j;
  j["id"] = id;
  j["token"] = display(id);
  return j;
}

Json ranked_json(std::span<const Ranked> list, const TokenDisplay& display) {
  Json a = Json::array();
  for (const Ranked& r : list) {
    Json e = token_json(r.id, display);
    e["logit"] = r.logit;
    e["prob"] = r.prob;
    a.push_back(std::move(e));
  }
  return a;
}

Json token_values_json(std::span<const TokenValue> list, const TokenDisplay& display) {
  Json a = Json::array();
  for (const TokenValue& t : list) {
    Json e = token_json(t.id, display);
    e["value"] = t.value;
    a.push_back(std::move(e));
  }
  return a;
}

Json matrix_json(const RowMat& m) {
  Json a = Json::array();
  for (Eigen::Index l = 0; l < m.rows(); ++l) {
    Json row = Json::array();
    for (Eigen::Index h = 0; h < m.cols(); ++h) {
      const float v = m(l, h);
      if (std::isfinite(v))
        row.push_back(v);
      else
        row.push_back(nullptr);
    }
    a.push_back(std::move(row));
  }
  return a;
}

Json complex_json(std::complex<double> z) { return Json::array({float(z.real()), float(z.imag())}); }

Json complex_list_json(std::span<const std::complex<double>> zs) {
  Json a = Json::array();
  for (const auto& z : zs) a.push_back(complex_json(z));
  return a;
}

const char* weights_kind(const Model& m) { return m.processing.any() ? "processed" : "raw"; }

Json head_summary_json(const HeadSummary& h) {
  auto number_or_null = [](double v) { return std::isfinite(v) ? Json(float(v)) : Json(nullptr); };
  Json e;
  e["layer"] = h.layer;
  e["head"] = h.head;
  e["ov_copying_score"] = number_or_null(h.ov_copying_score);
  e["qk_copying_score"] = number_or_null(h.qk_copying_score);
  e["ov_eigenvalues"] = complex_list_json(h.ov_eigenvalues);
  e["qk_eigenvalues"] = complex_list_json(h.qk_eigenvalues);
  e["positional_share"] = number_or_null(h.positional_share);
  e["ov_diagonal_top1"] = number_or_null(h.ov_diagonal_top1);
  e["ov_diagonal_top5"] = number_or_null(h.ov_diagonal_top5);
  e["attn_current"] = number_or_null(h.attn_current);
  e["attn_previous"] = number_or_null(h.attn_previous);
  return e;
}

Json skip_trigram_json(const SkipTrigram& t, const TokenDisplay& display) {
  Json e;
  e["source"] = token_json(t.source, display);
  e["destination"] = token_json(t.destination, display);
  e["out"] = token_json(t.out, display);
  e["score"] = t.score;
  e["qk"] = t.qk;
  e["ov"] = t.ov;
  return e;
}

Json head_pairs_json(const Eigen::MatrixXd& M, int n_layers, int n_heads) {
  Json a = Json::array();
  for (int l1 = 0; l1 < n_layers; ++l1) {
    Json b = Json::array();
    for (int h1 = 0; h1 < n_heads; ++h1) {
      Json c = Json::array();
      for (int l2 = 0; l2 < n_layers; ++l2) {
        Json d = Json::array();
        for (int h2 = 0; h2 < n_heads; ++h2) d.push_back(M(l1 * n_heads + h1, l2 * n_heads + h2));
        c.push_back(std::move(d));
      }
      b.push_back(std::move(c));
    }
    a.push_back(std::move(b));
  }
  return a;
}

Json induction_scatter_json(int prev_layer, int prev_head, std::span<const InductionScatterPoint> points) {
  Json heads = Json::array();
  for (const InductionScatterPoint& p : points)
    heads.push_back(Json{{"layer", p.layer},
                         {"head", p.head},
                         {"ov_positivity", std::isfinite(p.ov_positivity) ? Json(p.ov_positivity) : Json(nullptr)},
                         {"k_term_positivity", p.k_term_positivity},
                         {"k_term_eigenvalues", complex_list_json(p.k_term_eigenvalues)}});
  return Json{{"previous_head", Json{{"layer", prev_layer}, {"head", prev_head}}}, {"heads", heads}};
}

}  // namespace cs
