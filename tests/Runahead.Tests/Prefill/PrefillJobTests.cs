using Runahead.Diagnostics;
using Runahead.Generation;
using Runahead.Prefill;

namespace Runahead.Tests.Prefill;

public class PrefillJobTests
{
    [Fact]
    public void Job_round_trips()
    {
        var job = new PrefillJob
        {
            Strategy = PrefillStrategyKind.TspCausal, Chunks = new[] { 5, 3, 2 }, PromptIds = Enumerable.Range(0, 10).ToArray(),
            MaxNewTokens = 7, Sampling = new SamplingOptions { Temperature = 0.5f, TopK = 3, TopP = 0.9f, Seed = 42 },
            StopIds = new[] { 2 }, ReturnLogits = true,
        };
        var back = PrefillJob.Decode(job.Encode());
        Assert.Equal(job.Strategy, back.Strategy);
        Assert.Equal(job.Chunks, back.Chunks);
        Assert.Equal(job.PromptIds, back.PromptIds);
        Assert.Equal(job.Sampling, back.Sampling);
        Assert.Equal(job.StopIds, back.StopIds);
        Assert.True(back.ReturnLogits);
        Assert.Equal(7, back.MaxNewTokens);
        Assert.Equal(new[] { 5, 3, 2 }, back.Partition().Chunks);
    }

    [Fact]
    public void Truncated_or_lying_jobs_are_rejected()
    {
        var bytes = new PrefillJob { Strategy = PrefillStrategyKind.Kvr, Chunks = new[] { 4 }, PromptIds = new[] { 1, 2, 3, 4 } }.Encode();
        for (int cut = 0; cut < bytes.Length; cut++)
            Assert.Throws<InvalidDataException>(() => PrefillJob.Decode(bytes.AsSpan(0, cut)));
        var lying = (byte[])bytes.Clone();
        lying[5] = 0xFF; lying[6] = 0xFF; lying[7] = 0xFF; lying[8] = 0x7F;   // chunk count 2^31-1
        Assert.Throws<InvalidDataException>(() => PrefillJob.Decode(lying));
    }

    [Fact]
    public void Reply_round_trips()
    {
        var recorder = new RankRecorder(2, 1);
        recorder.Mark(SpanKind.Compute, 0, RankRecorder.Now());
        var reply = new PrefillJobReply(recorder, new[] { 1f, -2f }, new[] { 9, 8 });
        var back = PrefillJobReply.Decode(reply.Encode());
        Assert.Equal(2, back.Recorder.Rank);
        Assert.Equal(recorder.Spans, back.Recorder.Spans);
        Assert.Equal(new[] { 1f, -2f }, back.Logits);
        Assert.Equal(new[] { 9, 8 }, back.Generated);
        Assert.Null(PrefillJobReply.Decode(new PrefillJobReply(recorder, null, []).Encode()).Logits);
    }
}
