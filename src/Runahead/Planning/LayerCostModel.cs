using System.Globalization;

namespace Runahead.Planning;

/// <summary>
/// Per-layer compute cost of one rank, in seconds: t_qkv(c) (norm + Q,K,V projections, before the K,V prefix is
/// needed), t_rest(c, p) (attention over p prefix keys plus its own, output projection, MLP) for the causal
/// (KV-Runahead) block, the dense c x (p + c) block of the paper's TSP, and the LM head of the last position.
/// </summary>
public sealed class LayerCostModel
{
    private readonly CostGrid? _causalGrid;
    private readonly CostGrid? _denseGrid;
    private readonly CostGrid? _qkvGrid;
    private readonly double _derivedQkvShare;

    public string Model { get; }
    public CostSource Source { get; }
    public CostFit CausalFit { get; }
    public CostFit DenseFit { get; }

    /// <summary>Linear fit of the measured t_qkv(c), or default when t_qkv is derived from the causal fit.</summary>
    public CostFit QkvFit { get; }

    public bool QkvMeasured => _qkvGrid != null;
    public double HeadSeconds { get; }

    /// <summary>Bytes of K and V for one token of one layer (2 x KvDim x element size).</summary>
    public double KvBytesPerToken { get; }

    public int Layers { get; }

    /// <summary>How t_qkv and t_head were obtained, for the output.</summary>
    public string Notes { get; }

    internal LayerCostModel(string model, CostSource source, CostFit causalFit, CostFit denseFit, CostGrid? causalGrid,
        CostGrid? denseGrid, CostGrid? qkvGrid, CostFit qkvFit, double derivedQkvShare, double headSeconds,
        double kvBytesPerToken, int layers, string notes)
    {
        Model = model;
        Source = source;
        CausalFit = causalFit;
        DenseFit = denseFit;
        _causalGrid = source == CostSource.Hybrid ? causalGrid : null;
        _denseGrid = source == CostSource.Hybrid ? denseGrid : null;
        _qkvGrid = qkvGrid;
        QkvFit = qkvFit;
        _derivedQkvShare = derivedQkvShare;
        HeadSeconds = headSeconds;
        KvBytesPerToken = kvBytesPerToken;
        Layers = layers;
        Notes = notes;
    }

    /// <summary>A model from analytic fits alone (tests, synthetic studies): t_qkv = share x linear part of the fit.</summary>
    public static LayerCostModel FromFits(string model, CostFit causal, CostFit dense, double qkvShare, double headSeconds,
        double kvBytesPerToken, int layers) =>
        new(model, CostSource.Fit, causal, dense, null, null, null, default, qkvShare, headSeconds, kvBytesPerToken, layers,
            "synthetic cost model");

    /// <summary>Whole-layer causal cost t(c, p).</summary>
    public double Layer(int c, int p) => Layer(c, p, out _);

    public double Layer(int c, int p, out bool fromGrid)
    {
        if (c <= 0) { fromGrid = true; return 0; }
        return Lookup(_causalGrid, CausalFit, c, p, out fromGrid);
    }

    /// <summary>
    /// Inside the grid: interpolation. Outside: the fit, shifted by the grid's residual at the nearest grid point, so
    /// the cost is continuous at the grid's edge (a bare fit there would make chunks just outside the grid look
    /// cheaper or dearer than their neighbours inside, and the search would chase that step).
    /// </summary>
    private static double Lookup(CostGrid? grid, CostFit fit, int c, int p, out bool fromGrid)
    {
        if (grid == null)
        {
            fromGrid = false;
            return fit.Evaluate(c, p);
        }
        double v = grid.Evaluate(c, p);
        fromGrid = !double.IsNaN(v);
        if (fromGrid) return v;
        var (cc, pc) = grid.Clamp(c, p);
        double edge = grid.Evaluate(cc, pc);
        double f = fit.Evaluate(c, p);
        if (double.IsNaN(edge)) return f;
        return Math.Max(0.1 * f, f + edge - fit.Evaluate(cc, pc));
    }

    /// <summary>Whole-layer cost with the c x (p + c) score block computed in full, then masked (the paper's TSP).</summary>
    public double Dense(int c, int p, out bool fromGrid)
    {
        // With no prefix the dense and causal blocks are the same square, so the two must agree exactly (P = 1).
        if (p == 0) return Layer(c, 0, out fromGrid);
        return Lookup(_denseGrid, DenseFit, c, p, out fromGrid);
    }

    public double Qkv(int c)
    {
        if (c <= 0) return 0;
        if (_qkvGrid != null)
        {
            return Lookup(_qkvGrid, QkvFit, c, 0, out _);
        }
        return _derivedQkvShare * CausalFit.Linear(c);
    }

    /// <summary>t_rest = t - t_qkv, never negative (the grid's noise could otherwise make it so).</summary>
    public double RestCausal(int c, int p, out bool fromGrid) => Math.Max(0, Layer(c, p, out fromGrid) - Qkv(c));

    public double RestDense(int c, int p, out bool fromGrid) => Math.Max(0, Dense(c, p, out fromGrid) - Qkv(c));

    public string Describe()
    {
        var sb = new System.Text.StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"cost model for {Model}: ");
        sb.Append(Source == CostSource.Hybrid && _causalGrid != null
            ? $"bilinear interpolation inside the measured grid (c {_causalGrid.MinC}..{_causalGrid.MaxC}, p 0..{_causalGrid.MaxP}), least-squares fit outside (shifted to meet the grid at its edge)"
            : "least-squares fit everywhere");
        sb.Append(CultureInfo.InvariantCulture, $"; causal {CausalFit}; dense {DenseFit}; {Notes}");
        return sb.ToString();
    }
}
