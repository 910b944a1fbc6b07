"""Teachers: loading them (trained jobs, weights files), the inference engine (PyTorch or DeepSpeed), ensembles,
and the teacher-output cache."""
