// Small UTF-8 and Unicode helpers for the tokenizer (src/io/tokenizer.cpp):
// strict UTF-8 decoding, an approximation of the Unicode general categories
// the GPT-2 pre-tokenizer regex needs, the GPT-2 byte <-> unicode map, and the
// GPT-2 regex split written by hand.
//
// Category approximation (no full Unicode database here, on purpose):
//  - ASCII is exact.
//  - is_letter (\p{L}): Latin-1 letters, Latin Extended-A/B, IPA, spacing
//    modifier letters, Greek and Coptic, Cyrillic (+ supplement), Armenian,
//    Hebrew, Arabic letters, Devanagari letters, Thai letters, Georgian, Hangul
//    Jamo and syllables, Latin/Greek Extended Additional, Hiragana, Katakana,
//    CJK unified ideographs (BMP, extension A, planes 2 and 3), CJK compatibility
//    ideographs, full-width Latin letters and half-width Katakana. Combining marks
//    (U+0300..U+036F, Indic vowel signs, ...) are NOT letters, as in Unicode.
//  - is_number (\p{N}): ASCII digits, superscripts/subscripts, vulgar fractions,
//    Arabic-Indic and Devanagari digits, Roman numerals, circled numbers,
//    full-width digits, U+3007.
//  - is_whitespace (\s): the Unicode White_Space property (exact).
//  - is_punctuation: ASCII punctuation, Latin-1 punctuation, General Punctuation
//    U+2010..U+2027 and U+2030..U+205E, CJK punctuation U+3001..U+3003 and
//    U+3008..U+3011, and the full-width ASCII punctuation forms.
// Anything else (emoji, symbols, unlisted scripts) counts as "other", which for
// the GPT-2 regex means the [^\s\p{L}\p{N}]+ alternative.
#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cs::unicode {

// One decoded code point. Invalid or incomplete UTF-8 (overlong forms,
// surrogates, > U+10FFFF, stray continuation bytes, truncated sequences) gives
// valid = false, len = 1 and cp = U+FFFD: the caller steps over one byte.
struct CodePoint {
  char32_t cp;
  int len;
  bool valid;
};
CodePoint decode_utf8(std::string_view s, size_t pos);
void append_utf8(std::string& out, char32_t cp);
// Number of code points (invalid bytes count one each).
size_t count_code_points(std::string_view s);

bool is_letter(char32_t c);
bool is_number(char32_t c);
bool is_whitespace(char32_t c);
bool is_punctuation(char32_t c);
bool is_mark(char32_t c);  // combining marks (approximation, used for \w)

// GPT-2 byte-level alphabet: the printable bytes '!'..'~', '¡'..'¬', '®'..'ÿ'
// map to the code point of the same value; the other 68 bytes, in increasing
// order, map to U+0100, U+0101, ... (256 + n).
const std::array<char32_t, 256>& byte_to_unicode();
// Inverse of byte_to_unicode; -1 when c is not in the alphabet.
int unicode_to_byte(char32_t c);
// Bytes -> their byte-level string (each byte one code point, UTF-8 encoded).
std::string bytes_to_byte_level(std::string_view bytes);

// The GPT-2 pre-tokenizer split, i.e. every match of
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// over s, as byte ranges [begin, end). The matches cover s completely.
std::vector<std::pair<size_t, size_t>> gpt2_split(std::string_view s);

}  // namespace cs::unicode
