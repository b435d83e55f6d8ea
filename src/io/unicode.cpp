// UTF-8 and Unicode-category helpers; see unicode.h for the approximation used.
#include "io/unicode.h"

#include <algorithm>
#include <cstdint>

namespace cs::unicode {

CodePoint decode_utf8(std::string_view s, size_t pos) {
  const CodePoint bad{0xFFFD, 1, false};
  if (pos >= s.size()) return bad;
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) return {b0, 1, true};
  int len = 0;
  char32_t cp = 0;
  char32_t min_cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, cp = b0 & 0x1F, min_cp = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, cp = b0 & 0x0F, min_cp = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07, min_cp = 0x10000;
  } else {
    return bad;  // continuation byte, C0/C1 (overlong lead) or F5..FF
  }
  if (pos + len > s.size()) return bad;
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[pos + k]);
    if ((b & 0xC0) != 0x80) return bad;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return bad;
  return {cp, len, true};
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

size_t count_code_points(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i += decode_utf8(s, i).len) ++n;
  return n;
}

namespace {

struct Range {
  char32_t lo, hi;
};

bool in_ranges(const Range* r, size_t n, char32_t c) {
  const Range* end = r + n;
  const Range* it = std::upper_bound(r, end, c, [](char32_t v, const Range& x) { return v < x.lo; });
  if (it == r) return false;
  --it;
  return c <= it->hi;
}

// Sorted, non-overlapping. Non-ASCII letters (approximation of \p{L}).
constexpr Range kLetters[] = {
    {0x00AA, 0x00AA},   {0x00B5, 0x00B5},   {0x00BA, 0x00BA},   {0x00C0, 0x00D6},
    {0x00D8, 0x00F6},   {0x00F8, 0x02C1},   {0x02C6, 0x02D1},   {0x02E0, 0x02E4},
    {0x02EC, 0x02EC},   {0x02EE, 0x02EE},   {0x0370, 0x0374},   {0x0376, 0x0377},
    {0x037A, 0x037D},   {0x037F, 0x037F},   {0x0386, 0x0386},   {0x0388, 0x038A},
    {0x038C, 0x038C},   {0x038E, 0x03A1},   {0x03A3, 0x03F5},   {0x03F7, 0x0481},
    {0x048A, 0x052F},   {0x0531, 0x0556},   {0x0559, 0x0559},   {0x0560, 0x0588},
    {0x05D0, 0x05EA},   {0x05EF, 0x05F2},   {0x0620, 0x064A},   {0x066E, 0x066F},
    {0x0671, 0x06D3},   {0x06D5, 0x06D5},   {0x06E5, 0x06E6},   {0x06EE, 0x06EF},
    {0x06FA, 0x06FC},   {0x06FF, 0x06FF},   {0x0904, 0x0939},   {0x093D, 0x093D},
    {0x0950, 0x0950},   {0x0958, 0x0961},   {0x0971, 0x0980},   {0x0E01, 0x0E30},
    {0x0E32, 0x0E33},   {0x0E40, 0x0E46},   {0x10A0, 0x10C5},   {0x10D0, 0x10FA},
    {0x10FC, 0x10FF},   {0x1100, 0x11FF},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45},   {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F7D},
    {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},
    {0x1FD0, 0x1FD3},   {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},
    {0x1FF6, 0x1FFC},   {0x2071, 0x2071},   {0x207F, 0x207F},   {0x2090, 0x209C},
    {0x3005, 0x3006},   {0x3031, 0x3035},   {0x303B, 0x303C},   {0x3041, 0x3096},
    {0x309D, 0x309F},   {0x30A1, 0x30FA},   {0x30FC, 0x30FF},   {0x3105, 0x312F},
    {0x3131, 0x318E},   {0x31F0, 0x31FF},   {0x3400, 0x4DBF},   {0x4E00, 0x9FFF},
    {0xA000, 0xA48C},   {0xAC00, 0xD7A3},   {0xF900, 0xFA6D},   {0xFA70, 0xFAD9},
    {0xFF21, 0xFF3A},   {0xFF41, 0xFF5A},   {0xFF66, 0xFFBE},   {0x20000, 0x2A6DF},
    {0x2A700, 0x2EE5D}, {0x2F800, 0x2FA1D}, {0x30000, 0x323AF},
};

// Non-ASCII numbers (approximation of \p{N}: Nd, Nl, No).
constexpr Range kNumbers[] = {
    {0x00B2, 0x00B3}, {0x00B9, 0x00B9}, {0x00BC, 0x00BE}, {0x0660, 0x0669}, {0x06F0, 0x06F9},
    {0x0966, 0x096F}, {0x0E50, 0x0E59}, {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089},
    {0x2150, 0x2182}, {0x2185, 0x2189}, {0x2460, 0x249B}, {0x24EA, 0x24FF}, {0x2776, 0x2793},
    {0x3007, 0x3007}, {0x3021, 0x3029}, {0xFF10, 0xFF19},
};

// Non-ASCII punctuation (approximation of \p{P}).
constexpr Range kPunct[] = {
    {0x00A1, 0x00A1}, {0x00A7, 0x00A7}, {0x00AB, 0x00AB}, {0x00B6, 0x00B7}, {0x00BB, 0x00BB},
    {0x00BF, 0x00BF}, {0x037E, 0x037E}, {0x0387, 0x0387}, {0x055A, 0x055F}, {0x0589, 0x058A},
    {0x05BE, 0x05BE}, {0x05C0, 0x05C0}, {0x05C3, 0x05C3}, {0x05C6, 0x05C6}, {0x05F3, 0x05F4},
    {0x060C, 0x060D}, {0x061B, 0x061B}, {0x061D, 0x061F}, {0x066A, 0x066D}, {0x06D4, 0x06D4},
    {0x0964, 0x0965}, {0x0970, 0x0970}, {0x2010, 0x2027}, {0x2030, 0x2043}, {0x2045, 0x2051},
    {0x2053, 0x205E}, {0x3001, 0x3003}, {0x3008, 0x3011}, {0x3014, 0x301F}, {0xFF01, 0xFF03},
    {0xFF05, 0xFF0A}, {0xFF0C, 0xFF0F}, {0xFF1A, 0xFF1B}, {0xFF1F, 0xFF20}, {0xFF3B, 0xFF3D},
    {0xFF3F, 0xFF3F}, {0xFF5B, 0xFF5B}, {0xFF5D, 0xFF5D}, {0xFF5F, 0xFF65},
};

// Combining marks (approximation of \p{M}).
constexpr Range kMarks[] = {
    {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x0610, 0x061A}, {0x064B, 0x065F},
    {0x0900, 0x0903}, {0x093A, 0x093C}, {0x093E, 0x094F}, {0x0951, 0x0957}, {0x0962, 0x0963},
    {0x0E31, 0x0E31}, {0x0E34, 0x0E3A}, {0x0E47, 0x0E4E}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF},
    {0x20D0, 0x20FF}, {0x3099, 0x309A}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F},
};

template <size_t N>
bool in(const Range (&r)[N], char32_t c) {
  return in_ranges(r, N, c);
}

}  // namespace

bool is_letter(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return in(kLetters, c);
}

bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return in(kNumbers, c);
}

bool is_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

bool is_punctuation(char32_t c) {
  if (c < 0x80) {
    return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
           (c >= '{' && c <= '~');
  }
  return in(kPunct, c);
}

bool is_mark(char32_t c) { return c >= 0x300 && in(kMarks, c); }

const std::array<char32_t, 256>& byte_to_unicode() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

int unicode_to_byte(char32_t c) {
  // Image of byte_to_unicode: the printable bytes themselves, and U+0100..U+0143.
  if ((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)) {
    return static_cast<int>(c);
  }
  static const std::array<int, 68> inverse = [] {
    std::array<int, 68> inv{};
    const auto& t = byte_to_unicode();
    for (int b = 0; b < 256; ++b) {
      if (t[b] >= 256) inv[t[b] - 256] = b;
    }
    return inv;
  }();
  if (c >= 256 && c < 256 + 68) return inverse[c - 256];
  return -1;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& t = byte_to_unicode();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) append_utf8(out, t[static_cast<unsigned char>(ch)]);
  return out;
}

std::vector<std::pair<size_t, size_t>> gpt2_split(std::string_view s) {
  enum Cls { L, N, S, O };
  std::vector<char32_t> cp;
  std::vector<uint8_t> cls;
  std::vector<size_t> off;
  cp.reserve(s.size());
  cls.reserve(s.size());
  off.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    const CodePoint c = decode_utf8(s, i);
    cp.push_back(c.cp);
    cls.push_back(is_letter(c.cp) ? L : is_number(c.cp) ? N : is_whitespace(c.cp) ? S : O);
    off.push_back(i);
    i += c.len;
  }
  off.push_back(s.size());
  const size_t n = cp.size();
  std::vector<std::pair<size_t, size_t>> out;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    // 's|'t|'re|'ve|'m|'ll|'d (ASCII apostrophe, case-sensitive as in GPT-2).
    if (cp[i] == '\'' && i + 1 < n) {
      const char32_t a = cp[i + 1];
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        j = i + 2;
      } else if (i + 2 < n && ((a == 'r' && cp[i + 2] == 'e') || (a == 'v' && cp[i + 2] == 'e') ||
                               (a == 'l' && cp[i + 2] == 'l'))) {
        j = i + 3;
      }
    }
    if (j == i) {
      // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": optional ASCII space, then a run of one class.
      size_t k = i;
      if (cp[i] == ' ' && i + 1 < n && cls[i + 1] != S) k = i + 1;
      if (cls[k] != S) {
        const uint8_t c = cls[k];
        j = k;
        while (j < n && cls[j] == c) ++j;
      } else {
        // "\s+(?!\S)": the whitespace run, less its last character when a
        // non-space follows; otherwise "\s+" takes a single whitespace character.
        size_t r = i;
        while (r < n && cls[r] == S) ++r;
        if (r == n) {
          j = n;
        } else if (r - i >= 2) {
          j = r - 1;
        } else {
          j = r;
        }
      }
    }
    out.emplace_back(off[i], off[j]);
    i = j;
  }
  return out;
}

}  // namespace cs::unicode
