using Runahead.Planning;

namespace Runahead.Tests.Planning;

/// <summary>Shared inputs of the planning tests: the H200 calibration from ../shared, and small synthetic models.</summary>
internal static class PlanningData
{
    private static readonly Lazy<string?> H200File = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "calibration", "h200-layer-costs.json");
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    });

    /// <summary>Path of the H200 calibration, or skips (fails under CI) when it is not beside the repository.</summary>
    public static string H200Path()
    {
        if (H200File.Value != null) return H200File.Value;
        const string reason = "shared/calibration/h200-layer-costs.json not found above the test folder";
        if (Fixtures.InCi) throw new InvalidOperationException("CI=true and " + reason);
        throw new SkipException(reason);
    }

    public static LayerCostModel H200(string model, CostSource source = CostSource.Hybrid) =>
        Calibration.Load(H200Path()).CostModel(ShapeCatalog.Get(model), model, source);

    /// <summary>Attention-dominated: t = a*c*(p + c/2), no linear work, K,V of 1 KB a token.</summary>
    public static LayerCostModel AttentionOnly(int layers = 4, double headSeconds = 0) =>
        LayerCostModel.FromFits("attention-only", new CostFit(0, 0, 1e-6), new CostFit(0, 0, 1e-6), 0, headSeconds, 1024, layers);

    /// <summary>A Llama-7B-like mix of linear and attention work.</summary>
    public static LayerCostModel Mixed(int layers = 8) =>
        LayerCostModel.FromFits("mixed", new CostFit(1e-4, 6e-7, 4e-11), new CostFit(1e-4, 6e-7, 6e-11), 0.25, 1e-4, 16384, layers);
}
