"""hild.data.streams: chunks partition the data, stage i sees chunks 0..i; the synthetic classes
have the requested means; a data set becomes two tensors."""

import numpy as np
import pytest
import torch

from hild.data.streams import ChunkedStream, dataset_tensors, gaussian_classes


def test_chunks_partition_the_data_and_stages_accumulate():
    x = torch.arange(23.0)[:, None]
    y = torch.arange(23)
    s = ChunkedStream.split(x, y, 5, seed=1)
    assert s.chunk_size == 4 and len(s) == 5
    chunks = [s.chunk(i)[1] for i in range(5)]
    seen = torch.cat(chunks)
    assert len(set(seen.tolist())) == 20, "chunks are disjoint"
    for i, xs, ys in s:
        assert torch.equal(ys, torch.cat(chunks[: i + 1]))
        assert torch.equal(xs[:, 0].long(), ys)
    assert not torch.equal(seen, torch.arange(20)), "the order is shuffled"
    assert torch.equal(ChunkedStream.split(x, y, 5, seed=1).order, s.order), "the seed fixes the order"
    with pytest.raises(IndexError):
        s.seen(5)
    with pytest.raises(ValueError, match="n_chunks"):
        ChunkedStream.split(x, y, 0)


def test_gaussian_classes_have_the_requested_signal():
    split = gaussian_classes(20_000, 10, d=20, n_classes=4, signal=3.0, seed=0, dtype=torch.float64)
    means = torch.stack([split.x_train[split.y_train == c].mean(0) for c in range(4)])
    norms = means.norm(dim=1)
    # the class mean is 3·f_c with ‖f_c‖ = 1; the noise in a mean over ~5000 points is ~√(20/5000)
    assert torch.allclose(norms, torch.full((4,), 3.0, dtype=torch.float64), atol=0.1)
    again = gaussian_classes(20_000, 10, d=20, n_classes=4, signal=3.0, seed=0, dtype=torch.float64)
    assert torch.equal(again.x_test, split.x_test)


def test_dataset_tensors_fast_path_and_generic_path():
    class ImageSet:
        data = np.arange(2 * 3 * 3 * 2, dtype=np.uint8).reshape(2, 3, 3, 2)  # (N, H, W, C)
        targets = [4, 7]

        def __len__(self):
            return 2

    x, y = dataset_tensors(ImageSet())
    assert x.shape == (2, 2, 3, 3) and torch.equal(y, torch.tensor([4, 7]))
    assert float(x[1, 1, 2, 2]) == pytest.approx(float(ImageSet.data[1, 2, 2, 1]) / 255)
    ds = torch.utils.data.TensorDataset(torch.ones(3, 2), torch.tensor([0, 1, 2]))
    x, y = dataset_tensors(ds)
    assert x.shape == (3, 2) and torch.equal(y, torch.tensor([0, 1, 2]))
