using System.Text.Json;
using LsKd.Autograd;
using LsKd.Kernels;

namespace LsKd.Nets;

/// <summary>The size and options of an encoder-decoder Transformer. Token ids 0, 1 and 2 are padding, begin and end
/// of sentence in both vocabularies.</summary>
public sealed record TransformerConfig
{
    public int SourceVocab { get; init; }
    public int TargetVocab { get; init; }
    public int ModelDim { get; init; } = 256;
    public int Heads { get; init; } = 4;
    public int EncoderLayers { get; init; } = 3;
    public int DecoderLayers { get; init; } = 3;
    public int FeedForward { get; init; } = 1024;
    /// <summary>Dropout on embeddings and residual paths.</summary>
    public float Dropout { get; init; } = 0.1f;
    /// <summary>Dropout on the attention weights.</summary>
    public float AttentionDropout { get; init; }
    /// <summary>Longest source or target sequence (positions), BOS and EOS included.</summary>
    public int MaxLength { get; init; } = 256;
    /// <summary>sinusoidal (fixed) or learned position embeddings.</summary>
    public string Positions { get; init; } = "sinusoidal";
    /// <summary>relu or gelu in the feed-forward blocks.</summary>
    public string Activation { get; init; } = "relu";
    /// <summary>The output projection is the target embedding (transposed), as in Vaswani et al.</summary>
    public bool TieTargetEmbedding { get; init; } = true;

    public const int PadId = 0, BosId = 1, EosId = 2;

    public int HeadDim => ModelDim / Heads;

    public void Validate(string where = "transformer")
    {
        if (SourceVocab < 4 || TargetVocab < 4) throw new ArgumentException($"{where}: vocabularies need at least 4 symbols (PAD, BOS, EOS and one more), got source {SourceVocab}, target {TargetVocab}");
        if (ModelDim < 1 || Heads < 1) throw new ArgumentException($"{where}: d_model {ModelDim} and heads {Heads} must be positive");
        if (ModelDim % Heads != 0) throw new ArgumentException($"{where}: heads {Heads} does not divide d_model {ModelDim}");
        if (EncoderLayers < 1 || DecoderLayers < 1 || FeedForward < 1) throw new ArgumentException($"{where}: layer counts and the feed-forward width must be positive");
        if (!(Dropout >= 0f && Dropout < 1f) || !(AttentionDropout >= 0f && AttentionDropout < 1f)) throw new ArgumentException($"{where}: dropout must be in [0, 1)");
        if (MaxLength < 2) throw new ArgumentException($"{where}: maximum length {MaxLength} must be at least 2");
        if (Positions is not ("sinusoidal" or "learned")) throw new ArgumentException($"{where}: positions must be sinusoidal or learned, got '{Positions}'");
        if (Activation is not ("relu" or "gelu")) throw new ArgumentException($"{where}: activation must be relu or gelu, got '{Activation}'");
    }
}

/// <summary>Layer normalisation over the last axis (gamma 1, beta 0, eps 1e-5).</summary>
public sealed class LayerNorm : Module
{
    public LayerNorm(IBackend backend, int dim)
    {
        Gamma = Parameter("weight", Tensor.Create(backend, [dim], requiresGrad: true));
        Beta = Parameter("bias", Tensor.Create(backend, [dim], requiresGrad: true));
        backend.Fill(Gamma.Buffer, 0, dim, 1f);
        backend.Fill(Beta.Buffer, 0, dim, 0f);
    }

    public Tensor Gamma { get; }
    public Tensor Beta { get; }
    public override Tensor Forward(Tensor x) => Ops.LayerNorm(x, Gamma, Beta);
    /// <summary>(x + residual, LayerNorm(x + residual)) in one pass.</summary>
    public (Tensor Sum, Tensor Y) Forward(Tensor x, Tensor residual) => Ops.AddLayerNorm(x, residual, Gamma, Beta);
}

/// <summary>Multi-head attention with a fused QKV projection (self-attention) or a query projection and a fused
/// key/value projection of the encoder output (cross-attention), and an output projection. Activations are
/// [batch x length, d_model] row-major; the heads are strided views of the projections, never copied out.</summary>
public sealed class MultiHeadAttention : Module
{
    readonly int _heads;
    readonly float _dropout;
    readonly ulong _seed;
    ulong _calls;

    public MultiHeadAttention(IBackend backend, int dim, int heads, bool self, float attentionDropout, ulong seed)
    {
        _heads = heads; _dropout = attentionDropout; _seed = seed; IsSelf = self; Dim = dim;
        if (self) Qkv = Child("qkv", new Linear(backend, dim, 3 * dim, seed));
        else
        {
            Q = Child("q", new Linear(backend, dim, dim, seed));
            Kv = Child("kv", new Linear(backend, dim, 2 * dim, seed + 1));
        }
        Out = Child("out", new Linear(backend, dim, dim, seed + 2));
    }

    public bool IsSelf { get; }
    public int Dim { get; }
    public Linear? Qkv { get; }
    public Linear? Q { get; }
    public Linear? Kv { get; }
    public Linear Out { get; }

    float DropP => Training ? _dropout : 0f;
    ulong NextSeed() => _seed * 0x9E3779B97F4A7C15UL + _calls++;

    public override Tensor Forward(Tensor x) => throw new InvalidOperationException("attention takes its lengths: call SelfAttention or CrossAttention");

    /// <summary>Self-attention over x [batch * length, d_model]; keyMask [batch, length] (nonzero = real token).</summary>
    public Tensor SelfAttention(Tensor x, int batch, int length, DeviceBuffer<int>? keyMask, bool causal)
    {
        int d = Dim;
        var qkv = Qkv!.Forward(x);
        var spec = new AttentionSpec(batch, _heads, length, length, d / _heads, 3 * d, 3 * d, 3 * d, d, 0, d, 2 * d, 0, causal, DropP, NextSeed());
        return Out.Forward(Ops.Attention(spec, qkv, qkv, qkv, keyMask).Reshape(batch * length, d));
    }

    /// <summary>The encoder output's keys and values [batch * source length, 2 * d_model], computed once per sentence
    /// batch and reused at every decoder step.</summary>
    public Tensor MemoryKeysValues(Tensor memory) => Kv!.Forward(memory);

    /// <summary>Cross-attention of x [batch * queryLength, d] over projected memory keys and values.</summary>
    public Tensor CrossAttention(Tensor x, Tensor memoryKv, int batch, int queryLength, int sourceLength, DeviceBuffer<int>? sourceMask)
    {
        int d = Dim;
        var q = Q!.Forward(x);
        var spec = new AttentionSpec(batch, _heads, queryLength, sourceLength, d / _heads, d, 2 * d, 2 * d, d, 0, 0, d, 0, false, DropP, NextSeed());
        return Out.Forward(Ops.Attention(spec, q, memoryKv, memoryKv, sourceMask).Reshape(batch * queryLength, d));
    }

    /// <summary>One decoder step of self-attention: x [rows, d] is the newest token of each row; its key and value are
    /// written into the caches [rows, capacity, d] at <paramref name="position"/>, and the query attends to positions
    /// 0..position.</summary>
    public Tensor SelfAttentionStep(Tensor x, Tensor keyCache, Tensor valueCache, int rows, int capacity, int position)
    {
        int d = Dim;
        var be = x.Backend;
        var qkv = Qkv!.Forward(x);
        for (int r = 0; r < rows; r++)
        {
            be.Copy(qkv.Buffer, r * 3 * d + d, keyCache.Buffer, (r * capacity + position) * d, d);
            be.Copy(qkv.Buffer, r * 3 * d + 2 * d, valueCache.Buffer, (r * capacity + position) * d, d);
        }
        var spec = new AttentionSpec(rows, _heads, 1, position + 1, d / _heads, 3 * d, d, d, d, KBatchStride: capacity * d, VBatchStride: capacity * d);
        return Out.Forward(Ops.Attention(spec, qkv, keyCache, valueCache, null).Reshape(rows, d));
    }
}

/// <summary>The position-wise feed-forward block: Linear(d, ffn), ReLU or GELU, dropout, Linear(ffn, d).</summary>
public sealed class FeedForwardBlock : Module
{
    readonly Dropout _dropout;
    readonly bool _gelu;

    public FeedForwardBlock(IBackend backend, TransformerConfig c, ulong seed, ulong dropoutSeed)
    {
        Fc1 = Child("fc1", new Linear(backend, c.ModelDim, c.FeedForward, seed));
        Fc2 = Child("fc2", new Linear(backend, c.FeedForward, c.ModelDim, seed + 1));
        _dropout = Child("dropout", new Dropout(c.Dropout, dropoutSeed));
        _gelu = c.Activation == "gelu";
    }

    public Linear Fc1 { get; }
    public Linear Fc2 { get; }

    public override Tensor Forward(Tensor x)
    {
        var hidden = Fc1.Forward(x);
        return Fc2.Forward(_dropout.Forward(_gelu ? Ops.Gelu(hidden) : Ops.Relu(hidden)));
    }
}

/// <summary>A pre-LN encoder layer: x + SelfAttn(LN(x)), then + FFN(LN(.)).</summary>
public sealed class EncoderLayer : Module
{
    readonly Dropout _drop1, _drop2;

    public EncoderLayer(IBackend backend, TransformerConfig c, ulong seed)
    {
        Norm1 = Child("norm1", new LayerNorm(backend, c.ModelDim));
        Attention = Child("self_attn", new MultiHeadAttention(backend, c.ModelDim, c.Heads, true, c.AttentionDropout, seed));
        Norm2 = Child("norm2", new LayerNorm(backend, c.ModelDim));
        FeedForward = Child("ffn", new FeedForwardBlock(backend, c, seed + 10, seed + 22));
        _drop1 = Child("drop1", new Dropout(c.Dropout, seed + 20));
        _drop2 = Child("drop2", new Dropout(c.Dropout, seed + 21));
    }

    public LayerNorm Norm1 { get; }
    public MultiHeadAttention Attention { get; }
    public LayerNorm Norm2 { get; }
    public FeedForwardBlock FeedForward { get; }

    public override Tensor Forward(Tensor x) => throw new InvalidOperationException("call Forward(x, batch, length, mask)");

    public Tensor Forward(Tensor x, int batch, int length, DeviceBuffer<int>? mask)
    {
        var a = Attention.SelfAttention(Norm1.Forward(x), batch, length, mask, causal: false);
        var (h, n) = Norm2.Forward(x, _drop1.Forward(a));
        return Ops.Add(h, _drop2.Forward(FeedForward.Forward(n)));
    }
}

/// <summary>A pre-LN decoder layer: causal self-attention, cross-attention over the encoder output, feed-forward.</summary>
public sealed class DecoderLayer : Module
{
    readonly Dropout _drop1, _drop2, _drop3;

    public DecoderLayer(IBackend backend, TransformerConfig c, ulong seed)
    {
        Norm1 = Child("norm1", new LayerNorm(backend, c.ModelDim));
        SelfAttention = Child("self_attn", new MultiHeadAttention(backend, c.ModelDim, c.Heads, true, c.AttentionDropout, seed));
        Norm2 = Child("norm2", new LayerNorm(backend, c.ModelDim));
        CrossAttention = Child("cross_attn", new MultiHeadAttention(backend, c.ModelDim, c.Heads, false, c.AttentionDropout, seed + 5));
        Norm3 = Child("norm3", new LayerNorm(backend, c.ModelDim));
        FeedForward = Child("ffn", new FeedForwardBlock(backend, c, seed + 10, seed + 23));
        _drop1 = Child("drop1", new Dropout(c.Dropout, seed + 20));
        _drop2 = Child("drop2", new Dropout(c.Dropout, seed + 21));
        _drop3 = Child("drop3", new Dropout(c.Dropout, seed + 22));
    }

    public LayerNorm Norm1 { get; }
    public MultiHeadAttention SelfAttention { get; }
    public LayerNorm Norm2 { get; }
    public MultiHeadAttention CrossAttention { get; }
    public LayerNorm Norm3 { get; }
    public FeedForwardBlock FeedForward { get; }

    public override Tensor Forward(Tensor x) => throw new InvalidOperationException("call Forward(x, memoryKv, ...)");

    /// <summary>The whole target sequence at once (training, or the reference for incremental decoding).</summary>
    public Tensor Forward(Tensor x, Tensor memoryKv, int batch, int length, int sourceLength, DeviceBuffer<int>? sourceMask)
    {
        var a = SelfAttention.SelfAttention(Norm1.Forward(x), batch, length, null, causal: true);
        var (h, n) = Norm2.Forward(x, _drop1.Forward(a));
        var c = CrossAttention.CrossAttention(n, memoryKv, batch, length, sourceLength, sourceMask);
        var (h2, n2) = Norm3.Forward(h, _drop2.Forward(c));
        return Ops.Add(h2, _drop3.Forward(FeedForward.Forward(n2)));
    }

    /// <summary>One step for the newest token of each row, with the key/value caches of this layer.</summary>
    public Tensor Step(Tensor x, Tensor memoryKv, Tensor keyCache, Tensor valueCache, int rows, int capacity, int position, int sourceLength, DeviceBuffer<int>? sourceMask)
    {
        var a = SelfAttention.SelfAttentionStep(Norm1.Forward(x), keyCache, valueCache, rows, capacity, position);
        var (h, n) = Norm2.Forward(x, a);
        var c = CrossAttention.CrossAttention(n, memoryKv, rows, 1, sourceLength, sourceMask);
        var (h2, n2) = Norm3.Forward(h, c);
        return Ops.Add(h2, FeedForward.Forward(n2));
    }
}

/// <summary>
/// A pre-LN encoder-decoder Transformer (Vaswani et al. with the layer norms before each sublayer, as fairseq's
/// normalize_before): token embeddings scaled by sqrt(d_model) plus sinusoidal or learned positions, encoder and
/// decoder stacks with final layer norms, and an output projection tied to the target embedding. Training runs the
/// whole target at once with a causal mask; decoding runs one token at a time against key/value caches.
/// </summary>
public sealed class Transformer : Module
{
    readonly Tensor _sourcePositions, _targetPositions;
    readonly Dropout _embedDropout;

    public Transformer(IBackend backend, TransformerConfig config, ulong seed)
    {
        config.Validate();
        Config = config;
        Backend = backend;
        ModelName = "transformer";
        ConfigJson = JsonSerializer.Serialize(config);
        int d = config.ModelDim;
        SourceEmbedding = Parameter("src_embed", Tensor.Create(backend, [config.SourceVocab, d], requiresGrad: true));
        TargetEmbedding = Parameter("tgt_embed", Tensor.Create(backend, [config.TargetVocab, d], requiresGrad: true));
        // N(0, d^-1/2) as fairseq, so that the sqrt(d) scale gives unit-variance inputs; the padding row is zero.
        foreach (var (t, s) in new[] { (SourceEmbedding, seed), (TargetEmbedding, seed + 1) })
        {
            backend.InitNormal(t.Buffer, t.Size, s, 0f, 1f / MathF.Sqrt(d));
            backend.Fill(t.Buffer, TransformerConfig.PadId * d, d, 0f);
        }
        if (config.Positions == "learned")
        {
            _sourcePositions = Parameter("src_pos", Tensor.Create(backend, [config.MaxLength, d], requiresGrad: true));
            _targetPositions = Parameter("tgt_pos", Tensor.Create(backend, [config.MaxLength, d], requiresGrad: true));
            backend.InitNormal(_sourcePositions.Buffer, _sourcePositions.Size, seed + 2, 0f, 0.02f);
            backend.InitNormal(_targetPositions.Buffer, _targetPositions.Size, seed + 3, 0f, 0.02f);
        }
        else
        {
            _sourcePositions = _targetPositions = Tensor.FromArray(backend, Sinusoids(config.MaxLength, d), [config.MaxLength, d]);
        }
        Encoder = new EncoderLayer[config.EncoderLayers];
        for (int i = 0; i < Encoder.Length; i++) Encoder[i] = Child($"encoder.{i}", new EncoderLayer(backend, config, seed + 100 + (ulong)i * 100));
        Decoder = new DecoderLayer[config.DecoderLayers];
        for (int i = 0; i < Decoder.Length; i++) Decoder[i] = Child($"decoder.{i}", new DecoderLayer(backend, config, seed + 10_000 + (ulong)i * 100));
        EncoderNorm = Child("encoder_norm", new LayerNorm(backend, d));
        DecoderNorm = Child("decoder_norm", new LayerNorm(backend, d));
        if (!config.TieTargetEmbedding) OutputProjection = Child("output", new Linear(backend, d, config.TargetVocab, seed + 7, bias: false));
        _embedDropout = Child("embed_dropout", new Dropout(config.Dropout, seed + 8));
    }

    public TransformerConfig Config { get; }
    public IBackend Backend { get; }
    public Tensor SourceEmbedding { get; }
    public Tensor TargetEmbedding { get; }
    public EncoderLayer[] Encoder { get; }
    public DecoderLayer[] Decoder { get; }
    public LayerNorm EncoderNorm { get; }
    public LayerNorm DecoderNorm { get; }
    public Linear? OutputProjection { get; }

    public override Tensor Forward(Tensor x) => throw new InvalidOperationException("a Transformer takes token ids: call Encode and Decode");

    /// <summary>Recreates a Transformer from a checkpoint's configuration and loads its tensors.</summary>
    public static Transformer Load(string path, IBackend backend)
    {
        var (meta, _) = Checkpoint.Read(path);
        if (!meta.TryGetValue("model", out var name) || name != "transformer") throw new CheckpointException($"{path}: not a Transformer checkpoint (model '{name}')");
        TransformerConfig config;
        try { config = JsonSerializer.Deserialize<TransformerConfig>(meta.GetValueOrDefault("config", "")) ?? throw new JsonException("empty"); config.Validate(path); }
        catch (Exception e) when (e is JsonException or ArgumentException) { throw new CheckpointException($"{path}: Transformer configuration: {e.Message}"); }
        var model = new Transformer(backend, config, 0);
        Checkpoint.Load(model, path);
        model.Eval();
        return model;
    }

    /// <summary>PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...).</summary>
    public static float[] Sinusoids(int length, int d)
    {
        var pe = new float[length * d];
        for (int pos = 0; pos < length; pos++)
            for (int i = 0; i < d; i += 2)
            {
                double angle = pos / Math.Pow(10000, (double)i / d);
                pe[pos * d + i] = (float)Math.Sin(angle);
                if (i + 1 < d) pe[pos * d + i + 1] = (float)Math.Cos(angle);
            }
        return pe;
    }

    /// <summary>Checks a batch of token ids [batch, length] against the vocabulary and the maximum length.</summary>
    void CheckTokens(ReadOnlySpan<int> ids, int batch, int length, int vocab, string what)
    {
        if (batch < 1 || length < 1 || ids.Length != batch * length)
            throw new ArgumentException($"{what}: expected {batch} x {length} token ids, got {ids.Length}");
        if (length > Config.MaxLength)
            throw new ArgumentException($"{what}: sequence length {length} exceeds the model's maximum length {Config.MaxLength}");
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)vocab)
                throw new ArgumentException($"{what}: token id {ids[i]} at position {i % length} of sequence {i / length} is outside the vocabulary of {vocab}");
    }

    Tensor Embed(Tensor table, Tensor positions, ReadOnlySpan<int> ids, int batch, int length, int firstPosition)
    {
        var tape = Tape.Current;
        int d = Config.ModelDim;
        var tokens = Ops.Embedding(table, tape.Ints(Backend, ids), [batch * length], TransformerConfig.PadId);
        var posIds = new int[batch * length];
        for (int i = 0; i < posIds.Length; i++) posIds[i] = firstPosition + i % length;
        var pos = Ops.Embedding(positions, tape.Ints(Backend, posIds), [batch * length]);
        return _embedDropout.Forward(Ops.Add(Ops.Scale(tokens, MathF.Sqrt(d)), pos));
    }

    /// <summary>Source padding mask [batch, length]: 1 for a real token, 0 for padding.</summary>
    public static int[] PaddingMask(ReadOnlySpan<int> ids) { var m = new int[ids.Length]; for (int i = 0; i < ids.Length; i++) m[i] = ids[i] != TransformerConfig.PadId ? 1 : 0; return m; }

    /// <summary>Encoder output [batch * length, d_model] and the source mask buffer (valid until the tape's reset).</summary>
    public (Tensor Memory, DeviceBuffer<int> Mask) Encode(ReadOnlySpan<int> source, int batch, int length)
    {
        CheckTokens(source, batch, length, Config.SourceVocab, "source");
        var mask = Tape.Current.Ints(Backend, PaddingMask(source));
        var x = Embed(SourceEmbedding, _sourcePositions, source, batch, length, 0);
        foreach (var layer in Encoder) x = layer.Forward(x, batch, length, mask);
        return (EncoderNorm.Forward(x), mask);
    }

    /// <summary>Teacher-forced decoder logits [batch * length, target vocabulary] for the target input (BOS y1 .. yn, padded).</summary>
    public Tensor Decode(Tensor memory, DeviceBuffer<int> sourceMask, int sourceLength, ReadOnlySpan<int> targetIn, int batch, int length)
    {
        CheckTokens(targetIn, batch, length, Config.TargetVocab, "target");
        var x = Embed(TargetEmbedding, _targetPositions, targetIn, batch, length, 0);
        foreach (var layer in Decoder)
            x = layer.Forward(x, layer.CrossAttention.MemoryKeysValues(memory), batch, length, sourceLength, sourceMask);
        return Logits(DecoderNorm.Forward(x));
    }

    Tensor Logits(Tensor h) => OutputProjection != null ? OutputProjection.Forward(h) : Ops.MatMul(h, TargetEmbedding, transB: true);

    /// <summary>Starts incremental decoding of rows whose encoder outputs are given (one row per hypothesis).</summary>
    public DecoderState StartDecoding(Tensor memory, int[] sourceMask, int rows, int sourceLength, int capacity)
    {
        if (capacity > Config.MaxLength) throw new ArgumentException($"decoding length {capacity} exceeds the model's maximum length {Config.MaxLength}");
        return new DecoderState(this, memory, sourceMask, rows, sourceLength, capacity);
    }

    /// <summary>Key/value caches of every decoder layer and the projected encoder output, for one decoding run. Each
    /// step's transients are returned to the pool after the step; the caches live until disposal.</summary>
    public sealed class DecoderState : IDisposable
    {
        readonly Transformer _model;
        readonly Tensor[] _memoryKv, _keys, _values, _spareKeys, _spareValues;
        readonly DeviceBuffer<int> _mask;
        readonly int _rows, _sourceLength, _capacity;

        internal DecoderState(Transformer model, Tensor memory, int[] sourceMask, int rows, int sourceLength, int capacity)
        {
            _model = model; _rows = rows; _sourceLength = sourceLength; _capacity = capacity;
            var be = model.Backend;
            int d = model.Config.ModelDim, layers = model.Decoder.Length;
            _mask = be.AllocateInt(sourceMask.Length);
            _mask.Upload(sourceMask);
            _memoryKv = new Tensor[layers];
            using (Tape.NoGrad())
                for (int l = 0; l < layers; l++)
                {
                    var kv = model.Decoder[l].CrossAttention.MemoryKeysValues(memory);
                    _memoryKv[l] = Tensor.Create(be, kv.Shape);
                    be.Copy(kv.Buffer, 0, _memoryKv[l].Buffer, 0, kv.Size);
                }
            Tensor Cache() => Tensor.Create(be, [rows, capacity, d]);
            _keys = Enumerable.Range(0, layers).Select(_ => Cache()).ToArray();
            _values = Enumerable.Range(0, layers).Select(_ => Cache()).ToArray();
            _spareKeys = Enumerable.Range(0, layers).Select(_ => Cache()).ToArray();
            _spareValues = Enumerable.Range(0, layers).Select(_ => Cache()).ToArray();
        }

        public int Position { get; private set; }

        /// <summary>Feeds the newest token of every row; returns the next-token logits [rows, target vocabulary].</summary>
        public float[] Step(ReadOnlySpan<int> tokens)
        {
            if (tokens.Length != _rows) throw new ArgumentException($"decoder step: expected {_rows} tokens, got {tokens.Length}");
            if (Position >= _capacity) throw new InvalidOperationException($"decoder step {Position + 1} exceeds the capacity of {_capacity} positions");
            _model.CheckTokens(tokens, _rows, 1, _model.Config.TargetVocab, "decoder input");
            float[] logits;
            using (Tape.NoGrad())
            {
                var x = _model.Embed(_model.TargetEmbedding, _model._targetPositions, tokens, _rows, 1, Position);
                for (int l = 0; l < _model.Decoder.Length; l++)
                    x = _model.Decoder[l].Step(x, _memoryKv[l], _keys[l], _values[l], _rows, _capacity, Position, _sourceLength, _mask);
                logits = _model.Logits(_model.DecoderNorm.Forward(x)).ToArray();
            }
            Tape.Current.Reset();
            Position++;
            return logits;
        }

        /// <summary>Row r of every cache becomes the old row origins[r] (beam search keeps the best continuations; the
        /// encoder output rows of one sentence are identical, so only the self-attention caches move).</summary>
        public void Reorder(ReadOnlySpan<int> origins)
        {
            if (origins.Length != _rows) throw new ArgumentException($"reorder: expected {_rows} origins, got {origins.Length}");
            var be = _model.Backend;
            using var ids = be.AllocateInt(_rows);
            ids.Upload(origins);
            int rowSize = _capacity * _model.Config.ModelDim;
            for (int l = 0; l < _keys.Length; l++)
            {
                // The embedding lookup is a row gather: table = the cache viewed as [rows, capacity * d].
                be.Embedding(_keys[l].Buffer, ids, _spareKeys[l].Buffer, _rows, _rows, rowSize);
                be.Embedding(_values[l].Buffer, ids, _spareValues[l].Buffer, _rows, _rows, rowSize);
                (_keys[l], _spareKeys[l]) = (_spareKeys[l], _keys[l]);
                (_values[l], _spareValues[l]) = (_spareValues[l], _values[l]);
            }
        }

        public void Dispose()
        {
            foreach (var t in _memoryKv.Concat(_keys).Concat(_values).Concat(_spareKeys).Concat(_spareValues)) t.Buffer.Dispose();
            _mask.Dispose();
        }
    }
}

/// <summary>A padded batch of sentence pairs: source + EOS, target input BOS + y and target output y + EOS, each
/// padded with PAD to the longest sentence of the batch.</summary>
public sealed record Seq2SeqBatch(int Size, int SourceLength, int TargetLength, int[] Source, int[] TargetIn, int[] TargetOut)
{
    public int RealTargetTokens => TargetOut.Count(t => t != TransformerConfig.PadId);

    /// <summary>Pads sources and targets (+ EOS / BOS) to the longest of the batch, rounded up to a multiple of
    /// <paramref name="padTo"/>: fewer distinct shapes when batches vary in length, so buffers are reused.</summary>
    public static Seq2SeqBatch From(IReadOnlyList<int[]> sources, IReadOnlyList<int[]> targets, int padTo = 1)
    {
        if (sources.Count != targets.Count || sources.Count == 0) throw new ArgumentException($"a batch needs as many targets as sources (and at least one), got {sources.Count} and {targets.Count}");
        if (padTo < 1) throw new ArgumentOutOfRangeException(nameof(padTo), padTo, "must be at least 1");
        int n = sources.Count, ls = RoundUp(sources.Max(s => s.Length) + 1, padTo), lt = RoundUp(targets.Max(t => t.Length) + 1, padTo);
        var src = new int[n * ls]; var tin = new int[n * lt]; var tout = new int[n * lt];
        for (int i = 0; i < n; i++)
        {
            sources[i].CopyTo(src, i * ls); src[i * ls + sources[i].Length] = TransformerConfig.EosId;
            tin[i * lt] = TransformerConfig.BosId; targets[i].CopyTo(tin, i * lt + 1);
            targets[i].CopyTo(tout, i * lt); tout[i * lt + targets[i].Length] = TransformerConfig.EosId;
        }
        return new Seq2SeqBatch(n, ls, lt, src, tin, tout);
    }

    static int RoundUp(int v, int m) => (v + m - 1) / m * m;
}

/// <summary>Teacher-forced training pieces shared by the tests, the benchmark and the translation study.</summary>
public static class Seq2Seq
{
    /// <summary>The decoder's logits [batch * target length, vocabulary] for a batch.</summary>
    public static Tensor Logits(Transformer model, Seq2SeqBatch batch)
    {
        var (memory, mask) = model.Encode(batch.Source, batch.Size, batch.SourceLength);
        return model.Decode(memory, mask, batch.SourceLength, batch.TargetIn, batch.Size, batch.TargetLength);
    }

    /// <summary>Token-level label-smoothing cross-entropy over the real target tokens.</summary>
    public static Tensor LabelSmoothingLoss(Transformer model, Seq2SeqBatch batch, float alpha)
    {
        var logits = Logits(model, batch);
        var labels = Tape.Current.Ints(model.Backend, batch.TargetOut);
        return Ops.TokenLabelSmoothingCrossEntropy(logits, labels, alpha, TransformerConfig.PadId, batch.RealTargetTokens);
    }

    /// <summary>One optimiser step: loss, backward, global-norm clipping (when clip > 0), update. Returns the loss, or
    /// NaN when it was not finite (the step is then skipped).</summary>
    public static float TrainStep(Transformer model, Optimizer optimizer, Func<Tensor> loss, float clip = 1f)
    {
        optimizer.ZeroGrad();
        var l = loss();
        float value = l.ToArray()[0];
        if (!float.IsFinite(value)) { Tape.Current.Reset(); return float.NaN; }
        Tape.Backward(l);
        if (clip > 0f && !double.IsFinite(GradientClipping.ClipGlobalNorm(optimizer.Parameters, clip))) { Tape.Current.Reset(); return float.NaN; }
        optimizer.Step();
        Tape.Current.Reset();
        return value;
    }
}
