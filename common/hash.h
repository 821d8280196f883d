// splitmix64's mixing function: cheap, and every input bit reaches every
// output bit. Used for prefix-block hashes (router) and rendezvous hashing of
// prefixes onto routers (gateway).
#ifndef TPSERVE_COMMON_HASH_H_
#define TPSERVE_COMMON_HASH_H_

#include <cstdint>

namespace tpserve {

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace tpserve

#endif  // TPSERVE_COMMON_HASH_H_
