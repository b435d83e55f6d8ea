// `circuitscope induction MODEL [--json] [--raw] [--seed S] [--tokens N] [--repeats R] [--examples E]`
// [I]'s repeated-random-tokens experiment (core/induction.h; definitions in
// docs/two-layer.md): `examples` sequences of N random tokens repeated R times
// (BOS first when the tokenizer has one; defaults 25 x 4, 10 examples, as [I]),
// each head's prefix-matching score on them and its copying score on their
// tokens, and the mean loss on the first copy and on the repeats.
// JSON: {"weights", "tokens", "repeats", "examples", "seed", "bos",
//        "prefix_matching": [layer][head], "copying": [layer][head] (null when
//        d_vocab != d_vocab_out), "loss_first", "loss_repeat", "sequences": [[ids]]}
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/error.h"
#include "core/induction.h"
#include "io/json_out.h"

namespace cs::cli {

int cmd_induction(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw"}, {"--seed", "--tokens", "--repeats", "--examples"}});
  args.expect_positional(1, "MODEL");
  const uint64_t seed = uint64_t(args.integer("--seed", 0, INT64_MAX).value_or(0));
  const int n = int(args.integer("--tokens", 1, 1 << 20).value_or(25));
  const int repeats = int(args.integer("--repeats", 2, 1 << 20).value_or(4));
  const int examples = int(args.integer("--examples", 1, 1 << 20).value_or(10));
  const LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  const ModelConfig& c = lm.model.config();
  const int bos = lm.tokenizer && lm.tokenizer->bos_id() ? *lm.tokenizer->bos_id() : -1;
  const std::vector<std::vector<int>> seqs = repeated_random_tokens(c.d_vocab, n, repeats, examples, seed, bos);
  if (c.has_pos() && seqs[0].size() > size_t(c.n_ctx))
    throw Error("induction: " + std::to_string(seqs[0].size()) + " tokens per sequence, more than n_ctx " +
                std::to_string(c.n_ctx) + " (use fewer --tokens or --repeats)");
  const RowMat prefix = prefix_matching_scores(lm.model, seqs, bos);
  std::vector<int> ids;
  for (const auto& s : seqs)
    for (int t : s)
      if (t != bos) ids.push_back(t);
  RowMat copying = RowMat::Constant(c.n_layers, c.n_heads, std::nanf(""));
  if (c.d_vocab == c.vocab_out()) copying = token_copying_scores(lm.model, ids);
  const RepeatLoss loss = repeat_loss(lm.model, seqs, n, repeats, bos >= 0);

  if (args.has("--json")) {
    Json j;
    j["weights"] = weights_kind(lm.model);
    j["tokens"] = n;
    j["repeats"] = repeats;
    j["examples"] = examples;
    j["seed"] = seed;
    j["bos"] = bos >= 0 ? Json(bos) : Json(nullptr);
    j["sequences"] = seqs;
    j["prefix_matching"] = matrix_json(prefix);
    j["copying"] = matrix_json(copying);
    j["loss_first"] = loss.first;
    j["loss_repeat"] = loss.repeats;
    print_json(std::cout, j, 2);
    return 0;
  }
  std::ostringstream o;
  o << "repeated random tokens: " << examples << " x (" << (bos >= 0 ? "BOS + " : "") << n << " tokens x " << repeats
    << "), seed " << seed << " (docs/two-layer.md)\n"
    << "loss on the first copy " << loss.first << " nats, on the repeats " << loss.repeats << " nats\n"
    << "head   prefix-matching  copying\n";
  for (int l = 0; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_heads; ++h) {
      char buf[80];
      std::snprintf(buf, sizeof buf, "%d.%-4d %15.3f  %7.3f\n", l, h, double(prefix(l, h)), double(copying(l, h)));
      o << buf;
    }
  std::cout << o.str();
  return 0;
}

}  // namespace cs::cli
