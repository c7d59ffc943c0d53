#!/usr/bin/env bash
# Trials per minute tuning mlp locally, then through a fleet of 1 and of 2 RPC servers, one after
# another in one run, each into a fresh database (same model, budget and seed).
set -euo pipefail
WB=${WB:-.venv/bin/workbench}
TRIALS=${TRIALS:-48}
OUT=$(mktemp -d)
rate() { grep -o "[0-9.]* trials/min" "$1" | tail -1; }
$WB tune --model mlp --target host --trials "$TRIALS" --batch-sizes 1,8 --database "$OUT/local" > "$OUT/local.log" 2>&1
echo "local (LocalRunner): $(rate "$OUT/local.log")"
for n in 1 2; do
  $WB fleet up --servers "$n" --key fleet-bench > "$OUT/up$n.log"
  tracker=$(grep -o "tracker [0-9.:]*" "$OUT/up$n.log" | head -1 | cut -d' ' -f2)
  $WB tune --model mlp --target host --trials "$TRIALS" --batch-sizes 1,8 --database "$OUT/rpc$n" \
    --rpc "$tracker" --rpc-key fleet-bench > "$OUT/rpc$n.log" 2>&1 || { $WB fleet down; exit 1; }
  $WB fleet down > /dev/null
  echo "RPC, $n server(s): $(rate "$OUT/rpc$n.log")"
done
echo "logs: $OUT"
