"""A small decoder-only transformer with pluggable position ids, for the arithmetic chapters.

Readable top to bottom in the manner of nanoGPT (Karpathy, ``model.py``): a ``@dataclass`` config,
the attention and MLP blocks, the model, then greedy decoding with a key-value cache. What is new
is how positions enter. The model never computes positions itself (except the plain ``absolute``
default); the *data* supplies an integer position id per token, and the ``position`` setting says
what the model does with them:

============  ===================================================================================
absolute      one learned table; ids default to 0, 1, 2, ... (or the data passes shifted ids,
              the "random-start APE" baseline of Cho et al., 2024)
coupled       the same learned table, but ids come from the task: digits of equal significance
              share an id (Cho et al., NeurIPS 2024, "position coupling")
multilevel    several id streams (e.g. significance and operand index), one learned table each,
              embeddings summed (Cho et al., ICLR 2025, "multi-level position coupling")
none          no position embedding at all (NoPE); the causal mask is the only source of order
============  ===================================================================================

Shapes: tokens ``(B, T)``; position ids ``(B, T)`` for one stream, ``(B, T, S)`` for ``S`` streams;
logits ``(B, T, V)``, or ``(B, R, V)`` at ``R`` chosen positions (``rows=``, for a loss that scores
only some tokens); attention maps ``(B, H, T, T_total)`` per layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["POSITIONS", "INITS", "TransformerConfig", "DecoderTransformer", "KVCache", "greedy_decode"]

POSITIONS = ("absolute", "coupled", "multilevel", "none")
INITS = ("gpt2", "t5")


@dataclass(frozen=True)
class TransformerConfig:
    """Hyperparameters of :class:`DecoderTransformer`.

    Attributes:
        vocab_size: number of token ids.
        d_model: width of the residual stream.
        n_layer, n_head: depth and heads per layer (``d_model`` must divide by ``n_head``).
        d_mlp: hidden width of each MLP (default ``4 * d_model``).
        position: one of :data:`POSITIONS`.
        max_position: the largest position id a table holds (tables have ``max_position + 1`` rows).
        n_streams: number of position-id streams (``multilevel`` only; 1 otherwise).
        norm: pre-LayerNorm blocks (``True``); ``False`` replaces every LayerNorm by the identity,
            which hand-built models need (their residual stream holds exact features).
        activation: ``"gelu"`` or ``"relu"`` in the MLP.
        bias: biases in the linear layers.
        init: ``"gpt2"``: every weight N(0, 0.02²), the residual projections scaled by
            1/sqrt(2 n_layer) (GPT-2, nanoGPT); ``"t5"``: token and position embeddings N(0, 1), every
            linear layer N(0, 1/fan_in) (the T5 initialisation of the official position-coupling
            code, Cho et al.). The embeddings' scale matters for length generalization: started at
            0.02 the position table quickly becomes a smooth curve learned from short problems, and
            ids far apart that never met in training are no longer told apart (see the chapter).
    """

    vocab_size: int
    d_model: int = 64
    n_layer: int = 1
    n_head: int = 2
    d_mlp: int | None = None
    position: str = "coupled"
    max_position: int = 64
    n_streams: int = 1
    norm: bool = True
    activation: str = "gelu"
    bias: bool = True
    init: str = "gpt2"

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            raise ValueError(f"position={self.position!r}: use one of {POSITIONS}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_head={self.n_head}")
        if self.position == "multilevel" and self.n_streams < 2:
            raise ValueError("position='multilevel' needs n_streams >= 2 (e.g. significance and operand ids)")
        if self.position != "multilevel" and self.n_streams != 1:
            raise ValueError(f"n_streams={self.n_streams} only makes sense with position='multilevel'")
        if self.init not in INITS:
            raise ValueError(f"init={self.init!r}: use one of {INITS}")
        if self.activation not in ("gelu", "relu"):
            raise ValueError(f"activation={self.activation!r}: use 'gelu' or 'relu'")

    @property
    def hidden(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, per layer, for incremental decoding."""

    keys: list[torch.Tensor | None] = field(default_factory=list)
    values: list[torch.Tensor | None] = field(default_factory=list)

    @property
    def length(self) -> int:
        return 0 if not self.keys or self.keys[0] is None else self.keys[0].shape[2]


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_head, self.d_head = cfg.n_head, cfg.d_model // cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor, *, cache: KVCache | None = None, layer: int = 0,
                need_weights: bool = False, rows: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, C = x.shape
        if rows is not None:  # queries only at `rows` (B, R); keys and values from every token
            return self._rows_only(x, rows, need_weights)
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, self.d_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, dh)
        past = 0
        if cache is not None:
            while len(cache.keys) <= layer:
                cache.keys.append(None)
                cache.values.append(None)
            if cache.keys[layer] is not None:
                past = cache.keys[layer].shape[2]
                k = torch.cat([cache.keys[layer], k], dim=2)
                v = torch.cat([cache.values[layer], v], dim=2)
            cache.keys[layer], cache.values[layer] = k, v
        if not need_weights and past == 0:
            y, att = F.scaled_dot_product_attention(q, k, v, is_causal=True), None  # fused, same result
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(self.d_head)  # (B, H, T, past + T)
            # query t sits at absolute index past + t and may see keys 0 .. past + t
            keep = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            att = att.masked_fill(~keep, float("-inf")).softmax(dim=-1)
            y = att @ v
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.proj(y), att

    def _rows_only(self, x: torch.Tensor, rows: torch.Tensor, need_weights: bool):
        """Attention output at the query positions ``rows`` (B, R) only; each sees the keys up to itself."""
        B, T, C = x.shape
        R = rows.shape[1]
        w, b = self.qkv.weight, self.qkv.bias
        xq = x.gather(1, rows.unsqueeze(-1).expand(B, R, C))
        q = F.linear(xq, w[:C], None if b is None else b[:C])
        k, v = F.linear(x, w[C:], None if b is None else b[C:]).split(C, dim=2)
        q = q.view(B, R, self.n_head, self.d_head).transpose(1, 2)  # (B, H, R, dh)
        k, v = (t.view(B, T, self.n_head, self.d_head).transpose(1, 2) for t in (k, v))  # (B, H, T, dh)
        keep = (torch.arange(T, device=x.device) <= rows.unsqueeze(-1)).unsqueeze(1)  # (B, 1, R, T)
        if need_weights:
            att = ((q @ k.transpose(-2, -1)) / math.sqrt(self.d_head)).masked_fill(~keep, float("-inf")).softmax(-1)
            y = att @ v
        else:
            y, att = F.scaled_dot_product_attention(q, k, v, attn_mask=keep), None
        return self.proj(y.transpose(1, 2).reshape(B, R, C)), att


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.hidden, bias=cfg.bias)
        self.act = nn.GELU() if cfg.activation == "gelu" else nn.ReLU()
        self.proj = nn.Linear(cfg.hidden, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    """Pre-LN block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model) if cfg.norm else nn.Identity()
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model) if cfg.norm else nn.Identity()
        self.mlp = MLP(cfg)

    def forward(self, x, *, cache=None, layer=0, need_weights=False, rows=None):
        a, att = self.attn(self.ln1(x), cache=cache, layer=layer, need_weights=need_weights, rows=rows)
        if rows is not None:  # the residual stream continues at the query rows only
            x = x.gather(1, rows.unsqueeze(-1).expand(*rows.shape, x.shape[-1]))
        x = x + a
        return x + self.mlp(self.ln2(x)), att


class DecoderTransformer(nn.Module):
    """A GPT-style decoder-only transformer whose position ids come from the data.

    ``model(tokens, positions)`` returns logits ``(B, T, V)``; with ``return_attention=True`` it
    returns ``(logits, [attention of each layer, (B, H, T, T_total)])``. Pass a :class:`KVCache` to
    feed a sequence in pieces (decoding): the cache keeps the earlier tokens' keys and values.

    Example::

        cfg = TransformerConfig(vocab_size=16, d_model=64, n_layer=1, n_head=2, position="coupled")
        model = DecoderTransformer(cfg)
        logits = model(tokens, positions)      # tokens, positions: (B, T) int64
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        n_tables = 0 if cfg.position == "none" else cfg.n_streams
        self.pos_emb = nn.ModuleList(nn.Embedding(cfg.max_position + 1, cfg.d_model) for _ in range(n_tables))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model) if cfg.norm else nn.Identity()
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weights afresh with the configured ``init`` (biases 0, LayerNorms 1 and 0)."""
        t5 = self.cfg.init == "t5"

        def draw(m: nn.Module) -> None:
            if isinstance(m, nn.LayerNorm):
                m.reset_parameters()
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=1.0 if t5 else 0.02)
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=m.in_features ** -0.5 if t5 else 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

        self.apply(draw)
        if not t5:
            for name, p in self.named_parameters():
                if name.endswith("proj.weight"):  # GPT-2: residual branches scaled by depth
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.cfg.n_layer))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _position_ids(self, tokens: torch.Tensor, positions: torch.Tensor | None, past: int) -> torch.Tensor:
        """Position ids as (B, T, S), checked against the tables."""
        B, T = tokens.shape
        cfg = self.cfg
        if positions is None:
            if cfg.position != "absolute":
                raise ValueError(f"position={cfg.position!r} needs position ids from the task: pass positions=")
            positions = torch.arange(past, past + T, device=tokens.device).expand(B, T)
        if positions.shape[:2] != (B, T):
            raise ValueError(f"positions have shape {tuple(positions.shape)}; tokens are {(B, T)}: "
                             f"expected (B, T) or (B, T, S)")
        ids = positions if positions.ndim == 3 else positions.unsqueeze(-1)
        if ids.shape[-1] != cfg.n_streams:
            raise ValueError(f"{ids.shape[-1]} position stream(s) given, the model has n_streams={cfg.n_streams}")
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi > cfg.max_position:
            raise ValueError(f"position ids span {lo}..{hi} but the tables hold 0..{cfg.max_position}: "
                             f"build the model with a larger max_position or test shorter problems")
        return ids

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor | None = None, *,
                cache: KVCache | None = None, return_attention: bool = False, rows: torch.Tensor | None = None):
        """Logits for every position (and the attention maps with ``return_attention=True``).

        Args:
            tokens: (B, T) int64 token ids.
            positions: (B, T) or (B, T, S) int64 position ids; ignored for ``position="none"``,
                optional for ``"absolute"`` (then 0, 1, 2, ... continuing after the cache).
            cache: a :class:`KVCache`, extended in place with these tokens' keys and values.
            return_attention: also return each layer's attention probabilities.
            rows: (B, R) int64 positions at which logits are wanted; the logits are then (B, R, V),
                equal to ``model(tokens, positions)`` gathered at ``rows``, and the last layer runs
                its queries, MLP and head at those rows only (the arithmetic tasks score the
                answer alone, so their training skips most of the last layer's work elsewhere:
                a fifth of the time of a 1-layer model). Its attention map, with
                ``return_attention``, is (B, H, R, T).
        """
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be (B, T), got shape {tuple(tokens.shape)}")
        if rows is not None:
            if cache is not None:
                raise ValueError("rows= selects positions of a whole sequence; it cannot be combined with cache=")
            if rows.ndim != 2 or rows.shape[0] != tokens.shape[0]:
                raise ValueError(f"rows must be (B, R) with B = {tokens.shape[0]}, got shape {tuple(rows.shape)}")
            if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= tokens.shape[1]):
                raise ValueError(f"rows span {int(rows.min())}..{int(rows.max())}; the sequence has "
                                 f"positions 0..{tokens.shape[1] - 1}")
        past = cache.length if cache is not None else 0
        x = self.tok_emb(tokens)
        if self.cfg.position != "none":
            ids = self._position_ids(tokens, positions, past)
            for s, table in enumerate(self.pos_emb):
                x = x + table(ids[..., s])
        maps = []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x, att = block(x, cache=cache, layer=i, need_weights=return_attention, rows=rows if i == last else None)
            maps.append(att)
        logits = self.head(self.ln_f(x))
        return (logits, maps) if return_attention else logits


@torch.no_grad()
def greedy_decode(model: DecoderTransformer, prompt: torch.Tensor, n_new: int, *,
                  positions: torch.Tensor | None = None, use_cache: bool = True) -> torch.Tensor:
    """Generate ``n_new`` tokens after ``prompt`` by always taking the most likely next token.

    The tasks of this book know every token's position id in advance (an answer digit's id is fixed
    by its significance), so ``positions`` covers the prompt *and* the tokens to generate.

    Args:
        model: a :class:`DecoderTransformer` (put in eval mode by the caller or not: it has no dropout).
        prompt: (B, T_p) int64, every row the same length.
        n_new: number of tokens to generate.
        positions: (B, T_p + n_new - 1 or more[, S]) position ids, or None where the model needs none.
        use_cache: feed one token per step with a :class:`KVCache` (True) or re-run the whole
            sequence each step (False, slower; the two give the same tokens).

    Returns:
        (B, n_new) int64, the generated tokens.
    """
    B, Tp = prompt.shape
    if n_new < 1:
        raise ValueError(f"n_new must be at least 1, got {n_new}")
    if positions is not None and positions.shape[1] < Tp + n_new - 1:
        raise ValueError(f"positions cover {positions.shape[1]} tokens; the prompt and the generated tokens "
                         f"need {Tp + n_new - 1}")
    pos = (lambda a, b: None) if positions is None else (lambda a, b: positions[:, a:b])
    seq = prompt
    out = []
    cache = KVCache() if use_cache else None
    logits = model(prompt, pos(0, Tp), cache=cache)
    for t in range(n_new):
        nxt = logits[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
        out.append(nxt)
        if t == n_new - 1:
            break
        if use_cache:
            logits = model(nxt, pos(Tp + t, Tp + t + 1), cache=cache)
        else:
            seq = torch.cat([seq, nxt], dim=1)
            logits = model(seq, pos(0, seq.shape[1]))
    return torch.cat(out, dim=1)


# ----------------------------------------------------------------------------- a model built by hand


def addition_construction(max_position: int = 40, *, query_maps: tuple[torch.Tensor, torch.Tensor] | None = None,
                          sharpness: float = 40.0) -> DecoderTransformer:
    """A 1-layer, 2-head transformer that adds numbers of any length up to ``max_position - 2``
    digits, with weights set by hand (no training), in the format of :mod:`hild.data.arithmetic`
    with coupled position ids.

    In the spirit of the construction of Cho et al. (NeurIPS 2024, Theorem 5.1), all routing is
    done by the two heads through the position ids; the MLP does per-token arithmetic. The token
    that predicts answer digit i has position id p = s + i; then

    * head 1 looks one id ahead (query map: shift ``e_p -> e_(p+1)``) and averages the operand
      digits of significance i: ``a_i + b_i``; with nothing there (the last digit) it falls back to
      the start token ``$``, whose value is 0;
    * head 2 looks at its own id (query map: identity) and averages ``a_(i-1)``, ``b_(i-1)``, its own
      digit ``c_(i-1)`` and the start token (a fixed "sink"); the carry into digit i is
      ``[a_(i-1) + b_(i-1) > c_(i-1)]``, and the sink's share (1/4, or 1/2 when the token stands
      alone) tells the last digit, after which comes ``$``;
    * the MLP turns ``a_i + b_i`` and the carry into the digit ``(a_i + b_i + carry) mod 10`` with
      ReLU steps; the unembedding reads it out.

    The residual stream holds exact features (one-hot tokens and ids, digit values), so LayerNorm is
    off (``norm=False``) and the MLP uses ReLU.

    Args:
        max_position: the largest position id (one-hot embedded).
        query_maps: the two heads' query maps on the position one-hots, each ``(P + 1, P + 1)``
            with ``P = max_position`` (``q = M @ e_p``); default: the shift and the identity.
            Exercise: write them yourself.
        sharpness: the attention logit of a matching id (larger: closer to hard attention).
    """
    from ..data.arithmetic import EOS, TOKENS, VOCAB_SIZE

    P = max_position
    V = VOCAB_SIZE
    if P < 3:
        raise ValueError(f"max_position must be at least 3, got {P}")
    shift = torch.zeros(P + 1, P + 1)
    shift[torch.arange(1, P + 1), torch.arange(P)] = 1.0  # e_p -> e_(p+1)
    maps = (shift, torch.eye(P + 1)) if query_maps is None else tuple(torch.as_tensor(m, dtype=torch.float32)
                                                                     for m in query_maps)
    for m in maps:
        if tuple(m.shape) != (P + 1, P + 1):
            raise ValueError(f"each query map must be ({P + 1}, {P + 1}) for max_position={P}, got {tuple(m.shape)}")
    # residual stream: token one-hot | digit value | position one-hot | h1 h2 f2 | logits
    TOK, VAL, POS = 0, V, V + 1
    H1, H2, F2 = POS + P + 1, POS + P + 2, POS + P + 3
    OUT = F2 + 1
    dh = P + 2  # per head: position match (P + 1 dims) and the sink
    d_model = 2 * max(dh, (OUT + V + 1) // 2)
    dh = d_model // 2
    # the carry c = [z >= 1] with z = h2 - 2·own digit; digit = (x + c) mod 10 with x = h1 = a_i + b_i.
    # On the integer grid, sigma = 30 x + z orders the (x, c) cells; the digit is a step function of sigma.
    cells = [(x, c) for x in range(19) for c in (0, 1)]
    lower = [30 * x + (1 if c else -9) for x, c in cells]  # smallest sigma of each cell
    cfg = TransformerConfig(vocab_size=V, d_model=d_model, n_layer=1, n_head=2, d_mlp=2 * len(cells) + 1,
                            position="coupled", max_position=P, norm=False, activation="relu", bias=True)
    model = DecoderTransformer(cfg)
    scale = math.sqrt(dh)  # scaled_dot_product_attention divides the logits by sqrt(d_head)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.tok_emb.weight[:, TOK:TOK + V] = torch.eye(V)
        model.tok_emb.weight[:10, VAL] = torch.arange(10.0)
        model.pos_emb[0].weight[:, POS:POS + P + 1] = torch.eye(P + 1)
        att = model.blocks[0].attn
        Wq, Wk, Wv = att.qkv.weight[:d_model], att.qkv.weight[d_model:2 * d_model], att.qkv.weight[2 * d_model:]
        bq = att.qkv.bias[:d_model]
        sink = {0: 0.5, 1: 1.0}  # head 1: the sink only wins when no id matches; head 2: it ties with matches
        for h, m in enumerate(maps):
            o = h * dh
            Wq[o:o + P + 1, POS:POS + P + 1] = sharpness * scale * m
            bq[o + P + 1] = sink[h] * sharpness * scale
            Wk[o:o + P + 1, POS:POS + P + 1] = torch.eye(P + 1)
            Wk[o + P + 1, TOK + EOS] = 1.0
            Wv[o, VAL] = 1.0          # value: the digit
            Wv[o + 1, TOK + EOS] = 1.0  # value: "is the sink"
        att.proj.weight[H1, 0] = 2.0          # h1 = 2 · mean(a_i, b_i) = a_i + b_i
        att.proj.weight[H2, dh] = 4.0         # h2 = 4 · mean(a, b, c, sink) = a + b + c
        att.proj.weight[F2, dh + 1] = 1.0     # f2 = the sink's share: 1/4, 1/3 (at '=') or 1/2 (last)
        mlp = model.blocks[0].mlp
        sigma = torch.zeros(d_model)
        sigma[H1], sigma[H2], sigma[VAL] = 30.0, 1.0, -2.0
        for j, b in enumerate(lower[1:]):  # step(sigma >= b) = relu(sigma - b + 1) - relu(sigma - b)
            mlp.fc.weight[2 * j] = sigma
            mlp.fc.bias[2 * j] = -b + 1
            mlp.fc.weight[2 * j + 1] = sigma
            mlp.fc.bias[2 * j + 1] = -b
        digit = [(x + c) % 10 for x, c in cells]
        margin = 10.0
        mlp.proj.bias[OUT + digit[0]] = margin
        for j in range(1, len(cells)):
            for k, sign in ((digit[j], 1.0), (digit[j - 1], -1.0)):
                mlp.proj.weight[OUT + k, 2 * (j - 1)] += sign * margin
                mlp.proj.weight[OUT + k, 2 * (j - 1) + 1] -= sign * margin
        last = 2 * len(cells) - 2
        mlp.fc.weight[last, F2] = 1.0
        mlp.fc.bias[last] = -0.4  # positive only when the sink holds half the attention: the last digit
        mlp.proj.weight[OUT + EOS, last] = 20 * margin / 0.1
        model.head.weight[:, OUT:OUT + V] = torch.eye(V)
    assert TOKENS[EOS] == "$"
    return model.eval()
