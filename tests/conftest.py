"""Shared pytest setup: `--runslow` enables tests marked `slow`; runs offline; the `kernel` that papermill runs notebooks on."""
import os, sys
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')


def pytest_addoption(parser):
    parser.addoption('--runslow', action='store_true', default=False, help='run tests marked slow')


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: slow test, run with --runslow')


def pytest_collection_modifyitems(config, items):
    if config.getoption('--runslow'): return
    skip = pytest.mark.skip(reason='slow: run with --runslow')
    for item in items:
        if 'slow' in item.keywords: item.add_marker(skip)


@pytest.fixture(scope='session')
def kernel() -> str:
    "The Jupyter kernel the experiment notebooks run on (`python3`), installed into this environment when missing."
    from jupyter_client.kernelspec import KernelSpecManager
    if 'python3' not in KernelSpecManager().find_kernel_specs():
        from ipykernel.kernelspec import install
        install(kernel_name='python3', prefix=sys.prefix)
    return 'python3'
