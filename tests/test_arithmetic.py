"""hild.data.arithmetic (formats, position ids, batches) and hild.experiments.arithmetic (training
recipe, checkpoints): hand-derived examples and exact arithmetic."""

import json

import numpy as np
import pytest
import torch

from hild import config
from hild.data import arithmetic as A
from hild.experiments import arithmetic as E
from hild.models import DecoderTransformer, TransformerConfig

# ---------------------------------------------------------------- formats and position ids


def test_coupled_ids_of_the_spec_example():
    # 368 + 20: operands zero-padded to 3 digits, answer 388 reversed and padded to 4 digits
    text = A.addition_text([368, 20])
    assert text == "$368+020=8830$"
    assert A.coupled_positions(text) == [0, 4, 3, 2, 1, 4, 3, 2, 1, 2, 3, 4, 5, 0]
    # a start s adds s - 1 to every id but those of '$'
    assert A.coupled_positions(text, start=7) == [0, 10, 9, 8, 7, 10, 9, 8, 7, 8, 9, 10, 11, 0]
    # a prompt, and a partly generated answer, get the ids of their tokens
    assert A.coupled_positions("$368+020=") == [0, 4, 3, 2, 1, 4, 3, 2, 1]
    assert A.coupled_positions("$368+020=88") == [0, 4, 3, 2, 1, 4, 3, 2, 1, 2, 3]


def test_multilevel_ids_of_the_spec_example():
    # 57 + 8 + 136 = 201: W = 4 digits (3 · 999 = 2997), running sums 0, 57, 65, 201
    text = A.scratchpad_text([57, 8, 136])
    assert text == "$0057+0008+0136=0000>7500>5600>1020$"
    sig = [0, 5, 4, 3, 2, 1, 5, 4, 3, 2, 1, 5, 4, 3, 2, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 0]
    op = [0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 0]
    assert A.coupled_positions(text) == sig
    assert A.operand_positions(text) == op
    assert A.multilevel_positions(text, start=(3, 2)) == [
        (s + 2 * (s > 0), o + 1 * (o > 0)) for s, o in zip(sig, op)]
    # the digit of S_2 of significance i and its two summands (S_1 and operand 1, digit i) are
    # one significance id and one operand id apart from the token that predicts it
    ids = A.multilevel_positions(text)
    predictor = text.index(">5600") + 1  # the token "5" (units of S_2) predicts its tens digit "6"
    assert ids[predictor] == (2, 3)
    assert ids[text.index("0008") + 2] == (3, 2) and ids[text.index(">7500") + 2] == (3, 2)


def test_formats_of_other_sizes():
    assert A.addition_text([5, 7]) == "$5+7=21$"
    assert A.addition_text([5, 7], n_digits=3) == "$005+007=2100$"
    assert A.addition_text([9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]) == "$" + "+".join("9" * 12) + "=801$"
    assert A.answer_width(3, 2) == 4 and A.answer_width(3, 10) == 4 and A.answer_width(3, 11) == 5
    assert A.scratchpad_text([1, 2]) == "$01+02=00>10>30$"
    assert A.decode(A.encode("$12+34=64$")) == "$12+34=64$"
    assert A.encode("0123456789").tolist() == list(range(10))


@pytest.mark.parametrize("bad, message", [
    ("$36a+020=", "'a' at index 3"),
    ("$368+20=", "differ in length"),
    ("368+020=", "not an addition sequence"),
    ("$368=", "not an addition sequence"),
    ("$368+020=88$30", "not an addition sequence"),
    ("$368+020=$", "answer is missing"),
])
def test_bad_strings_get_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        A.coupled_positions(bad)


def test_bad_arguments_get_a_clear_error():
    with pytest.raises(ValueError, match="not a token"):
        A.encode("12 + 3")
    with pytest.raises(ValueError, match="non-negative"):
        A.addition_text([3, -4])
    with pytest.raises(ValueError, match="shorter than the longest"):
        A.addition_text([1234, 5], n_digits=3)
    with pytest.raises(ValueError, match="start must be at least 1"):
        A.coupled_positions("$1+2=30$", start=0)
    with pytest.raises(ValueError, match="raise max_position"):
        A.AdditionTask(digits=(1, 30), max_position=20)
    with pytest.raises(ValueError, match="raise max_position"):
        A.AdditionTask(digits=(1, 5), max_position=20).batch(2, rng=0, n_digits=25)
    with pytest.raises(ValueError, match="scratchpad=True"):
        A.AdditionTask(position="multilevel", max_operand_position=9)
    with pytest.raises(ValueError, match="max_operand_position"):
        A.AdditionTask(operands=(2, 5), scratchpad=True, position="multilevel", max_operand_position=4)


# ---------------------------------------------------------------- batches


def _check_rows(batch, scratchpad):
    for text, prompt in zip(batch.texts(), batch.prompt_len.tolist()):
        ops, ans = text[1:-1].split("=")
        numbers = [int(o) for o in ops.split("+")]
        sums = [int(s[::-1]) for s in ans.split(">")]
        want = [sum(numbers[:j]) for j in range(len(numbers) + 1)] if scratchpad else [sum(numbers)]
        assert sums == want, text
        assert text[prompt - 1] == "="


@pytest.mark.parametrize("scratchpad", [False, True])
def test_batches_hold_correct_sums_and_score_only_the_answer(scratchpad):
    task = A.AdditionTask(digits=(1, 7), operands=(2, 5), scratchpad=scratchpad, position="none")
    batch = task.batch(300, rng=0)
    _check_rows(batch, scratchpad)
    for row in range(len(batch)):
        toks, tgt, p = batch.tokens[row], batch.targets[row], int(batch.prompt_len[row])
        end = int((toks != A.PAD).sum())
        assert torch.all(tgt[: p - 1] == A.IGNORE) and torch.all(tgt[end - 1:] == A.IGNORE)
        assert torch.equal(tgt[p - 1:end - 1], toks[p:end])  # the answer digits, separators and the final '$'
        assert toks[end - 1] == A.EOS and torch.all(toks[end:] == A.PAD)


def test_scored_rows_pick_each_answer_in_order_and_the_loss_equals_the_full_one():
    targets = torch.tensor([[A.IGNORE, 4, 5, A.IGNORE, A.IGNORE], [A.IGNORE, A.IGNORE, A.IGNORE, 7, A.IGNORE]])
    rows = A.scored_rows(targets)
    assert rows.tolist()[0] == [1, 2] and rows.tolist()[1][0] == 3  # row 1 is padded with an unscored position
    assert targets.gather(1, rows).tolist() == [[4, 5], [7, A.IGNORE]]
    task = A.AdditionTask(digits=(1, 4), operands=(2, 3), scratchpad=True, position="multilevel",
                          max_position=8, max_operand_position=6)
    batch = task.batch(40, rng=3)
    torch.manual_seed(0)
    model = DecoderTransformer(TransformerConfig(vocab_size=A.VOCAB_SIZE, d_model=16, n_layer=2, n_head=2,
                                                 position="multilevel", n_streams=2, max_position=8)).double()
    full = torch.nn.functional.cross_entropy(model(batch.tokens, batch.positions).transpose(1, 2), batch.targets,
                                             ignore_index=A.IGNORE)
    torch.testing.assert_close(A.next_token_loss(model, batch), full, rtol=0, atol=1e-12)


def test_generator_covers_each_length_and_count_uniformly():
    task = A.AdditionTask(digits=(1, 5), operands=(2, 4), scratchpad=True, position="none")
    batch = task.batch(30_000, rng=1)
    for values, lo, hi in ((batch.n_digits, 1, 5), (batch.n_operands, 2, 4)):
        counts = np.bincount(values.numpy(), minlength=hi + 1)[lo:]
        p = 1 / (hi - lo + 1)
        sd = np.sqrt(len(batch) * p * (1 - p))
        assert np.all(np.abs(counts - len(batch) * p) < 5 * sd), counts
    # and within one length, every digit is uniform on 0-9 (operands are uniform n-digit strings)
    first = A.AdditionTask(digits=(3, 3)).batch(20_000, rng=2, train=False).tokens[:, 1]
    counts = np.bincount(first.numpy(), minlength=10)[:10]
    assert np.all(np.abs(counts - 2000) < 5 * np.sqrt(20_000 * 0.1 * 0.9)), counts


def test_test_batches_use_the_ids_of_the_format_and_training_shifts_them():
    task = A.AdditionTask(digits=(1, 5), max_position=20)
    test = task.batch(5, rng=3, n_digits=4, train=False)
    for text, pos in zip(test.texts(), test.positions):
        assert pos.tolist() == A.coupled_positions(text)
    train = task.batch(2000, rng=4)
    starts = set()
    for text, pos in zip(train.texts(), train.positions):
        base = torch.tensor(A.coupled_positions(text))
        pos = pos[: len(base)]
        shift = (pos - base)[base > 0]
        assert torch.all(shift == shift[0]) and torch.all(pos[base == 0] == 0)
        n = len(text.split("+")[0]) - 1
        assert 0 <= int(shift[0]) <= 20 - n - 2  # start s in 1..(20 - n - 1)
        starts.add(int(shift[0]) + 1)
        assert int(pos.max()) <= 20
    assert starts == set(range(1, 19))  # every start allowed for 1-digit problems occurs


def test_multilevel_and_absolute_ids_in_batches():
    task = A.AdditionTask(digits=(1, 4), operands=(2, 4), scratchpad=True, position="multilevel",
                          max_position=12, max_operand_position=9)
    test = task.batch(4, rng=5, n_digits=3, n_operands=3, train=False)
    assert test.positions.shape == (4, len(A.scratchpad_text([0, 0, 0], 3)), 2)
    for text, pos in zip(test.texts(), test.positions):
        assert [tuple(p) for p in pos.tolist()] == A.multilevel_positions(text)
    train = task.batch(500, rng=6)
    assert int(train.positions[..., 0].max()) <= 12 and int(train.positions[..., 1].max()) <= 9
    assert len(set(train.positions[:, 1, 1].tolist())) > 3  # operand starts vary
    absolute = A.AdditionTask(digits=(2, 2), position="absolute", max_position=40)
    test = absolute.batch(2, rng=7, train=False)
    assert test.positions[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    shifted = absolute.batch(300, rng=8).positions
    assert torch.all(shifted[:, 2:-1] - shifted[:, 1:-2] == 1) and int(shifted.max()) <= 40
    assert A.AdditionTask(position="none").batch(3, rng=0).positions is None


def test_score_and_evaluate_on_a_model_that_knows_the_answer():
    class Oracle(torch.nn.Module):
        """Predicts the true next token from the batch it was built for; the token at sequence
        index ``wrong_at`` comes out wrong."""

        def __init__(self, batch, wrong_at=None):
            super().__init__()
            self.full, self.wrong_at = batch.tokens, wrong_at

        def forward(self, tokens, positions=None, cache=None):
            start = cache.length if cache is not None else 0
            if cache is not None:
                cache.keys = [torch.zeros(1, 1, start + tokens.shape[1], 1)]
            nxt = self.full[:, start + 1:start + tokens.shape[1] + 1]
            nxt = torch.cat([nxt, torch.full((len(nxt), tokens.shape[1] - nxt.shape[1]), A.PAD)], 1)
            if self.wrong_at is not None:
                predicted = torch.arange(start + 1, start + tokens.shape[1] + 1)  # index of the token predicted
                nxt = torch.where(predicted == self.wrong_at, (nxt + 1) % 10, nxt)
            return torch.nn.functional.one_hot(nxt, A.VOCAB_SIZE).float()

    task = A.AdditionTask(digits=(3, 3))
    batch = task.batch(6, rng=9, n_digits=3, train=False)
    exact, tok, stops = A.score(Oracle(batch), batch)
    assert exact.all() and np.allclose(tok, 1.0) and stops.all()
    p = int(batch.prompt_len[0])
    exact, tok, stops = A.score(Oracle(batch, wrong_at=p + 1), batch)  # the second answer digit is off
    assert not exact.any() and np.allclose(tok, 3 / 4) and stops.all()
    exact, tok, stops = A.score(Oracle(batch, wrong_at=p + 4), batch)  # the end token is off
    assert exact.all() and not stops.any()
    with pytest.raises(ValueError, match="one layout"):
        A.score(Oracle(batch), A.AdditionTask(digits=(1, 5)).batch(8, rng=0))


# ---------------------------------------------------------------- the training recipe


def test_warmup_cosine_schedule():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = E.warmup_cosine(opt, steps=110, warmup=10, min_ratio=0.1)
    f = sched.lr_lambdas[0]
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)


def test_training_lowers_the_loss_and_resumes_exactly(tmp_path, monkeypatch):
    run = E.ArithmeticRun(digits=(1, 3), max_position=8, d_model=16, n_head=2, steps=20, batch_size=8, warmup=2)
    model, history = E.train_run(run, every=5)
    assert history.steps == [5, 10, 15, 20]
    ckpt = tmp_path / "resume.pt"
    monkeypatch.setattr(config, "MAX_STEPS", 10)  # interrupted after 10 steps
    E.train_run(run, checkpoint=ckpt, every=5)
    monkeypatch.setattr(config, "MAX_STEPS", None)
    resumed, h2 = E.train_run(run, checkpoint=ckpt, every=5)
    assert h2.steps == history.steps
    np.testing.assert_allclose(h2["loss"], history["loss"], rtol=1e-5)
    for a, b in zip(model.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(h2["cpu_seconds"]) >= 0)


def test_checkpoint_round_trip_and_command_line(tmp_path, monkeypatch):
    monkeypatch.setitem(E.EVAL_GRIDS, "addition-coupled", {"digits": [1, 12], "operands": [2]})
    out = tmp_path / "ck"
    assert E.main(["addition-coupled", "--out", str(out), "--steps", "3", "--eval-n", "2"]) == 0
    path = out / "addition-coupled.pt"
    assert path.exists() and not (out / "addition-coupled.train.pt").exists()
    assert path.stat().st_size < 5e6
    model, run, prov = E.load_checkpoint(path)
    assert run == E.PRESETS["addition-coupled"].replace(steps=3)
    for key in ("command", "git_commit", "device", "training_seconds", "seed", "steps", "scores"):
        assert key in prov
    assert prov["steps"] == 3 and "--steps 3" in prov["command"]
    assert json.loads(path.with_suffix(".json").read_text())["preset"] == "addition-coupled"
    batch = run.task().batch(4, rng=0)
    again, _, _ = E.load_checkpoint(path)
    torch.testing.assert_close(model(batch.tokens, batch.positions), again(batch.tokens, batch.positions))
    with pytest.raises(FileNotFoundError, match="python -m hild.experiments.arithmetic"):
        E.load_checkpoint(tmp_path / "nothing.pt")


def test_evaluate_at_random_starts_scores_the_same_problems_with_shifted_ids():
    task = A.AdditionTask(digits=(1, 3), max_position=12)
    fixed = task.batch(50, rng=3, n_digits=4, train=False)
    drawn = task.batch(50, rng=3, n_digits=4, train=True)
    assert torch.equal(fixed.tokens, drawn.tokens)
    shift = drawn.positions - fixed.positions
    assert (shift[fixed.positions == 0] == 0).all()  # '$' keeps id 0
    per_row = shift[:, 1:2]  # the first operand digit: its row's start - 1
    assert ((shift == per_row) | (fixed.positions == 0)).all() and per_row.max() > 0
    assert int(drawn.positions.max()) <= 12


# ---------------------------------------------------------------- multiplication


def test_multiplication_scratchpad_of_a_known_example():
    # 57 * 21: partial products 57 * 1 = 57 and 57 * 2 = 114 (3 digits each, reversed), running sums
    # 57 and 57 + 1140 = 1197 (4 digits each, reversed); operands most significant digit first
    text = A.multiplication_text(57, 21)
    assert text == "$57*21=750+411=7500>7911$"
    ids = A.multiplication_positions(text)
    want = ([(0, 0, 0), (3, 0, 0), (2, 0, 0), (0, 0, 0), (0, 2, 0), (0, 1, 0), (1, 1, 1)]   # $ 5 7 * 2 1 =
            + [(2, 1, 2), (3, 1, 3), (4, 1, 4)] + [(1, 2, 2)] + [(2, 2, 3), (3, 2, 4), (4, 2, 5)]  # P_0 + P_1
            + [(0, 1, 1)] + [(0, 1, 2), (0, 1, 3), (0, 1, 4), (0, 1, 5)]  # = C_1
            + [(0, 2, 1)] + [(0, 2, 2), (0, 2, 3), (0, 2, 4), (0, 2, 5)] + [(0, 0, 0)])  # > C_2 $
    assert ids == want
    shifted = A.multiplication_positions(text, start=(3, 2, 5))
    for (s, o, t), (s0, o0, t0) in zip(shifted, ids):
        assert (s, o, t) == (s0 + 2 * (s0 > 0), o0 + (o0 > 0), t0 + 4 * (t0 > 0))
    prompt = text[: text.index("=") + 1]
    assert A.multiplication_positions(prompt) == ids[: len(prompt)]  # a prompt gets the same ids
    assert A.multiplication_text(5, 3, 2, 2) == "$05*03=510+000=5100>5100$"  # zero-padded lengths


@pytest.mark.parametrize("position", ["multilevel", "absolute", "none"])
def test_multiplication_batches_hold_correct_scratchpads(position):
    task = A.MultiplicationTask(digits=(1, 4), operands=(1, 3), position=position, max_position=80,
                                max_operand_position=6)
    batch = task.batch(200, rng=1)
    for row, text in enumerate(batch.texts()):
        a, b, partials, sums, end = A._parse_multiplication(text)
        x, y = int(a), int(b)
        n, m = len(a), len(b)
        assert end and len(partials) == m and len(sums) == m
        assert [int(p[::-1]) for p in partials] == [x * int(d) for d in b[::-1]]
        assert [int(c[::-1]) for c in sums] == [x * (y % 10 ** (j + 1)) for j in range(m)]
        assert all(len(p) == n + 1 for p in partials) and all(len(c) == n + m for c in sums)
        assert (int(batch.n_digits[row]), int(batch.n_operands[row])) == (n, m)
        assert len(text) == task.length(n, m)
        p = int(batch.prompt_len[row])
        assert text[p - 1] == "=" and p == n + m + 3
        tgt = batch.targets[row]
        assert torch.all(tgt[: p - 1] == A.IGNORE)
        assert torch.equal(tgt[p - 1: len(text) - 1], batch.tokens[row, p: len(text)])
    if position == "none":
        assert batch.positions is None
    elif position == "absolute":
        assert batch.positions.ndim == 2


def test_multiplication_test_ids_follow_the_format_and_training_shifts_them_within_the_tables():
    task = A.MultiplicationTask(digits=(1, 3), operands=(1, 3), max_position=9, max_operand_position=5)
    test = task.batch(50, rng=2, n_digits=3, n_operands=2, train=False)
    want = torch.tensor(A.multiplication_positions(test.texts()[0]))
    assert test.positions.shape == (50, len(want), 3) and torch.equal(test.positions[0], want)
    train = task.batch(2000, rng=3)
    pos = train.positions
    assert int(pos[..., 0].max()) == 9 and int(pos[..., 2].max()) == 9 and int(pos[..., 1].max()) == 5
    assert int(pos.min()) == 0
    for row in range(0, 2000, 97):  # each row's ids are the format's, shifted per stream by its start
        text = train.texts()[row]
        base = torch.tensor(A.multiplication_positions(text))
        got = pos[row, : len(text)]
        for s in range(3):
            d = (got[:, s] - base[:, s])[base[:, s] > 0]
            assert torch.all(d == d[0]) and int(d[0]) >= 0
            assert torch.all(got[:, s][base[:, s] == 0] == 0)


def test_multiplication_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="not a multiplication"):
        A.multiplication_positions("$12+34=")
    with pytest.raises(ValueError, match="raise max_position"):
        A.MultiplicationTask(digits=(1, 9), operands=(1, 3), max_position=10)
    with pytest.raises(ValueError, match="raise max_operand_position"):
        A.MultiplicationTask(digits=(1, 3), operands=(1, 6), max_position=20, max_operand_position=4)
    with pytest.raises(ValueError, match="'multilevel'"):
        A.MultiplicationTask(position="coupled")
    with pytest.raises(ValueError, match="non-negative"):
        A.multiplication_text(-3, 4)


def test_multiplication_runs_train_and_score_end_to_end(monkeypatch):
    monkeypatch.setenv("HILD_PROGRESS", "0")
    run = E.ArithmeticRun(operation="multiplication", digits=(1, 2), operands=(1, 2), position="multilevel",
                          max_position=8, max_operand_position=4, d_model=32, n_layer=1, n_head=2, steps=30,
                          batch_size=16, seed=0)
    assert run.model_config().n_streams == 3
    model, history = E.train_run(run, every=5)
    assert history["loss"][-1] < history["loss"][0]
    scores = A.evaluate(model, run.task(), digits=[1, 3], operands=[1, 2], n=20)
    assert scores.exact.shape == (2, 2) and np.all((scores.token_acc >= 0) & (scores.token_acc <= 1))
    with pytest.raises(ValueError, match="operation="):
        E.ArithmeticRun(operation="division").task()
