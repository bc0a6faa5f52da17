"""Evaluators that run a network: torch (eager fp32, int8 TorchScript) and ONNX Runtime. Running only;
making int8 files is :mod:`engine.quant`'s job."""
