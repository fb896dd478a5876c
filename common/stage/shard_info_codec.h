// ShardInfo and KvStats (stage.h) <-> their shardlm.v1 messages, written
// once for the worker (GetShardInfo) and the coordinator (RemoteStage).
#ifndef SHARDLM_COMMON_STAGE_SHARD_INFO_CODEC_H_
#define SHARDLM_COMMON_STAGE_SHARD_INFO_CODEC_H_

#include <string>

#include "absl/status/status.h"
#include "common/stage/stage.h"
#include "shardlm/v1/stage.pb.h"

namespace shardlm {

// Fills the shape fields of `out` (layers, sizes, fingerprint) and the
// protocol version; the worker adds address, readiness and details.
void ShardInfoToProto(const ShardInfo& info, v1::ShardInfo* out);
ShardInfo ShardInfoFromProto(const v1::ShardInfo& proto);

// What a coordinator checks of a worker's answer before trusting it:
// FAILED_PRECONDITION naming `who` for another protocol version or an
// inconsistent shape (a gap-free, non-empty layer range inside the model,
// positive sizes, a fingerprint).
absl::Status CheckShardInfoProto(const v1::ShardInfo& proto, const std::string& who);

void KvStatsToProto(const KvStats& stats, v1::KvCacheStats* out);
KvStats KvStatsFromProto(const v1::KvCacheStats& proto);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_STAGE_SHARD_INFO_CODEC_H_
