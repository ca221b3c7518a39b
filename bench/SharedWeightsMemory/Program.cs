using System.Diagnostics;
using System.Globalization;
using Runahead.Models;

// Load time and per-process memory of P processes loading one model at once, as prefill ranks on one host do,
// with private packed weights or with the shared packed-weight cache:
//   dotnet run -c Release --project bench/SharedWeightsMemory -- <model.gguf> <ranks> <off|on> <cache folder> [threads]
// GEMM speed from private panels against mapped ones, one process, interleaved:
//   dotnet run -c Release --project bench/SharedWeightsMemory -- --compare <model.gguf> <cache folder>
// Each child loads, runs a 64-token prefill twice (every weight read; the second is timed), reports "ready"; when all are ready (so pages
// two processes map count as shared, not private) each reads /proc/self/smaps_rollup and prints one line.
if (args.Length >= 1 && args[0] == "--rank") return Rank(args[1], args[2] == "on", args[3], int.Parse(args[4], CultureInfo.InvariantCulture));
if (args.Length >= 3 && args[0] == "--compare") return Compare(args[1], args[2]);
if (args.Length < 4)
{
    Console.Error.WriteLine("usage: <model> <ranks> <off|on> <cache folder> [threads per rank]");
    return 2;
}
int ranks = int.Parse(args[1], CultureInfo.InvariantCulture);
string threads = args.Length > 4 ? args[4] : "1";
var self = Environment.ProcessPath!;
var dll = typeof(PackedWeightCache).Assembly.Location.Replace("Runahead.Core.dll", "SharedWeightsMemory.dll", StringComparison.Ordinal);
var children = new List<Process>();
var wall = Stopwatch.StartNew();
for (int r = 0; r < ranks; r++)
{
    var psi = new ProcessStartInfo(self) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
    if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(dll);
    foreach (var a in new[] { "--rank", args[0], args[2], args[3], threads }) psi.ArgumentList.Add(a);
    children.Add(Process.Start(psi)!);
}
foreach (var c in children)
{
    var line = c.StandardOutput.ReadLine();
    if (line != "ready") throw new InvalidOperationException($"a child said '{line}'");
}
double allLoaded = wall.Elapsed.TotalSeconds;
foreach (var c in children) c.StandardInput.WriteLine("measure");
for (int r = 0; r < ranks; r++)
{
    Console.WriteLine($"rank {r}: {children[r].StandardOutput.ReadLine()}");
    if (!children[r].WaitForExit(TimeSpan.FromMinutes(1))) children[r].Kill();
}
Console.WriteLine(FormattableString.Invariant($"all {ranks} ranks loaded and ran in {allLoaded:0.00} s (wall, including process start)"));
return 0;

static int Rank(string model, bool shared, string folder, int threads)
{
    var clock = Stopwatch.StartNew();
    using var m = Model.Load(model, new ModelLoadOptions { Threads = threads, SharedWeights = shared, SharedWeightsFolder = folder });
    double loadS = clock.Elapsed.TotalSeconds;
    int[] ids = new int[64];
    for (int i = 0; i < ids.Length; i++) ids[i] = (i * 7919) % m.Config.VocabSize;
    var logits = new float[m.Config.VocabSize];
    var ws = m.CreateWorkspace(64);
    m.Forward(ids, new KvCache(m.Config, ids.Length), logits, ws);
    // The second pass times the GEMMs over warm panels (private arrays or the shared mapping).
    clock.Restart();
    m.Forward(ids, new KvCache(m.Config, ids.Length), logits, ws);
    double prefillMs = clock.Elapsed.TotalMilliseconds;
    Console.WriteLine("ready");
    Console.Out.Flush();
    if (Console.ReadLine() != "measure") return 1;
    var fields = Runahead.Diagnostics.ProcessMemory.ReadSmapsRollup();
    long MiB(string k) => fields.GetValueOrDefault(k) / (1 << 20);
    var s = m.SharedWeights;
    Console.WriteLine(FormattableString.Invariant(
        $"anonymous {MiB("Anonymous")} MiB, load {loadS:0.000} s, prefill of 64 tokens {prefillMs:0} ms, Rss {MiB("Rss")} MiB, Pss {MiB("Pss")} MiB, Private {MiB("Private_Clean") + MiB("Private_Dirty")} MiB (dirty {MiB("Private_Dirty")}), Shared {MiB("Shared_Clean") + MiB("Shared_Dirty")} MiB, weights {m.WeightBytes / (1 << 20)} MiB, {(s is null ? "private weights" : s.Mapped ? (s.BuiltHere ? "built the cache" : "mapped the cache") : "cache not used: " + s.Note)}"));
    return 0;
}

static int Compare(string model, string folder)
{
    using var privateModel = Model.Load(model, new ModelLoadOptions { Threads = 1 });
    using var sharedModel = Model.Load(model, new ModelLoadOptions { Threads = 1, SharedWeights = true, SharedWeightsFolder = folder });
    if (sharedModel.SharedWeights is not { Mapped: true }) throw new InvalidOperationException($"cache not used: {sharedModel.SharedWeights}");
    int[] ids = new int[128];
    for (int i = 0; i < ids.Length; i++) ids[i] = (i * 7919) % privateModel.Config.VocabSize;
    var a = new float[privateModel.Config.VocabSize];
    var b = new float[privateModel.Config.VocabSize];
    var wsA = privateModel.CreateWorkspace(128);
    var wsB = sharedModel.CreateWorkspace(128);
    var privateMs = new List<double>();
    var sharedMs = new List<double>();
    for (int rep = 0; rep < 8; rep++)
    {
        var clock = Stopwatch.StartNew();
        privateModel.Forward(ids, new KvCache(privateModel.Config, ids.Length), a, wsA);
        if (rep > 0) privateMs.Add(clock.Elapsed.TotalMilliseconds);
        clock.Restart();
        sharedModel.Forward(ids, new KvCache(sharedModel.Config, ids.Length), b, wsB);
        if (rep > 0) sharedMs.Add(clock.Elapsed.TotalMilliseconds);
    }
    privateMs.Sort();
    sharedMs.Sort();
    bool same = a.AsSpan().SequenceEqual(b);
    Console.WriteLine(FormattableString.Invariant(
        $"128-token prefill, 1 thread, 7 interleaved runs: private panels median {privateMs[3]:0.0} ms (min {privateMs[0]:0.0}), mapped panels median {sharedMs[3]:0.0} ms (min {sharedMs[0]:0.0}); logits identical: {same}"));
    return 0;
}
