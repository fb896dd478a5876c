#include "common/stage/shard_info_codec.h"

#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_settings.h"

namespace shardlm {

void ShardInfoToProto(const ShardInfo& info, v1::ShardInfo* out) {
  out->set_protocol_version(kProtocolVersion);
  out->set_model_fingerprint(info.fingerprint);
  out->set_first_layer(info.first_layer);
  out->set_last_layer(info.last_layer);
  out->set_n_layer(info.n_layer);
  out->set_n_embd(info.n_embd);
  out->set_n_vocab(info.n_vocab);
  out->set_n_ctx(info.n_ctx);
  out->set_kv_type(info.kv_type);
  out->set_kv_bytes_per_token(info.kv_bytes_per_token);
}

ShardInfo ShardInfoFromProto(const v1::ShardInfo& s) {
  ShardInfo info;
  info.first_layer = s.first_layer();
  info.last_layer = s.last_layer();
  info.n_layer = s.n_layer();
  info.n_embd = s.n_embd();
  info.n_vocab = s.n_vocab();
  info.n_ctx = s.n_ctx();
  info.fingerprint = s.model_fingerprint();
  info.kv_type = s.kv_type();
  info.kv_bytes_per_token = s.kv_bytes_per_token();
  return info;
}

absl::Status CheckShardInfoProto(const v1::ShardInfo& s, const std::string& who) {
  if (s.protocol_version() != kProtocolVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(who, " speaks stage protocol version ", s.protocol_version(),
                     ", this coordinator speaks version ", kProtocolVersion));
  }
  if (s.n_layer() <= 0 || s.first_layer() < 0 || s.first_layer() >= s.last_layer() ||
      s.last_layer() > s.n_layer() || s.n_embd() <= 0 || s.n_vocab() <= 0 || s.n_ctx() <= 0 ||
      s.model_fingerprint().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        who, " reported an inconsistent shard: layers ", s.first_layer(), ":", s.last_layer(),
        " of ", s.n_layer(), ", n_embd ", s.n_embd(), ", n_vocab ", s.n_vocab(), ", n_ctx ",
        s.n_ctx(), ", fingerprint '", s.model_fingerprint(), "'"));
  }
  return absl::OkStatus();
}

void KvStatsToProto(const KvStats& kv, v1::KvCacheStats* out) {
  out->set_sequences(kv.sequences);
  out->set_tokens(kv.tokens);
  out->set_bytes_used(kv.bytes_used);
  out->set_bytes_budget(kv.bytes_budget);
  out->set_cache_sequences(kv.cache_sequences);
  out->set_blocks_used(kv.blocks_used);
  out->set_blocks_cache_only(kv.blocks_cache_only);
  out->set_blocks_budget(kv.blocks_budget);
  out->set_block_positions(kv.block_positions);
}

KvStats KvStatsFromProto(const v1::KvCacheStats& kv) {
  KvStats st;
  st.sequences = kv.sequences();
  st.tokens = kv.tokens();
  st.bytes_used = kv.bytes_used();
  st.bytes_budget = kv.bytes_budget();
  st.cache_sequences = kv.cache_sequences();
  st.blocks_used = kv.blocks_used();
  st.blocks_cache_only = kv.blocks_cache_only();
  st.blocks_budget = kv.blocks_budget();
  st.block_positions = kv.block_positions();
  return st;
}

}  // namespace shardlm
