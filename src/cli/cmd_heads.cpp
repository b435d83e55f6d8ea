// `circuitscope heads MODEL [--json] [--raw] [--no-embed-norm] [--seed S] [--no-diagonal]`
// One line per attention head (core/head_summary.h; definitions in
// docs/one-layer.md): OV and QK copying scores and eigenvalues, the share of
// the attention score that is positional, the OV diagonal test (top-1 /
// top-5), attention to the current and the previous token.
// JSON: {"weights": "processed"|"raw", "embed_norm": bool,
//        "heads": [{"layer","head","ov_copying_score","qk_copying_score",
//                   "ov_eigenvalues": [[re, im], ...], "qk_eigenvalues": [...],
//                   "positional_share","ov_diagonal_top1","ov_diagonal_top5",
//                   "attn_current","attn_previous"}]}
// (null where a number is not defined, e.g. the OV scores when d_vocab != d_vocab_out).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/head_summary.h"
#include "io/report_json.h"

namespace cs::cli {

namespace {

std::string fixed(double v, int width, int prec) {
  if (!std::isfinite(v)) return std::string(size_t(width - 1), ' ') + "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%*.*f", width, prec, v);
  return buf;
}

}  // namespace

int cmd_heads(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw", "--no-embed-norm", "--no-diagonal"}, {"--seed"}});
  args.expect_positional(1, "MODEL");
  HeadSummaryOptions opt;
  opt.seed = uint64_t(args.integer("--seed", 0, INT64_MAX).value_or(0));
  opt.diagonal = !args.has("--no-diagonal");
  LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  opt.circuit = circuit_options(args, lm);
  const std::vector<HeadSummary> heads = head_summaries(lm.model, opt);

  if (args.has("--json")) {
    print_json(std::cout, heads_json(lm.model, opt.circuit.normalize_embed, heads), 2);
    return 0;
  }
  std::ostringstream s;
  s << "attention heads, " << weights_kind(lm.model) << " weights"
    << (opt.circuit.normalize_embed ? "" : ", W_E not normalized") << " (definitions: docs/one-layer.md)\n"
    << "head   OV copy  QK copy  positional  OV diag top1  top5   attn cur  prev\n";
  for (const HeadSummary& h : heads) {
    s << std::to_string(h.layer) + "." + std::to_string(h.head);
    s << std::string(size_t(std::max<int>(1, 5 - int(std::to_string(h.layer).size() + std::to_string(h.head).size()))), ' ')
      << fixed(h.ov_copying_score, 8, 3) << " " << fixed(h.qk_copying_score, 8, 3) << "  "
      << fixed(h.positional_share, 10, 3) << "  " << fixed(h.ov_diagonal_top1, 12, 3) << " "
      << fixed(h.ov_diagonal_top5, 5, 3) << "  " << fixed(h.attn_current, 8, 3) << " "
      << fixed(h.attn_previous, 5, 3) << "\n";
  }
  std::cout << s.str();
  return 0;
}

}  // namespace cs::cli
