"""dedupd.index"""
