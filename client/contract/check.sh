#!/usr/bin/env bash
# The OpenAPI contract's checks (`make contract`): the committed document equals the live one, the
# linters find nothing, the generators generate without a warning, a program typed by the generated
# types compiles under `tsc --strict`, and generic tools drive real jobs with it (lro.test.js).
#
#   PY=.venv/bin/python bash client/contract/check.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
client="$root/client"
PY=${PY:-$root/.venv/bin/python}
doc="$root/docs/openapi.json"
bin="$client/node_modules/.bin"
out="$here/generated"
rm -rf "$out" && mkdir -p "$out"

step() { printf '\n== %s\n' "$*"; }
fail() { echo "contract: $*" >&2; exit 1; }

step "docs/openapi.json equals the live document"
"$PY" "$root/scripts/openapi.py" check

step "openapi-spec-validator"
"$(dirname "$PY")/openapi-spec-validator" "$doc"

step "Redocly CLI, recommended rules: 0 errors, 0 warnings"
(cd "$client" && "$bin/redocly" lint --config "$here/redocly.yaml" --format=json "$doc" >"$out/redocly.json" 2>"$out/redocly.log") || true
node -e '
  const report = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const {errors, warnings} = report.totals;
  for (const problem of report.problems) console.log(`${problem.severity} ${problem.ruleId}: ${problem.message} at ${problem.location[0]?.pointer}`);
  console.log(`redocly: ${errors} errors, ${warnings} warnings`);
  process.exit(errors + warnings === 0 ? 0 : 1);
' "$out/redocly.json" || fail "Redocly found problems (see above)"

step "Spectral, spectral:oas: 0 findings"
(cd "$client" && "$bin/spectral" lint --quiet --fail-severity=hint -r "$here/oas.spectral.yaml" "$doc") \
  || fail "Spectral (spectral:oas) found problems"
echo "spectral:oas: 0 findings"

step "Spectral, OWASP API Security Top 10 with the waivers in owasp.spectral.yaml: 0 findings"
(cd "$client" && "$bin/spectral" lint --quiet --fail-severity=hint -r "$here/owasp.spectral.yaml" "$doc") \
  || fail "Spectral (OWASP) found problems: fix them, or waive them in owasp.spectral.yaml with the reason"
echo "owasp: 0 findings"

step "openapi-python-client: every operation, no warning"
"$(dirname "$PY")/openapi-python-client" generate --path "$doc" --output-path "$out/python-client" \
  --meta none --config "$here/openapi-python-client.yaml" >"$out/python-client.log" 2>&1 \
  || { cat "$out/python-client.log"; fail "openapi-python-client failed"; }
cat "$out/python-client.log"
if grep -qiE "warning|error|unable|could not" "$out/python-client.log"; then
  fail "openapi-python-client reported problems"
fi
"$PY" - "$doc" "$out/python-client/api" <<'PYEOF'
import json, pathlib, re, sys
doc = json.loads(pathlib.Path(sys.argv[1]).read_text())
wanted = {op["operationId"] for item in doc["paths"].values() for op in item.values() if isinstance(op, dict) and "operationId" in op}
snake = {re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() for name in wanted}
made = {path.stem for path in pathlib.Path(sys.argv[2]).rglob("*.py") if path.stem != "__init__"}
missing = sorted(snake - made)
print(f"openapi-python-client: {len(made & snake)} of {len(snake)} operations generated")
sys.exit(f"not generated: {missing}" if missing else 0)
PYEOF

step "openapi-typescript: no warning"
"$here/node_modules/.bin/openapi-typescript" "$doc" -o "$out/api.d.ts" >"$out/openapi-typescript.log" 2>&1 \
  || { cat "$out/openapi-typescript.log"; fail "openapi-typescript failed"; }
cat "$out/openapi-typescript.log"
if grep -qiE "warn|error" "$out/openapi-typescript.log"; then
  fail "openapi-typescript reported problems"
fi

step "tsc --strict: typed-client.ts against the generated types"
(cd "$client" && "$bin/tsc" -p "$here/tsconfig.json" --strict)
echo "tsc: 0 errors"

step "generic poller (@azure/core-lro) and the typed program against the real service"
(cd "$client" && E2E_PYTHON="$PY" node --test "$here/lro.test.js")
