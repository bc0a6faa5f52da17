"""``azengine quantize``: dynamic and static int8 versions of fp32 models, calibration and accuracy reports."""
