"Shared test set-up: every test session gets its own data folder and never touches the network."
import os, tempfile
import pytest

@pytest.fixture(scope="session", autouse=True)
def offline_data_folder():
    "Point HTC_DL_DATA at a session-wide temporary folder (reused by all tests) and skip download attempts."
    keep = os.environ.get("HTC_DL_TEST_DATA")   # set it to reuse generated data between runs while developing
    folder = keep or tempfile.mkdtemp(prefix="htc_dl_test_data-")
    os.environ.update(HTC_DL_DATA=folder, HTC_DL_OFFLINE="1", HTC_DL_SMALL="1")
    yield folder


@pytest.fixture(scope="module")
def one_torch_thread():
    "Tiny models run several times faster on one thread on a busy 2-core machine; the setting is put back afterwards."
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
