#!/usr/bin/env bash
# Multi-rank scaling run on one many-core host: TTFT of single / TSP / KV-Runahead over 1..8 ranks, the simulator
# against real runs, and (optionally) BF16 against F32 kernels, with a time budget so that it fits a lent machine.
#
# Usage: scripts/scaling-run.sh [--runahead BIN] [--out DIR] [--budget SECONDS] [--gpu-calibration FILE]
#   --runahead         runahead executable (default: a self-contained build in publish/, else `dotnet run`)
#   --out              folder for the results (default: scaling-results)
#   --budget           seconds the whole script may take; later steps are skipped or cut short (default: 900)
#   --gpu-calibration  h200-layer-costs.json-style file for `reproduce` (default: ../shared/calibration/...)
# Build the self-contained binary once with:
#   dotnet publish src/Runahead.Cli -c Release -r linux-x64 --self-contained -p:PublishTrimmed=true -o publish
# Every step writes its own files, so a step cut short by the budget loses only itself.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
R=""; OUTDIR=scaling-results; BUDGET=900; GPUCAL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runahead) R=$2; shift 2 ;;
    --out) OUTDIR=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --gpu-calibration) GPUCAL=$2; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "scaling-run: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$R" ]; then
  if [ -x publish/runahead ]; then R=$ROOT/publish/runahead
  else dotnet build -c Release src/Runahead.Cli >/dev/null || exit 1; R="dotnet $ROOT/src/Runahead.Cli/bin/Release/net10.0/runahead.dll"; fi
fi
[ -n "$GPUCAL" ] || GPUCAL=$ROOT/../shared/calibration/h200-layer-costs.json
mkdir -p "$OUTDIR"; OUTDIR=$(cd "$OUTDIR" && pwd)
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
export RUNAHEAD_CACHE=$WORK/cache RUNAHEAD_SHARED_WEIGHTS_DIR=$WORK/packed
START=$(date +%s)
LOG=$OUTDIR/log.txt
left() { echo $(( $1 * BUDGET / 900 - ($(date +%s) - START) )); }   # seconds left until a step's share of the budget
step() {  # step NAME DEADLINE(out of 900) COMMAND... : runs COMMAND with a timeout, stdout to OUTDIR/NAME.md
  local name=$1 deadline=$2; shift 2
  local t; t=$(left "$deadline")
  if [ "$t" -lt 15 ]; then echo "== $name skipped: budget spent" >> "$LOG"; return; fi
  echo "== $name ($(date -u +%T), up to ${t}s): $*" >> "$LOG"
  timeout "$t" "$@" > "$OUTDIR/$name.md" 2>> "$LOG"
  echo "rc=$? $(date -u +%T)" >> "$LOG"
}

{
  date -u; nproc; lscpu | grep -E 'Model name|Thread|Core|Socket|NUMA node\(|L3' || true
  grep -o -w 'avx512f\|avx512_bf16\|amx_bf16' /proc/cpuinfo | sort | uniq -c
  free -g; df -h /dev/shm | tail -1; uptime
} > "$OUTDIR/machine.txt" 2>&1

M=$WORK/smollm.gguf
$R model synth --arch llama --shape smollm-135m --dtype f32 --context 8192 --out "$M" >> "$LOG" 2>&1 || exit 1

# Kernels: BF16 against F32 on this CPU (one rank, all cores).
MB=$WORK/smollm-bf16.gguf
$R model synth --arch llama --shape smollm-135m --dtype bf16 --context 8192 --out "$MB" >> "$LOG" 2>&1
step gemm 60 $R bench gemm --dtype f32,bf16 --threads 1,16
step prefill-f32 90 $R bench prefill --model "$M" --tokens 2048 --repeats 3
step prefill-bf16 120 $R bench prefill --model "$MB" --tokens 2048 --repeats 3

# TTFT over ranks, every configuration on all cores (threads per rank = cores / ranks).
step ttft-2k 240 $R bench ttft --model "$M" --tokens 2k --ranks 1,2,4,8 --strategy single,tsp,kvr --partition even \
  --repeats 3 --warmup 1 --csv "$OUTDIR/ttft-2k.csv" --trace "$OUTDIR/trace-2k.json"

# The simulator against real runs (1 thread per rank), calibration measured between the rounds.
mkdir -p "$WORK/repro"
if [ ! -f "$GPUCAL" ]; then
  echo "== reproduce skipped: GPU calibration $GPUCAL not found (pass --gpu-calibration FILE)" >> "$LOG"
else
  step reproduce 690 $R reproduce --calibration "$GPUCAL" --out "$WORK/repro/REPRODUCTION.md" --host-model "$M" \
    --host-tokens 512,1024 --host-ranks 1,2,8 --host-repeats 2 --host-calibration-batch 100
  [ -f "$WORK/repro/REPRODUCTION.md" ] && sed -n '/^## Simulator against real runs/,/^## Regenerating/p' "$WORK/repro/REPRODUCTION.md" > "$OUTDIR/simulator-vs-real.md"
fi

# Long prompt: where KV-Runahead's advantage grows.
step ttft-8k 900 $R bench ttft --model "$M" --tokens 8k --ranks 1,8 --strategy single,tsp,kvr --partition even \
  --repeats 2 --warmup 1 --csv "$OUTDIR/ttft-8k.csv"
uptime >> "$OUTDIR/machine.txt"
tar czf "$OUTDIR.tar.gz" -C "$(dirname "$OUTDIR")" "$(basename "$OUTDIR")" 2>/dev/null
echo "results in $OUTDIR (and $OUTDIR.tar.gz: one file to fetch back)"
