// A restricted unpickler for PyTorch state dicts (docs/model.md, PyTorch
// checkpoints). It is not Python's pickle: it knows only the opcodes and the
// globals that torch.save writes for a dict of tensors (OrderedDict, the
// tensor rebuild functions, the storage types) and refuses everything else
// with a one-line cs::Error that names the opcode or the global. Nothing in a
// file is ever called: "REDUCE" of an allowed global is interpreted here.
// Memory use is linear in the input (values live in one arena, shared, never
// copied), so a hostile pickle cannot blow up or recurse.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace cs {

// A tensor of a state dict: a view of a storage, in elements.
struct PickledTensor {
  std::string name;                   // the state dict's key
  std::string storage_key;            // zip: the entry data/<key>; legacy: the storage's id
  std::string dtype;                  // the storage's element type, safetensors' names ("F32", "BF16", ...)
  int64_t storage_numel = 0;          // elements of the whole storage, as its persistent id says
  int64_t offset = 0;                 // first element of the view
  std::vector<int64_t> shape, stride;
};

// data.pkl of torch.save (or the state dict pickle of the legacy format, at
// bytes[start]): a dict (or OrderedDict) of name -> tensor. `what` names the
// pickle in messages; *end receives the position after its STOP.
std::vector<PickledTensor> unpickle_state_dict(std::span<const uint8_t> bytes, const std::string& what,
                                               size_t start = 0, size_t* end = nullptr);

// The legacy (pre-zip) format's three header pickles, from bytes[0]: the magic
// number, the protocol version 1001 and the system info (which must say
// little-endian). Returns the position after them; throws cs::Error when the
// bytes are not such a header.
size_t read_legacy_header(std::span<const uint8_t> bytes);

// A pickled list of strings at bytes[start] (the legacy format's storage keys).
std::vector<std::string> unpickle_string_list(std::span<const uint8_t> bytes, const std::string& what, size_t start,
                                              size_t* end);

}  // namespace cs
