"""hild.models.transformer: causal masking, position streams, decoding with and without a cache,
and a model built by hand that must add exactly."""

import numpy as np
import pytest
import torch

from hild.data.arithmetic import AdditionTask, addition_text, coupled_positions, decode, encode, evaluate
from hild.models.transformer import DecoderTransformer, KVCache, TransformerConfig, addition_construction, greedy_decode

V = 16


def _model(position, **kw):
    torch.manual_seed(0)
    kw.setdefault("n_streams", 2 if position == "multilevel" else 1)
    return DecoderTransformer(TransformerConfig(vocab_size=V, d_model=32, n_layer=2, n_head=4, position=position,
                                                max_position=30, **kw)).eval()


def _positions(position, B, T, seed=1):
    g = torch.Generator().manual_seed(seed)
    if position == "none":
        return None
    if position == "multilevel":
        return torch.randint(0, 31, (B, T, 2), generator=g)
    return torch.randint(0, 31, (B, T), generator=g)


@pytest.mark.parametrize("position", ["absolute", "coupled", "multilevel", "none"])
@pytest.mark.parametrize("weights", [False, True])  # fused attention, and the explicit path that returns maps
def test_changing_a_future_token_never_changes_earlier_logits(position, weights):
    model = _model(position)
    g = torch.Generator().manual_seed(2)
    tokens = torch.randint(0, V, (3, 12), generator=g)
    pos = _positions(position, 3, 12)
    out = model(tokens, pos, return_attention=weights)
    logits = out[0] if weights else out
    for t in (0, 5, 10):
        changed = tokens.clone()
        changed[:, t + 1:] = (changed[:, t + 1:] + 7) % V
        new_pos = None if pos is None else pos.clone()
        if new_pos is not None:
            new_pos[:, t + 1:] = (new_pos[:, t + 1:] + 3) % 31  # future ids change too
        new = model(changed, new_pos, return_attention=weights)
        new = new[0] if weights else new
        torch.testing.assert_close(new[:, : t + 1], logits[:, : t + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(new[:, t + 1:], logits[:, t + 1:])


def test_attention_maps_are_causal_distributions_and_match_the_fused_path():
    model = _model("coupled")
    tokens = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(3))
    pos = _positions("coupled", 2, 9)
    logits, maps = model(tokens, pos, return_attention=True)
    torch.testing.assert_close(logits, model(tokens, pos), rtol=1e-5, atol=1e-6)
    assert len(maps) == 2 and maps[0].shape == (2, 4, 9, 9)
    for att in maps:
        torch.testing.assert_close(att.sum(-1), torch.ones(2, 4, 9))
        assert torch.all(att.triu(diagonal=1) == 0)


def test_multilevel_embedding_is_the_sum_of_one_table_per_stream():
    model = _model("multilevel")
    tokens = torch.tensor([[1, 2, 3]])
    pos = torch.tensor([[[0, 5], [4, 1], [7, 7]]])
    h = model.tok_emb(tokens) + model.pos_emb[0](pos[..., 0]) + model.pos_emb[1](pos[..., 1])
    # one stream replaced by zeros changes the output: both tables are used
    other = pos.clone()
    other[..., 1] = 0
    assert not torch.allclose(model(tokens, pos), model(tokens, other))
    x = h
    for block in model.blocks:
        x, _ = block(x)
    torch.testing.assert_close(model.head(model.ln_f(x)), model(tokens, pos))


def test_absolute_ids_default_to_the_token_index_and_continue_after_a_cache():
    model = _model("absolute")
    tokens = torch.randint(0, V, (2, 8), generator=torch.Generator().manual_seed(4))
    full = model(tokens)
    torch.testing.assert_close(full, model(tokens, torch.arange(8).expand(2, 8)))
    cache = KVCache()
    first = model(tokens[:, :5], cache=cache)
    rest = model(tokens[:, 5:], cache=cache)
    torch.testing.assert_close(torch.cat([first, rest], 1), full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("position", ["absolute", "coupled", "multilevel", "none"])
@pytest.mark.parametrize("n_layer", [1, 2])
def test_logits_at_selected_rows_equal_the_full_logits_there(position, n_layer):
    torch.manual_seed(0)
    model = DecoderTransformer(TransformerConfig(
        vocab_size=V, d_model=32, n_layer=n_layer, n_head=4, position=position, max_position=30,
        n_streams=2 if position == "multilevel" else 1, init="t5")).double()
    tokens = torch.randint(0, V, (3, 11), generator=torch.Generator().manual_seed(6))
    pos = _positions(position, 3, 11)
    rows = torch.tensor([[0, 4, 5, 10], [2, 3, 9, 9], [10, 1, 7, 6]])  # any order, repeats allowed
    full, maps = model(tokens, pos, return_attention=True)
    want = full.gather(1, rows.unsqueeze(-1).expand(3, 4, V))
    torch.testing.assert_close(model(tokens, pos, rows=rows), want, rtol=0, atol=1e-12)
    got, got_maps = model(tokens, pos, rows=rows, return_attention=True)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    last = maps[-1].gather(2, rows[:, None, :, None].expand(3, 4, 4, 11))  # (B, H, R, T)
    torch.testing.assert_close(got_maps[-1], last, rtol=0, atol=1e-12)
    # gradients too: the training loss at scored rows only is the full loss
    g_full = torch.autograd.grad(want.square().sum(), list(model.parameters()), allow_unused=True)
    g_rows = torch.autograd.grad(model(tokens, pos, rows=rows).square().sum(), list(model.parameters()),
                                 allow_unused=True)
    for a, b in zip(g_full, g_rows):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("position", ["absolute", "coupled", "multilevel", "none"])
def test_cached_decoding_equals_recomputing_the_whole_sequence(position):
    model = _model(position)
    prompt = torch.randint(0, V, (4, 6), generator=torch.Generator().manual_seed(5))
    pos = _positions(position, 4, 6 + 7)
    a = greedy_decode(model, prompt, 8, positions=pos, use_cache=True)
    b = greedy_decode(model, prompt, 8, positions=pos, use_cache=False)
    assert a.shape == (4, 8) and torch.equal(a, b)
    # greedy: each generated token is the argmax given everything before it
    seq = torch.cat([prompt, a], 1)
    logits = model(seq[:, :-1], None if pos is None else pos[:, : seq.shape[1] - 1])
    torch.testing.assert_close(logits[:, 5:].argmax(-1), a)


def test_hand_built_model_adds_numbers_of_every_length_it_has_ids_for():
    """The construction is exact: 100 % on 1 to 38 digits (ids up to 40), never trained."""
    model = addition_construction(max_position=40)
    text = addition_text([368, 20])
    p = text.index("=") + 1
    out = greedy_decode(model, encode(text)[None, :p], len(text) - p,
                        positions=torch.tensor(coupled_positions(text))[None])
    assert decode(out[0]) == "8830$"
    task = AdditionTask(digits=(1, 38), max_position=40)
    scores = evaluate(model, task, digits=[1, 2, 3, 9, 10, 17, 30, 38], n=100, seed=7)
    np.testing.assert_array_equal(scores.exact, 1.0)
    # the rule does not depend on where the ids start: exact at random starts too
    shifted = evaluate(model, task, digits=[1, 5, 20], n=100, seed=7, random_start=True)
    np.testing.assert_array_equal(shifted.exact, 1.0)
    # carries that ripple through every digit: 999...9 + 1
    for n in (5, 38):
        text = addition_text([10**n - 1, 1], n)
        p = text.index("=") + 1
        out = greedy_decode(model, encode(text)[None, :p], len(text) - p,
                            positions=torch.tensor(coupled_positions(text))[None])
        assert decode(out[0]) == "0" * n + "1$"


def test_hand_built_model_fails_with_the_wrong_query_map():
    P = 12
    wrong = (torch.eye(P + 1), torch.eye(P + 1))  # head 1 looks at its own id instead of one ahead
    model = addition_construction(max_position=P, query_maps=wrong)
    scores = evaluate(model, AdditionTask(digits=(1, 10), max_position=P), digits=[4], n=50, seed=0)
    assert scores.exact[0, 0] < 0.2
    with pytest.raises(ValueError, match="query map must be"):
        addition_construction(max_position=P, query_maps=(torch.eye(3), torch.eye(3)))


def test_initialisations_have_the_documented_scales():
    """gpt2: N(0, 0.02²) everywhere, residual projections / sqrt(2 n_layer); t5: embeddings N(0, 1),
    linear layers N(0, 1/fan_in); biases 0 in both."""
    d, L = 128, 2
    kw = dict(vocab_size=V, d_model=d, n_layer=L, n_head=4, position="coupled", max_position=200)
    torch.manual_seed(0)
    gpt2 = DecoderTransformer(TransformerConfig(**kw))
    torch.manual_seed(0)
    t5 = DecoderTransformer(TransformerConfig(**kw, init="t5"))
    for name, p in gpt2.named_parameters():
        if name.endswith("bias"):
            assert not p.any(), name
        elif p.ndim == 2:
            want = 0.02 / np.sqrt(2 * L) if name.endswith("proj.weight") else 0.02
            assert abs(p.std().item() / want - 1) < 0.1, (name, p.std().item(), want)
    for name, p in t5.named_parameters():
        if name.endswith("bias"):
            assert not p.any(), name
        elif p.ndim == 2:
            want = 1.0 if "emb" in name else p.shape[1] ** -0.5
            assert abs(p.std().item() / want - 1) < 0.1, (name, p.std().item(), want)
    with pytest.raises(ValueError, match="init='xavier'"):
        TransformerConfig(vocab_size=V, init="xavier")


def test_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="position="):
        TransformerConfig(vocab_size=V, position="rotary")
    with pytest.raises(ValueError, match="multiple of n_head"):
        TransformerConfig(vocab_size=V, d_model=30, n_head=4)
    with pytest.raises(ValueError, match="n_streams"):
        TransformerConfig(vocab_size=V, position="multilevel")
    model = _model("coupled")
    tokens = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="needs position ids"):
        model(tokens)
    with pytest.raises(ValueError, match="larger max_position"):
        model(tokens, torch.tensor([[0, 1, 2, 31]]))
    with pytest.raises(ValueError, match="n_streams=1"):
        model(tokens, torch.zeros(1, 4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="cannot be combined with cache"):
        model(tokens, torch.zeros(1, 4, dtype=torch.long), rows=torch.zeros(1, 1, dtype=torch.long), cache=KVCache())
    with pytest.raises(ValueError, match="positions 0..3"):
        model(tokens, torch.zeros(1, 4, dtype=torch.long), rows=torch.tensor([[1, 4]]))
    with pytest.raises(ValueError, match="rows must be"):
        model(tokens, torch.zeros(1, 4, dtype=torch.long), rows=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="positions cover"):
        greedy_decode(model, tokens, 5, positions=torch.zeros(1, 6, dtype=torch.long))
