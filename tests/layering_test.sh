#!/usr/bin/env bash
# The layering the code promises (docs/ARCHITECTURE.md): the coordinator
# never computes a layer, so its sources include nothing from worker/ and the
# shardlm-coordinator binary carries no layer-compute symbols (the stage, its
# matmuls and attention, the KV cache, the quantized kernels); common/'s
# lower shelves never include higher ones; and no server code takes a
# recursive mutex (events are delivered outside locks instead).
# Usage: layering_test.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src="$1"; bin="$2"
fail=0
problem() { echo "FAIL: $*"; fail=1; }

if hits=$(grep -rn '#include "worker/' "$src/coordinator" "$src/common"); then
  problem "coordinator/ or common/ includes worker/:"; echo "$hits"
fi
# Shelves of common/ from low to high; a file may include its own shelf and
# those before it (rpc and stage may include all of base/model/tokenizer).
check_shelf() {
  local shelf="$1"; shift
  local pattern
  pattern=$(printf '|common/%s/' "$@"); pattern="${pattern:1}"
  if hits=$(grep -rnE "#include \"($pattern)" "$src/common/$shelf"); then
    problem "common/$shelf includes a higher shelf:"; echo "$hits"
  fi
}
check_shelf base model kernels tokenizer rpc stage
check_shelf model kernels tokenizer rpc stage
check_shelf kernels tokenizer rpc stage
check_shelf tokenizer kernels rpc stage
check_shelf rpc kernels tokenizer stage
check_shelf stage kernels tokenizer
# common/fetch (--model URL) sits on base and model only, and only the
# binaries' main()s call it.
check_shelf fetch kernels tokenizer rpc stage
for shelf in base model kernels tokenizer rpc stage; do check_shelf "$shelf" fetch; done
if hits=$(grep -rn 'recursive_mutex' "$src/coordinator" "$src/worker" "$src/common"); then
  problem "recursive mutex in server code:"; echo "$hits"
fi

coordinator="$bin/shardlm-coordinator"
[ -x "$coordinator" ] || { echo "FAIL: $coordinator not built"; exit 1; }
compute='shardlm::(LlamaStage|MatMul|KvCache|StageWeights|Attention|quant::|TensorFormat|Format\()'
if hits=$(nm -C "$coordinator" | grep -E ' [TtWw] ' | grep -E "$compute" | head -20); then
  problem "shardlm-coordinator carries layer-compute symbols:"; echo "$hits"
fi
# The check must be able to fail: the worker binary does carry them.
worker_symbols=$(nm -C "$bin/shardlm-worker" | grep -E ' [TtWw] ' | grep -cE "$compute" || true)
[ "$worker_symbols" -gt 0 ] ||
  problem "the symbol pattern matches nothing in shardlm-worker (a broken check)"
[ "$fail" = 0 ] && echo "layering OK"
exit "$fail"
