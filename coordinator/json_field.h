// A member of a JSON object as the request parsers read it (nlohmann::json
// or ordered_json): absent and null are the same, since OpenAI clients send
// `null` for "not set".
#ifndef SHARDLM_COORDINATOR_JSON_FIELD_H_
#define SHARDLM_COORDINATOR_JSON_FIELD_H_

namespace shardlm::json_fields {

// The value of `key` in object `j`; nullptr when it is absent or null.
template <typename Json>
const Json* Field(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace shardlm::json_fields

#endif  // SHARDLM_COORDINATOR_JSON_FIELD_H_
