using System.CommandLine;
using System.Diagnostics;
using ILGPU.Runtime.Cuda;
using LsKd.Kernels.Gpu;
using LsKd.Nets;
using Spectre.Console;

namespace LsKd.Experiments.Commands;

/// <summary>`lskd ptx`: the PTX of every ILGPU kernel for an NVIDIA architecture, written without a GPU, and, where a
/// ptxas is at hand, its registers, stack frame and spills per kernel (exit 1 if a kernel uses local memory).</summary>
internal static class PtxCommand
{
    public static Command Create()
    {
        var outDir = new Option<string>("--out") { Description = "folder for one .ptx file per kernel", DefaultValueFactory = _ => "ptx" };
        var arch = new Option<string>("--arch") { Description = "target architecture, e.g. sm_90 (H100), sm_80 (A100)", DefaultValueFactory = _ => "sm_90" };
        var isa = new Option<string>("--isa") { Description = "PTX ISA version: 8.0 for CUDA 12's ptxas and the driver, 7.8 for CUDA 11.8's", DefaultValueFactory = _ => "8.0" };
        var ptxas = new Option<string?>("--ptxas") { Description = "ptxas to run on each file (default: ptxas on PATH, if any)" };
        var jsonl = ResultLog.Option();
        var cmd = new Command("ptx", "Write every kernel's PTX for an NVIDIA GPU (no GPU needed) and report ptxas's registers, stack frame and spills.") { outDir, arch, isa, ptxas, jsonl };
        cmd.SetAction(pr =>
        {
            string a = pr.GetValue(arch)!, v = pr.GetValue(isa)!;
            var architecture = Named<CudaArchitecture>(a.Replace("sm_", "SM_", StringComparison.OrdinalIgnoreCase))
                ?? throw new UsageException($"--arch: unknown architecture '{a}'; e.g. sm_80, sm_90");
            var instructionSet = Named<CudaInstructionSet>("ISA_" + v.Replace(".", ""))
                ?? throw new UsageException($"--isa: unknown PTX ISA '{v}'; e.g. 7.8, 8.0");
            string dir = pr.GetValue(outDir)!;
            try { Directory.CreateDirectory(dir); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new UsageException($"--out: cannot create {dir}: {e.Message}"); }
            string? tool = pr.GetValue(ptxas) ?? FindOnPath("ptxas");
            if (tool != null && !File.Exists(tool)) throw new UsageException($"--ptxas: {tool} not found");
            string sm = a.ToLowerInvariant();
            ResultLog? log = null;
            if (pr.GetValue(jsonl) is { } path)
            {
                using var cpu = new LsKd.Kernels.Cpu.CpuBackend(1);
                log = ResultLog.Open(path, "ptx", cpu);
            }

            using var compiler = new KernelPtx.Compiler(architecture, instructionSet);
            var table = new Table().AddColumn("kernel").AddColumn("PTX lines");
            if (tool != null) table.AddColumn("registers").AddColumn("stack frame B").AddColumn("spill st/ld B").AddColumn("shared B");
            int bad = 0, kernels = 0;
            foreach (var kernel in KernelPtx.Kernels())
            {
                string name = KernelPtx.Name(kernel), file = Path.Combine(dir, name + ".ptx");
                string ptx = compiler.Compile(kernel);
                AtomicFile.WriteText(file, ptx);
                kernels++;
                var row = new List<string> { name, ptx.Split('\n').Length.ToString() };
                if (tool != null)
                {
                    var (code, output) = Run(tool, $"-arch={sm} -v -o /dev/null \"{file}\"");
                    var usage = code == 0 ? KernelPtx.ParsePtxas(name, output) : null;
                    if (usage == null)
                    {
                        bad++;
                        string message = output.Trim().Split('\n').FirstOrDefault() ?? $"exit {code}";
                        row.AddRange(["[red]ptxas failed[/]", Markup.Escape(message), "", ""]);
                        log?.Add($"ptxas {sm} {name}", "registers", double.NaN, passed: false, note: message);
                    }
                    else
                    {
                        if (usage.UsesLocalMemory) bad++;
                        string Mark(int bytes) => bytes > 0 ? $"[red]{bytes}[/]" : "0";
                        row.AddRange([usage.Registers.ToString(), Mark(usage.StackFrameBytes), $"{Mark(usage.SpillStoreBytes)}/{Mark(usage.SpillLoadBytes)}", usage.SharedBytes.ToString()]);
                        log?.Add($"ptxas {sm} {name}", "registers", usage.Registers, passed: !usage.UsesLocalMemory,
                            note: $"stack frame {usage.StackFrameBytes} B, spill stores {usage.SpillStoreBytes} B, spill loads {usage.SpillLoadBytes} B");
                    }
                }
                table.AddRow(row.ToArray());
            }
            AnsiConsole.Write(table);
            if (tool == null)
            {
                AnsiConsole.MarkupLine($"wrote {kernels} PTX files to {Markup.Escape(dir)}; no ptxas on PATH (CUDA's, or Debian non-free's nvidia-cuda-toolkit: scripts/ptxas.sh), so registers and spills are not read");
                return 0;
            }
            AnsiConsole.MarkupLine(bad == 0 ? $"[green]{kernels} kernels assemble for {sm} without local memory or spills[/] ({Markup.Escape(tool)})"
                : $"[red]{bad} of {kernels} kernels failed to assemble or use local memory[/] ({Markup.Escape(tool)})");
            return bad == 0 ? 0 : 1;
        });
        return cmd;
    }

    /// <summary>ILGPU's architectures and ISAs are structs with one static field per version (SM_90, ISA_80).</summary>
    static T? Named<T>(string name) where T : struct =>
        typeof(T).GetField(name, System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)?.GetValue(null) is T value ? value : null;

    static string? FindOnPath(string exe) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, exe)).FirstOrDefault(File.Exists);

    static (int Code, string Output) Run(string exe, string args)
    {
        var psi = new ProcessStartInfo(exe, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout + stderr.Result);
    }
}
