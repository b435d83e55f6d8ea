// `circuitscope info MODEL [--json] [--raw]`: the model card.
// JSON: {"config": {config_json keys, io/json_out.h}, "parameters": N, "weights": "processed"|"raw",
//        "processing": ProcessingState::describe(), "tokenizer": {kind, vocab_size, bos_id} | null,
//        "warnings": [...]}
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "io/report_json.h"

namespace cs::cli {

namespace {

std::string with_thousands(int64_t n) {
  std::string s = std::to_string(n), out;
  int k = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it, ++k) {
    if (k && k % 3 == 0 && *it != '-') out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
  }
  return out;
}

void print_card(std::ostream& out, const LoadedModel& lm) {
  const ModelConfig& c = lm.model.config();
  out << "model       " << (c.name.empty() ? "(unnamed)" : c.name) << "  [" << lm.weights_file << "]\n"
      << "layers      " << c.n_layers << " (attention only), d_model " << c.d_model << ", " << c.n_heads
      << " heads of " << c.d_head << ", n_ctx " << c.n_ctx << "\n"
      << "vocab       " << c.d_vocab << " in, " << c.vocab_out() << " out\n"
      << "positions   " << to_string(c.positional) << "; normalization " << to_string(c.normalization)
      << "; attn_scale " << c.scale() << "; eps " << c.eps << "\n"
      << "parameters  " << with_thousands(lm.model.parameter_count()) << "\n"
      << "weights     " << lm.model.processing.describe() << "\n";
  if (lm.tokenizer) {
    out << "tokenizer   " << lm.tokenizer->kind() << "; " << lm.tokenizer->vocab_size() << " tokens; BOS ";
    if (auto b = lm.tokenizer->bos_id())
      out << *b << " (" << lm.tokenizer->display(*b) << ")";
    else
      out << "none";
    out << "\n";
  } else {
    out << "tokenizer   none (ids only)\n";
  }
  for (const auto& w : lm.warnings) out << "warning     " << w << "\n";
}

}  // namespace

int cmd_info(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw"}, {}});
  args.expect_positional(1, "MODEL");
  LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));

  if (!args.has("--json")) {
    std::ostringstream card;
    print_card(card, lm);
    std::cout << card.str();
    return 0;
  }
  print_json(std::cout, info_json(lm), 2);
  return 0;
}

}  // namespace cs::cli
