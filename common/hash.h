// splitmix64's mixing function: cheap, and every input bit reaches every
// output bit. Used for prefix-block hashes (router), rendezvous hashing of
// prefixes onto routers (gateway) and dummy weights (on the GPU).
#ifndef TPSERVE_COMMON_HASH_H_
#define TPSERVE_COMMON_HASH_H_

#include <cstdint>

#if defined(__CUDACC__)
#define TPSERVE_HOST_DEVICE __host__ __device__
#else
#define TPSERVE_HOST_DEVICE
#endif

namespace tpserve {

inline TPSERVE_HOST_DEVICE uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace tpserve

#endif  // TPSERVE_COMMON_HASH_H_
