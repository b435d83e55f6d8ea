// `circuitscope paths MODEL (--text TEXT | --ids 1,2,3) [--position P] [--token ID] [--json] [--raw] [--no-bos]
//                    [--max-order K]`
// One prediction's logit split by path (core/paths.h; docs/two-layer.md,
// "Paths"): with the run's attention patterns and normalization scales
// frozen, the logit of `--token` (default: the model's top prediction) at
// `--position` (default: the last) as the sum of the direct path, each head,
// each virtual head (up to --max-order heads, default 2), "higher order" and
// "biases". What the page's Prompt view shows for the chosen token.
// JSON: {"weights", "ids", "tokens", "position", "token": {"id","token"}, "logit",
//        "max_order", "terms": [{"name", "order", "heads": [{"layer","head"}], "contribution"}]}
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/forward.h"
#include "core/paths.h"

namespace cs::cli {

int cmd_paths(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw", "--no-bos"}, {"--text", "--ids", "--position", "--token", "--max-order"}});
  args.expect_positional(1, "MODEL");
  check_input_args(args);
  const int max_order = int(args.integer("--max-order", 0, 8).value_or(2));
  const LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  const ModelConfig& c = lm.model.config();
  const std::vector<int> ids = input_ids(args, lm);
  const int T = int(ids.size());
  const int position = int(args.integer("--position", 0, T - 1).value_or(T - 1));

  const ForwardResult run = forward(lm.model, ids);
  int token = 0;
  if (auto t = args.integer("--token", 0, c.vocab_out() - 1))
    token = int(*t);
  else
    run.logits.row(position).maxCoeff(&token);
  const PathExpansion p = expand_paths(lm.model, ids, run.cache, max_order, position);
  const Vec parts = path_logit_contributions(lm.model, p, position, token);

  if (args.has("--json")) {
    Json j;
    j["weights"] = weights_kind(lm.model);
    j["ids"] = ids;
    Json toks = Json::array();
    for (int id : ids) toks.push_back(token_display(lm, id));
    j["tokens"] = toks;
    j["position"] = position;
    j["token"] = Json{{"id", token}, {"token", token_display(lm, token)}};
    j["logit"] = run.logits(position, token);
    j["max_order"] = max_order;
    Json terms = Json::array();
    for (size_t i = 0; i < p.terms.size(); ++i) {
      const PathTerm& t = p.terms[i];
      Json heads = Json::array();
      for (const HeadId& h : t.heads) heads.push_back(Json{{"layer", h.layer}, {"head", h.head}});
      terms.push_back(
          Json{{"name", t.name()}, {"order", t.order()}, {"heads", heads}, {"contribution", parts[Eigen::Index(i)]}});
    }
    j["terms"] = terms;
    print_json(std::cout, j, 2);
    return 0;
  }
  std::ostringstream o;
  o << "logit of " << token_display(lm, token) << " (id " << token << ") at position " << position << " ("
    << token_display(lm, ids[size_t(position)]) << "): " << run.logits(position, token)
    << ", by path (patterns and normalization scales frozen; docs/two-layer.md)\n";
  for (size_t i = 0; i < p.terms.size(); ++i) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "  %-15s %+9.4f\n", p.terms[i].name().c_str(), double(parts[Eigen::Index(i)]));
    o << buf;
  }
  std::cout << o.str();
  return 0;
}

}  // namespace cs::cli
