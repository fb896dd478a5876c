// 64 random bits from the OS (std::random_device: getrandom on Linux), for
// ids that must not repeat across processes or restarts (request ids,
// chain stream and step ids) and for the seed of a request that gave none.
#ifndef SHARDLM_COMMON_BASE_RANDOM_ID_H_
#define SHARDLM_COMMON_BASE_RANDOM_ID_H_

#include <cstdint>
#include <random>

namespace shardlm {

inline uint64_t RandomUint64() {
  std::random_device os;
  return (static_cast<uint64_t>(os()) << 32) | os();
}

}  // namespace shardlm

#endif  // SHARDLM_COMMON_BASE_RANDOM_ID_H_
