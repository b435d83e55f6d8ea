// `circuitscope virtual MODEL [--top N] [--json] [--raw] [--no-embed-norm]`
// Virtual heads h2 o h1 (head h2 of a later layer reading, through its values,
// what head h1 wrote; docs/two-layer.md, "Virtual heads"), largest
// ||W_OV1 W_OV2|| first (core/composition.h), each with its V-composition
// score and the eigenvalues and copying score of its full OV circuit
// E W_V1 W_O1 W_V2 W_O2 W_U (core/circuits.h; E through block l1's LayerNorm
// unless --no-embed-norm). --top N (default 20) lists the first N.
// JSON: {"weights", "embed_norm", "n_layers", "n_heads", "count" (all virtual heads),
//        "virtual_heads": [{"earlier": {"layer","head"}, "later": {"layer","head"},
//                           "norm", "v_composition", "ov_copying_score" (null when not square),
//                           "ov_eigenvalues": [[re, im], ...]}]}
// Explore one with `circuitscope ov MODEL --head L2.H2 --through L1.H1`.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/circuits.h"
#include "core/composition.h"
#include "io/report_json.h"

namespace cs::cli {

int cmd_virtual(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw", "--no-embed-norm"}, {"--top"}});
  args.expect_positional(1, "MODEL");
  const int top = int(args.integer("--top", 1, 1'000'000).value_or(20));
  const LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  const ModelConfig& c = lm.model.config();
  const CircuitOptions opt = circuit_options(args, lm);
  const std::vector<VirtualHeadNorm> all = rank_virtual_heads(composition_scores(lm.model));
  const size_t n = std::min(all.size(), size_t(top));
  const bool square = c.d_vocab == c.vocab_out();
  std::vector<std::vector<std::complex<double>>> eig(n);
  if (square && n > 0) {
    const EmbedGrams g = embed_grams(lm.model, opt);
    for (size_t i = 0; i < n; ++i) {
      const VirtualHeadRef v = all[i].head;
      eig[i] = small_eigenvalues(virtual_ov_small_matrix(lm.model, v.l1, v.h1, v.l2, v.h2, g), "virtual head");
    }
  }

  if (args.has("--json")) {
    print_json(std::cout, virtual_heads_json(lm.model, opt.normalize_embed, all, eig), 2);
    return 0;
  }
  std::ostringstream o;
  o << "virtual heads (later o earlier), largest ||W_OV1 W_OV2|| first, " << weights_kind(lm.model)
    << " weights (docs/two-layer.md)\n";
  if (all.empty()) o << "fewer than two layers: no virtual heads\n";
  else o << "rank  virtual head   norm        V-comp   OV copying\n";
  for (size_t i = 0; i < n; ++i) {
    const VirtualHeadNorm& v = all[i];
    char buf[128];
    std::snprintf(buf, sizeof buf, "%4zu  %d.%d o %d.%d  %10.5g  %7.4f  ", i + 1, v.head.l2, v.head.h2, v.head.l1,
                  v.head.h1, v.norm, v.v_composition);
    o << buf;
    if (square) {
      std::snprintf(buf, sizeof buf, "%+.3f\n", copying_score(eig[i]));
      o << buf;
    } else {
      o << "-\n";
    }
  }
  if (n < all.size()) o << "(" << all.size() - n << " more: --top N)\n";
  std::cout << o.str();
  return 0;
}

}  // namespace cs::cli
