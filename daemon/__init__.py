"""dedupd.daemon"""
