"""dedupd.kernels"""
