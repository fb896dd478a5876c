#include "common/stage/forward_codec.h"

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/base/status_macros.h"
#include "common/rpc/tensor_codec.h"

namespace shardlm {

bool WantsLogits(const ForwardRequest& r, const ShardInfo& info, size_t i) {
  if (!info.is_last()) return false;
  // Bounded by the vectors themselves, not n_tokens(): the worker sizes its
  // logits before validating the batch, and a request's flags may be short.
  if (!r.want_logits.empty()) return i < r.want_logits.size() && r.want_logits[i] != 0;
  return i + 1 >= r.seq_ids.size() || r.seq_ids[i + 1] != r.seq_ids[i];
}

namespace {

int64_t LogitsRows(const ForwardRequest& request, const ShardInfo& info) {
  if (!info.is_last()) return 0;
  int64_t rows = 0;
  for (size_t i = 0; i < request.n_tokens(); ++i) rows += WantsLogits(request, info, i) ? 1 : 0;
  return rows;
}

}  // namespace

int64_t ForwardLogitsBytes(const ForwardRequest& request, const ShardInfo& info) {
  return LogitsRows(request, info) * static_cast<int64_t>(info.n_vocab) *
         static_cast<int64_t>(sizeof(float));
}

absl::Status CheckLogitsFitMessage(const ForwardRequest& request, const ShardInfo& info,
                                   int64_t max_message_bytes) {
  // Room for the response's other fields: a row index (varint, 5 bytes at
  // most) per row, the tensor's shape and dtype, timing. No stricter than
  // what RemoteStage plans its chunks with (4 KiB + 10 bytes per row).
  const int64_t rows = LogitsRows(request, info);
  const int64_t bytes = ForwardLogitsBytes(request, info);
  const int64_t headroom = 1024 + 5 * rows;
  if (bytes + headroom <= max_message_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the logits of this batch (", rows, " rows x ",
      info.n_vocab, " vocab x 4 bytes = ", bytes, " bytes) exceed the message limit of ",
      max_message_bytes, " bytes: request fewer logits rows per call (want_logits) or raise "
      "--max-message-size on both sides"));
}

absl::Status EncodeForwardRequest(const ForwardRequest& r, size_t begin, size_t end,
                                  const ShardInfo& info, v1::DType hidden_dtype,
                                  bool explicit_logits, v1::ForwardRequest* m) {
  // Clear() on repeated fields and strings keeps their capacity.
  m->set_protocol_version(kProtocolVersion);
  m->set_model_fingerprint(info.fingerprint);
  m->mutable_seq_ids()->Clear();
  m->mutable_seq_ids()->Add(r.seq_ids.begin() + begin, r.seq_ids.begin() + end);
  m->mutable_positions()->Clear();
  m->mutable_positions()->Add(r.positions.begin() + begin, r.positions.begin() + end);
  m->mutable_tokens()->Clear();
  m->mutable_want_logits()->Clear();
  if (explicit_logits) {
    for (size_t i = begin; i < end; ++i) m->add_want_logits(WantsLogits(r, info, i));
  } else if (!r.want_logits.empty()) {
    for (size_t i = begin; i < end; ++i) m->add_want_logits(r.want_logits[i] != 0);
  }
  m->set_hidden_dtype(hidden_dtype);
  if (info.is_first()) {
    m->mutable_tokens()->Add(r.tokens.begin() + begin, r.tokens.begin() + end);
    m->clear_hidden();
    return absl::OkStatus();
  }
  const int64_t d = info.n_embd, count = static_cast<int64_t>(end - begin);
  const int64_t shape[] = {count, d};
  return EncodeTensor(absl::MakeConstSpan(r.hidden.data() + begin * d, count * d), shape,
                      hidden_dtype, "hidden", m->mutable_hidden());
}

absl::Status DecodeForwardResponse(const v1::ForwardResponse& resp, const ShardInfo& info,
                                   size_t begin, size_t count, ForwardResult* result) {
  const int64_t n = static_cast<int64_t>(count);
  if (!info.is_last()) {
    const int64_t d = info.n_embd;
    const int64_t shape[] = {n, d};
    RETURN_IF_ERROR(CheckTensorShape(resp.hidden(), shape, "hidden"));
    return DecodeTensorInto(resp.hidden(), "hidden", result->hidden.data() + begin * d, n * d);
  }
  const int64_t rows = resp.logit_rows_size();
  const int64_t shape[] = {rows, info.n_vocab};
  RETURN_IF_ERROR(CheckTensorShape(resp.logits(), shape, "logits"));
  for (int64_t i = 0; i < rows; ++i) {
    const int32_t row = resp.logit_rows(static_cast<int>(i));
    if (row < 0 || row >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("logit_rows[", i, "] = ", row, " is outside the batch of ", n));
    }
  }
  const size_t old = result->logits.size();
  result->logits.resize(old + rows * info.n_vocab);
  RETURN_IF_ERROR(DecodeTensorInto(resp.logits(), "logits", result->logits.data() + old,
                                   rows * info.n_vocab));
  for (int i = 0; i < rows; ++i) {
    result->logit_rows.push_back(static_cast<int32_t>(begin) + resp.logit_rows(i));
  }
  return absl::OkStatus();
}

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
                                  ForwardRequest* out) {
  const int64_t n = r.seq_ids_size();
  out->seq_ids.assign(r.seq_ids().begin(), r.seq_ids().end());
  out->positions.assign(r.positions().begin(), r.positions().end());
  out->tokens.assign(r.tokens().begin(), r.tokens().end());
  out->want_logits.assign(r.want_logits().begin(), r.want_logits().end());
  out->hidden.clear();
  // An empty tensor is no tensor: the first stage's requests carry none.
  if (!r.has_hidden() || (r.hidden().data().empty() && r.hidden().shape_size() == 0)) {
    return absl::OkStatus();
  }
  const int64_t shape[] = {n, info.n_embd};
  RETURN_IF_ERROR(CheckTensorShape(r.hidden(), shape, "hidden"));
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
