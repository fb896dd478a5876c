#include "common/stage/forward_codec.h"

#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_settings.h"
#include "common/rpc/tensor_codec.h"
#include "common/base/status_macros.h"

namespace shardlm {

absl::Status CheckForwardHeader(const v1::ForwardRequest& r, const ShardInfo& info,
                                int max_batch_tokens) {
  if (r.protocol_version() != kProtocolVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("request has stage protocol version ", r.protocol_version(),
                     ", this worker speaks version ", kProtocolVersion));
  }
  if (r.model_fingerprint() != info.fingerprint) {
    return absl::FailedPreconditionError(
        absl::StrCat("request is for model fingerprint '", r.model_fingerprint(),
                     "', this worker serves model fingerprint '", info.fingerprint, "'"));
  }
  const int n = r.seq_ids_size();
  if (n == 0) return absl::InvalidArgumentError("seq_ids: empty batch");
  if (n > max_batch_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("seq_ids: batch of ", n,
                                                   " tokens exceeds this worker's limit of ",
                                                   max_batch_tokens, " per call"));
  }
  return absl::OkStatus();
}

absl::Status ResponseHiddenDType(const v1::ForwardRequest& r, v1::DType* dtype) {
  *dtype = r.hidden_dtype() == v1::DTYPE_UNSPECIFIED ? v1::DTYPE_F32 : r.hidden_dtype();
  if (DTypeBytes(*dtype) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden_dtype: ", static_cast<int>(*dtype), " is not f32, f16 or bf16"));
  }
  return absl::OkStatus();
}

absl::Status DecodeForwardRequest(const v1::ForwardRequest& r, const ShardInfo& info,
                                  int max_batch_tokens, ForwardRequest* out) {
  RETURN_IF_ERROR(CheckForwardHeader(r, info, max_batch_tokens));
  v1::DType unused;
  RETURN_IF_ERROR(ResponseHiddenDType(r, &unused));
  const int n = r.seq_ids_size();
  if (r.positions_size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("positions: ", r.positions_size(), " entries for ", n, " sequence ids"));
  }
  if (r.want_logits_size() != 0 && r.want_logits_size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("want_logits: ", r.want_logits_size(),
                                                   " flags for ", n,
                                                   " tokens (want 0 or one per token)"));
  }
  for (int i = 0; i < n; ++i) {
    const int32_t p = r.positions(i);
    if (p < 0 || p >= info.n_ctx) {
      return absl::InvalidArgumentError(absl::StrCat(
          "positions[", i, "] = ", p, " is outside the context [0, ", info.n_ctx, ")"));
    }
    // A sequence's tokens form one run of consecutive positions (the stage
    // checks this too; doing it here protects any Stage implementation).
    if (i > 0 && r.seq_ids(i) == r.seq_ids(i - 1) && p != r.positions(i - 1) + 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("positions[", i, "] = ", p, " does not continue sequence ", r.seq_ids(i),
                       " (previous position ", r.positions(i - 1), ")"));
    }
  }
  if (info.is_first()) {
    if (r.tokens_size() != n) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokens: ", r.tokens_size(), " token ids for ", n,
                       " sequence ids (this worker serves layer 0 and takes token ids)"));
    }
    if (r.has_hidden() && (!r.hidden().data().empty() || r.hidden().shape_size() != 0)) {
      return absl::InvalidArgumentError(
          "hidden: the first stage takes token ids, not hidden states");
    }
    for (int i = 0; i < n; ++i) {
      if (r.tokens(i) < 0 || r.tokens(i) >= info.n_vocab) {
        return absl::InvalidArgumentError(absl::StrCat("tokens[", i, "] = ", r.tokens(i),
                                                       " is outside the vocabulary [0, ",
                                                       info.n_vocab, ")"));
      }
    }
  } else {
    if (r.tokens_size() != 0) {
      return absl::InvalidArgumentError(absl::StrCat("tokens: this worker starts at layer ",
                                                     info.first_layer,
                                                     " and takes hidden states, not token ids"));
    }
    const int64_t shape[] = {n, info.n_embd};
    RETURN_IF_ERROR(CheckTensorShape(r.hidden(), shape, "hidden"));
  }

  // Everything checked: convert, reusing the vectors' capacity.
  out->seq_ids.assign(r.seq_ids().begin(), r.seq_ids().end());
  out->positions.assign(r.positions().begin(), r.positions().end());
  out->tokens.assign(r.tokens().begin(), r.tokens().end());
  out->want_logits.assign(r.want_logits().begin(), r.want_logits().end());
  if (info.is_first()) {
    out->hidden.clear();
    return absl::OkStatus();
  }
  out->hidden.resize(static_cast<size_t>(n) * info.n_embd);
  return DecodeTensorInto(r.hidden(), "hidden", out->hidden.data(),
                          static_cast<int64_t>(out->hidden.size()));
}

absl::Status EncodeForwardResult(const ForwardResult& result, const ShardInfo& info,
                                 size_t n_tokens, v1::DType hidden_dtype,
                                 v1::ForwardResponse* response) {
  response->clear_logit_rows();
  if (!info.is_last()) {
    response->clear_logits();
    if (result.hidden.size() != n_tokens * info.n_embd) {
      return absl::InternalError(absl::StrCat("stage returned ", result.hidden.size(),
                                              " hidden floats for ", n_tokens, " x ", info.n_embd));
    }
    const int64_t shape[] = {static_cast<int64_t>(n_tokens), info.n_embd};
    return EncodeTensor(result.hidden, shape, hidden_dtype, "hidden", response->mutable_hidden());
  }
  response->clear_hidden();
  const size_t rows = result.logit_rows.size();
  if (result.logits.size() != rows * info.n_vocab) {
    return absl::InternalError(absl::StrCat("stage returned ", result.logits.size(), " logits for ",
                                            rows, " rows x ", info.n_vocab));
  }
  response->mutable_logit_rows()->Add(result.logit_rows.begin(), result.logit_rows.end());
  const int64_t shape[] = {static_cast<int64_t>(rows), info.n_vocab};
  return EncodeTensor(result.logits, shape, v1::DTYPE_F32, "logits", response->mutable_logits());
}

}  // namespace shardlm
