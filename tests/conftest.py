import os

from hypothesis import HealthCheck, settings

# CI runs the same examples every time (derandomize); a developer can explore more
# with HYPOTHESIS_PROFILE=explore.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Under pytest-xdist each worker gets one intra-op thread: two workers with torch's
# default two threads each oversubscribe the two CI cores, and OpenMP's spinning
# barriers then slow training down by an order of magnitude (measured).
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)
