#!/usr/bin/env bash
# A multi-node Ray cluster on this one machine, for trying kdbench's cluster path (`kdbench submit`,
# `kdbench run --address`) without a cloud: one head (`ray start --head`) and N workers
# (`ray start --address`), each a separate raylet with its own ports and CPUs.
#
#   cluster/local_cluster.sh start [--workers N] [--cpus C] [--port P] [--dashboard-port D] [--dir DIR]
#   cluster/local_cluster.sh status [--dir DIR]     # prints "alive nodes: N" and one line per node
#   cluster/local_cluster.sh env    [--dir DIR]     # export lines: eval "$(cluster/local_cluster.sh env)"
#   cluster/local_cluster.sh stop   [--dir DIR]
#
# Everything the cluster owns lives under DIR (default /tmp/kdbench-local-cluster; keep it short, Ray's
# Unix socket paths must stay under 107 bytes): the token, Ray's temp dir and logs, the settings.
# Security: the dashboard and every node bind to 127.0.0.1, and token authentication is on
# (RAY_AUTH_MODE=token, a fresh random token in DIR/auth_token, mode 600) -- clients need the same two
# variables, which `env` prints. `stop` ends only this cluster's processes (found by DIR in their
# command lines, and their descendants), never another Ray on the machine: it does not call `ray stop`,
# which would stop every Ray of this user.
# Ports: the head's GCS on P (default 6390, not Ray's 6379, so it cannot meet a default local Ray), its
# Ray client server on P+1 (not 10001), per node i (0 = head) six ports from P+100+10*i, and the dashboard
# (Ray Jobs API) on D (default 8265). Ray 2.60 still binds the GCS and raylets to every interface
# (--node-ip-address does not narrow that); the token is what keeps others out.
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

cmd=${1:-}; [[ -n "$cmd" ]] || usage; shift
workers=2 cpus=1 port=6390 dashboard_port=8265 object_store_mb=256
dir=${KDBENCH_LOCAL_CLUSTER_DIR:-/tmp/kdbench-local-cluster}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --dashboard-port) dashboard_port=$2; shift 2 ;;
    --object-store-mb) object_store_mb=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "error: unknown option $1" >&2; usage ;;
  esac
done
for n in "$workers" "$cpus" "$port" "$dashboard_port" "$object_store_mb"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "error: '$n' is not a whole number" >&2; exit 2; }
done
[[ "$dir" = /* ]] || dir="$PWD/$dir"
temp="$dir/ray"

ray_bin=$(command -v ray) || { echo "error: no 'ray' on PATH (activate the kdbench virtualenv)" >&2; exit 2; }
python_bin="$(dirname "$ray_bin")/python"
[[ -x "$python_bin" ]] || python_bin=python3

auth_env() {  # the same token settings for every node and every client; nothing inherited
  unset RAY_AUTH_TOKEN RAY_ADDRESS
  export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$dir/auth_token"
}

load_settings() {
  [[ -f "$dir/cluster.env" ]] || { echo "error: no local cluster under $dir (start one first)" >&2; exit 1; }
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
}

node_ports() {  # six distinct ports for node $1 (0 = head)
  local b=$((port + 100 + 10 * $1))
  echo "--node-manager-port=$b --object-manager-port=$((b + 1)) --dashboard-agent-listen-port=$((b + 2))" \
       "--dashboard-agent-grpc-port=$((b + 3)) --metrics-export-port=$((b + 4)) --runtime-env-agent-port=$((b + 5))"
}

our_pids() {  # processes naming our temp dir or (Ray's client server) our GCS port, and their descendants
  local table seeds
  table=$(ps -ww -eo pid=,ppid=,args=)
  seeds=$(awk -v d="$temp" -v gcs=":$port" -v me=$$ '$1 != me && (index($0, d) ||
            (index($0, "ray.util.client.server") && match($0, "--address=[^ ]*" gcs "( |$)"))) {print $1}' <<<"$table")
  [[ -n "$seeds" ]] || return 0
  awk -v seeds="$seeds" '
    BEGIN { n = split(seeds, s, "\n"); for (i = 1; i <= n; i++) keep[s[i]] = 1 }
    { parent[$1] = $2 }
    END {
      changed = 1
      while (changed) { changed = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
      for (p in keep) print p
    }' <<<"$table" | grep -vx "$$" || true
}

still_running() {  # those of the given pids that exist and are not zombies (a zombie holds nothing)
  [[ $# -gt 0 ]] || return 0
  ps -o pid=,stat= -p "$(IFS=,; echo "$*")" 2>/dev/null | awk '$2 !~ /^Z/ {print $1}' || true
}

stop_cluster() {  # SIGTERM, then SIGKILL after 5 s (the GCS ignores SIGTERM far longer); again for late spawns
  local pids left total=0
  for _ in 1 2 3; do
    pids=$(our_pids)
    [[ -n "$pids" ]] || break
    total=$((total + $(wc -w <<<"$pids")))
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 25); do
      # shellcheck disable=SC2086
      left=$(still_running $pids)
      [[ -z "$left" ]] && break
      sleep 0.2
    done
    # shellcheck disable=SC2086
    [[ -z "$left" ]] || kill -KILL $left 2>/dev/null || true
    sleep 0.2
  done
  if [[ -n "$(our_pids)" ]]; then
    echo "error: processes of the local cluster under $dir survived SIGKILL: $(our_pids | tr '\n' ' ')" >&2
    return 1
  fi
  if [[ $total -eq 0 ]]; then echo "no processes of the local cluster under $dir"; return 0; fi
  echo "stopped the local cluster under $dir ($total processes)"
}

case "$cmd" in
  start)
    running=$(our_pids)
    if [[ -n "$running" ]]; then
      echo "error: a local cluster is already running under $dir (processes $(tr "\n" " " <<<"$running"))" >&2; exit 1
    fi
    mkdir -p "$temp" && chmod 700 "$dir"
    if [[ ! -s "$dir/auth_token" ]]; then
      (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/auth_token")
    fi
    printf 'port=%s\ndashboard_port=%s\nworkers=%s\n' "$port" "$dashboard_port" "$workers" >"$dir/cluster.env"
    auth_env
    trap 'echo "start failed: stopping what was started" >&2; stop_cluster >&2' ERR
    # shellcheck disable=SC2046
    "$ray_bin" start --head --node-ip-address=127.0.0.1 --port="$port" --ray-client-server-port=$((port + 1)) \
      --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$dashboard_port" \
      --num-cpus="$cpus" --num-gpus=0 --object-store-memory=$((object_store_mb * 1024 * 1024)) \
      --resources='{"kdbench_local_head": 1}' --temp-dir="$temp" --disable-usage-stats $(node_ports 0) \
      >"$dir/head.log" 2>&1 || { cat "$dir/head.log" >&2; false; }
    for i in $(seq 1 "$workers"); do
      # shellcheck disable=SC2046
      "$ray_bin" start --address="127.0.0.1:$port" --node-ip-address=127.0.0.1 \
        --num-cpus="$cpus" --num-gpus=0 --object-store-memory=$((object_store_mb * 1024 * 1024)) \
        --resources="{\"kdbench_local_worker_$i\": 1}" --temp-dir="$temp" --disable-usage-stats $(node_ports "$i") \
        >"$dir/worker-$i.log" 2>&1 || { cat "$dir/worker-$i.log" >&2; false; }
    done
    trap - ERR
    echo "local Ray cluster: 1 head + $workers workers, $cpus CPU(s) each, under $dir"
    echo "  GCS:        127.0.0.1:$port      (kdbench run --address 127.0.0.1:$port)"
    echo "  dashboard:  http://127.0.0.1:$dashboard_port   (kdbench submit SUITE --address http://127.0.0.1:$dashboard_port --store \$PWD/kdbench-store)"
    echo "  clients need the token:  eval \"\$($0 env --dir $dir)\""
    ;;
  status)
    load_settings; auth_env
    "$python_bin" - "$port" <<'EOF'
import logging, socket, sys
import ray
try:  # fail in seconds when nothing listens (ray.init would retry for minutes)
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
except OSError as e:
    sys.exit(f"error: no Ray head on 127.0.0.1:{sys.argv[1]}: {e}")
ray.init(address=f"127.0.0.1:{sys.argv[1]}", logging_level=logging.ERROR, log_to_driver=False)
alive = [n for n in ray.nodes() if n["Alive"]]
print(f"alive nodes: {len(alive)}")
for n in alive:
    custom = sorted(k for k in n["Resources"] if k.startswith("kdbench_local_"))
    print(f"  {n['NodeID'][:12]} {n['NodeManagerAddress']}:{n['NodeManagerPort']} "
          f"CPU={n['Resources'].get('CPU', 0):g} {' '.join(custom)}")
EOF
    ;;
  env)
    load_settings
    echo "export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH='$dir/auth_token'; unset RAY_AUTH_TOKEN"
    echo "# kdbench submit SUITE --address http://127.0.0.1:$dashboard_port --store \$PWD/kdbench-store   |   ray status --address 127.0.0.1:$port"
    ;;
  stop)
    if [[ -f "$dir/cluster.env" ]]; then load_settings; fi  # the ports it was started with
    stop_cluster
    ;;
  *) usage ;;
esac
