// `circuitscope terms MODEL (--text TEXT | --ids 1,2,3) [--json] [--raw] [--no-bos] [--max-order K]`
// Term importance on a text sample (core/paths.h; docs/two-layer.md, "Paths"):
// with each window's attention patterns and normalization scales frozen, the
// loss keeping the direct path only, then + first-order (single head) terms,
// + second-order (virtual head) terms ...; and the loss without each single
// term. Text longer than n_ctx is cut into windows (input_windows).
// JSON: {"weights", "windows", "tokens" (predictions averaged over), "max_order",
//        "loss_full", "loss_by_order": [order 0 .. max_order],
//        "terms": [{"name", "order" (-1: biases / higher order), "heads": [{"layer","head"}],
//                   "loss_without", "effect" (loss_without - loss_full)}]}
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/paths.h"

namespace cs::cli {

int cmd_terms(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw", "--no-bos"}, {"--text", "--ids", "--max-order"}});
  args.expect_positional(1, "MODEL");
  check_input_args(args);
  const int max_order = int(args.integer("--max-order", 0, 8).value_or(2));
  const LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  const std::vector<std::vector<int>> windows = input_windows(args, lm);
  const TermImportance ti = term_importance(lm.model, windows, max_order);

  if (args.has("--json")) {
    Json j;
    j["weights"] = weights_kind(lm.model);
    j["windows"] = windows.size();
    j["tokens"] = ti.tokens;
    j["max_order"] = max_order;
    j["loss_full"] = ti.loss_full;
    j["loss_by_order"] = ti.loss_by_order;
    Json terms = Json::array();
    for (size_t i = 0; i < ti.terms.size(); ++i) {
      const PathTerm& t = ti.terms[i];
      Json heads = Json::array();
      for (const HeadId& h : t.heads) heads.push_back(Json{{"layer", h.layer}, {"head", h.head}});
      terms.push_back(Json{{"name", t.name()},
                           {"order", t.order()},
                           {"heads", heads},
                           {"loss_without", ti.loss_without[i]},
                           {"effect", ti.loss_without[i] - ti.loss_full}});
    }
    j["terms"] = terms;
    print_json(std::cout, j, 2);
    return 0;
  }
  std::ostringstream o;
  o << "term importance over " << ti.tokens << " predictions in " << windows.size()
    << " window(s), patterns and normalization scales frozen (docs/two-layer.md)\n";
  for (size_t k = 0; k < ti.loss_by_order.size(); ++k) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "  loss up to order %zu: %.4f\n", k, ti.loss_by_order[k]);
    o << buf;
  }
  o << "  full model:          " << ti.loss_full << "\nterm            loss without   effect\n";
  for (size_t i = 0; i < ti.terms.size(); ++i) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%-15s %12.4f %+9.4f\n", ti.terms[i].name().c_str(), ti.loss_without[i],
                  ti.loss_without[i] - ti.loss_full);
    o << buf;
  }
  std::cout << o.str();
  return 0;
}

}  // namespace cs::cli
