#!/usr/bin/env bash
# Every GPU check of hwnas in one call of at most 9 minutes, results bundled into one archive.
#
#   bash benchmarks/gpu_suite.sh [options] [OUTDIR]          # OUTDIR defaults to $OUT
#
# Steps (each under `timeout` with its own budget; a failed or timed-out step is recorded and the suite goes
# on; an overall deadline keeps the whole run under --total seconds even if steps hang):
#   env         nvidia-smi (+ -q), versions of python/torch/CUDA/cuDNN/triton/nvcc/cmake, pip list
#   setup       pip install -e ".[dev,triton]" into the python given (PYTHON, default python3), building hwnas._C with
#               CUDA; torch and pybind11 are the ones installed there (pip-installed only if missing)
#   gpu_tests   pytest -m gpu (kernels compiled for the device, the CUDA extension, the CUDA deploy path)
#   search_step CDNet supernet step: eager / torch.compile / batched / triton (TF32)
#   inference   CDNet-top2 eval at batch 128: eager / compiled / batched / triton / cpp, + LiteConv GB/s vs peak
#   cpp_inference  the fused compiled (CUDA) model vs eager and OSNet at batch 128
#   latency_build  a measured table named h200 (batch 128, fp32, 256x128, both spaces)
#   latency_validate  20 random CDNet genotypes end to end against that table
#   latency_h100   the predicted h100 table's errors against the measured one (+ roofline fit on h100's sheet)
#   table5_data / table5   the reduced Table 5 protocol on a small generated Market-1501-format set
#   kernel_tests  every backend/kernel/extension test file again, compiled for the device
# Output: OUTDIR/gpu_suite.tar.gz holding gpu_suite/{manifest.json,summary.md,env/,logs/,results/}; the summary
# is also printed last. See docs/benchmarks.md ("GPU suite").
#
# Options:
#   --dry-run            list the steps with their budgets and commands, check that every python command still
#                        imports and parses its flags (benchmarks/_suite_check.py), run nothing heavy
#   --wheels DIR         pip wheels of the dependencies the device image lacks (installed with --no-index)
#   --prepare-wheels DIR build that wheel folder here (needs PyPI), then exit
#   --steps FILE         run these steps instead of the built-in table (lines: name|budget_s|command)
#   --total SECONDS      overall deadline (default 540 = 9 minutes)
#   --keep-work          keep the scratch folder (data, caches) instead of deleting it
set -u -o pipefail

SUITE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
ROOT="$(cd "$(dirname "$SUITE")/.." && pwd)"
BASE_PY="${PYTHON:-python3}"
TOTAL_S=540
RESERVE_S=10           # kept free after the last step for the manifest and the archive
KILL_AFTER_S=5         # SIGKILL this long after a step's SIGTERM

SUITE_ARGV="bash benchmarks/gpu_suite.sh${*:+ $*}"
DRY_RUN=0; WHEELS=""; STEPS_FILE=""; KEEP_WORK=0; OUTDIR=""; INTERNAL=""; PREPARE=""

die() { echo "error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --wheels) [ $# -ge 2 ] || die "--wheels needs a folder"; WHEELS="$(cd "$2" 2>/dev/null && pwd)" \
                || die "wheel folder $2, --wheels, expected an existing folder"; shift ;;
    --prepare-wheels) [ $# -ge 2 ] || die "--prepare-wheels needs a folder"; PREPARE="$2"; shift ;;
    --steps) [ $# -ge 2 ] && [ -f "$2" ] || die "steps file ${2:-}, --steps, expected an existing file"
             STEPS_FILE="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift ;;
    --total) [[ "${2:-}" =~ ^[0-9]+$ ]] && [ "$2" -gt "$RESERVE_S" ] \
               || die "total ${2:-}, --total, expected whole seconds > $RESERVE_S"; TOTAL_S="$2"; shift ;;
    --keep-work) KEEP_WORK=1 ;;
    --internal) [ $# -ge 2 ] || die "--internal needs a step"; INTERNAL="$2"; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$SUITE" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1, gpu_suite.sh, expected --dry-run, --wheels, --prepare-wheels, --steps, --total or" \
            "--keep-work" ;;
    *) [ -z "$OUTDIR" ] || die "second output folder $1, gpu_suite.sh, expected one OUTDIR"; OUTDIR="$1" ;;
  esac
  shift
done

# ---------------------------------------------------------------------------------------------------- steps
# name|budget in seconds|command. $PY, $RES (results folder), $WORK (scratch) and $SUITE are set for every step.
# Budgets sum to 525 s (<= 540 - RESERVE_S); ordered by what matters most if time runs out.
default_steps() {
  cat <<'EOF'
env|10|bash "$SUITE" --internal env
setup|100|bash "$SUITE" --internal setup
gpu_tests|55|$PY -m pytest -q -p no:cacheprovider -m gpu -n 4 --junitxml=$RES/pytest_gpu.xml tests
search_step|90|$PY -m benchmarks.search_step --device cuda --tf32 --backends eager,triton,compiled,batched --warmup 3 --repeats 10 --output $RES/search_step.md
inference|50|$PY -m benchmarks.inference --device cuda --tf32 --backends eager,triton,cpp,compiled,batched --warmup 3 --repeats 20 --output $RES/inference.md
cpp_inference|20|$PY -m benchmarks.bench_cpp_inference --device cuda --batch-sizes 128 --rounds 10 --warmup 2 --out $RES/cpp_inference.md
latency_build|40|$PY -m hwnas.latency build --device cuda --name h200 --batch-size 128 --dtype fp32 --input-size 256x128 --width-mult 1.0 --space both --warmup 5 --repeats 20 --no-progress --output $RES/latency
latency_validate|30|$PY -m hwnas.latency validate --table $RES/latency/h200.json --device cuda --archs 20 --warmup 3 --repeats 10 --no-progress --output $RES/latency/h200_validate
latency_h100|25|$PY -m benchmarks.compare_tables --measured $RES/latency/h200.json --predicted h100 --validation $RES/latency/h200_validate/validation.json --spec h100 --output $RES/latency/h100_vs_h200
table5_data|15|$PY -m hwnas.data.synthetic --output $WORK/data/market-small --num-ids 150 --images-per-id 12
table5|50|$PY -m benchmarks.inference_time --device cuda --data-root $WORK/data/market-small --runs 2 --warmup 1 --workers 8 --output $RES/inference_time_h200
kernel_tests|40|$PY -m pytest -q -p no:cacheprovider -n 4 --junitxml=$RES/pytest_backends.xml tests/test_kernels_lite_conv.py tests/test_kernels_gate_sum.py tests/test_ops_backends.py tests/test_ops_plan.py tests/test_cpp_ext.py tests/test_deploy.py
EOF
}

steps_table() { if [ -n "$STEPS_FILE" ]; then grep -v '^\s*\(#\|$\)' "$STEPS_FILE"; else default_steps; fi; }

# The command with $PY/$RES/$WORK/$SUITE written out (for the listing, the manifest and the checker).
expand() {
  local c="$1"
  c="${c//\$PY/$PY}"; c="${c//\$RES/$RES}"; c="${c//\$WORK/$WORK}"; c="${c//\$SUITE/$SUITE}"
  printf '%s' "$c"
}

# ------------------------------------------------------------------------------------------- internal steps
internal_env() {
  local dir="$RES/../env"
  mkdir -p "$dir"
  { nvidia-smi || echo "nvidia-smi failed or is absent"; } >"$dir/nvidia-smi.txt" 2>&1
  { nvidia-smi -q || true; } >"$dir/nvidia-smi-q.txt" 2>&1
  local fields=name,driver_version,memory.total,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,power.limit
  fields+=,temperature.gpu,persistence_mode,compute_mode
  { nvidia-smi --query-gpu="$fields" --format=csv || true; } >"$dir/gpu.csv" 2>&1
  {
    echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "uname: $(uname -a)"; echo "cpus: $(nproc)"
    echo "loadavg: $(cat /proc/loadavg 2>/dev/null)"; free -g 2>/dev/null | sed -n 2p | sed 's/^/memory_gib: /'
    echo "git_commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null \
                          || echo "${HWNAS_COMMIT:-unknown (no .git; set HWNAS_COMMIT)}")"
    echo "python: $BASE_PY -> $(command -v "$BASE_PY")"
    echo "--- nvcc"; nvcc --version 2>&1 | tail -2
    echo "--- cmake"; cmake --version 2>&1 | head -1
    echo "--- c++"; c++ --version 2>&1 | head -1
    echo "--- ninja"; ninja --version 2>&1
  } >"$dir/versions.txt" 2>&1
  "$BASE_PY" - >"$dir/versions.json" 2>"$dir/versions.err" <<'EOF'
import json, platform, sys
info = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform()}
for name in ("torch", "triton", "numpy", "onnxruntime", "pybind11"):
    try:
        info[name] = __import__(name).__version__
    except Exception as e:  # noqa: BLE001
        info[name] = f"absent ({type(e).__name__})"
try:
    import torch
    info["torch_cuda"] = torch.version.cuda
    info["cudnn"] = torch.backends.cudnn.version()
    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["device"] = {"name": p.name, "capability": f"{p.major}.{p.minor}", "sms": p.multi_processor_count,
                          "memory_gib": round(p.total_memory / 2**30, 1), "count": torch.cuda.device_count()}
except Exception as e:  # noqa: BLE001
    info["torch_error"] = repr(e)
print(json.dumps(info, indent=2))
EOF
  cat "$dir/versions.json"
  { "$BASE_PY" -m pip list 2>/dev/null || true; } >"$dir/pip-list.txt"
  head -15 "$dir/nvidia-smi.txt"
  return 0
}

internal_setup() {
  export PIP_DEFAULT_TIMEOUT=5 PIP_RETRIES=0 PIP_DISABLE_PIP_VERSION_CHECK=1  # no registry on the device: fail fast
  cd "$ROOT" || return 1
  if ! "$BASE_PY" -c 'import torch, pybind11' 2>/dev/null; then
    echo "torch or pybind11 missing in $BASE_PY: pip install torch pybind11"
    "$BASE_PY" -m pip install torch pybind11 || return 1
  fi
  "$BASE_PY" -c 'import torch as t; print("torch", t.__version__, "cuda", t.version.cuda, t.cuda.is_available())'
  local args=(--no-build-isolation)
  if [ -n "$WHEELS" ]; then  # a carried wheel is used only where the package is missing here
    echo "carried wheels: $(ls "$WHEELS" | tr '\n' ' ')"
    args+=(--no-index --find-links "$WHEELS")
  fi
  export HWNAS_WITH_CUDA="${HWNAS_WITH_CUDA:-1}"
  echo "pip install ${args[*]} -e .[dev,triton]  (HWNAS_WITH_CUDA=$HWNAS_WITH_CUDA)"
  if ! "$BASE_PY" -m pip install -v "${args[@]}" -e ".[dev,triton]" >"$WORK/pip-install.log" 2>&1; then
    grep -E "^ERROR|No matching distribution|Could not find" "$WORK/pip-install.log" | tail -5
    echo "pip install -e .[dev,triton] failed: installing the carried wheels and hwnas without dependency resolution"
    [ -z "$WHEELS" ] || "$BASE_PY" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl
    "$BASE_PY" -m pip install -v "${args[@]}" --no-deps -e . >>"$WORK/pip-install.log" 2>&1 \
      || { tail -30 "$WORK/pip-install.log"; return 1; }
    local deps_failed=1
  fi
  grep -iE "hwnas:|warning|error|Successfully" "$WORK/pip-install.log" | grep -v "is ignored: it is neither" | tail -15
  cp "$WORK/pip-install.log" "$RES/../logs/setup-pip-install.log" 2>/dev/null
  "$BASE_PY" -m hwnas.ops info
  "$BASE_PY" -c 'import hwnas._C as c; print("hwnas._C with_cuda:", c.with_cuda); exit(0 if c.with_cuda else 3)' \
    || { echo "the CUDA extension is not usable (see logs/setup-pip-install.log)"; return 3; }
  [ -z "${deps_failed:-}" ] || return 4
  return 0
}

prepare_wheels() {
  mkdir -p "$PREPARE" || die "cannot create $PREPARE"
  local specs
  specs="$(cd "$ROOT" && "$BASE_PY" -m benchmarks._suite_wheels)" || die "cannot list hwnas's pure-Python requirements"
  echo "building pure-Python wheels into $PREPARE:" $specs
  # shellcheck disable=SC2086  # one spec per word
  "$BASE_PY" -m pip wheel -q --no-deps -w "$PREPARE" $specs || die "pip wheel failed"
  ls -l "$PREPARE"; du -sh "$PREPARE"
  echo "carry this folder to the device and pass --wheels $PREPARE"
}

# --------------------------------------------------------------------------------------------------- runner
if [ -n "$INTERNAL" ]; then  # a step of a running suite: RES/WORK come from the environment
  WORK="${GPU_SUITE_WORK:?}"; RES="${GPU_SUITE_RES:?}"
  case "$INTERNAL" in env) internal_env ;; setup) internal_setup ;; *) die "unknown internal step $INTERNAL" ;; esac
  exit $?
fi
if [ -n "$PREPARE" ]; then prepare_wheels; exit 0; fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_suite.XXXXXX")" || die "cannot create a scratch folder"

STAGE="$WORK/gpu_suite"; RES="$STAGE/results"; LOGS="$STAGE/logs"
mkdir -p "$RES" "$LOGS" "$STAGE/env" "$WORK/data" "$WORK/cache"
PY="$BASE_PY"
export PY RES WORK SUITE GPU_SUITE_WORK="$WORK" GPU_SUITE_RES="$RES" WHEELS PYTHONUNBUFFERED=1 \
  HWNAS_CACHE="$WORK/cache" TRITON_CACHE_DIR="$WORK/cache/triton" TORCHINDUCTOR_CACHE_DIR="$WORK/cache/inductor"

if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then  # the CUDA build and test need nvcc
  export PATH="/usr/local/cuda/bin:$PATH"
fi

mapfile -t STEPS < <(steps_table)
BUDGET_SUM=0
for line in "${STEPS[@]}"; do
  IFS='|' read -r name budget cmd <<<"$line"
  [[ "$name" =~ ^[A-Za-z0-9_.-]+$ && "$budget" =~ ^[0-9]+$ && -n "$cmd" ]] \
    || die "step line '$line', steps table, expected name|budget_seconds|command"
  BUDGET_SUM=$((BUDGET_SUM + budget))
done

if [ "$DRY_RUN" = 1 ]; then
  trap 'rm -rf "$WORK"' EXIT
  echo "gpu_suite dry run: ${#STEPS[@]} steps, budgets sum to ${BUDGET_SUM} s;" \
       "deadline ${TOTAL_S} s (${RESERVE_S} s kept for the archive)"
  [ -n "$OUTDIR" ] || [ -n "${OUT:-}" ] || echo "note: no OUTDIR given and OUT unset: a real run would refuse to start"
  i=0; : >"$WORK/commands.txt"
  for line in "${STEPS[@]}"; do
    IFS='|' read -r name budget cmd <<<"$line"; i=$((i + 1))
    printf '%2d. %-17s %4s s  %s\n' "$i" "$name" "$budget" "$(expand "$cmd")"
    if [[ "$cmd" != *'--internal'* ]]; then printf '%s\n' "$(expand "$cmd")" >>"$WORK/commands.txt"; fi
  done
  status=0
  if [ "$BUDGET_SUM" -gt $((TOTAL_S - RESERVE_S)) ]; then
    echo "FAIL  budgets sum to ${BUDGET_SUM} s, more than ${TOTAL_S} - ${RESERVE_S} s"; status=1
  fi
  echo "tools (needed on the device; a missing one here is only a warning):"
  for tool in nvidia-smi nvcc cmake ninja c++ tar timeout; do
    if command -v "$tool" >/dev/null; then echo "  ok    $tool"; else echo "  warn  $tool is not on PATH here"; fi
  done
  echo "commands (imported and parsed, not run):"
  (cd "$ROOT" && "$BASE_PY" -m benchmarks._suite_check "$WORK/commands.txt") || status=1
  [ "$status" = 0 ] && echo "dry run ok" || echo "dry run FAILED"
  exit "$status"
fi

OUTDIR="${OUTDIR:-${OUT:-}}"
[ -n "$OUTDIR" ] || die "no output folder, gpu_suite.sh OUTDIR or \$OUT, expected one of them"
mkdir -p "$OUTDIR" || die "output folder $OUTDIR, OUTDIR, expected a writable folder"
OUTDIR="$(cd "$OUTDIR" && pwd)"
START=$(date +%s); DEADLINE=$((START + TOTAL_S)); START_UTC="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
printf 'name\tbudget_s\ttimeout_s\texit_code\tstatus\tseconds\tcommand\n' >"$STAGE/steps.tsv"
FINISHED=0

finish() {
  [ "$FINISHED" = 1 ] && return; FINISHED=1
  { nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw,memory.used --format=csv || true; } \
    >"$STAGE/env/gpu-end.csv" 2>&1
  SUITE_START_UTC="$START_UTC" SUITE_END_UTC="$(date -u +%Y-%m-%dT%H:%M:%SZ)" SUITE_ELAPSED=$(( $(date +%s) - START )) \
  SUITE_TOTAL="$TOTAL_S" SUITE_LOAD_START="$LOAD_START" SUITE_LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" \
  SUITE_ARGV="$SUITE_ARGV" SUITE_OUTDIR="$OUTDIR" SUITE_STAGE="$STAGE" \
    "$BASE_PY" "$ROOT/benchmarks/_suite_report.py" || echo "warning: manifest/summary not written (see above)"
  tar -czf "$OUTDIR/gpu_suite.tar.gz.tmp" -C "$WORK" gpu_suite \
    && mv -f "$OUTDIR/gpu_suite.tar.gz.tmp" "$OUTDIR/gpu_suite.tar.gz" \
    && echo "archive: $OUTDIR/gpu_suite.tar.gz ($(du -h "$OUTDIR/gpu_suite.tar.gz" | cut -f1))"
  [ -f "$STAGE/summary.md" ] && cat "$STAGE/summary.md"
  [ "$KEEP_WORK" = 1 ] && echo "scratch kept: $WORK" || rm -rf "$WORK"
}
trap finish EXIT
trap 'echo "interrupted: writing what there is"; exit 130' INT TERM

cd "$ROOT" || die "cannot enter $ROOT"
i=0
for line in "${STEPS[@]}"; do
  IFS='|' read -r name budget cmd <<<"$line"; i=$((i + 1))
  now=$(date +%s); left=$((DEADLINE - RESERVE_S - now))
  full="$(expand "$cmd")"
  if [ "$left" -lt 5 ]; then
    printf '%s\t%s\t0\t\tskipped\t0\t%s\n' "$name" "$budget" "$full" >>"$STAGE/steps.tsv"
    echo "== [$i/${#STEPS[@]}] $name: skipped, out of time"; continue
  fi
  t=$(( budget < left ? budget : left ))
  echo "== [$i/${#STEPS[@]}] $name (budget ${budget} s, timeout ${t} s, $(( now - START )) s elapsed): $full"
  t0=$(date +%s.%N)
  timeout -k "$KILL_AFTER_S" "$t" bash -c "$cmd" >"$LOGS/$name.log" 2>&1 </dev/null
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  case "$rc" in 0) st=ok ;; 124|137) st=timeout ;; *) st=failed ;; esac
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$budget" "$t" "$rc" "$st" "$secs" "$full" >>"$STAGE/steps.tsv"
  echo "   -> $st (exit $rc, ${secs} s)"; tail -n 4 "$LOGS/$name.log" | sed 's/^/   | /'
done
exit 0
