"""Session-wide test setup: MuJoCo picks its GL backend once, when it is first imported, so the
world package (which defaults ``MUJOCO_GL`` to a headless backend) is imported before any test
module can import mujoco; otherwise a later test that renders would depend on the test order."""

import plugins.world  # noqa: F401
