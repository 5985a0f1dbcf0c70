using System.CommandLine;
using LsKd.Kernels.Cpu;
using LsKd.Kernels.Gpu;
using Spectre.Console;

namespace LsKd.Experiments.Commands;

/// <summary>`lskd info`: the devices and data this machine offers.</summary>
internal static class InfoCommand
{
    public const string FashionMnistDir = "/usr/share/datasets/fashion-mnist";

    public static Command Create()
    {
        var cmd = new Command("info", "List the compute devices and data sets found on this machine.");
        cmd.SetAction(_ =>
        {
            var table = new Table().AddColumn("device").AddColumn("status").AddColumn("details");
            using (var cpu = new CpuBackend())
                table.AddRow("cpu", "[green]available[/]", Markup.Escape(cpu.DeviceDescription));
            bool cuda = IlgpuBackend.CudaAvailable();
            if (cuda)
            {
                using var gpu = IlgpuBackend.CreateCuda();
                table.AddRow("cuda", "[green]available[/]", Markup.Escape(gpu.DeviceDescription));
            }
            else table.AddRow("cuda", "[grey]not found[/]", "no NVIDIA GPU with a CUDA driver");
            table.AddRow("ilgpu-cpu", "[green]available[/]", "ILGPU CPU accelerator (kernel debugging only; slow)");
            table.AddRow("auto", "", cuda ? "-> cuda" : "-> cpu");
            AnsiConsole.Write(table);

            var data = new Table().AddColumn("data set").AddColumn("status").AddColumn("location");
            string[] files = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];
            int found = files.Count(f => File.Exists(Path.Combine(FashionMnistDir, f)) || File.Exists(Path.Combine(FashionMnistDir, f + ".gz")));
            data.AddRow("fashion-mnist", found == files.Length ? "[green]found[/]" : $"[red]missing[/] (install Debian package dataset-fashion-mnist)", FashionMnistDir);
            AnsiConsole.Write(data);
            AnsiConsole.MarkupLine($"runtime: {Markup.Escape(System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription)}, {Environment.ProcessorCount} logical cores");
            return 0;
        });
        return cmd;
    }
}
