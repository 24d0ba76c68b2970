import pytest

from phewas.base.progress import set_quiet

set_quiet(True)


@pytest.fixture(autouse=True)
def cpu_unless_gpu(request, monkeypatch):
    """The suite runs on the CPU wherever it runs: ``device="auto"`` would otherwise switch to a GPU
    (and bf16) on a machine that has one. Tests marked ``gpu`` see the GPU, and are skipped
    without one; subprocesses (torchrun) get no GPU either."""
    if request.node.get_closest_marker("gpu"):
        import torch
        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU")
        return
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    try:
        import torch
    except ImportError:
        return
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture(scope="session")
def sim_data(tmp_path_factory):
    """A small simulated MC-MED folder shared by the tests (reading only)."""
    from cohorts.sim import PopulationConfig, simulate_dataset
    out = tmp_path_factory.mktemp("sim") / "mcmed"
    simulate_dataset(out, PopulationConfig(patients=100, seed=3, minutes=1.5), workers=2)
    return out


@pytest.fixture(scope="session")
def sim_cohort(sim_data, tmp_path_factory):
    from cohorts import CohortConfig, build_cohort
    out = tmp_path_factory.mktemp("cohort") / "cohort"
    build_cohort(sim_data, out, CohortConfig(seed=0, workers=1))
    return out


@pytest.fixture(scope="session")
def sim_store(sim_data, sim_cohort):
    from cohorts import SegmentConfig, extract_segments, open_segments
    extract_segments(sim_data, sim_cohort, SegmentConfig(chunk_stays=32), workers=2)
    return open_segments(sim_cohort)
