#!/usr/bin/env bash
# Runs session-storage-server's own network-tests (network-tests/ of a checkout, commit 8616387 =
# v2.8.0) against a fresh local devnet of this project's nodes, through the OxenMQ stand-ins in
# ./shim (their OxenMQ requests become HTTP(S) requests to the storage port and the JSON-RPC), then
# stops the devnet. The tests are not part of this repository: pass the checkout.
#
#   tests/sstests/run.sh --checkout PATH [--nodes N] [--out DIR] [--base-port P]
#                        [--storage-url TEMPLATE] [--suites "strict relaxed diag"]
#
#   PATH      a session-storage-server checkout (holding network-tests/) or its network-tests/
#   N         devnet nodes (default 5: the tests assert swarms of at least 5)
#   DIR       where the devnet and the results go (default .sstests at the repository's top)
#   TEMPLATE  a node's storage base URL from its get_service_nodes entry
#             (default https://{public_ip}:{storage_port}: the storage port speaks TLS)
#
# Results: DIR/results/<suite>/<module>.{log,xml,trace.jsonl} and DIR/results/summary.md (also
# printed). Every process this script starts is stopped on exit, whatever the exit path (trap).
set -u -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PRODUCT=$(cd "$HERE/../.." && pwd)
PY=${APPCHAIN_PY:-$PRODUCT/.venv/bin/python}
NODES=5
BASE_PORT=""
SUITES="strict relaxed diag"
STORAGE_URL=${SSTESTS_STORAGE_URL:-"https://{public_ip}:{storage_port}"}
CHECKOUT=""
OUT=$PRODUCT/.sstests
MIN_FINAL=4

while [ $# -gt 0 ]; do
    case "$1" in
        --checkout) CHECKOUT=$2; shift 2 ;;
        --nodes) NODES=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --base-port) BASE_PORT=$2; shift 2 ;;
        --storage-url) STORAGE_URL=$2; shift 2 ;;
        --suites) SUITES=$2; shift 2 ;;
        -h|--help) sed -n 2,18p "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

[ -n "$CHECKOUT" ] || { echo "--checkout PATH is required: a session-storage-server checkout (see --help)" >&2; exit 2; }
if [ -d "$CHECKOUT/network-tests" ]; then TESTS=$CHECKOUT/network-tests; else TESTS=$CHECKOUT; fi
[ -f "$TESTS/conftest.py" ] && [ -f "$TESTS/ss.py" ] \
    || { echo "$CHECKOUT holds no network-tests/ (conftest.py, ss.py)" >&2; exit 2; }
[ -x "$PY" ] || { echo "no $PY: make the project's venv first (make lint does)" >&2; exit 2; }
"$PY" -c "import pytest, nacl" 2>/dev/null || { echo "$PY lacks pytest or pynacl: pip install -e '.[test]'" >&2; exit 2; }
PIDS=()
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
NET=$OUT/run/net
RES=$OUT/results

stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "node pid $pid did not stop on TERM: KILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    [ ${#PIDS[@]} -gt 0 ] && echo "stopped devnet pids: ${PIDS[*]}"
    PIDS=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

if [ -z "$BASE_PORT" ]; then
    BASE_PORT=$("$PY" - "$NODES" <<'EOF'
import socket, sys
from appchain.lab.testnet import PORTS_PER_NODE
n = PORTS_PER_NODE * int(sys.argv[1])
for p in range(27100, 60000, 50):
    ok = True
    for i in range(n):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p + i))
        except OSError:
            ok = False
        finally:
            s.close()
        if not ok:
            break
    if ok:
        print(p)
        break
EOF
)
fi

rm -rf "$OUT/run" "$RES" "$OUT/network-tests"*
mkdir -p "$OUT/run" "$RES"
cp -r "$TESTS" "$OUT/network-tests"
echo "devnet: $NODES nodes, base port $BASE_PORT, in $NET"
"$PY" -m appchain.cli testnet --nodes "$NODES" --out "$NET" --base-port "$BASE_PORT" >"$OUT/run/testnet.log" 2>&1 \
    || { cat "$OUT/run/testnet.log"; exit 1; }

for i in $(seq 0 $((NODES - 1))); do
    (cd "$OUT/run" && exec "$PY" -m appchain.cli start --home "$NET/node$i") >"$NET/node$i.log" 2>&1 &
    PIDS+=($!)
done
echo "started devnet pids: ${PIDS[*]}"

final_of() {
    "$PY" -m appchain.cli status --home "$NET/node$1" --json 2>/dev/null \
        | python3 -c 'import json,sys; print(json.load(sys.stdin).get("final_height") or 0)' 2>/dev/null || echo 0
}
deadline=$((SECONDS + 180))
while :; do
    lowest=$(for i in $(seq 0 $((NODES - 1))); do final_of "$i"; done | sort -n | head -1)
    [ "${lowest:-0}" -ge "$MIN_FINAL" ] && break
    if [ $SECONDS -ge $deadline ]; then
        echo "devnet did not reach final height $MIN_FINAL in 180 s (lowest: $lowest); logs in $NET" >&2
        exit 1
    fi
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || { echo "node pid $pid exited; see $NET/node*.log" >&2; exit 1; }
    done
    sleep 2
done
RPC_URL=$("$PY" -m appchain.cli status --home "$NET/node0" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["rpc_url"])')/json_rpc
echo "devnet final height >= $MIN_FINAL on every node; oxend RPC -> $RPC_URL"

export PYTHONPATH=$HERE/shim
export SSTESTS_RPC_URL=$RPC_URL
export SSTESTS_STORAGE_URL=$STORAGE_URL
MIN_SWARM=$(( NODES < 5 ? NODES : 5 ))

"$HERE/make_relaxed.sh" "$OUT/network-tests" "$OUT/network-tests-relaxed"
# diag: the relaxed copy with test_ifelse's chain heights (1234, 100) scaled down to a devnet (1, 1)
rm -rf "$OUT/network-tests-diag"
mkdir -p "$OUT/network-tests-diag"
cp "$OUT"/network-tests-relaxed/{conftest.py,ss.py,util.py,subaccount.py,pytest.ini,test_ifelse.py} "$OUT/network-tests-diag/"
sed -i -e "s/'height_before': 1234}/'height_before': 1}/" -e "s/'height_at_least': 100}/'height_at_least': 1}/" \
    "$OUT/network-tests-diag/test_ifelse.py"

for suite in $SUITES; do
    case $suite in
        strict) dir=$OUT/network-tests; export SSTESTS_MIN_SWARM=5 ;;
        relaxed) dir=$OUT/network-tests-relaxed; export SSTESTS_MIN_SWARM=$MIN_SWARM ;;
        diag) dir=$OUT/network-tests-diag; export SSTESTS_MIN_SWARM=$MIN_SWARM ;;
        *) echo "unknown suite $suite" >&2; exit 2 ;;
    esac
    mkdir -p "$RES/$suite"
    for f in "$dir"/test_*.py; do
        m=$(basename "$f" .py)
        # One pytest process per module: ss.store_n's default `now` is fixed when ss is imported.
        (cd "$dir" && SSTESTS_TRACE="$RES/$suite/$m.trace.jsonl" timeout 900 "$PY" -m pytest \
            -p no:cacheprovider -rA -vv --junitxml="$RES/$suite/$m.xml" "$m.py") >"$RES/$suite/$m.log" 2>&1
        echo "[$suite] $m: $(tail -1 "$RES/$suite/$m.log" | tr -d '=')"
    done
done

stop_all
"$PY" "$HERE/summarize.py" "$RES" "$NODES" | tee "$RES/summary.md"
