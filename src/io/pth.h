// PyTorch checkpoints (.pth, .pt) as torch.save writes a state dict
// (docs/model.md, PyTorch checkpoints): the zip format (a pickle data.pkl
// and one raw storage per entry data/<key>) and the legacy format of
// torch < 1.6 (header pickles, the state dict pickle, the storage keys, then
// each storage's size and bytes). The pickle is read by a restricted
// unpickler (pickle.h): reading a file never runs anything from it.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "io/safetensors.h"

namespace cs {

// The state dict's tensors as an StFile over `bytes`: StFile::data is all of
// `bytes` and each tensor's [begin, end) is where its elements lie in them, so
// the loader converts them as it converts safetensors (tensor_to_float).
// Checks that every tensor is contiguous and inside its storage, and every
// storage inside the file. Throws cs::Error with a one-line reason.
StFile parse_pth(std::span<const uint8_t> bytes);

// ".pth" or ".pt" (any case).
bool is_pth_name(const std::string& name);

}  // namespace cs
