#!/usr/bin/env bash
# Side-by-side whole-process wall time and peak RSS (GNU `/usr/bin/time -v`) of
#   cp of the file | cp + sync FILE | onnx-reinit (release CLI) | the Python baseline py_reinit.py
# on the ~410 MB model (10 Gemm layers of 3200², alternating Relu/Tanh) and, with --big, on a
# > 2 GB external-data model (12 layers of 7000², 2.35 GB side file; Python with --external);
# with --peers/--torch, the init peers' fill rates (numpy; torch uniform_/normal_/trunc_normal_/
# orthogonal_) printed next to `cargo bench -p init-core --bench fill`.
#
#   bench/compare.sh [--big] [--torch] [--peers] [--reps N] [--out DIR] [--no-python]
#
# Creates a venv in bench/.venv (onnx + numpy; torch too with --torch, several GB), builds the
# release CLI and the model generator (examples/make_big.rs) without default features, writes
# the models under --out (default bench/out; both are gitignored) and prints markdown tables.
# Each rep runs every case once, in turn, so drifting machine load hits all of them alike; the
# page cache is warm (the models were just written). Wall times come from bash's EPOCHREALTIME
# around `/usr/bin/time`; the peak RSS from its "Maximum resident set size".
#
# py_reinit.py is the project's Python baseline (onnx + numpy, the way such a rewrite is
# usually written in Python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
VENV="$BENCH/.venv"
OUT="$BENCH/out"
REPS=3
BIG=0
TORCH=0
PEERS=0
PYTHON_BASELINE=1

usage() {
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --big) BIG=1 ;;
        --torch) TORCH=1; PEERS=1 ;;
        --peers) PEERS=1 ;;
        --reps) REPS="${2:?--reps needs a number}"; shift ;;
        --out) OUT="${2:?--out needs a folder}"; shift ;;
        --no-python) PYTHON_BASELINE=0 ;;
        -h|--help) usage 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; usage 2 ;;
    esac
    shift
done
case "$REPS" in ''|*[!0-9]*|0) echo "compare.sh: --reps needs a positive number" >&2; exit 2 ;; esac

die() { echo "compare.sh: $*" >&2; exit 1; }
[ -x /usr/bin/time ] || die "needs GNU time at /usr/bin/time (apt-get install time)"
command -v cargo >/dev/null || die "needs cargo"
PY_SYS="$(command -v python3 || true)"
[ -n "$PY_SYS" ] || die "needs python3"
[ -n "${EPOCHREALTIME:-}" ] || die "needs bash >= 5 (EPOCHREALTIME)"

log() { echo "[compare] $*" >&2; }

# --- Python venv --------------------------------------------------------------------------------
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
    log "creating $VENV"
    "$PY_SYS" -m venv "$VENV"
fi
pkgs=(onnx numpy)
[ "$TORCH" = 1 ] && pkgs+=(torch)
missing=()
for p in "${pkgs[@]}"; do
    "$PY" -c "import $p" 2>/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "pip install ${missing[*]} (torch is several GB)"
    "$PY" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
fi

# --- Build --------------------------------------------------------------------------------------
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
log "building the release CLI and examples/make_big.rs (target dir $TARGET_DIR)"
(cd "$ROOT" && cargo build --quiet --release -p onnx-reinit --no-default-features \
    --bin onnx-reinit --example make_big)
BIN="$TARGET_DIR/release/onnx-reinit"
GEN="$TARGET_DIR/release/examples/make_big"
[ -x "$BIN" ] && [ -x "$GEN" ] || die "build products not found under $TARGET_DIR/release"

# --- Measuring ----------------------------------------------------------------------------------
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
RUN="$OUT/run"
TIMEFILE="$OUT/.time"
ERRFILE="$OUT/.stderr"

free_bytes() { df -Pk "$1" | awk 'NR == 2 { print $4 * 1024 }'; }

# measure NAME CMD...: one run; appends "wall_seconds rss_kb cpu_seconds" to $OUT/.rows/NAME.
# The file system is flushed first (untimed), so no case pays for an earlier one's writeback.
measure() {
    local name="$1"; shift
    rm -rf "$RUN"; mkdir -p "$RUN"
    sync -f "$OUT" 2>/dev/null || true
    local t0="$EPOCHREALTIME"
    if ! /usr/bin/time -v -o "$TIMEFILE" "$@" >/dev/null 2>"$ERRFILE"; then
        echo "compare.sh: '$name' failed:" >&2
        tail -5 "$ERRFILE" >&2
        return 1
    fi
    local t1="$EPOCHREALTIME"
    local rss cpu
    rss="$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TIMEFILE")"
    cpu="$(awk -F': ' '/(User|System) time \(seconds\)/ { s += $2 } END { print s }' "$TIMEFILE")"
    echo "$t0 $t1 $rss $cpu" | awk '{ printf "%.4f %d %.3f\n", $2 - $1, $3, $4 }' >>"$OUT/.rows/$name"
}

# table TITLE BASE CASE...: median/min wall, max RSS, ratio to BASE and to the python case.
table() {
    local title="$1" base="$2"; shift 2
    echo
    echo "### $title"
    echo
    echo "| process | median s | min s | × $base | Python ÷ this | CPU s (user+sys) | peak RSS MB | Python RSS ÷ this |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    local bmed pymed
    bmed="$(stat_of "$base" median || true)"
    pymed="$(stat_of python median || true)"
    pyrss="$(stat_of python rss || true)"
    for c in "$@"; do
        [ -s "$OUT/.rows/$c" ] || continue
        local med min rss cpu
        med="$(stat_of "$c" median)"; min="$(stat_of "$c" min)"; rss="$(stat_of "$c" rss)"
        cpu="$(stat_of "$c" cpu)"
        awk -v c="${LABEL[$c]}" -v med="$med" -v min="$min" -v rss="$rss" -v b="$bmed" \
            -v py="$pymed" -v pyrss="$pyrss" -v cpu="$cpu" 'BEGIN {
                r = (b > 0) ? sprintf("%.2f", med / b) : "–"
                p = (py > 0) ? sprintf("%.1f", py / med) : "–"
                m = (pyrss > 0) ? sprintf("%.0f", pyrss / rss) : "–"
                printf "| %s | %.3f | %.3f | %s | %s | %.2f | %.1f | %s |\n",
                    c, med, min, r, p, cpu, rss / 1024, m }'
    done
}

# stat_of CASE median|min|rss|cpu: wall median/min, max RSS (KiB), median CPU seconds.
stat_of() {
    [ -s "$OUT/.rows/$1" ] || return 1
    local col=1
    [ "$2" = cpu ] && col=3
    sort -n -k"$col","$col" "$OUT/.rows/$1" | awk -v what="$2" -v col="$col" '
        { w[NR] = $col; if ($2 > rss) rss = $2 }
        END {
            if (what == "min") print w[1]
            else if (what == "rss") print rss
            else if (NR % 2) print w[(NR + 1) / 2]
            else print (w[NR / 2] + w[NR / 2 + 1]) / 2 }'
}

declare -A LABEL
# run_cases MODEL BULK PY_EXTRA: REPS rounds of every case, interleaved.
run_cases() {
    local model="$1" bulk="$2" pyextra="$3"
    rm -rf "$OUT/.rows"; mkdir -p "$OUT/.rows"
    local out_name
    out_name="$(basename "$model")"
    LABEL[cp]="\`cp\` $(basename "$bulk")"
    LABEL[cp_sync]="\`cp\` + \`sync FILE\`"
    LABEL[rust]="\`onnx-reinit MODEL -o OUT\`"
    LABEL[python]="\`python py_reinit.py MODEL OUT${pyextra:+ $pyextra}\`"
    for ((r = 1; r <= REPS; r++)); do
        log "  round $r/$REPS"
        # Python first, so that every other case sees the page cache as Python left it.
        if [ "$PYTHON_BASELINE" = 1 ]; then
            # shellcheck disable=SC2086 # $pyextra is empty or one flag
            measure python "$PY" "$BENCH/py_reinit.py" "$model" "$RUN/$out_name" $pyextra || true
        fi
        measure cp cp "$bulk" "$RUN/copy" || true
        # shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
        measure cp_sync sh -c 'cp "$1" "$2" && sync "$2"' sh "$bulk" "$RUN/copy" || true
        measure rust "$BIN" "$model" -o "$RUN/$out_name" || true
    done
    rm -rf "$RUN"
}

# --- Header -------------------------------------------------------------------------------------
cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)"
pyver="$("$PY" -c 'import sys, onnx, numpy; print(f"Python {sys.version.split()[0]}, onnx {onnx.__version__}, numpy {numpy.__version__}")')"
echo "## onnx-reinit vs copy vs Python — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- Machine: $cpu, $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1e6 }' /proc/meminfo) RAM, $(uname -sr); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- $(rustc --version), $pyver"
echo "- Command: bench/compare.sh$([ "$BIG" = 1 ] && echo ' --big')$([ "$TORCH" = 1 ] && echo ' --torch')$([ "$PEERS" = 1 ] && [ "$TORCH" = 0 ] && echo ' --peers') --reps $REPS; warm page cache; wall = median of $REPS, RSS = max"

# --- The ~410 MB model --------------------------------------------------------------------------
mkdir -p "$OUT/big"
log "generating the ~410 MB model"
"$GEN" "$OUT/big/big.onnx" --layers 10 --dim 3200 >&2
log "measuring the ~410 MB model ($REPS rounds)"
run_cases "$OUT/big/big.onnx" "$OUT/big/big.onnx" ""
size_mb="$(($(stat -c %s "$OUT/big/big.onnx") / 1000000))"
table "${size_mb} MB inline model (10 × Gemm 3200², Relu/Tanh)" cp cp cp_sync rust python
echo
echo "Targets (issue 6): onnx-reinit ≤ 1.5 × cp; ≥ 8 × faster than Python; peak RSS ≤ 1/50 of Python's."
echo "onnx-reinit's RSS counts the pages of the memory-mapped input its scan is reading; the loader"
echo "drops them behind the scan, so it stays at a few MB whatever the page-cache folio size (one"
echo "large read, as onnx.load does, leaves 2 MiB folios) and the number of tensors."
rm -f "$OUT/big/big.onnx"

# --- The > 2 GB external-data model -------------------------------------------------------------
if [ "$BIG" = 1 ]; then
    need=$((12 * 7000 * 7000 * 4 * 3 + (1 << 30)))
    have="$(free_bytes "$OUT")"
    if [ "$have" -lt "$need" ]; then
        echo
        echo "(skipping the > 2 GB model: needs $((need >> 30)) GiB free in $OUT, $((have >> 30)) GiB are)"
    else
        mkdir -p "$OUT/huge"
        log "generating the 2.35 GB external-data model"
        "$GEN" "$OUT/huge/huge.onnx" --layers 12 --dim 7000 --external >&2
        log "measuring the external-data model ($REPS rounds; Python takes ~20 s and ~7 GB each)"
        run_cases "$OUT/huge/huge.onnx" "$OUT/huge/huge.onnx.data" "--external"
        table "2.35 GB external-data model (12 × Gemm 7000², side file huge.onnx.data)" \
            cp cp cp_sync rust python
        echo
        echo "Targets (issue 6): onnx-reinit ≤ 1.5 × cp of the side file; memory a few MB, independent of model size."
        rm -f "$OUT/huge/huge.onnx" "$OUT/huge/huge.onnx.data"
    fi
fi

# --- Init peers ---------------------------------------------------------------------------------
if [ "$PEERS" = 1 ]; then
    echo
    echo "## Init peers (same machine, same run)"
    echo
    log "peers: numpy$([ "$TORCH" = 1 ] && echo ', torch')"
    "$PY" "$BENCH/peers.py" --reps 5 $([ "$TORCH" = 1 ] || echo --no-torch)
    if [ -f "$ROOT/init-core/benches/fill.rs" ]; then
        echo "## init-core: \`cargo bench -p init-core --bench fill\` (INIT_BENCH_ORTHO_4096=1)"
        echo
        log "cargo bench -p init-core --bench fill"
        (cd "$ROOT" && INIT_BENCH_ORTHO_4096=1 cargo bench --quiet -p init-core --bench fill 2>/dev/null) ||
            echo "(cargo bench -p init-core --bench fill failed)"
    else
        echo "(init-core/benches/fill.rs does not exist yet: no init-core figures)"
    fi
fi
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f "$TIMEFILE" "$ERRFILE"
rm -rf "$OUT/.rows"
