// `circuitscope report MODEL [--json] [--raw] [--no-embed-norm] [--no-diagonal] [--top N]`
// The whole analysis of a model in one run (core/report.h; docs/exports.md,
// "The analysis report"): what `info`, `heads`, `composition`, `virtual
// --top N` (default 20) and `induction` print with their defaults (the
// experiment shortened where n_ctx is short), from one plan run on all cores.
// The page's "Download report" writes the same JSON.
// JSON: {"report": "circuitscope analysis report", "version": 1,
//        "commands": {section: the arguments after MODEL that print it alone},
//        "info": ..., "heads": ..., "composition": ..., "virtual": ..., "induction": ...}
// (each section exactly as its command's --json, io/report_json.h).
// Text: what the sections say in a few lines.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/head_badges.h"
#include "core/report.h"
#include "io/report_json.h"

namespace cs::cli {

namespace {

std::string head_name(int l, int h) { return std::to_string(l) + "." + std::to_string(h); }

// The heads whose [l][h] score is at least `at_least`, highest first, as "L.H (score)".
std::string heads_at_least(const RowMat& s, double at_least) {
  std::vector<std::pair<float, std::string>> hits;
  for (int l = 0; l < s.rows(); ++l)
    for (int h = 0; h < s.cols(); ++h)
      if (std::isfinite(s(l, h)) && s(l, h) >= at_least) hits.emplace_back(s(l, h), head_name(l, h));
  std::stable_sort(hits.begin(), hits.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  if (hits.empty()) return "none";
  std::string out;
  for (const auto& [v, name] : hits) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%s%s (%.2f)", out.empty() ? "" : ", ", name.c_str(), double(v));
    out += buf;
  }
  return out;
}

void print_summary(std::ostream& o, const LoadedModel& lm, const Report& r) {
  const ModelConfig& c = lm.model.config();
  o << "analysis report: " << (c.name.empty() ? lm.weights_file : c.name) << ", ";
  if (c.n_layers == 0) o << "no layers";
  else o << c.n_layers << " layer(s) of " << c.n_heads << " heads";
  o << ", " << weights_kind(lm.model) << " weights (--json for every number)\n";
  if (c.n_layers == 0) {
    o << "no attention heads: the model is its direct path W_E W_U, a bigram table (circuitscope bigrams)\n";
    return;
  }
  RowMat ov = RowMat::Constant(c.n_layers, c.n_heads, NAN);
  for (const HeadSummary& h : r.heads) ov(h.layer, h.head) = float(h.ov_copying_score);
  o << "copying heads (OV eigenvalue positivity >= " << HeadBadges::kCopying << "): "
    << heads_at_least(ov, HeadBadges::kCopying) << "\n";
  const InductionExperiment& ex = r.induction;
  o << "on " << ex.examples << " x " << ex.tokens << " random tokens repeated " << ex.repeats
    << " times: loss " << ex.loss.first << " nats on the first copy, " << ex.loss.repeats << " on the repeats\n"
    << "previous-token heads (score >= " << HeadBadges::kPrevious
    << "): " << heads_at_least(ex.previous_token, HeadBadges::kPrevious) << "\n"
    << "induction heads (prefix matching >= " << HeadBadges::kInduction
    << "): " << heads_at_least(ex.prefix_matching, HeadBadges::kInduction) << "\n";
  if (c.n_layers >= 2) {
    const CompositionScores& s = r.composition;
    double best = -1;
    VirtualHeadRef at;
    for (int l1 = 0; l1 < c.n_layers; ++l1)
      for (int h1 = 0; h1 < c.n_heads; ++h1)
        for (int l2 = l1 + 1; l2 < c.n_layers; ++l2)
          for (int h2 = 0; h2 < c.n_heads; ++h2)
            if (s.at(CompositionKind::K, l1, h1, l2, h2) > best) {
              best = s.at(CompositionKind::K, l1, h1, l2, h2);
              at = VirtualHeadRef{l1, h1, l2, h2};
            }
    char buf[160];
    std::snprintf(buf, sizeof buf, "strongest K-composition: %d.%d -> %d.%d, %.3f (random baseline %.3f)\n", at.l1,
                  at.h1, at.l2, at.h2, best, s.baseline);
    o << buf;
    if (r.scatter) {
      RowMat k = RowMat::Constant(c.n_layers, c.n_heads, NAN);
      for (const InductionScatterPoint& p : r.scatter->points) k(p.layer, p.head) = float(p.k_term_positivity);
      o << "K-term positivity with previous-token head " << head_name(r.scatter->prev_layer, r.scatter->prev_head)
        << " (0.5 or more): " << heads_at_least(k, 0.5) << "\n";
    }
    if (!r.virtual_heads.empty()) {
      const VirtualHeadNorm& v = r.virtual_heads.front();
      o << "largest virtual head: " << head_name(v.head.l2, v.head.h2) << " o " << head_name(v.head.l1, v.head.h1)
        << " (of " << r.virtual_heads.size() << ")\n";
    }
  }
}

}  // namespace

int cmd_report(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw", "--no-embed-norm", "--no-diagonal"}, {"--top"}});
  args.expect_positional(1, "MODEL");
  ReportOptions opt;
  opt.diagonal = !args.has("--no-diagonal");
  opt.virtual_top = int(args.integer("--top", 0, 1'000'000).value_or(opt.virtual_top));
  const LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  opt.circuit = circuit_options(args, lm);
  opt.bos = bos_or_none(lm);
  ReportPlan plan(lm.model, opt);
  plan.run();  // on analysis_threads() (--threads)
  const Report& r = plan.result();
  if (args.has("--json")) {
    print_json(std::cout, report_json(lm, opt, r), 2);
    return 0;
  }
  std::ostringstream o;
  print_summary(o, lm, r);
  std::cout << o.str();
  return 0;
}

}  // namespace cs::cli
