using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LsKd.Kernels.Cpu;

/// <summary>One SIMD width, so each CPU kernel is written once and instantiated for Vector512 (AVX-512) and
/// Vector256 (AVX2 and others). The JIT specialises and inlines every member per struct type.</summary>
public unsafe interface ISimd<TSelf> where TSelf : struct, ISimd<TSelf>
{
    static abstract int Count { get; }
    static abstract TSelf Load(float* p);
    static abstract void Store(TSelf v, float* p);
    /// <summary>Non-temporal store to an address aligned to the vector size: the line is written without first
    /// being read, which saves a third of the traffic of a kernel that writes a large output once.</summary>
    static abstract void StoreStream(TSelf v, float* p);
    static abstract TSelf Splat(float x);
    static abstract TSelf Add(TSelf a, TSelf b);
    static abstract TSelf Sub(TSelf a, TSelf b);
    static abstract TSelf Mul(TSelf a, TSelf b);
    static abstract TSelf Div(TSelf a, TSelf b);
    static abstract TSelf Fma(TSelf a, TSelf b, TSelf c);
    static abstract TSelf Max(TSelf a, TSelf b);
    static abstract TSelf Min(TSelf a, TSelf b);
    static abstract TSelf Exp(TSelf a);
    static abstract TSelf Sqrt(TSelf a);
    /// <summary>Lane-wise a > b ? x : y.</summary>
    static abstract TSelf SelectGreater(TSelf a, TSelf b, TSelf x, TSelf y);
    static abstract float Sum(TSelf a);
    static abstract float MaxAcross(TSelf a);
    /// <summary>p[2i] = even[i], p[2i + 1] = odd[i]: 2 Count floats.</summary>
    static abstract void StoreInterleaved(TSelf even, TSelf odd, float* p);
}

public unsafe readonly struct V512 : ISimd<V512>
{
    readonly Vector512<float> _v;
    V512(Vector512<float> v) => _v = v;
    public static int Count => 16;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Load(float* p) => new(Vector512.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V512 v, float* p) => Vector512.Store(v._v, p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreStream(V512 v, float* p) => Avx512F.StoreAlignedNonTemporal(p, v._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Splat(float x) => new(Vector512.Create(x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Add(V512 a, V512 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Sub(V512 a, V512 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Mul(V512 a, V512 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Div(V512 a, V512 b) => new(a._v / b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Fma(V512 a, V512 b, V512 c) => new(Vector512.FusedMultiplyAdd(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Max(V512 a, V512 b) => new(Vector512.Max(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Min(V512 a, V512 b) => new(Vector512.Min(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Exp(V512 a) => new(SimdMath.Exp(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Sqrt(V512 a) => new(Vector512.Sqrt(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 SelectGreater(V512 a, V512 b, V512 x, V512 y) => new(Vector512.ConditionalSelect(Vector512.GreaterThan(a._v, b._v), x._v, y._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V512 a) => Vector512.Sum(a._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInterleaved(V512 even, V512 odd, float* p)
    {
        var order = Vector512.Create(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
        Vector512.Shuffle(Vector512.Create(even._v.GetLower(), odd._v.GetLower()), order).Store(p);
        Vector512.Shuffle(Vector512.Create(even._v.GetUpper(), odd._v.GetUpper()), order).Store(p + 16);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(V512 a)
    {
        var m = Vector256.Max(a._v.GetLower(), a._v.GetUpper());
        var q = Vector128.Max(m.GetLower(), m.GetUpper());
        return MathF.Max(MathF.Max(q[0], q[1]), MathF.Max(q[2], q[3]));
    }
}

public unsafe readonly struct V256 : ISimd<V256>
{
    readonly Vector256<float> _v;
    V256(Vector256<float> v) => _v = v;
    public static int Count => 8;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Load(float* p) => new(Vector256.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V256 v, float* p) => Vector256.Store(v._v, p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreStream(V256 v, float* p)
    {
        if (Avx.IsSupported) Avx.StoreAlignedNonTemporal(p, v._v);
        else Vector256.StoreAligned(v._v, p);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Splat(float x) => new(Vector256.Create(x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Add(V256 a, V256 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Sub(V256 a, V256 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Mul(V256 a, V256 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Div(V256 a, V256 b) => new(a._v / b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Fma(V256 a, V256 b, V256 c) => new(Vector256.FusedMultiplyAdd(a._v, b._v, c._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Max(V256 a, V256 b) => new(Vector256.Max(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Min(V256 a, V256 b) => new(Vector256.Min(a._v, b._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Exp(V256 a) => new(SimdMath.Exp(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Sqrt(V256 a) => new(Vector256.Sqrt(a._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 SelectGreater(V256 a, V256 b, V256 x, V256 y) => new(Vector256.ConditionalSelect(Vector256.GreaterThan(a._v, b._v), x._v, y._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V256 a) => Vector256.Sum(a._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInterleaved(V256 even, V256 odd, float* p)
    {
        var order = Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7);
        Vector256.Shuffle(Vector256.Create(even._v.GetLower(), odd._v.GetLower()), order).Store(p);
        Vector256.Shuffle(Vector256.Create(even._v.GetUpper(), odd._v.GetUpper()), order).Store(p + 8);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(V256 a)
    {
        var q = Vector128.Max(a._v.GetLower(), a._v.GetUpper());
        return MathF.Max(MathF.Max(q[0], q[1]), MathF.Max(q[2], q[3]));
    }
}
