using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Runahead.Distributed;
using Runahead.Models;

namespace Runahead.Tests.Prefill;

/// <summary>P = 3 over MPI (mpiexec + MPICH): every strategy and partition shape, and `generate --transport mpi`.</summary>
[Collection(WorkerProcessCollection.Name)]
public class MpiEquivalenceTests
{
    private const int NewTokens = 6;

    [SkippableFact]
    public async Task Three_mpi_ranks_match_single_for_every_strategy_and_partition()
    {
        var model = Fixtures.Path("llama2c/stories260K.bin");
        var mpiexec = Mpiexec();
        using var reference = Model.Load(model, new ModelLoadOptions { Threads = 1 });
        var prompt = PrefillReference.Prompt(31, reference.Config.VocabSize);
        var (expectedLogits, expectedIds) = PrefillReference.Single(reference, prompt, NewTokens);

        var (rc, output) = await Run(mpiexec, ["-n", "3", Runahead(), "worker", "--transport", "mpi",
            "--program", typeof(MpiPrefillProbe).FullName!, "--program-assembly", typeof(MpiPrefillProbe).Assembly.Location,
            "--model", model, "--request", $"{NewTokens};{string.Join(',', prompt)}"]);
        Assert.True(rc == 0, output);
        var line = output.Split('\n').Single(l => l.StartsWith("rank 2: "))["rank 2: ".Length..].Trim();
        var runs = line.Split('#', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(9, runs.Length);   // 3 strategies x 3 partition shapes
        foreach (var run in runs)
        {
            var fields = run.Split('|');
            var logits = fields[1].Split(',').Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            var ids = fields[2].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            PrefillReference.AssertClose(expectedLogits, logits, fields[0] + " over MPI");
            Assert.True(expectedIds.SequenceEqual(ids), $"{fields[0]} over MPI: {string.Join(' ', ids)} != {string.Join(' ', expectedIds)}");
        }
    }

    [SkippableFact]
    public async Task Generate_over_three_mpi_ranks_prints_the_single_continuation_once()
    {
        var model = Fixtures.Path("llama2c/stories260K.bin");
        var mpiexec = Mpiexec();
        var (rc, output) = await Run(mpiexec, ["-n", "3", Runahead(), "generate", "--model", model, "--prompt-ids", "1,403,407,261,378",
            "-n", "8", "--temperature", "0", "--ranks", "3", "--strategy", "kvr", "--partition", "3,1,1", "--transport", "mpi", "--json"]);
        Assert.True(rc == 0, output);
        var json = output.Split('\n').Where(l => l.StartsWith('{')).ToList();
        Assert.Single(json);   // only rank 0 prints
        using var doc = JsonDocument.Parse(json[0]);
        Assert.Equal(new[] { 432, 383, 286, 261, 376, 298, 315, 421 }, doc.RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal("mpi", doc.RootElement.GetProperty("transport").GetString());
        Assert.Equal(3, doc.RootElement.GetProperty("rank_timings").GetArrayLength());
    }

    private static string Runahead()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "runahead");
        Assert.True(File.Exists(path), $"runahead apphost missing beside the tests ({path})");
        return path;
    }

    private static string Mpiexec()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, "mpiexec");
            if (File.Exists(candidate) && MpiLibrary.IsAvailable) return candidate;
        }
        const string reason = "mpiexec or the MPI library is not installed (apt-get install mpich)";
        if (Fixtures.InCi) throw new InvalidOperationException("CI=true and " + reason);
        throw new SkipException(reason);
    }

    private static async Task<(int ExitCode, string Output)> Run(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"mpiexec {string.Join(' ', args)} still running after 60 s");
        }
        return (p.ExitCode, await stdout + await stderr);
    }
}
