// TransformerLens weight processing (formats.md), in TransformerLens' order:
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
#include "core/model.h"

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

}  // namespace cs
