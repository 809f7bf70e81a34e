"""Actions: plan a replacement (a value), execute it by the replace protocol of
SAFETY.md section A, journal every step, recover after a crash, undo, purge, restore."""
