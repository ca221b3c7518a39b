namespace Runahead.Planning;

/// <summary>Finds the H200 calibration that ships beside the repository (shared/calibration), for defaults.</summary>
public static class CalibrationLocator
{
    public const string H200RelativePath = "shared/calibration/h200-layer-costs.json";

    /// <summary>Walks up from <paramref name="start"/> looking for shared/calibration/h200-layer-costs.json.</summary>
    public static string? FindH200(string start)
    {
        for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, H200RelativePath);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }
}
