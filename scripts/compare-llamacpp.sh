#!/usr/bin/env bash
# Prompt (prefill) throughput of Runahead beside llama.cpp's llama-bench on the same synthesized GGUF files.
#
# Usage: scripts/compare-llamacpp.sh [LLAMA_BENCH] [options]        (--help for the options)
# llama-bench is found from the first argument, --llama-bench, $LLAMA_BENCH or PATH; without it the script says
# "skipped" and exits 0, so it can run anywhere. Runahead and llama-bench take turns on every case (and swap order
# each round) so that load drift on a shared machine hits both. Needs python3 and, unless --runahead names a
# published binary, the dotnet SDK (the CLI is built once in Release, then run with `dotnet run --no-build`).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v python3 > /dev/null 2>&1; then
    echo "compare-llamacpp: skipped: python3 is needed to run the comparison and was not found on PATH" >&2
    exit 0
fi
exec python3 - "$@" << 'PYTHON'
import argparse, json, os, platform, shutil, statistics, subprocess, sys, time

parser = argparse.ArgumentParser(prog="compare-llamacpp.sh",
    description="Runahead `bench prefill` beside llama.cpp `llama-bench` on the same synthesized GGUFs.")
parser.add_argument("llama_bench_pos", nargs="?", metavar="LLAMA_BENCH", help="path of llama-bench")
parser.add_argument("--llama-bench", dest="llama_bench", help="path of llama-bench (else $LLAMA_BENCH, else PATH)")
parser.add_argument("--runahead", help="published runahead binary (default: build src/Runahead.Cli and use dotnet run)")
parser.add_argument("--shapes", default="smollm-135m,tinyllama-1.1b", help="model shapes (runahead model synth --shape)")
parser.add_argument("--dtypes", default="f32,bf16", help="matrix types of the synthesized files")
parser.add_argument("--tokens", default="512,2048", help="prompt lengths")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--repeats", type=int, default=3, help="timed runs per tool per case (llama-bench -r, bench prefill --repeats)")
parser.add_argument("--rounds", type=int, default=1, help="times each case is run by both tools; order swaps each round")
parser.add_argument("--llama-wait-policy", choices=["default", "passive", "best"], default="best",
                    help="OpenMP wait policy of llama-bench: its default (spinning), OMP_WAIT_POLICY=PASSIVE, or both with the "
                         "faster one counted (spinning threads lose badly when the machine has more runnable threads than cores)")
parser.add_argument("--attention-tokens", type=int, default=4096, help="prompt length of the attention-share measurement (0: skip)")
parser.add_argument("--attention-shapes", default=None, help="shapes of the attention measurement (default: --shapes)")
parser.add_argument("--attention-dtypes", default="f32", help="dtypes of the attention measurement")
parser.add_argument("--cache", default=os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "runahead", "compare-llamacpp"),
                    help="folder for the synthesized GGUFs (reused when present)")
parser.add_argument("--seed", type=int, default=1, help="seed of the synthesized weights")
parser.add_argument("--json", action="store_true", help="print one JSON object instead of markdown")
parser.add_argument("--json-out", help="also write the JSON object to this file")
args = parser.parse_args()

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

def fail(msg):
    print(f"compare-llamacpp: {msg}", file=sys.stderr)
    sys.exit(1)

def csv(s, conv=str):
    items = [x.strip() for x in s.split(",") if x.strip()]
    if not items: fail(f"empty list '{s}'")
    try: return [conv(x) for x in items]
    except ValueError: fail(f"'{s}' is not a comma-separated list of numbers")

shapes, dtypes, token_counts = csv(args.shapes), csv(args.dtypes), csv(args.tokens, int)
att_shapes = csv(args.attention_shapes) if args.attention_shapes else shapes
att_dtypes = csv(args.attention_dtypes)
for name, v in (("--threads", args.threads), ("--repeats", args.repeats), ("--rounds", args.rounds)):
    if v < 1: fail(f"{name} must be >= 1, got {v}")
if any(t < 1 for t in token_counts): fail("--tokens must all be >= 1")
if args.attention_tokens < 0: fail("--attention-tokens must be >= 0")

# llama-bench: positional, option, environment, PATH; absent means skip (exit 0), a wrong explicit path is an error.
explicit = args.llama_bench or args.llama_bench_pos or os.environ.get("LLAMA_BENCH")
if explicit:
    if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
        fail(f"llama-bench '{explicit}' is not an executable file")
    llama_bench = os.path.abspath(explicit)
else:
    llama_bench = shutil.which("llama-bench")
if not llama_bench:
    reason = "llama-bench not found (give its path as the first argument, --llama-bench, or LLAMA_BENCH, or put it on PATH)"
    if args.json: print(json.dumps({"skipped": True, "reason": reason}))
    else: print(f"compare-llamacpp: skipped: {reason}")
    sys.exit(0)

def run(cmd, what):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-5:]
        fail(f"{what} failed (exit {p.returncode}): {' | '.join(tail)}")
    return p.stdout

if args.runahead:
    if not (os.path.isfile(args.runahead) and os.access(args.runahead, os.X_OK)):
        fail(f"--runahead '{args.runahead}' is not an executable file")
    runahead = [os.path.abspath(args.runahead)]
else:
    if not shutil.which("dotnet"): fail("dotnet was not found; install the .NET 10 SDK or pass --runahead BINARY")
    log("building src/Runahead.Cli (Release)")
    run(["dotnet", "build", "-c", "Release", "-v", "q", "-nologo", "src/Runahead.Cli"], "dotnet build")
    runahead = ["dotnet", "run", "-c", "Release", "--no-build", "--project", "src/Runahead.Cli", "--"]

def loadavg():
    try: return [round(x, 2) for x in os.getloadavg()]
    except OSError: return None

def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"): return line.split(":", 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()

def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = line.split(":", 1)[1].split()
                    return [x for x in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16") if x in fl]
    except OSError: pass
    return []

def git_commit():
    try: return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or None
    except OSError: return None

os.makedirs(args.cache, exist_ok=True)
def model_file(shape, dtype):
    path = os.path.join(args.cache, f"llama-{shape}-{dtype}-seed{args.seed}.gguf")
    if not os.path.isfile(path):
        log(f"synthesizing {path}")
        tmp = path + ".partial"
        run(runahead + ["model", "synth", "--arch", "llama", "--shape", shape, "--dtype", dtype, "--out", tmp, "--seed", str(args.seed)],
            f"model synth {shape} {dtype}")
        os.replace(tmp, path)
    return path

infos = {}
def model_info(path):
    if path not in infos: infos[path] = json.loads(run(runahead + ["model", "info", path, "--json"], f"model info {path}"))
    return infos[path]

llama_build = {}
def llama_once(path, tokens, passive):
    env = dict(os.environ)
    if passive: env["OMP_WAIT_POLICY"] = "PASSIVE"
    p = subprocess.run([llama_bench, "-m", path, "-p", str(tokens), "-n", "0", "-t", str(args.threads), "-r", str(args.repeats), "-o", "json"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0:
        fail(f"llama-bench on {path} failed (exit {p.returncode}): {' | '.join(p.stderr.strip().splitlines()[-5:])}")
    rows = [r for r in json.loads(p.stdout) if r.get("n_prompt") == tokens and r.get("n_gen") == 0]
    if not rows: fail(f"llama-bench printed no prompt result for {tokens} tokens")
    r = rows[0]
    llama_build.update({k: r.get(k) for k in ("build_commit", "build_number", "cpu_info", "backends", "flash_attn", "type_k", "type_v", "n_batch", "n_ubatch")})
    return {"tok_s": r["avg_ts"], "stddev_tok_s": r.get("stddev_ts"), "samples_tok_s": r.get("samples_ts"), "omp_passive": passive}

def llama(path, tokens):
    if args.llama_wait_policy != "best": return llama_once(path, tokens, args.llama_wait_policy == "passive")
    runs = [llama_once(path, tokens, False), llama_once(path, tokens, True)]
    best = max(runs, key=lambda r: r["tok_s"])
    return {**best, "tok_s_default": runs[0]["tok_s"], "tok_s_passive": runs[1]["tok_s"]}

def ours(path, tokens, ctx=None):
    cmd = runahead + ["bench", "prefill", "--model", path, "--tokens", str(tokens), "--threads", str(args.threads),
                      "--repeats", str(args.repeats), "--json"]
    if ctx: cmd += ["--ctx-size", str(ctx)]
    r = json.loads(run(cmd, f"runahead bench prefill on {path}").strip().splitlines()[-1])
    return r

start_load = loadavg()
log(f"load average {start_load}; llama-bench {llama_bench}")
results = []
for shape in shapes:
    for dtype in dtypes:
        path = model_file(shape, dtype)
        for tokens in token_counts:
            rounds = []
            for rnd in range(args.rounds):
                first_llama = rnd % 2 == 0
                log(f"{shape} {dtype} {tokens} tokens, round {rnd + 1}/{args.rounds}")
                if first_llama: l = llama(path, tokens); o = ours(path, tokens)
                else: o = ours(path, tokens); l = llama(path, tokens)
                rounds.append({"llama_tok_s": l["tok_s"], "llama_stddev": l["stddev_tok_s"], "llama_omp_passive": l["omp_passive"],
                               "llama_tok_s_default": l.get("tok_s_default"), "llama_tok_s_passive": l.get("tok_s_passive"),
                               "ours_tok_s": o["prompt_tokens_per_s"],
                               "ratio": o["prompt_tokens_per_s"] / l["tok_s"], "ours": o, "load": loadavg()})
            o = rounds[-1]["ours"]
            limit = 1.10 * (o["weights_bytes"] + o["kv_cache_bytes"])
            results.append({
                "shape": shape, "dtype": dtype, "tokens": tokens,
                "llama_tok_s": statistics.median(r["llama_tok_s"] for r in rounds),
                "ours_tok_s": statistics.median(r["ours_tok_s"] for r in rounds),
                "ratio": statistics.median(r["ratio"] for r in rounds),
                "ratio_min": min(r["ratio"] for r in rounds), "ratio_max": max(r["ratio"] for r in rounds),
                "memory": {"peak_rss_bytes": max(r["ours"]["peak_rss_bytes"] for r in rounds), "weights_bytes": o["weights_bytes"],
                           "kv_cache_bytes": o["kv_cache_bytes"], "workspace_bytes": o["workspace_bytes"],
                           "mapped_embedding_bytes": o["mapped_embedding_bytes"], "limit_bytes": int(limit)},
                "rounds": [{k: v for k, v in r.items() if k != "ours"} for r in rounds]})
            m = results[-1]["memory"]
            m["within_limit"] = m["peak_rss_bytes"] <= m["limit_bytes"]

def find(shape, dtype, tokens):
    return next((r for r in results if r["shape"] == shape and r["dtype"] == dtype and r["tokens"] == tokens), None)

bf16_vs_f32 = []
for shape in shapes:
    for tokens in token_counts:
        f, b = find(shape, "f32", tokens), find(shape, "bf16", tokens)
        if f and b: bf16_vs_f32.append({"shape": shape, "tokens": tokens, "ours_bf16_over_f32": b["ours_tok_s"] / f["ours_tok_s"],
                                        "llama_bf16_over_f32": b["llama_tok_s"] / f["llama_tok_s"]})

# Attention share at N tokens from two runs of ours with the same chunk size c (bench prefill's default): a run of c
# tokens (one chunk: GEMMs G + attention over c(c+1)/2 causal query-key pairs) and a run of N = m c tokens (m chunks:
# m G + attention over N(N+1)/2 pairs). Assuming attention time per pair does not depend on the prefix length,
# time per pair a = (T_N - m T_c) / (pairs(N) - m pairs(c)) and attention time at N = a pairs(N).
def pairs(n): return n * (n + 1) / 2
attention = []
if args.attention_tokens > 0:
    for shape in att_shapes:
        for dtype in att_dtypes:
            path = model_file(shape, dtype)
            info = model_info(path)
            n = args.attention_tokens
            log(f"attention share: {shape} {dtype} {n} tokens")
            long = ours(path, n, ctx=max(n, info["context_length"]))
            c = long["chunk_tokens"]
            if n % c != 0 or n <= c:
                fail(f"--attention-tokens {n} must be a multiple (> 1) of bench prefill's chunk of {c} tokens")
            short = ours(path, c)
            m = n // c
            t_n, t_c = long["median_s"], short["median_s"]
            per_pair = (t_n - m * t_c) / (pairs(n) - m * pairs(c))
            # T_N <= m T_c means the two runs met different load: the difference holds no attention time to read.
            att_s = per_pair * pairs(n) if per_pair > 0 else None
            qdim = info["heads"] * info["head_dim"]
            kvdim = info["kv_heads"] * info["head_dim"]
            linear_per_token = 2 * info["layers"] * (info["dim"] * (qdim + 2 * kvdim) + qdim * info["dim"] + 3 * info["dim"] * info["ffn_dim"])
            att_flops = info["layers"] * 4 * qdim * pairs(n)     # Q K^T and P V, causal pairs only
            total_flops = att_flops + linear_per_token * n + 2 * info["dim"] * info["vocab_size"]
            flop_share = att_flops / total_flops
            time_share = att_s / t_n if att_s is not None else None
            attention.append({"shape": shape, "dtype": dtype, "tokens": n, "chunk_tokens": c, "median_s": t_n, f"median_s_{c}": t_c,
                              "attention_s": att_s, "time_share": time_share, "flop_share": flop_share,
                              "share_over_flop_share": time_share / flop_share if time_share is not None else None,
                              "peak_rss_bytes": long["peak_rss_bytes"], "weights_bytes": long["weights_bytes"], "kv_cache_bytes": long["kv_cache_bytes"]})

targets = []
for r in results:
    if r["tokens"] in (512, 2048) and r["dtype"] in ("f32", "bf16"):
        targets.append({"target": f"{r['shape']} {r['dtype']} {r['tokens']}: ours >= 1.1x llama.cpp", "value": r["ratio"], "met": r["ratio"] >= 1.1})
for b in bf16_vs_f32:
    targets.append({"target": f"{b['shape']} {b['tokens']}: our BF16 >= 1.8x our F32", "value": b["ours_bf16_over_f32"], "met": b["ours_bf16_over_f32"] >= 1.8})
for a in attention:
    v = a["share_over_flop_share"]
    targets.append({"target": f"{a['shape']} {a['dtype']} {a['tokens']}: attention time share <= 1.2x FLOP share", "value": v,
                    "met": v <= 1.2 if v is not None else None})
for r in results:
    m = r["memory"]
    targets.append({"target": f"{r['shape']} {r['dtype']} {r['tokens']}: peak RSS <= 1.1 (weights + KV)", "value": m["peak_rss_bytes"] / (m["weights_bytes"] + m["kv_cache_bytes"]),
                    "met": m["within_limit"]})

report = {"command": "scripts/compare-llamacpp.sh " + " ".join(sys.argv[1:]), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
          "machine": {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "simd": cpu_flags(), "os": platform.platform(),
                      "load_before": start_load, "load_after": loadavg()},
          "runahead_commit": git_commit(), "llama_bench": {"path": llama_bench, **llama_build},
          "llama_wait_policy": args.llama_wait_policy, "threads": args.threads, "repeats": args.repeats, "rounds": args.rounds, "seed": args.seed,
          "results": results, "bf16_vs_f32": bf16_vs_f32, "attention": attention, "targets": targets}

if args.json_out:
    with open(args.json_out, "w") as f: json.dump(report, f, indent=2)
if args.json:
    print(json.dumps(report, indent=2))
    sys.exit(0)

mib = lambda b: f"{b / 1048576:.0f}"
mach = report["machine"]
print(f"Machine: {mach['cpu']}, {mach['logical_cpus']} logical CPUs ({', '.join(mach['simd'])}); load average before {mach['load_before']}, after {mach['load_after']}")
print(f"llama.cpp {llama_build.get('build_commit')} (build {llama_build.get('build_number')}, backends {llama_build.get('backends')}, "
      f"flash_attn {llama_build.get('flash_attn')}, KV {llama_build.get('type_k')}); runahead {report['runahead_commit']}; "
      f"{args.threads} threads, {args.repeats} repeats, {args.rounds} round(s), llama.cpp OpenMP wait policy: {args.llama_wait_policy}")
print()
def policies(r):
    # llama.cpp's rate with its default spinning and with passive waiting (last round), when both were run.
    last = r["rounds"][-1]
    if last["llama_tok_s_default"] is None: return "passive" if last["llama_omp_passive"] else "default"
    return f"{last['llama_tok_s_default']:.1f} / {last['llama_tok_s_passive']:.1f}"
print("| shape | dtype | tokens | llama.cpp tok/s | llama.cpp spin / passive | ours tok/s | ratio | ratio range | peak RSS MiB | weights+KV MiB |")
print("|---|---|---:|---:|---|---:|---:|---|---:|---:|")
for r in results:
    m = r["memory"]
    print(f"| {r['shape']} | {r['dtype']} | {r['tokens']} | {r['llama_tok_s']:.1f} | {policies(r)} | {r['ours_tok_s']:.1f} | {r['ratio']:.2f} | "
          f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f} | {mib(m['peak_rss_bytes'])} | {mib(m['weights_bytes'] + m['kv_cache_bytes'])} |")
if bf16_vs_f32:
    print()
    print("| shape | tokens | ours BF16 / ours F32 | llama.cpp BF16 / F32 |")
    print("|---|---:|---:|---:|")
    for b in bf16_vs_f32:
        print(f"| {b['shape']} | {b['tokens']} | {b['ours_bf16_over_f32']:.2f} | {b['llama_bf16_over_f32']:.2f} |")
if attention:
    print()
    print("| shape | dtype | tokens | prefill s | attention s (est.) | time share | FLOP share | time/FLOP share |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for a in attention:
        if a["attention_s"] is None:
            print(f"| {a['shape']} | {a['dtype']} | {a['tokens']} | {a['median_s']:.2f} | not measured (T_N <= m T_c: load changed between runs) | - | "
                  f"{a['flop_share']:.1%} | - |")
        else:
            print(f"| {a['shape']} | {a['dtype']} | {a['tokens']} | {a['median_s']:.2f} | {a['attention_s']:.2f} | {a['time_share']:.1%} | "
                  f"{a['flop_share']:.1%} | {a['share_over_flop_share']:.2f} |")
print()
print("| target | value | met |")
print("|---|---:|---|")
for t in targets:
    if t["met"] is None: print(f"| {t['target']} | - | not measured |")
    else: print(f"| {t['target']} | {t['value']:.2f} | {'yes' if t['met'] else 'no'} |")
PYTHON
