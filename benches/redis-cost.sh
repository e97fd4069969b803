#!/usr/bin/env bash
# What a cluster costs Redis, per operation and per shard: two `rdv serve --cluster`
# instances on one Redis, then on a Redis Cluster of three primaries (each with a replica),
# each driven by `rdv bench relay` (every pair split across the instances) and `rdv bench
# join` (every other joiner on the second instance). Each Redis node's CPU (INFO cpu: user +
# sys) is read before and after; the script prints CPU per cross-instance relay and per
# join+leave for every primary, and the totals. docs/cluster.md reports the figures.
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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

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
    for what in relay join; do
        declare -A before=()
        for port in "${ports[@]}"; do before[$port]=$(cpu_of "$port"); done
        local report ops
        if [ "$what" = relay ]; then
            report=$("$rdv" bench relay "$a" --other-instance "$b" --pairs 100 --in-flight 8 \
                --duration "${seconds}s" --warmup 0s --json)
            ops=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["delivered"])' <<<"$report")
        else
            report=$("$rdv" bench join "$a" --other-instance "$b" --peers "$peers" \
                --rooms "$((peers / 10))" --json)
            ops=$(python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["peers"] - r["failures"])' <<<"$report")
            # The peers leave as the bench ends: their leaves are part of the cost.
            sleep 2
        fi
        local total=0
        for port in "${ports[@]}"; do
            is_primary "$port" || continue
            local used
            used=$(python3 -c "print($(cpu_of "$port") - ${before[$port]})")
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

# A Redis Cluster: three primaries, a replica each.
nodes=()
for _ in 1 2 3 4 5 6; do port=$(free_port); start_redis "$port" cluster; nodes+=("$port"); done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${nodes[@]}") --cluster-replicas 1 \
    --cluster-yes >/dev/null
for port in "${nodes[@]}"; do
    until redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok'; do sleep 0.2; done
done
measure "3 primaries" "redis://127.0.0.1:${nodes[0]},127.0.0.1:${nodes[1]}" "${nodes[@]}"
