"""hild.data.text: the stdlib corpus is read in sorted order, bytes above 127 map to 127; windows replay."""

import pytest
import torch


def test_python_source_corpus_and_replayable_windows(tmp_path):
    from hild.data import python_source, text_windows

    (tmp_path / "b.py").write_bytes(b"def f():\n    return 1\n")
    (tmp_path / "a.py").write_bytes("x = 'é'\n".encode())  # sorted first; é is two bytes > 127
    data = python_source(12, directory=tmp_path)
    assert data.tolist()[:5] == list(b"x = '") and data[5] == data[6] == 127
    assert data.tolist()[9:] == list(b"def")  # a.py (9 bytes) then b.py
    with pytest.raises(ValueError, match="only"):
        python_source(10_000, directory=tmp_path)
    corpus = torch.arange(100)
    x, y = text_windows(corpus, batch=4, context=5, seed=1)(7)
    assert x.shape == y.shape == (4, 5) and torch.equal(y, x + 1)  # targets are the next characters
    assert torch.equal(x, text_windows(corpus, batch=4, context=5, seed=1)(7)[0])
    assert len(python_source(1000)) == 1000  # the interpreter's own library is there
