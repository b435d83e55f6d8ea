// A read-only index of a zip archive held in memory, as PyTorch's torch.save
// writes them (docs/model.md, PyTorch checkpoints): entries are found through
// the central directory (zip64 records included); only stored (uncompressed)
// entries have data, so nothing is ever inflated and a "zip bomb" costs
// nothing. Every check is a one-line cs::Error starting "zip: ".
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cs {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;                // 0 = stored; anything else is refused when read
  uint64_t size = 0;                  // uncompressed size, as the central directory says
  uint64_t compressed_size = 0;
  uint64_t data_offset = 0;           // of the entry's bytes in the archive (stored entries)
  std::span<const uint8_t> data;      // the entry's bytes (stored entries; empty otherwise)
};

struct ZipArchive {
  std::vector<ZipEntry> entries;      // in central directory order
  const ZipEntry* find(std::string_view name) const;
  // The bytes of a stored entry; throws cs::Error naming the entry when it
  // is missing or compressed.
  std::span<const uint8_t> stored(std::string_view name) const;
};

// Checks: the end-of-central-directory record (and the zip64 one where the
// archive has it), that the directory and every entry's local header and data
// lie inside the bytes, that the local header names the same entry, no
// encryption, stored entries' sizes agree.
ZipArchive read_zip(std::span<const uint8_t> bytes);

// True when the bytes start like a zip archive ("PK\3\4", or an empty archive).
bool looks_like_zip(std::span<const uint8_t> bytes);

}  // namespace cs
