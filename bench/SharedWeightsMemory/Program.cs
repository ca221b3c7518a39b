using System.Diagnostics;
using System.Globalization;
using Runahead.Models;

// Load time and per-process memory of P processes loading one model at once, as prefill ranks on one host do,
// with private packed weights or with the shared packed-weight cache:
//   dotnet run -c Release --project bench/SharedWeightsMemory -- <model.gguf> <ranks> <off|on> <cache folder> [threads]
// Each child loads, runs a 64-token prefill (every weight read once), reports "ready"; when all are ready (so pages
// two processes map count as shared, not private) each reads /proc/self/smaps_rollup and prints one line.
if (args.Length >= 1 && args[0] == "--rank") return Rank(args[1], args[2] == "on", args[3], int.Parse(args[4], CultureInfo.InvariantCulture));
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
    m.Forward(ids, new KvCache(m.Config, ids.Length), logits, m.CreateWorkspace(64));
    Console.WriteLine("ready");
    Console.Out.Flush();
    if (Console.ReadLine() != "measure") return 1;
    var fields = new Dictionary<string, long>();
    foreach (var line in File.ReadLines("/proc/self/smaps_rollup"))
    {
        var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 3 && parts[2] == "kB") fields[parts[0].TrimEnd(':')] = long.Parse(parts[1], CultureInfo.InvariantCulture);
    }
    long MiB(string k) => fields.GetValueOrDefault(k) / 1024;
    var s = m.SharedWeights;
    Console.WriteLine(FormattableString.Invariant(
        $"load {loadS:0.000} s, Rss {MiB("Rss")} MiB, Pss {MiB("Pss")} MiB, Private {MiB("Private_Clean") + MiB("Private_Dirty")} MiB (dirty {MiB("Private_Dirty")}), Shared {MiB("Shared_Clean") + MiB("Shared_Dirty")} MiB, weights {m.WeightBytes / (1 << 20)} MiB, {(s is null ? "private weights" : s.Mapped ? (s.BuiltHere ? "built the cache" : "mapped the cache") : "cache not used: " + s.Note)}"));
    return 0;
}
