"""Worker pools: one process and one task queue each."""
