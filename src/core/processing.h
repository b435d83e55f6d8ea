// TransformerLens weight processing (docs/model.md, Weight processing), in TransformerLens' order:
// fold_ln, center_writing_weights, center_unembed, fold_value_biases.
// Each step leaves log-softmax of the logits unchanged (up to float error).
// Applied "where TransformerLens applies it":
//  - fold_ln only with Norm::LN, and not for Shortformer positions (the
//    positional term is added after ln1, so ln1.w cannot be folded into W_Q/W_K
//    exactly); after it the config's normalization is LNPre.
//  - center_writing_weights only when the model normalizes (LN or LNPre);
//    W_pos is centred only with Standard positions (it is written into the stream).
//  - center_unembed and fold_value_biases always.
#pragma once
#include <memory>
#include <vector>

#include "core/model.h"
#include "core/sliced.h"

namespace cs {

struct ProcessOptions {
  bool fold_ln = true;
  bool center_writing_weights = true;
  bool center_unembed = true;
  bool fold_value_biases = true;
};

void fold_ln(Model& m);
void center_writing_weights(Model& m);
void center_unembed(Model& m);
void fold_value_biases(Model& m);

// Applies the enabled steps that apply to this model; records them in m.processing.
void process_weights(Model& m, const ProcessOptions& opt = {});

// LayerNorm w and b of an LN model, each [d_model]: ln1 per layer and ln_final.
struct LayerNormWeights {
  std::vector<Vec> ln1_w, ln1_b;
  Vec ln_final_w, ln_final_b;
};

// process_weights as a sliced computation (core/sliced.h): units of at most
// about kSliceFloats floats each (a W_U column block, a chunk of W_E rows, a
// layer's heads), for the page to spread over frames. process_weights and the
// single steps above run the same units to the end. m must outlive it; each
// step is recorded in m.processing when its last unit has run.
class WeightProcessing final : public WorkPlan {
 public:
  WeightProcessing(Model& m, const ProcessOptions& opt = {});
  // For a loader that read an LN model straight into the LNPre layout (no ln
  // tensors; m.config().normalization == LNPre) and kept its LayerNorm weights
  // aside: fold_ln folds `ln` in without building the model a second time.
  // Throws cs::Error if ln does not fit the model.
  WeightProcessing(Model& m, const ProcessOptions& opt, LayerNormWeights ln);
};

}  // namespace cs
