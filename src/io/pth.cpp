// PyTorch checkpoint reader (pth.h).
#include "io/pth.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "core/error.h"
#include "io/pickle.h"
#include "io/zip.h"

namespace cs {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A tensor of a storage whose bytes start at `storage_at` in the file.
StTensor place(const PickledTensor& p, uint64_t storage_at) {
  StTensor t;
  t.name = p.name;
  t.dtype = p.dtype;
  t.shape = p.shape;
  const uint64_t es = dtype_size(p.dtype);
  t.begin = storage_at + uint64_t(p.offset) * es;
  t.end = t.begin + uint64_t(t.numel()) * es;  // unpickle_state_dict checked it lies inside the storage
  return t;
}

StFile from_zip(std::span<const uint8_t> bytes) {
  const ZipArchive z = read_zip(bytes);
  const ZipEntry* pkl = nullptr;
  for (const ZipEntry& e : z.entries)
    if (e.name == "data.pkl" || e.name.ends_with("/data.pkl")) {
      if (pkl) throw Error("the archive holds several data.pkl (" + pkl->name + ", " + e.name + "): not one state dict");
      pkl = &e;
    }
  if (!pkl) throw Error("the zip archive has no data.pkl: not a checkpoint written by torch.save");
  // The folder of data.pkl: torch names it after the file at save time, which tells nothing now.
  const std::string prefix = pkl->name.substr(0, pkl->name.size() - std::string("data.pkl").size());
  for (const ZipEntry& e : z.entries)
    if (e.name.rfind(prefix + "code/", 0) == 0 || e.name == prefix + "constants.pkl")
      throw Error("this is a TorchScript archive (torch.jit.save), not a state dict: save model.state_dict() with torch.save");
  if (const ZipEntry* order = z.find(prefix + "byteorder")) {
    const std::span<const uint8_t> b = z.stored(order->name);
    if (std::string(b.begin(), b.end()) != "little")
      throw Error("the checkpoint's byteorder is not 'little', which is not supported");
  }

  const std::vector<PickledTensor> tensors = unpickle_state_dict(z.stored(pkl->name), "data.pkl");
  StFile f;
  f.data = bytes;
  for (const PickledTensor& p : tensors) {
    const std::string entry = prefix + "data/" + p.storage_key;
    const ZipEntry* e = z.find(entry);
    if (!e) throw Error("tensor '" + p.name + "': its storage '" + p.storage_key + "' has no entry " + entry + " in the archive");
    const std::span<const uint8_t> data = z.stored(entry);
    const uint64_t es = dtype_size(p.dtype);
    if (uint64_t(p.storage_numel) > data.size() / es)
      throw Error("tensor '" + p.name + "': its storage '" + p.storage_key + "' should hold " +
                  std::to_string(p.storage_numel) + " elements of " + p.dtype + " but its entry has " +
                  std::to_string(data.size()) + " bytes");
    f.tensors.push_back(place(p, e->data_offset));
  }
  return f;
}

StFile from_legacy(std::span<const uint8_t> bytes) {
  size_t pos = read_legacy_header(bytes);
  const std::vector<PickledTensor> tensors = unpickle_state_dict(bytes, "the state dict pickle", pos, &pos);
  const std::vector<std::string> keys = unpickle_string_list(bytes, "the storage key list", pos, &pos);

  // Each storage: its element count (int64, little-endian), then its bytes.
  std::map<std::string, std::pair<const PickledTensor*, uint64_t>> storages;  // key -> a tensor of it, where its bytes start
  for (const PickledTensor& p : tensors) storages.emplace(p.storage_key, std::make_pair(&p, UINT64_MAX));
  for (const std::string& key : keys) {
    auto it = storages.find(key);
    if (it == storages.end()) throw Error("storage '" + key.substr(0, 40) + "' is stored but no tensor uses it");
    if (it->second.second != UINT64_MAX) throw Error("storage '" + key.substr(0, 40) + "' is stored twice");
    const PickledTensor& p = *it->second.first;
    if (bytes.size() - pos < 8)
      throw Error("storage '" + key.substr(0, 40) + "' (of tensor '" + p.name + "') is cut off: the file is truncated");
    uint64_t n = 0;
    std::memcpy(&n, bytes.data() + pos, 8);
    pos += 8;
    if (n != uint64_t(p.storage_numel))
      throw Error("storage '" + key.substr(0, 40) + "' has " + std::to_string(n) + " elements but tensor '" + p.name +
                  "' says " + std::to_string(p.storage_numel));
    const uint64_t es = dtype_size(p.dtype);
    if (n > (bytes.size() - pos) / es)
      throw Error("storage '" + key.substr(0, 40) + "' (of tensor '" + p.name + "') runs past the end of the file: the file is truncated");
    it->second.second = pos;
    pos += size_t(n * es);
  }
  StFile f;
  f.data = bytes;
  for (const PickledTensor& p : tensors) {
    const uint64_t at = storages.at(p.storage_key).second;
    if (at == UINT64_MAX) throw Error("tensor '" + p.name + "': its storage '" + p.storage_key.substr(0, 40) + "' is not in the file");
    f.tensors.push_back(place(p, at));
  }
  return f;
}

}  // namespace

bool is_pth_name(const std::string& name) {
  const std::string n = lower(name);
  return n.ends_with(".pth") || n.ends_with(".pt");
}

StFile parse_pth(std::span<const uint8_t> bytes) {
  StFile f;
  if (looks_like_zip(bytes))
    f = from_zip(bytes);
  else if (!bytes.empty() && bytes[0] == 0x80)
    f = from_legacy(bytes);
  else
    throw Error("not a PyTorch checkpoint (neither torch.save's zip format nor its legacy pickle format)");
  std::sort(f.tensors.begin(), f.tensors.end(),
            [](const StTensor& a, const StTensor& b) { return a.begin != b.begin ? a.begin < b.begin : a.name < b.name; });
  return f;
}

}  // namespace cs
