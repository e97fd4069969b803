#!/usr/bin/env bash
# What a cluster costs Redis, per operation and per shard: two `rdv serve --cluster`
# instances on one Redis, then on a Redis Cluster of one primary and of three (each with a
# replica),
# each driven by `rdv bench relay` (every pair split across the instances) and `rdv bench
# join` (every other joiner on the second instance). Each Redis node's CPU (INFO cpu: user +
# sys) is read before and after, less what the node spends idle over as long (measured
# first: a cluster node's cron and bus cost CPU with no load); the script prints CPU per
# cross-instance relay and per join+leave for every primary, and the totals.
# docs/cluster.md reports the figures.
#
#   cargo build --release && benches/redis-cost.sh            # needs redis-server, redis-cli
#
# Loopback only; every process it starts is stopped on exit. RDV_COST_SECONDS (default 10)
# sets each relay run; RDV_COST_PEERS (default 4000) the joiners.
set -euo pipefail
cd "$(dirname "$0")/.."
rdv=${RDV_BIN:-target/release/rdv}
seconds=${RDV_COST_SECONDS:-10}
peers=${RDV_COST_PEERS:-4000}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A free port whose cluster bus port (10000 above) exists and is free too.
free_port() {
    python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    if port + 10000 <= 65535:
        try:
            b = socket.socket(); b.bind(("127.0.0.1", port + 10000)); print(port); break
        except OSError:
            pass'
}

start_redis() { # port [cluster]
    mkdir -p "$work/$1"
    local extra=()
    [ "${2:-}" = cluster ] && extra=(--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000)
    (cd "$work/$1" && exec redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no \
        --protected-mode no "${extra[@]}" >/dev/null) &
    pids+=($!)
    until redis-cli -p "$1" ping >/dev/null 2>&1; do sleep 0.05; done
}

cpu_of() { # port -> CPU seconds used so far
    redis-cli -p "$1" info cpu | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.6f", s}'
}

declare -A idle_rate=()
measure_idle() { # ports... -> idle CPU seconds per second, per port
    declare -A start=()
    for port in "$@"; do start[$port]=$(cpu_of "$port"); done
    sleep 5
    for port in "$@"; do
        idle_rate[$port]=$(python3 -c "print(($(cpu_of "$port") - ${start[$port]}) / 5)")
    done
}

is_primary() { redis-cli -p "$1" info replication | grep -q '^role:master'; }

measure() { # label url ports...
    local label=$1 url=$2; shift 2
    local ports=("$@")
    local out1 out2 a b
    out1="$work/a.$RANDOM"; out2="$work/b.$RANDOM"
    "$rdv" serve --listen 127.0.0.1:0 --cluster "$url" --rate-limit 1000000 --rate-burst 1000000 \
        --max-peers-per-room 100000 --max-connections-per-ip 1000000 >"$out1" 2>/dev/null &
    pids+=($!)
    "$rdv" serve --listen 127.0.0.1:0 --cluster "$url" --rate-limit 1000000 --rate-burst 1000000 \
        --max-peers-per-room 100000 --max-connections-per-ip 1000000 >"$out2" 2>/dev/null &
    pids+=($!)
    until [ -s "$out1" ] && [ -s "$out2" ]; do sleep 0.05; done
    sleep 1
    # `rdv serve` prints `listening ADDRESS` first.
    a="ws://$(head -1 "$out1" | awk '{print $2}')"
    b="ws://$(head -1 "$out2" | awk '{print $2}')"
    measure_idle "${ports[@]}"
    for what in relay join; do
        declare -A before=()
        local window_start
        local report ops
        if [ "$what" = relay ]; then
            # CPU from the end of the warm-up (1 s) to the end: what `delivered` counts.
            "$rdv" bench relay "$a" --other-instance "$b" --pairs 100 --in-flight 8 \
                --duration "${seconds}s" --warmup 1s --json >"$work/relay.json" &
            local bench=$!
            sleep 1
            window_start=$(date +%s.%N)
            for port in "${ports[@]}"; do before[$port]=$(cpu_of "$port"); done
            wait "$bench"
            report=$(cat "$work/relay.json")
            ops=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["delivered"])' <<<"$report")
            # Side by side: the same load with both peers of each pair on one instance.
            "$rdv" bench relay "$a" --pairs 100 --in-flight 8 --duration "${seconds}s" \
                --warmup 1s --json >"$work/alone.json"
            python3 - "$label" "$work/relay.json" "$work/alone.json" <<'EOF'
import json, sys
label, across, alone = sys.argv[1], *(json.load(open(f)) for f in sys.argv[2:])
a, b = across["msgs_per_sec"], alone["msgs_per_sec"]
print(f"{label:<12} relay across two instances {a:,.0f} msg/s, on one {b:,.0f} msg/s: {a / b:.2f}x")
EOF
        else
            window_start=$(date +%s.%N)
            for port in "${ports[@]}"; do before[$port]=$(cpu_of "$port"); done
            report=$("$rdv" bench join "$a" --other-instance "$b" --peers "$peers" \
                --rooms "$((peers / 10))" --json)
            ops=$(python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["peers"] - r["failures"])' <<<"$report")
            # The peers leave as the bench ends: their leaves are part of the cost.
            sleep 2
            printf '%-12s join across two instances %s joins/s\n' "$label" \
                "$(python3 -c 'import json,sys; print(round(json.load(sys.stdin)["joins_per_sec"]))' <<<"$report")"
        fi
        local total=0 window
        window=$(python3 -c "print($(date +%s.%N) - $window_start)")
        for port in "${ports[@]}"; do
            is_primary "$port" || continue
            local used
            used=$(python3 -c "print(max(0, $(cpu_of "$port") - ${before[$port]} - ${idle_rate[$port]} * $window))")
            total=$(python3 -c "print($total + $used)")
            printf '%-12s %-5s primary :%s  %8.2f µs of Redis CPU per op  (%s ops)\n' \
                "$label" "$what" "$port" "$(python3 -c "print($used * 1e6 / $ops)")" "$ops"
        done
        printf '%-12s %-5s all primaries %8.2f µs per op\n' "$label" "$what" \
            "$(python3 -c "print($total * 1e6 / $ops)")"
    done
}

# One Redis.
single=$(free_port)
start_redis "$single"
measure "one Redis" "redis://127.0.0.1:$single" "$single"

# A Redis Cluster of one shard: one primary with every slot, and its replica (redis-cli
# --cluster create wants three primaries).
one=$(free_port); two=$(free_port)
start_redis "$one" cluster; start_redis "$two" cluster
redis-cli -p "$one" cluster addslotsrange 0 16383 >/dev/null
redis-cli -p "$two" cluster meet 127.0.0.1 "$one" >/dev/null
until redis-cli -p "$two" cluster nodes | grep -q master; do sleep 0.1; done
sleep 1
redis-cli -p "$two" cluster replicate "$(redis-cli -p "$one" cluster myid)" >/dev/null
for port in "$one" "$two"; do
    until redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok'; do sleep 0.2; done
done
until redis-cli -p "$two" info replication | grep -q 'master_link_status:up'; do sleep 0.2; done
measure "1 primary" "redis://127.0.0.1:$one" "$one" "$two"
redis-cli -p "$one" shutdown nosave >/dev/null 2>&1 || true
redis-cli -p "$two" shutdown nosave >/dev/null 2>&1 || true

# A Redis Cluster: three primaries, a replica each.
nodes=()
for _ in 1 2 3 4 5 6; do port=$(free_port); start_redis "$port" cluster; nodes+=("$port"); done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${nodes[@]}") --cluster-replicas 1 \
    --cluster-yes >/dev/null
for port in "${nodes[@]}"; do
    until redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok'; do sleep 0.2; done
done
measure "3 primaries" "redis://127.0.0.1:${nodes[0]},127.0.0.1:${nodes[1]}" "${nodes[@]}"
