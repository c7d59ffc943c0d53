#!/usr/bin/env bash
# Trials per minute tuning mlp locally, then through a fleet of 1 and of 2 RPC servers, one after
# another in one run, each into a fresh database (same model, budget and seed).
# The rate is read from the session line each run appends to its database's sessions.jsonl, not
# from tune's terminal summary (which a narrow terminal wraps). `--rate DIR` prints one database's.
set -euo pipefail
WB=${WB:-.venv/bin/workbench}
PY=${PY:-$(dirname "$WB")/python}
TRIALS=${TRIALS:-48}
rate() {
  "$PY" - "$1/sessions.jsonl" <<'PYTHON'
import json, sys
lines = [line for line in open(sys.argv[1]) if line.strip()]
print(f"{json.loads(lines[-1])['trials_per_minute']:.1f} trials/min")
PYTHON
}
if [[ "${1:-}" == "--rate" ]]; then
  rate "$2"
  exit
fi
OUT=$(mktemp -d)
$WB tune --model mlp --target host --trials "$TRIALS" --batch-sizes 1,8 --database "$OUT/local" > "$OUT/local.log" 2>&1
echo "local (LocalRunner): $(rate "$OUT/local")"
for n in 1 2; do
  $WB fleet up --servers "$n" --key fleet-bench > "$OUT/up$n.log"
  tracker=$(grep -o "tracker [0-9.:]*" "$OUT/up$n.log" | head -1 | cut -d' ' -f2)
  $WB tune --model mlp --target host --trials "$TRIALS" --batch-sizes 1,8 --database "$OUT/rpc$n" \
    --rpc "$tracker" --rpc-key fleet-bench > "$OUT/rpc$n.log" 2>&1 || { $WB fleet down; exit 1; }
  $WB fleet down > /dev/null
  echo "RPC, $n server(s): $(rate "$OUT/rpc$n")"
done
echo "logs: $OUT"
