import os

from hypothesis import settings

# No example database in the working tree; derandomized so a run is reproducible.
settings.register_profile("kernels", database=None, derandomize=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "kernels"))
