import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def builtin_cache(tmp_path_factory):
    """One cache of the built-in data set for the interpretation tests."""
    return str(tmp_path_factory.mktemp("builtin-interpret"))


@pytest.fixture(scope="session")
def builtin_hybrid(builtin_cache, tmp_path_factory):
    """A small version of the default model (``hybrid-dense`` as ``python -m bsp_fast.train`` builds it,
    but 16 filters, H=16, dense 16) trained briefly with cv.train_model on 1500 bound + 1500
    nearby-unbound 400 bp built-in windows (one-bin stretches; 12 epochs, lr 5e-3, one thread: ~30 s).
    Returns (model in eval mode, checkpoint path, codes, labels)."""
    from bsp_fast import motifs as mo
    from bsp_fast.cv import save_final, train_model
    from bsp_fast.models import build_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        codes, labels = mo.builtin_windows(400, 1500, 1500, seed=0, cache_dir=builtin_cache, negatives="flank")
        torch.manual_seed(0)
        model = build_model("hybrid-dense", filters=16, hidden=16, dense=16)
        train_model(model, codes, labels, epochs=12, batch_size=64, lr=5e-3, seed=0)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    ck = save_final(model, tmp_path_factory.mktemp("hybrid") / "final.pt", {"length": 400})
    return model, ck, codes, labels
