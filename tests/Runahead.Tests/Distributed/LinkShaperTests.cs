using System.Diagnostics;
using Runahead.Distributed;

namespace Runahead.Tests.Distributed;

public class LinkShaperTests
{
    private static double Seconds(long ticks) => (double)ticks / Stopwatch.Frequency;

    [Theory]
    [InlineData("10GB/s", 10e9)]
    [InlineData("300GB/s", 300e9)]
    [InlineData("500MB/s", 500e6)]
    [InlineData("1.5GiB/s", 1.5 * 1024 * 1024 * 1024)]
    [InlineData("800Mbit/s", 100e6)]
    [InlineData("inf", double.PositiveInfinity)]
    public void ParsesBandwidths(string text, double bytesPerSecond) =>
        Assert.Equal(bytesPerSecond, LinkShaper.ParseBandwidth(text), 6);

    [Theory]
    [InlineData("5us", 5e-6)]
    [InlineData("1ms", 1e-3)]
    [InlineData("0.5s", 0.5)]
    [InlineData("0", 0)]
    public void ParsesLatencies(string text, double seconds) =>
        Assert.Equal(seconds, LinkShaper.ParseDuration(text).TotalSeconds, 9);

    [Theory]
    [InlineData("fast")]
    [InlineData("10GB")]
    [InlineData("-1GB/s")]
    [InlineData("0MB/s")]
    public void RejectsBadBandwidthNamingTheOption(string text)
    {
        var e = Assert.Throws<RunaheadException>(() => LinkShaper.ParseBandwidth(text));
        Assert.StartsWith("--link-bandwidth", e.Message);
    }

    [Fact]
    public void SixtyFourMiBOnOneGBPerSecondTakesSixtySevenMilliseconds()
    {
        var shaper = new LinkShaper(2, 1e9, TimeSpan.Zero);
        long start = Stopwatch.GetTimestamp();
        double took = Seconds(shaper.Schedule(0, 1, 64L << 20, start) - start);
        Assert.Equal(64.0 * 1024 * 1024 / 1e9, took, 6);
    }

    [Fact]
    public void MessagesOnOneLinkQueueAndLinksAreIndependent()
    {
        var shaper = new LinkShaper(3, 1e9, TimeSpan.FromMilliseconds(1));
        long t0 = Stopwatch.GetTimestamp();
        long first = shaper.Schedule(0, 1, 10_000_000, t0);   // 10 ms + 1 ms
        long second = shaper.Schedule(0, 1, 10_000_000, t0);  // queued behind: 20 ms + 1 ms
        long other = shaper.Schedule(1, 2, 10_000_000, t0);   // its own link: 11 ms
        Assert.Equal(0.011, Seconds(first - t0), 5);
        Assert.Equal(0.021, Seconds(second - t0), 5);
        Assert.Equal(0.011, Seconds(other - t0), 5);
    }

    [Fact]
    public void UnpacedLinksDeliverAtOnce() =>
        Assert.Equal(0, new LinkShaper(2, double.PositiveInfinity, TimeSpan.Zero).Schedule(0, 1, 1 << 30, Stopwatch.GetTimestamp()));

    [Fact]
    public void SidecarTakesItsShareOnAverage()
    {
        // 50 % of the link for 2 ms every 10 ms: over many periods the link carries 90 % of its bandwidth.
        var shaper = new LinkShaper(3, 1e9, TimeSpan.Zero);
        shaper.AddSidecar("1->2:50%:2ms/10ms", seed: 7);
        long t0 = Stopwatch.GetTimestamp();
        double took = Seconds(shaper.Schedule(1, 2, 900_000_000, t0) - t0);
        Assert.InRange(took, 0.99, 1.011);
        // Other links are untouched.
        Assert.Equal(0.9, Seconds(shaper.Schedule(0, 1, 900_000_000, t0) - t0), 5);
    }

    [Fact]
    public void SidecarBurstsSlowMessagesThatMeetThem()
    {
        // A full-share burst stops the link: a message spanning many periods loses exactly the burst time per period.
        var shaper = new LinkShaper(2, 1e9, TimeSpan.Zero);
        shaper.AddSidecar(0, 1, 1.0, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(4), seed: 3);
        long t0 = Stopwatch.GetTimestamp();
        double took = Seconds(shaper.Schedule(0, 1, 300_000_000, t0) - t0);
        Assert.InRange(took, 0.399, 0.4011);
    }

    [Fact]
    public void SidecarPlacementIsSeeded()
    {
        static double Run(int seed)
        {
            var s = new LinkShaper(2, 1e9, TimeSpan.Zero);
            s.AddSidecar(0, 1, 0.5, TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(10), seed);
            return Seconds(s.Schedule(0, 1, 1_000_000, 1000 * Stopwatch.Frequency) - 1000 * Stopwatch.Frequency);
        }
        Assert.Equal(Run(5), Run(5));
    }

    [Fact]
    public void MatrixFileGivesPerLinkBandwidth()
    {
        var path = Path.Combine(Path.GetTempPath(), $"links-{Guid.NewGuid():N}.txt");
        File.WriteAllLines(path, ["# 3 ranks, row = sender", "-  10GB/s 1", "10 -  500MB/s", "1 1 -"]);
        try
        {
            var shaper = LinkShaper.LoadMatrix(path, 3, TimeSpan.FromMicroseconds(5));
            Assert.Equal(10e9, shaper.Bandwidth(0, 1));
            Assert.Equal(1e9, shaper.Bandwidth(0, 2));
            Assert.Equal(500e6, shaper.Bandwidth(1, 2));
            var copy = LinkShaper.FromSpec(shaper.ToSpec());
            Assert.Equal(shaper.ToSpec(), copy.ToSpec());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void MatrixErrorsNameTheFileAndLine()
    {
        var e = Assert.Throws<RunaheadException>(() => LinkShaper.ParseMatrix(["- 1", "1 - 1"], "links.txt", 2));
        Assert.Contains("links.txt:2", e.Message);
        e = Assert.Throws<RunaheadException>(() => LinkShaper.ParseMatrix(["- 1"], "links.txt", 2));
        Assert.Contains("1 rows, expected 2", e.Message);
    }

    [Fact]
    public void SpecRoundTripKeepsSidecars()
    {
        var shaper = LinkShaper.FromOptions(3, "10GB/s", "5us", null, ["1->2:50%:2ms/10ms"], seed: 9)!;
        var copy = LinkShaper.FromSpec(shaper.ToSpec());
        Assert.Equal(shaper.ToSpec(), copy.ToSpec());
        Assert.Single(copy.Sidecars);
        Assert.Null(LinkShaper.FromOptions(3, null, null, null, []));
    }

    [Theory]
    [InlineData("1-2:50%:2ms/10ms")]
    [InlineData("1->2:50:2ms/10ms")]
    [InlineData("1->5:50%:2ms/10ms")]
    [InlineData("1->2:50%:20ms/10ms")]
    public void BadSidecarsAreRejected(string spec) =>
        Assert.Throws<RunaheadException>(() => new LinkShaper(3, 1e9, TimeSpan.Zero).AddSidecar(spec, 1));
}
