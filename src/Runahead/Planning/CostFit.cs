namespace Runahead.Planning;

/// <summary>
/// The analytic per-layer cost t(c, p) = A0 + A1*c + A2*c*(p + c/2) in seconds, for c new tokens attending to p earlier
/// ones and to themselves (causally): a fixed launch/overhead term, the linear (weight) work per token, and the
/// attention work, proportional to the number of query-key pairs.
/// </summary>
public readonly record struct CostFit(double A0, double A1, double A2)
{
    public double Evaluate(int c, int p) => A0 + A1 * c + A2 * (double)c * (p + c * 0.5);

    /// <summary>The part of the cost that does not depend on the prefix: overhead plus linear work.</summary>
    public double Linear(int c) => A0 + A1 * c;

    /// <summary>
    /// Non-negative least squares on relative residuals (each sample weighted by 1/t): measured costs span two orders
    /// of magnitude, and an unweighted fit would ignore the small chunks a many-rank split is made of.
    /// With three unknowns the exact NNLS solution is found by trying every active set.
    /// </summary>
    public static CostFit Fit(ReadOnlySpan<(int C, int P, double Seconds)> samples, bool withAttention = true)
    {
        if (samples.Length == 0) throw new RunaheadException("cannot fit a cost model to zero measurements");
        int k = withAttention ? 3 : 2;
        Span<double> scale = stackalloc double[3];
        scale.Clear();
        foreach (var s in samples)
        {
            for (int j = 0; j < k; j++) scale[j] = Math.Max(scale[j], Feature(s.C, s.P, j));
        }
        for (int j = 0; j < k; j++) if (scale[j] == 0) scale[j] = 1;

        double bestResidual = double.PositiveInfinity;
        Span<double> best = stackalloc double[3];
        best.Clear();
        Span<double> coef = stackalloc double[3];
        for (int mask = 1; mask < 1 << k; mask++)
        {
            if (!SolveSubset(samples, mask, k, scale, coef)) continue;
            bool feasible = true;
            for (int j = 0; j < k; j++) if (coef[j] < 0) feasible = false;
            if (!feasible) continue;
            double r = 0;
            foreach (var s in samples)
            {
                double pred = 0;
                for (int j = 0; j < k; j++) pred += coef[j] * Feature(s.C, s.P, j) / scale[j];
                double e = (pred - s.Seconds) / s.Seconds;
                r += e * e;
            }
            if (r < bestResidual)
            {
                bestResidual = r;
                coef.CopyTo(best);
            }
        }
        if (double.IsPositiveInfinity(bestResidual)) throw new RunaheadException("cost model fit failed: the measurements are degenerate");
        return new CostFit(best[0] / scale[0], best[1] / scale[1], k == 3 ? best[2] / scale[2] : 0);
    }

    private static double Feature(int c, int p, int j) => j switch
    {
        0 => 1.0,
        1 => c,
        _ => (double)c * (p + c * 0.5),
    };

    /// <summary>Weighted least squares over the features in <paramref name="mask"/>; others are zero.</summary>
    private static bool SolveSubset(ReadOnlySpan<(int C, int P, double Seconds)> samples, int mask, int k, ReadOnlySpan<double> scale, Span<double> coef)
    {
        Span<int> idx = stackalloc int[3];
        int m = 0;
        for (int j = 0; j < k; j++) if ((mask & (1 << j)) != 0) idx[m++] = j;
        Span<double> a = stackalloc double[9];
        Span<double> b = stackalloc double[3];
        a.Clear();
        b.Clear();
        foreach (var s in samples)
        {
            double w = 1.0 / (s.Seconds * s.Seconds);
            for (int r = 0; r < m; r++)
            {
                double fr = Feature(s.C, s.P, idx[r]) / scale[idx[r]];
                b[r] += w * fr * s.Seconds;
                for (int q = 0; q < m; q++) a[r * 3 + q] += w * fr * Feature(s.C, s.P, idx[q]) / scale[idx[q]];
            }
        }
        // Gaussian elimination with partial pivoting on the m x m normal equations.
        for (int col = 0; col < m; col++)
        {
            int piv = col;
            for (int r = col + 1; r < m; r++) if (Math.Abs(a[r * 3 + col]) > Math.Abs(a[piv * 3 + col])) piv = r;
            if (Math.Abs(a[piv * 3 + col]) < 1e-300) return false;
            if (piv != col)
            {
                for (int q = 0; q < m; q++) (a[col * 3 + q], a[piv * 3 + q]) = (a[piv * 3 + q], a[col * 3 + q]);
                (b[col], b[piv]) = (b[piv], b[col]);
            }
            for (int r = col + 1; r < m; r++)
            {
                double f = a[r * 3 + col] / a[col * 3 + col];
                for (int q = col; q < m; q++) a[r * 3 + q] -= f * a[col * 3 + q];
                b[r] -= f * b[col];
            }
        }
        Span<double> x = stackalloc double[3];
        for (int r = m - 1; r >= 0; r--)
        {
            double s = b[r];
            for (int q = r + 1; q < m; q++) s -= a[r * 3 + q] * x[q];
            x[r] = s / a[r * 3 + r];
        }
        coef.Clear();
        for (int r = 0; r < m; r++) coef[idx[r]] = x[r];
        return true;
    }

    public override string ToString() =>
        FormattableString.Invariant($"t(c,p) = {A0 * 1e3:0.####} ms + {A1 * 1e6:0.####} us*c + {A2 * 1e9:0.####} ns*c*(p+c/2)");
}
