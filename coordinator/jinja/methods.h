// Attribute and item access as Jinja2's sandboxed getattr/getitem do it:
// `d.key` reads a dict key unless the name is a dict method (`items`,
// `keys`, `values`, `get`); `s.strip` is the bound str method; a missing key,
// index or attribute is Undefined (only using it fails). Mutating methods
// (list.append, dict.update) do not exist, as in HF's ImmutableSandbox.
#ifndef SHARDLM_COORDINATOR_JINJA_METHODS_H_
#define SHARDLM_COORDINATOR_JINJA_METHODS_H_

#include <string>

#include "absl/status/statusor.h"
#include "coordinator/jinja/value.h"

namespace shardlm::jinja {

// `obj` is never Undefined (the caller raises for that).
Value GetAttr(const Value& obj, const std::string& name);
Value GetItem(const Value& obj, const Value& key);
// obj[start:stop:step] on a list or str (by code points); Undefined parts
// are omitted ones. INVALID_ARGUMENT for a zero step or another type.
absl::StatusOr<Value> Slice(const Value& obj, const Value& start, const Value& stop,
                            const Value& step);
// dict.items() as a list of (key, value) tuples.
Value DictItems(const Value& dict);
// The elements a for loop visits: a list's items, a dict's keys, a str's
// characters, nothing for Undefined. INVALID_ARGUMENT otherwise.
absl::StatusOr<std::vector<Value>> Iterate(const Value& v);

}  // namespace shardlm::jinja

#endif  // SHARDLM_COORDINATOR_JINJA_METHODS_H_
