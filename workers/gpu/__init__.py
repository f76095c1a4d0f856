"""The gpu pool: transformer models served from one warm process, with dynamic batching.

Only the gpu worker process imports torch and transformers (`workers.gpu.encoder` and what imports
it). `contracts` and `registry` stay dependency-free, so the API and the engine can read them.
"""
