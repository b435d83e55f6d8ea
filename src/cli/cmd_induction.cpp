// `circuitscope induction MODEL [--json] [--raw] [--seed S] [--tokens N] [--repeats R] [--examples E]
//                        [--prev L.H] [--no-embed-norm] [--text TEXT | --ids 1,2,3] [--no-bos]`
// [I]'s repeated-random-tokens experiment (core/induction.h; definitions in
// docs/two-layer.md): `examples` sequences of N random tokens repeated R times
// (BOS first when the tokenizer has one; defaults 25 x 4, 10 examples, as [I]),
// each head's prefix-matching and previous-token scores on them and its
// copying score on their tokens, and the mean loss on the first copy and on
// the repeats. With two layers or more, [F]'s scatter from the weights: each
// head after the previous-token head (--prev, else the head of an earlier
// layer with the highest previous-token score here) with its OV eigenvalue
// positivity and the positivity of its K-composition term with that head
// (core/composition.h). With --text or --ids, [I]'s in-context learning score
// on that sample: the loss at token `early` minus the loss at token `late`
// (icl_positions(n_ctx): the 50th and 500th of 512 scaled), averaged over the
// sample's windows of n_ctx tokens that reach `late`, each loss smoothed over
// n_ctx / 64 neighbours (as the trainer logs it).
// JSON: {"weights", "tokens", "repeats", "examples", "seed", "bos",
//        "prefix_matching": [layer][head], "previous_token": [layer][head],
//        "copying": [layer][head] (null when d_vocab != d_vocab_out),
//        "loss_first", "loss_repeat", "sequences": [[ids]],
//        "k_term": {"previous_head": {"layer","head"}, "heads": [{"layer","head",
//                   "ov_positivity", "k_term_positivity", "k_term_eigenvalues": [[re,im]..]}]}
//                  (null with one layer),
//        "in_context_learning": {"score", "early", "late", "windows"} (with --text / --ids)}
#include <cmath>
#include <optional>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/composition.h"
#include "core/error.h"
#include "core/induction.h"
#include "io/json_out.h"
#include "io/report_json.h"

namespace cs::cli {

int cmd_induction(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw", "--no-embed-norm", "--no-bos"},
                    {"--seed", "--tokens", "--repeats", "--examples", "--prev", "--text", "--ids"}});
  args.expect_positional(1, "MODEL");
  const bool sample = args.has("--text") || args.has("--ids");
  if (sample) check_input_args(args);
  std::optional<HeadRef> prev_arg;
  if (auto v = args.value("--prev")) prev_arg = parse_head(*v, "--prev");
  const uint64_t seed = uint64_t(args.integer("--seed", 0, INT64_MAX).value_or(0));
  const int n = int(args.integer("--tokens", 1, 1 << 20).value_or(25));
  const int repeats = int(args.integer("--repeats", 2, 1 << 20).value_or(4));
  const int examples = int(args.integer("--examples", 1, 1 << 20).value_or(10));
  const LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  const ModelConfig& c = lm.model.config();
  if (prev_arg) {
    check_head(*prev_arg, c);
    if (prev_arg->layer + 1 >= c.n_layers)
      throw Error("--prev " + prev_arg->text + ": no layer after layer " + std::to_string(prev_arg->layer) +
                  " to compose with");
  }
  const int bos = bos_or_none(lm);
  // One forward pass per sequence serves prefix matching, previous-token scores and the losses.
  InductionExperimentPlan experiment(lm.model, n, repeats, examples, seed, bos,
                                     circuit_options(args, lm));
  experiment.run();
  const InductionExperiment& ex = experiment.result();
  const RowMat& prefix = ex.prefix_matching;
  const RowMat& previous = ex.previous_token;
  const RepeatLoss& loss = ex.loss;
  const RowMat& copying = ex.copying;

  // [I]'s in-context learning score on the sample's windows that reach `late`.
  std::optional<IclPositions> icl;
  double icl_score = 0;
  size_t icl_windows = 0;
  if (sample) {
    if (!c.has_pos()) throw Error("--text/--ids: the in-context learning score needs a model with positions (n_ctx)");
    icl = icl_positions(c.n_ctx);
    std::vector<std::vector<int>> windows = input_windows(args, lm);
    std::erase_if(windows, [&](const std::vector<int>& w) { return w.size() <= size_t(icl->late); });
    if (windows.empty())
      throw Error("--text/--ids: the in-context learning score needs windows of more than " + std::to_string(icl->late) +
                  " tokens (late = " + std::to_string(icl->late) + " for n_ctx " + std::to_string(c.n_ctx) +
                  "); the sample is shorter");
    icl_windows = windows.size();
    icl_score = in_context_learning_score(lm.model, windows, icl->early, icl->late, std::max(0, c.n_ctx / 64));
  }

  // [F]'s scatter: the previous-token head (given, or the best of the layers before the last).
  std::optional<HeadRef> prev = prev_arg;
  if (!prev && c.n_layers >= 2) {
    const HeadId p = previous_token_head(previous);
    prev = HeadRef{p.layer, p.head, std::to_string(p.layer) + "." + std::to_string(p.head), "--prev"};
  }
  std::optional<InductionScatter> scatter;
  if (prev) {
    InductionScatterPlan plan(lm.model, circuit_options(args, lm), prev->layer, prev->head, {});
    plan.run();
    scatter = plan.result();
  }

  if (args.has("--json")) {
    Json j = induction_json(lm.model, ex, scatter);
    if (icl)
      j["in_context_learning"] =
          Json{{"score", icl_score}, {"early", icl->early}, {"late", icl->late}, {"windows", icl_windows}};
    print_json(std::cout, j, 2);
    return 0;
  }
  std::ostringstream o;
  o << "repeated random tokens: " << examples << " x (" << (bos >= 0 ? "BOS + " : "") << n << " tokens x " << repeats
    << "), seed " << seed << " (docs/two-layer.md)\n"
    << "loss on the first copy " << loss.first << " nats, on the repeats " << loss.repeats << " nats\n"
    << "head   prefix-matching  previous-token  copying\n";
  for (int l = 0; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_heads; ++h) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%d.%-4d %15.3f  %14.3f  %7.3f\n", l, h, double(prefix(l, h)),
                    double(previous(l, h)), double(copying(l, h)));
      o << buf;
    }
  if (prev) {
    o << "from the weights, with previous-token head " << prev->layer << "." << prev->head
      << " ([F]: induction heads have both near 1)\nhead   OV positivity  K-term positivity\n";
    for (const InductionScatterPoint& p : scatter->points) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%d.%-4d %13.3f  %17.3f\n", p.layer, p.head, p.ov_positivity, p.k_term_positivity);
      o << buf;
    }
  }
  if (icl)
    o << "in-context learning score on the sample: " << icl_score << " nats (loss at token " << icl->early
      << " minus loss at token " << icl->late << ", " << icl_windows << " window(s))\n";
  std::cout << o.str();
  return 0;
}

}  // namespace cs::cli
