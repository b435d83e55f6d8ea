// `circuitscope ov MODEL --head L.H [--through L.H] (--source ID | --out ID) [--top K] [--json] [--raw]
//  [--no-embed-norm]`
// The full OV circuit of one head, E W_V W_O W_U ([d_vocab, d_vocab_out];
// TransformerLens row vectors; entry (source, out) = the logit effect on out
// of attending to source; core/vocab_matrix.h, docs/one-layer.md), one row
// or column of it, never formed whole:
//   --source s: row s, the K out tokens it raises most;
//   --out o:    column o, the K source tokens that raise o most.
// Values are the matrix entries, highest first (ties: smaller id first).
// With --through L1.H1 (an earlier layer): the virtual head (--head) o
// (--through), E W_V1 W_O1 W_V2 W_O2 W_U, its E through block L1's
// LayerNorm (docs/two-layer.md, "Virtual heads"); JSON adds "through".
#include "cli/cli_common.h"
#include "core/vocab_matrix.h"

namespace cs::cli {

int cmd_ov(const std::vector<std::string>& words) {
  return circuit_lookup(words, {"ov", ov_circuit_matrix, "--source", "out tokens", "--out", "source tokens",
                                "d_vocab_out", virtual_ov_circuit_matrix});
}

}  // namespace cs::cli
