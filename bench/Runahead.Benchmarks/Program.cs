using BenchmarkDotNet.Running;

// Kernel micro-benchmarks: dotnet run -c Release --project bench/Runahead.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
