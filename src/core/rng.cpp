// Rng (rng.h): SplitMix64 (Steele, Lea, Flood 2014), a Weyl sequence through a mixer.
#include "core/rng.h"

#include "core/error.h"

namespace cs {

uint64_t Rng::next() {
  state_ += 0x9E3779B97F4A7C15ull;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t Rng::below(uint64_t n) {
  if (n == 0) throw Error("Rng::below: n must be > 0");
  // Reject the top partial block so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = next();
  while (x >= limit);
  return x % n;
}

double Rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

double Rng::gaussian() {
  // The Irwin-Hall sum of 12 uniforms on (0, 1), minus 6 (variance exactly 1,
  // bounded to +-6), computed in integers: each uniform is (k + 0.5) / 65536
  // for a 16-bit k, so the result is a multiple of 2^-16 below 6 in magnitude
  // (at most 19 significant bits) and the same on every platform.
  int64_t sum = 0;
  for (int i = 0; i < 3; ++i) {
    uint64_t r = next();
    for (int j = 0; j < 4; ++j) {
      sum += int64_t(r & 0xFFFF);
      r >>= 16;
    }
  }
  // sum_i u_i - 6 = (sum + 6 - 6 * 65536) / 65536, exact in double.
  return double(sum + 6 - 6 * 65536) / 65536.0;
}

}  // namespace cs
