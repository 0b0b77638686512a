#!/usr/bin/env bash
# Device install smoke test on the oldest and newest Python we support (3.10 and 3.13): for each interpreter
# found, a fresh venv and `pip install '.[serve]'` (on 3.10 twice: the newest versions pip resolves there, and
# the serve extra's minimum versions), then `python -m mbmrl.runtime.serve ARTIFACT`, one observe, one act, a
# body over the limit (413 from our own middleware) and a huge invalid array (a small 422).
# The installs (network-bound) and the tiny artifact's build (CPU-bound) run at once; the serve checks one by one.
#
# Usage: tools/python_matrix_smoke.sh [ARTIFACT]
#   Without ARTIFACT, a tiny one is trained and exported first with the current environment's `mbmrl`.
#   PYTHONS="3.10 3.13" (default) picks the versions; a missing interpreter is skipped with a note, unless
#   SMOKE_REQUIRE_ALL=1. Needs network access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {  # set +e: a server or job that already exited must not stop the rm (errexit applies in traps)
  set +e; [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; kill $(jobs -p) 2>/dev/null; wait; rm -rf "$WORK"
}
trap cleanup EXIT

ARTIFACT=${1:-}
BUILD_PID=""
if [ -z "$ARTIFACT" ]; then  # built while the venvs install (pip waits on the network, this on the CPU)
  echo "smoke: training and exporting a tiny artifact with $(command -v mbmrl)"
  ( mbmrl train --out "$WORK/run" --n-tasks 8 --episodes-per-task 1 --iters 20 --batch-size 16 --seq-len 48 \
      --hidden-size 8 --feature-dim 16 --mlp-width 32 --window 32 --no-progress >/dev/null \
    && mbmrl export "$WORK/run" --out "$WORK/artifact" --horizons 15 30 >/dev/null ) >"$WORK/build.log" 2>&1 &
  BUILD_PID=$!
  ARTIFACT=$WORK/artifact
fi

# the working tree without ignored files (as a device would get it), so that builds never touch the checkout
mkdir "$WORK/src"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] && printf '%s\0' "$f"
done | tar -c --null -T - | tar -x -C "$WORK/src"
# the serve extra's minimums, e.g. "fastapi==0.115.0 pydantic==2.8.0 uvicorn==0.30.0"
MINIMUMS=$(sed -n 's/^serve = \[\(.*\)\]/\1/p' pyproject.toml | grep -o '"\(fastapi\|pydantic\|uvicorn\)>=[^"]*"' \
  | tr -d '"' | sed 's/>=/==/' | tr '\n' ' ')

find_python() {  # python3.X on PATH (if it runs: pyenv shims may not), else the newest pyenv 3.X.*
  local root c
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for c in "$(command -v "python$1" 2>/dev/null)" \
           "$(find "$root/versions" -maxdepth 3 -path "*/versions/$1.*/bin/python$1" 2>/dev/null | sort -V | tail -1)"; do
    if [ -n "$c" ] && "$c" -c "import sys, venv" >/dev/null 2>&1; then echo "$c"; return; fi
  done
}

install_venv() {  # install_venv NAME PYTHON [pip constraints...]: a fresh venv with '.[serve]' (runs in the background)
  local name=$1 py=$2; shift 2
  local venv="$WORK/venv-$name"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1
  if [ $# -gt 0 ]; then printf '%s\n' "$@" > "$WORK/constraints-$name.txt"; fi
  cp -a "$WORK/src" "$WORK/src-$name"  # its own tree: pip builds in the tree (build/), and the installs run at once
  "$venv/bin/pip" install -q "$WORK/src-$name[serve]" ${1:+-c "$WORK/constraints-$name.txt"} >"$WORK/pip-$name.log" 2>&1
}

serve_check() {  # serve_check NAME: serve the artifact from NAME's venv; observe, act, a 413 and a 422
  local name=$1
  local venv="$WORK/venv-$name" log="$WORK/serve-$name.log" port
  port=$("$venv/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  (cd "$WORK" && exec "$venv/bin/python" -m mbmrl.runtime.serve "$ARTIFACT" --port "$port") >"$log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 600); do grep -q "^mbmrl serve: http" "$log" && break; kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  if ! grep -q "^mbmrl serve: http" "$log"; then cat "$log"; echo "smoke $name: FAIL (no startup line)"; return 1; fi
  "$venv/bin/python" - "$port" <<'EOF' || { cat "$log"; echo "smoke $name: FAIL"; return 1; }
import http.client, json, math, socket, sys
from importlib.metadata import version
port = int(sys.argv[1])

def call(path, body, expect):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", path, body=body if isinstance(body, bytes) else json.dumps(body),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    raw = r.read()
    assert r.status == expect, (path, r.status, raw[:300])
    return json.loads(raw), len(raw)

sid = call("/v1/sessions", {"seed": 0, "planner": {"samples": 64}}, 201)[0]["session_id"]
t = {"obs": [1.0, 0.0, 0.0], "action": [0.5], "next_obs": [0.99, 0.05, 0.4], "reward": -0.1}
assert call(f"/v1/sessions/{sid}/observe", {"transitions": [t]}, 200)[0]["n_observed"] == 1
act = call(f"/v1/sessions/{sid}/act", {"obs": [1.0, 0.0, 0.0]}, 200)[0]
assert len(act["action"]) == 1 and all(math.isfinite(x) for x in act["action"]) and len(act["plan"]) == 15
huge = ('{"obs":[' + ",".join(['"a"'] * 240000) + "]}").encode()
assert call(f"/v1/sessions/{sid}/act", huge, 422)[1] < 2000
with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # declared 2 MB: 413 before the body
    s.sendall(f"POST /v1/sessions/{sid}/act HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n".encode())
    assert s.recv(100).startswith(b"HTTP/1.1 413")
print(f"python {sys.version.split()[0]}: fastapi {version('fastapi')}, pydantic {version('pydantic')}, "
      f"uvicorn {version('uvicorn')}, onnxruntime {version('onnxruntime')}, numpy {version('numpy')}: "
      f"observe, act (action {act['action'][0]:+.3f}), 413, 422 OK")
EOF
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

failed=0 names=() pids=()
for v in ${PYTHONS:-3.10 3.13}; do  # every install at once, then each venv serves in turn
  py=$(find_python "$v")
  if [ -z "$py" ]; then
    echo "smoke $v: SKIPPED (no python$v; e.g. pyenv install $v)"
    [ "${SMOKE_REQUIRE_ALL:-0}" = 1 ] && failed=1
    continue
  fi
  install_venv "$v" "$py" & names+=("$v") pids+=($!)
  if [ "$v" = "3.10" ]; then install_venv "$v-minimums" "$py" $MINIMUMS & names+=("$v-minimums") pids+=($!); fi
done
if [ -n "$BUILD_PID" ] && ! wait "$BUILD_PID"; then
  cat "$WORK/build.log"; echo "smoke: FAIL (training or exporting the tiny artifact)"; exit 1
fi
for i in "${!names[@]}"; do
  name=${names[$i]}
  if ! wait "${pids[$i]}"; then
    tail -20 "$WORK/pip-$name.log" 2>/dev/null || true; echo "smoke $name: FAIL (venv or pip install)"; failed=1; continue
  fi
  serve_check "$name" || failed=1
done
exit $failed
