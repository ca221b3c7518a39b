#!/usr/bin/env bash
# Smoke test of the NativeAOT build: publish it, then check that it produces the same text as the JIT build on the
# real stories260K fixture (single process and KV-Runahead over 2 worker processes) and that bench/reproduce run.
#
# Usage: scripts/aot-smoke.sh [OUT_DIR]        (default: publish-aot)
# Needs clang, or gcc (used here through -p:CppCompilerAndLinker=gcc when clang is absent), and the fixtures in
# ../shared/fixtures. Exits non-zero with one line saying what differed or failed.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-publish-aot}
FIX=${RUNAHEAD_FIXTURES:-../shared/fixtures}
MODEL=$FIX/llama2c/stories260K.bin
TOK=$FIX/llama2c/tok512.bin
[ -f "$MODEL" ] || { echo "aot-smoke: $MODEL not found (set RUNAHEAD_FIXTURES)" >&2; exit 2; }
linker=()
command -v clang >/dev/null 2>&1 || linker=(-p:CppCompilerAndLinker=gcc)
dotnet publish src/Runahead.Cli -c Release -r linux-x64 -p:PublishAot=true "${linker[@]}" -o "$OUT" >/dev/null \
  || { echo "aot-smoke: NativeAOT publish failed" >&2; exit 1; }
dotnet build -c Release src/Runahead.Cli >/dev/null
JIT="dotnet src/Runahead.Cli/bin/Release/net10.0/runahead.dll"
AOT=$OUT/runahead
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
export RUNAHEAD_SHARED_WEIGHTS_DIR=$WORK/packed
gen() { local bin=$1; shift; $bin generate --model "$MODEL" --tokenizer "$TOK" --prompt "Once upon a time" -n 40 --temperature 0 --json "$@"; }
text() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["text"])'; }
expected=$(gen "$JIT" | text)
for ranks in 1 2; do
  got=$(gen "$AOT" --ranks "$ranks" --strategy kvr | text)
  [ "$got" = "$expected" ] || { echo "aot-smoke: NativeAOT text with $ranks rank(s) differs from the JIT build's" >&2; exit 1; }
done
$AOT bench ttft --model "$MODEL" --tokens 64 --ranks 1,2 --strategy single,tsp,kvr --repeats 1 --warmup 0 >/dev/null \
  || { echo "aot-smoke: bench ttft failed under NativeAOT" >&2; exit 1; }
$AOT reproduce --scale tiny --out "$WORK/R.md" >/dev/null 2>&1 || { echo "aot-smoke: reproduce failed under NativeAOT" >&2; exit 1; }
echo "aot-smoke: ok ($(du -h "$AOT" | cut -f1) executable; same text as the JIT build with 1 and 2 ranks)"
