using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.Loader;

namespace Runahead.Distributed;

/// <summary>Creates a rank program in a worker process from the assembly file and type name the coordinator sent.</summary>
public static class RankProgramLoader
{
    /// <summary>
    /// What the coordinator sends for <paramref name="programType"/>'s assembly: empty for this library (workers have it
    /// loaded), else the assembly's file (empty too when it has none: single-file and NativeAOT builds).
    /// </summary>
    [UnconditionalSuppressMessage("SingleFile", "IL3000", Justification = "An empty location is handled: programs of this library need none, others fail with a message.")]
    internal static string AssemblyPathOf(Type programType) =>
        programType.Assembly == typeof(IRankProgram).Assembly ? "" : programType.Assembly.Location;

    [UnconditionalSuppressMessage("Trimming", "IL2072", Justification = "ResolveType keeps the constructor.")]
    internal static IRankProgram Create(string assemblyPath, string typeName) =>
        (IRankProgram)(Activator.CreateInstance(ResolveType(assemblyPath, typeName))
            ?? throw new RunaheadException($"worker: cannot create {typeName}"));

    /// <summary>The program type named by assembly file (empty: Runahead.Core) and full type name.</summary>
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Rank programs are named by the coordinator running the same build; runahead is not trimmed.")]
    [UnconditionalSuppressMessage("Trimming", "IL2057", Justification = "As above.")]
    [UnconditionalSuppressMessage("Trimming", "IL2073", Justification = "As above.")]
    [return: DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)]
    public static Type ResolveType(string assemblyPath, string typeName)
    {
        // Empty: a program of this library, which is loaded already (also in single-file and NativeAOT builds, where
        // assemblies have no file of their own).
        Assembly? assembly = string.IsNullOrEmpty(assemblyPath) ? typeof(IRankProgram).Assembly : null;
        assemblyPath = string.IsNullOrEmpty(assemblyPath) ? typeof(IRankProgram).Assembly.GetName().Name ?? "" : assemblyPath;
        var name = Path.GetFileNameWithoutExtension(assemblyPath);
        if (assembly == null)
            foreach (var loaded in AssemblyLoadContext.Default.Assemblies)
                if (string.Equals(loaded.GetName().Name, name, StringComparison.Ordinal)) { assembly = loaded; break; }
        if (assembly == null)
        {
            if (!File.Exists(assemblyPath)) throw new RunaheadException($"worker: rank program assembly {assemblyPath} not found");
            assembly = AssemblyLoadContext.Default.LoadFromAssemblyPath(Path.GetFullPath(assemblyPath));
        }
        var type = assembly.GetType(typeName, throwOnError: false)
            ?? throw new RunaheadException($"worker: no type {typeName} in {assemblyPath}");
        if (!typeof(IRankProgram).IsAssignableFrom(type) || type.IsAbstract)
            throw new RunaheadException($"worker: {typeName} is not a concrete IRankProgram");
        return type;
    }
}
