"""The eight-step lab: its plan (topology), its steps as ops, its owner (Lab), its packet proofs.

The step numbers live here, in the package's light first module, so that the face can bound its
step arguments without loading the ops.
"""

LAST_STEP = 8  # the last of the eight steps: run-all's default end
BONUS_STEP = 9  # port forwarding, after the eight
