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
  return circuit_lookup(words, {"qk", qk_circuit_matrix, "--destination", "source tokens", "--source",
                                "destination tokens", "d_vocab"});
}

}  // namespace cs::cli
