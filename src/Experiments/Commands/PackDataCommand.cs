using System.CommandLine;
using LsKd.Experiments.Data;
using Spectre.Console;

namespace LsKd.Experiments.Commands;

/// <summary>`lskd pack-data`: the IDX data set Brotli-compressed, so binary and data fit the 64 MiB that travel to a
/// lent GPU (scripts/gpu-bundle.sh). Every command reads the packed folder through --data-dir.</summary>
internal static class PackDataCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "IDX files to pack (default: the Debian package's /usr/share/datasets/fashion-mnist)" };
        var outDir = new Option<string>("--out") { Description = "folder for the .br files", Required = true };
        var quality = new Option<int>("--quality") { Description = "Brotli quality 0-11 (11: smallest, a few minutes for Fashion-MNIST)", DefaultValueFactory = _ => 11 };
        var cmd = new Command("pack-data", "Write an IDX data set Brotli-compressed (name.br) for carrying to a lent GPU.") { dataDir, outDir, quality };
        cmd.SetAction(pr =>
        {
            int q = pr.GetValue(quality);
            if (q is < 0 or > 11) throw new UsageException($"--quality must be from 0 to 11, got {q}");
            IReadOnlyList<(string File, long Bytes)> files;
            try { files = FashionMnist.Pack(pr.GetValue(dataDir), pr.GetValue(outDir)!, q); }
            catch (DataException e) { throw new UsageException(e.Message); }
            foreach (var (file, bytes) in files) AnsiConsole.WriteLine($"{file}: {bytes:N0} bytes");
            AnsiConsole.WriteLine($"total {files.Sum(f => f.Bytes):N0} bytes");
            return 0;
        });
        return cmd;
    }
}
