"""The edge pool: registry models quantised to int8 and served with ONNX Runtime on the CPU of a
site, near its data; one task queue per site (`edge.<site>`).

The serving process imports onnxruntime, tokenizers and numpy only, never torch or transformers:
`quantize` (which does import torch) builds the int8 artifact once per model revision, in a child
process or ahead of time with `python -m workers.edge.quantize`.
"""
