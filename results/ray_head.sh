# Sourced by the results/*/run.sh scripts: a Ray head of the script's own, on its own port, temp
# dir and token, stopped (only it) when the script exits. Needs RUNS (where its token and log go),
# CPUS, PORT and PY set; NICE (default 10) lowers the trials' priority so the machine stays usable.
# The sweep and Ray's workers import this checkout.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

start_ray_head() {  # start_ray_head TEMP_DIR
    local ray
    ray="$(dirname "$PY")/ray"
    mkdir -p "$RUNS"
    [ -s "$RUNS/ray_token" ] || "$PY" -c "import secrets; print(secrets.token_hex(16))" > "$RUNS/ray_token"
    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN="$(cat "$RUNS/ray_token")"
    setsid nice -n "${NICE:-10}" "$ray" start --head --block --port "$PORT" --num-cpus "$CPUS" \
        --include-dashboard false --temp-dir "$1" --disable-usage-stats \
        > "$RUNS/ray_head.log" 2>&1 &
    HEAD=$!
    trap 'kill -TERM -- -$HEAD 2>/dev/null; wait $HEAD 2>/dev/null' EXIT
    until grep -qs "block forever" "$RUNS/ray_head.log"; do
        kill -0 $HEAD 2>/dev/null || { cat "$RUNS/ray_head.log"; exit 1; }
        sleep 1
    done
}
