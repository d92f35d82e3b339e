"""Serving the quality model through the Triton Inference Server.

`repository` builds a serving repository (python backend) from an exported model,
`imaging/triton_python_model.py` is the `model.py` Triton runs, `server` starts and stops a local
tritonserver.
"""
