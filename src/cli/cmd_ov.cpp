// `circuitscope ov MODEL --head L.H (--source ID | --out ID) [--top K] [--json] [--raw] [--no-embed-norm]`
// The full OV circuit of one head, E W_V W_O W_U ([d_vocab, d_vocab_out];
// TransformerLens row vectors; entry (source, out) = the logit effect on out
// of attending to source; core/vocab_matrix.h, docs/one-layer.md), one row
// or column of it, never formed whole:
//   --source s: row s, the K out tokens it raises most;
//   --out o:    column o, the K source tokens that raise o most.
// Values are the matrix entries, highest first (ties: smaller id first).
#include "cli/cli_common.h"
#include "core/vocab_matrix.h"

namespace cs::cli {

int cmd_ov(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw", "--no-embed-norm"}, {"--head", "--source", "--out", "--top"}});
  args.expect_positional(1, "MODEL");
  const HeadRef h = head_syntax(args);
  if (args.has("--source") == args.has("--out")) throw UsageError("give exactly one of --source ID or --out ID");
  const int k = int(args.integer("--top", 1, 1'000'000).value_or(10));
  const std::optional<int> source = token_id_option(args, "--source"), out = token_id_option(args, "--out");

  LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  const ModelConfig& c = lm.model.config();
  check_head(h, c);
  if (source) check_token_id("--source", *source, c.d_vocab, "d_vocab");
  if (out) check_token_id("--out", *out, c.vocab_out(), "d_vocab_out");
  const VocabMatrix ov = ov_circuit_matrix(lm.model, h.layer, h.head, circuit_options(args));
  if (source)
    print_circuit_top(args, lm, h, "ov", "source", *source, "out tokens", ov.row_top_k(*source, k));
  else
    print_circuit_top(args, lm, h, "ov", "out", *out, "source tokens", ov.column_top_k(*out, k));
  return 0;
}

}  // namespace cs::cli
