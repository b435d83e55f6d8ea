// `circuitscope composition MODEL [--json] [--raw] [--seed S] [--samples N]`
// Q-, K- and V-composition scores of every (earlier head, later head) pair
// (core/composition.h; definitions in docs/two-layer.md), raw (the random
// baseline not subtracted), and the baseline itself.
// JSON: {"weights": "processed"|"raw", "n_layers", "n_heads",
//        "Q": [l1][h1][l2][h2], "K": ..., "V": ... (0 where l1 >= l2),
//        "baseline": mean score of random matrices of the same shapes,
//        "virtual_norm": [l1][h1][l2][h2] = ||W_OV1 W_OV2||, the size of the virtual head's OV circuit}
// Text: for each kind, the pairs above the baseline, highest first.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <tuple>
#include <vector>

#include "cli/cli_common.h"
#include "core/composition.h"
#include "io/report_json.h"

namespace cs::cli {

int cmd_composition(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw"}, {"--seed", "--samples"}});
  args.expect_positional(1, "MODEL");
  CompositionOptions opt;
  opt.seed = uint64_t(args.integer("--seed", 0, INT64_MAX).value_or(0));
  opt.baseline_samples = int(args.integer("--samples", 1, 100000).value_or(opt.baseline_samples));
  const LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  const CompositionScores s = composition_scores(lm.model, opt);
  const CompositionKind kinds[] = {CompositionKind::Q, CompositionKind::K, CompositionKind::V};

  if (args.has("--json")) {
    print_json(std::cout, composition_json(lm.model, s), 2);
    return 0;
  }
  std::ostringstream o;
  o << "composition scores, " << weights_kind(lm.model) << " weights (definitions: docs/two-layer.md)\n"
    << "random baseline (same shapes): " << s.baseline << "\n";
  if (s.n_layers < 2) o << "one layer: no head has an earlier head to compose with\n";
  for (CompositionKind k : kinds) {
    std::vector<std::tuple<double, int, int, int, int>> pairs;
    for (int l1 = 0; l1 < s.n_layers; ++l1)
      for (int h1 = 0; h1 < s.n_heads; ++h1)
        for (int l2 = l1 + 1; l2 < s.n_layers; ++l2)
          for (int h2 = 0; h2 < s.n_heads; ++h2) pairs.emplace_back(s.at(k, l1, h1, l2, h2), l1, h1, l2, h2);
    std::stable_sort(pairs.begin(), pairs.end(), [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
    if (s.n_layers >= 2) o << to_string(k) << "-composition, highest first:\n";
    int shown = 0;
    for (const auto& [v, l1, h1, l2, h2] : pairs) {
      if (shown == 10) break;
      char buf[96];
      std::snprintf(buf, sizeof buf, "  %d.%d -> %d.%d  %.4f  (%+.4f over the baseline)\n", l1, h1, l2, h2, v,
                    v - s.baseline);
      o << buf;
      ++shown;
    }
  }
  std::cout << o.str();
  return 0;
}

}  // namespace cs::cli
