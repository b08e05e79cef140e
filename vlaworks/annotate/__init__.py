"""Seed 000's (PixelVLA) annotation pipeline: gripper-aware region proposals, target
phrases, segmentation backends and visual prompts; entry point
:func:`vlaworks.annotate.pipeline.annotate_dataset` (``vlaworks annotate``)."""
