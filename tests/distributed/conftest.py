import pytest


@pytest.fixture(scope="session")
def ranks():
    """``run_ranks`` with the fork server already started (importing torch there takes seconds)."""
    from distributed_helpers import do_nothing, run_ranks

    run_ranks(do_nothing)
    return run_ranks
