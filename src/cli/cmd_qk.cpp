// `circuitscope qk MODEL --head L.H (--destination ID | --source ID) [--top K] [--json] [--raw] [--no-embed-norm]`
// The full QK circuit of one head, E W_Q W_K^T E^T ([d_vocab, d_vocab];
// TransformerLens row vectors; entry (destination, source) = the attention
// score of the destination (query) token for the source (key) token, before
// attn_scale and without biases or positions; core/vocab_matrix.h,
// docs/one-layer.md), one row or column of it, never formed whole:
//   --destination d: row d, the K source tokens d attends to most;
//   --source s:      column s, the K destination tokens that attend to s most.
// Values are the matrix entries, highest first (ties: smaller id first).
#include "cli/cli_common.h"
#include "core/vocab_matrix.h"

namespace cs::cli {

int cmd_qk(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw", "--no-embed-norm"}, {"--head", "--destination", "--source", "--top"}});
  args.expect_positional(1, "MODEL");
  const HeadRef h = head_syntax(args);
  if (args.has("--destination") == args.has("--source"))
    throw UsageError("give exactly one of --destination ID or --source ID");
  const int k = int(args.integer("--top", 1, 1'000'000).value_or(10));
  const std::optional<int> dest = token_id_option(args, "--destination"), source = token_id_option(args, "--source");

  LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  const ModelConfig& c = lm.model.config();
  check_head(h, c);
  if (dest) check_token_id("--destination", *dest, c.d_vocab, "d_vocab");
  if (source) check_token_id("--source", *source, c.d_vocab, "d_vocab");
  const VocabMatrix qk = qk_circuit_matrix(lm.model, h.layer, h.head, circuit_options(args));
  if (dest)
    print_circuit_top(args, lm, h, "qk", "destination", *dest, "source tokens", qk.row_top_k(*dest, k));
  else
    print_circuit_top(args, lm, h, "qk", "source", *source, "destination tokens", qk.column_top_k(*source, k));
  return 0;
}

}  // namespace cs::cli
