// Zip archive index (zip.h). The layout, as far as it is read here:
//   [local header 30 B + name + extra][entry bytes] ... per entry
//   central directory: one 46 B header + name + extra + comment per entry
//   [zip64 end-of-directory record 56 B][zip64 locator 20 B]  (zip64 archives)
//   end-of-central-directory record 22 B + comment
// Sizes and offsets of 0xFFFFFFFF in a central header are in its zip64 extra
// field (id 1), in the order uncompressed size, compressed size, offset.
#include "io/zip.h"

#include <cstring>

#include "core/error.h"

namespace cs {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw Error("zip: " + msg); }

uint64_t le(std::span<const uint8_t> b, uint64_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[size_t(at) + size_t(i)];
  return v;
}

constexpr uint32_t kLocal = 0x04034b50, kCentral = 0x02014b50, kEnd = 0x06054b50, kEnd64 = 0x06064b50,
                   kLocator64 = 0x07064b50;

// An entry name in a message.
std::string shown(const std::string& name) { return message_text(name, 80); }

}  // namespace

bool looks_like_zip(std::span<const uint8_t> bytes) {
  return bytes.size() >= 4 && (le(bytes, 0, 4) == kLocal || le(bytes, 0, 4) == kEnd);
}

const ZipEntry* ZipArchive::find(std::string_view name) const {
  for (const ZipEntry& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

std::span<const uint8_t> ZipArchive::stored(std::string_view name) const {
  const ZipEntry* e = find(name);
  if (!e) fail("no entry '" + shown(std::string(name)) + "'");
  if (e->method != 0)
    fail("entry '" + shown(e->name) + "' is compressed (method " + std::to_string(e->method) +
         "); PyTorch stores checkpoint entries uncompressed, and compressed ones are not read");
  return e->data;
}

ZipArchive read_zip(std::span<const uint8_t> bytes) {
  const uint64_t size = bytes.size();
  if (size < 22) fail("file is " + std::to_string(size) + " bytes, too short for a zip archive");

  // End-of-central-directory record: the last one, within the last 64 KiB + 22 bytes.
  uint64_t end = UINT64_MAX;
  const uint64_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (uint64_t p = size - 22 + 1; p-- > lowest;)
    if (le(bytes, p, 4) == kEnd && le(bytes, p + 20, 2) <= size - p - 22) {
      end = p;
      break;
    }
  if (end == UINT64_MAX) fail("no end-of-central-directory record: the file is truncated or not a zip archive");
  if (le(bytes, end + 4, 2) != 0 || le(bytes, end + 6, 2) != 0) fail("archives split over several disks are not supported");
  uint64_t count = le(bytes, end + 10, 2), dir_size = le(bytes, end + 12, 4), dir_at = le(bytes, end + 16, 4);

  if (end >= 20 && le(bytes, end - 20, 4) == kLocator64) {
    const uint64_t rec = le(bytes, end - 20 + 8, 8);
    if (rec > size || size - rec < 56 || le(bytes, rec, 4) != kEnd64)
      fail("zip64 end-of-central-directory record at " + std::to_string(rec) + " is missing or outside the file");
    count = le(bytes, rec + 32, 8);
    dir_size = le(bytes, rec + 40, 8);
    dir_at = le(bytes, rec + 48, 8);
  }
  if (dir_at > size || dir_size > size - dir_at)
    fail("central directory [" + std::to_string(dir_at) + ", +" + std::to_string(dir_size) +
         ") lies outside the file (" + std::to_string(size) + " bytes): the file is truncated");
  if (count > dir_size / 46) fail("central directory of " + std::to_string(dir_size) + " bytes cannot hold " +
                                  std::to_string(count) + " entries");

  ZipArchive z;
  z.entries.reserve(size_t(count));
  uint64_t p = dir_at;
  const uint64_t dir_end = dir_at + dir_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (dir_end - p < 46 || le(bytes, p, 4) != kCentral)
      fail("central directory entry " + std::to_string(i + 1) + " of " + std::to_string(count) + " is malformed");
    const uint64_t flags = le(bytes, p + 8, 2), name_len = le(bytes, p + 28, 2), extra_len = le(bytes, p + 30, 2),
                   comment_len = le(bytes, p + 32, 2);
    if (dir_end - p - 46 < name_len + extra_len + comment_len)
      fail("central directory entry " + std::to_string(i + 1) + " runs past the directory");
    ZipEntry e;
    e.name.assign(reinterpret_cast<const char*>(bytes.data() + p + 46), size_t(name_len));
    e.method = uint16_t(le(bytes, p + 10, 2));
    e.compressed_size = le(bytes, p + 20, 4);
    e.size = le(bytes, p + 24, 4);
    uint64_t local = le(bytes, p + 42, 4);
    if (flags & 1) fail("entry '" + shown(e.name) + "' is encrypted");

    // zip64 extended information: the fields that did not fit in 32 bits.
    for (uint64_t x = p + 46 + name_len, x_end = x + extra_len; x_end - x >= 4;) {
      const uint64_t id = le(bytes, x, 2), len = le(bytes, x + 2, 2);
      if (x_end - x - 4 < len) fail("entry '" + shown(e.name) + "': extra field runs past its header");
      if (id == 1) {
        uint64_t f = x + 4;
        auto take = [&](uint64_t& v) {
          if (v != 0xFFFFFFFFu) return;
          if (x + 4 + len - f < 8) fail("entry '" + shown(e.name) + "': zip64 extra field is too short");
          v = le(bytes, f, 8);
          f += 8;
        };
        take(e.size);
        take(e.compressed_size);
        take(local);
      }
      x += 4 + len;
    }

    if (local > size || size - local < 30 || le(bytes, local, 4) != kLocal)
      fail("entry '" + shown(e.name) + "': no local header at offset " + std::to_string(local) +
           " (the file is truncated or damaged)");
    const uint64_t lname = le(bytes, local + 26, 2), lextra = le(bytes, local + 28, 2);
    if (size - local - 30 < lname + lextra)
      fail("entry '" + shown(e.name) + "': local header runs past the end of the file");
    if (lname != name_len || std::memcmp(bytes.data() + local + 30, e.name.data(), name_len) != 0)
      fail("entry '" + shown(e.name) + "': its local header names another entry");
    e.data_offset = local + 30 + lname + lextra;
    if (e.compressed_size > size - e.data_offset)
      fail("entry '" + shown(e.name) + "' of " + std::to_string(e.compressed_size) + " bytes at offset " +
           std::to_string(e.data_offset) + " runs past the end of the file (" + std::to_string(size) +
           " bytes): the file is truncated");
    if (e.method == 0) {
      if (e.size != e.compressed_size)
        fail("entry '" + shown(e.name) + "' is stored but its sizes differ (" + std::to_string(e.size) + " and " +
             std::to_string(e.compressed_size) + ")");
      e.data = bytes.subspan(size_t(e.data_offset), size_t(e.size));
    }
    z.entries.push_back(std::move(e));
    p += 46 + name_len + extra_len + comment_len;
  }
  return z;
}

}  // namespace cs
