using System.Runtime.InteropServices;

namespace LsKd.Kernels.Cpu;

/// <summary>How the CPU backend's threads treat subnormal floats (magnitudes below 1.18e-38).</summary>
public enum DenormalMode
{
    /// <summary>Flush-to-zero and denormals-are-zero (x86 MXCSR bits FTZ 0x8000 and DAZ 0x0040): a subnormal result
    /// is written as 0 and a subnormal input read as 0, so no instruction takes the slow microcode path. The
    /// default, and what PyTorch's <c>torch.set_flush_denormal(True)</c> sets.</summary>
    Flush,
    /// <summary>IEEE 754 gradual underflow, the hardware default: exact, but an operation on subnormals can cost
    /// tens to hundreds of cycles.</summary>
    Ieee,
}

/// <summary>Sets the floating-point control register of the calling thread. .NET exposes neither MXCSR nor
/// fesetenv's non-standard modes, so on x64 Linux and macOS two four-instruction stubs (stmxcsr / ldmxcsr) are
/// placed in an executable page once. The mode is per thread and sticky: each thread that runs a CPU backend op
/// or one of its parallel chunks applies the backend's mode the first time (or when it changes), then pays one
/// thread-static compare per op. Elsewhere (ARM64, Windows) the hardware default, IEEE, stays.</summary>
public static unsafe class FloatControl
{
    const uint FlushBits = 0x8040;
    [ThreadStatic] static int t_applied;   // 0: not yet set on this thread; otherwise 1 + (int)mode

    static readonly delegate* unmanaged<uint> s_read;
    static readonly delegate* unmanaged<uint, void> s_write;

    /// <summary>Whether this process can set the mode (x64, with mmap).</summary>
    public static bool Supported => s_read != null;

    static FloatControl()
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64 || OperatingSystem.IsWindows()) return;
        byte[] code =
        [
            0x0F, 0xAE, 0x5C, 0x24, 0xF8,   // read:  stmxcsr [rsp-8]   (the System V red zone)
            0x8B, 0x44, 0x24, 0xF8,         //        mov eax, [rsp-8]
            0xC3,                           //        ret
            0x89, 0x7C, 0x24, 0xF8,         // write: mov [rsp-8], edi
            0x0F, 0xAE, 0x54, 0x24, 0xF8,   //        ldmxcsr [rsp-8]
            0xC3,                           //        ret
        ];
        const int ProtReadWrite = 3, ProtReadExec = 5;
        int mapPrivateAnonymous = OperatingSystem.IsMacOS() ? 0x1002 : 0x22;
        nint page = mmap(0, 4096, ProtReadWrite, mapPrivateAnonymous, -1, 0);
        if (page == -1 || page == 0) return;
        Marshal.Copy(code, 0, page, code.Length);
        if (mprotect(page, 4096, ProtReadExec) != 0) return;
        s_read = (delegate* unmanaged<uint>)page;
        s_write = (delegate* unmanaged<uint, void>)(page + 10);
    }

    /// <summary>The calling thread's MXCSR (0 where <see cref="Supported"/> is false).</summary>
    public static uint Read() => s_read != null ? s_read() : 0;

    /// <summary>The calling thread's current mode, read from the register.</summary>
    public static DenormalMode Current => (Read() & FlushBits) == FlushBits ? DenormalMode.Flush : DenormalMode.Ieee;

    /// <summary>Puts the calling thread in mode (cheap when it already is).</summary>
    public static void Use(DenormalMode mode)
    {
        if (t_applied == 1 + (int)mode || s_read == null) return;
        uint csr = s_read();
        s_write(mode == DenormalMode.Flush ? csr | FlushBits : csr & ~FlushBits);
        t_applied = 1 + (int)mode;
    }

    [DllImport("libc", SetLastError = true)] static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);
    [DllImport("libc", SetLastError = true)] static extern int mprotect(nint addr, nuint length, int prot);
}
